"""A reference for the rows engine: one trajectory, one point, one optimizer step at a time.

This is the loop ``descend.lab.minimize`` ran before it became the rows
engine with one row. The tests hold ``minimize``, ``run_many`` and
``minimize_many`` equal to it bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from descend import optim as O
from descend.lab._common import check_int, check_tol, is_sequence
from descend.lab.engine import build
from descend.lab.objective import Objective
from descend.lab.results import Run
from descend.landscapes import Landscape
from descend.schedules import Schedule, Scheduler

Tensor = torch.Tensor


def _lr_of(opt: torch.optim.Optimizer) -> Any:
    return opt.param_groups[0]["lr"]


def _as_float(lr: Any) -> float:
    return float(lr.reshape(-1)[0]) if isinstance(lr, Tensor) else float(lr)


def _scheduler(opt: torch.optim.Optimizer, schedule: Any, lr_given: bool) -> Scheduler | None:
    if schedule is None:
        return None
    return Scheduler(opt, schedule, relative=lr_given)


def _status(fv: float, gn: float, xmax: float, f_star: float | None, tol: float | None, bound: float) -> tuple[bool, bool]:
    diverged = not (math.isfinite(fv) and math.isfinite(gn) and xmax <= bound)
    if diverged or tol is None:
        return False, diverged
    return (fv - f_star < tol) if f_star is not None else (gn < tol), False


def reference_minimize(
    f: Landscape | str | Callable[[Tensor], Tensor],
    x0: Any = None,
    optimizer: str | type[torch.optim.Optimizer] = "gd",
    *,
    steps: int = 1000,
    tol: float | None = 1e-8,
    schedule: Schedule | None = None,
    record_every: int = 1,
    bound: float | None = None,
    **hyper: Any,
) -> Run:
    """The plain loop ``minimize`` had before the rows engine: one point, one step at a time."""
    obj = Objective(f)
    cls, display, _ = O.resolve(optimizer)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    tol = check_tol(tol)
    x = obj.start(x0)
    obj.check_point_shape(tuple(x.shape), "x0")
    bound = obj.bound_for(x) if bound is None else float(bound)
    for k, v in hyper.items():
        if is_sequence(v):
            raise ValueError(f"{k} must be a single value for minimize, got {v!r}; use run_many for many values")
    x.requires_grad_(True)
    opt = build(cls, [x], hyper)
    sched = _scheduler(opt, schedule, "lr" in hyper)
    is_newton = isinstance(opt, O.Newton)
    lookahead = bool(opt.param_groups[0].get("lookahead", False))
    hyper_out = {"lr": _as_float(_lr_of(opt)), **hyper} if "lr" not in hyper else dict(hyper)
    if sched is not None and "lr" not in hyper:
        hyper_out["lr"] = float(schedule(0))
    f_star = obj.f_star

    def closure_grad() -> Tensor:  # Nesterov(lookahead=True) evaluates the gradient where it asks
        v, g = obj.value_grad(x.detach())
        x.grad = g
        return v

    t0 = time.perf_counter()
    path: list[Tensor] = []
    losses: list[float] = []
    gnorms: list[float] = []
    rec_steps: list[int] = []
    lrs: list[float] = []
    v, g = obj.value_grad(x.detach())

    def measure() -> tuple[float, float, bool, bool]:
        fv = float(v)
        gn = float(torch.sqrt((g * g).sum()))
        conv, div = _status(fv, gn, float(x.detach().abs().max()), f_star, tol, bound)
        return fv, gn, conv, div

    def record(t: int, fv: float, gn: float) -> None:
        path.append(x.detach().reshape(-1).clone())
        losses.append(fv)
        gnorms.append(gn)
        rec_steps.append(t)

    fv, gn, conv, div = measure()
    record(0, fv, gn)
    t = 0
    while not (conv or div) and t < steps:
        t += 1
        if is_newton:
            try:
                opt.step(lambda: obj.loss(x))
            except O.NonFiniteGradientError:  # NaN/inf inside Newton's own evaluations
                lrs.append(float("nan"))
                div = True
                record(t, fv, gn)
                break
            lrs.append(float(opt.last["step_size"]))
        else:
            lrs.append(_as_float(_lr_of(opt)))
            if lookahead:
                opt.step(closure_grad)
            else:
                x.grad = g
                opt.step()
        v, g = obj.value_grad(x.detach())
        fv, gn, conv, div = measure()
        if sched is not None:
            sched.step(fv if sched.needs_metric and math.isfinite(fv) else None)
        if t % record_every == 0 or conv or div or t == steps:
            record(t, fv, gn)
    wall = time.perf_counter() - t0
    return Run(
        optimizer=display,
        hyper=hyper_out,
        path=torch.stack(path).cpu().numpy(),
        losses=np.asarray(losses, dtype=np.float64),
        grad_norms=np.asarray(gnorms, dtype=np.float64),
        lrs=np.asarray(lrs, dtype=np.float64),
        record_steps=np.asarray(rec_steps, dtype=np.int64),
        steps_to_tol=t if conv else None,
        converged=conv,
        diverged=div,
        wall_time=wall,
        f_star=f_star,
        landscape=obj.name,
        tol=tol,
    )


def _as_float(lr: Any) -> float:
    return float(lr.reshape(-1)[0]) if isinstance(lr, Tensor) else float(lr)
