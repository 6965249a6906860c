"""Tour topic: Newton's method against gradient descent, in steps and in wall time, on
logistic regression with real data.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import lab
from .. import optim as O
from ..plots.lab import race_figure
from ..plots.tour import Panel, Series, panels_figure
from ._util import BEST_LR, F64, as_inf, race_grid, shown, take
from .base import Context, Finding, judge, topic

# --------------------------------------------------------------------------- 8. Newton


def _logistic(X: torch.Tensor, y: torch.Tensor, wd: float):
    def loss(w: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(X @ w[:-1] + w[-1], y) + 0.5 * wd * (w * w).sum()

    return loss


def _newton_vs_gd(X: torch.Tensor, y: torch.Tensor, wd: float, tol: float, gd_steps: int) -> dict[str, object]:
    """Newton (exact Hessian, line search) and GD at lr 1/L until the gradient norm < tol."""
    loss = _logistic(X, y, wd)
    d = X.shape[1] + 1
    A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    L = 0.25 * float(torch.linalg.eigvalsh(A.T @ A / len(X))[-1]) + wd
    out: dict[str, object] = {"L": L}
    for name in ("newton", "gd"):
        w = torch.zeros(d, dtype=X.dtype, requires_grad=True)
        opt = O.build("newton", [w], line_search=True) if name == "newton" else O.build("gd", [w], lr=1.0 / L, impl="eager")
        curve = []
        t0 = time.perf_counter()
        clock = 0.0
        reached = None
        budget = 60 if name == "newton" else gd_steps
        for k in range(budget + 1):
            w.grad = None
            v = loss(w)
            (g,) = torch.autograd.grad(v, w)
            gn = float(g.norm())
            clock = time.perf_counter() - t0
            curve.append((k, clock, float(v.detach())))
            if gn < tol:
                reached = k
                break
            if k == budget:
                break
            if name == "newton":
                opt.step(lambda w=w: loss(w))
            else:
                w.grad = g
                opt.step()
        out[name] = {"steps": reached, "seconds": clock, "curve": np.asarray(curve), "budget": budget}
    return out


def _per_step_seconds(d: int, gen: torch.Generator, reps_newton: int, reps_gd: int) -> tuple[float, float]:
    X = torch.randn(4 * d, d, generator=gen, dtype=F64)
    y = (torch.rand(4 * d, generator=gen, dtype=F64) < 0.5).to(F64)
    loss = _logistic(X, y, 1e-2)
    times = []
    for name, reps in (("newton", reps_newton), ("gd", reps_gd)):
        w = torch.zeros(d + 1, dtype=F64, requires_grad=True)
        opt = O.build("newton", [w], hessian="exact") if name == "newton" else O.build("gd", [w], lr=0.1, impl="eager")
        t0 = time.perf_counter()
        for _ in range(reps):
            if name == "newton":
                opt.step(lambda w=w: loss(w))
            else:
                opt.zero_grad()
                loss(w).backward()
                opt.step()
        times.append((time.perf_counter() - t0) / reps)
    return times[0], times[1]


def measure_newton(ctx: Context) -> dict[str, Any]:
    """Newton against GD on Rosenbrock and on logistic regression, in steps and seconds, and per-step cost by size."""
    from .. import data as D

    steps = ctx.pick(5000, 2000)
    grid = race_grid()
    race2d = lab.race("rosenbrock", [("newton", {"line_search": True})], steps=steps, tol=1e-6)
    gd2d = lab.race("rosenbrock", ["gd"], steps=steps, tol=1e-6, fair=True, lr_grid=grid)
    race2d.runs.append(gd2d.runs[0])
    nt, gd = race2d.runs
    ds = ctx.cached(("breast_cancer", "f64"), lambda: D.load("breast_cancer", dtype=F64))
    X, y = ds.train
    lr_res = _newton_vs_gd(X, y.to(F64), 1e-2, 1e-6, ctx.pick(20000, 4000))
    nts, gds = lr_res["newton"], lr_res["gd"]
    dims = ctx.pick([8, 32, 128, 256], [8, 32, 128])
    gen = ctx.generator(8)
    cost = [_per_step_seconds(d, gen, 3, 30) for d in dims]
    ratio = [a / b for a, b in cost]
    return {"cost": cost, "dims": dims, "gd": gd, "gds": gds, "grid": grid, "nt": nt, "nts": nts, "race2d": race2d, "ratio": ratio, "steps": steps}


def judge_newton(steps_2d: tuple[int | None, int | None], steps_logistic: tuple[int | None, int | None],
                 ratio: list[float]) -> tuple[str, bool, bool]:
    """Fewer: Newton needs fewer steps than GD on both problems ((Newton, GD), ``None``: never). Grows: a Newton
    step costs at least 10x more relative to a GD step at the largest size than at the smallest. Held if both,
    depends if one. Returns (verdict, fewer, grows)."""
    fewer = as_inf(steps_2d[0]) < as_inf(steps_2d[1]) and as_inf(steps_logistic[0]) < as_inf(steps_logistic[1])
    grows = ratio[-1] >= 10 * ratio[0]
    return judge(fewer and grows, partly=fewer or grows), fewer, grows


@topic("newton")
def newton(ctx: Context) -> Finding:
    """Topic ``newton``: measure (:func:`measure_newton`), judge (:func:`judge_newton`), write."""
    m = measure_newton(ctx)
    (cost, dims, gd, gds, grid, nt, nts, race2d, ratio, steps) = take(
        m, "cost dims gd gds grid nt nts race2d ratio steps")
    verdict, fewer, grows = judge_newton((nt.steps_to_tol, gd.steps_to_tol), (nts["steps"], gds["steps"]), ratio)
    newton_time_win = nts["seconds"] < gds["seconds"] if gds["steps"] is not None else True
    fig = race_figure(race2d, title="Rosenbrock: Newton with a line search (no lr to tune) against GD at its best lr")
    nc, gc = nts["curve"], gds["curve"]
    f_ref = min(float(nc[:, 2].min()), float(gc[:, 2].min()))
    extra = panels_figure([
        Panel("logistic regression (breast cancer, 31 weights): loss − best", "step", "loss − best loss seen",
              [Series(f"Newton: {shown(nts['steps'], nts['budget'])} steps", nc[:, 0], nc[:, 2] - f_ref + 1e-16),
               Series(f"GD, lr 1/L: {shown(gds['steps'], gds['budget'])} steps", gc[:, 0], gc[:, 2] - f_ref + 1e-16)],
              xlog="symlog", ylog=True),
        Panel("the same against wall time", "seconds", "loss − best loss seen",
              [Series(f"Newton: {nts['seconds'] * 1e3:.1f} ms", nc[:, 1], nc[:, 2] - f_ref + 1e-16),
               Series(f"GD: {gds['seconds'] * 1e3:.1f} ms", gc[:, 1], gc[:, 2] - f_ref + 1e-16)],
              xlog=True, ylog=True),
        Panel("cost of one step as the model grows", "parameters", "seconds per step",
              [Series("Newton (exact Hessian)", [d + 1 for d in dims], [c[0] for c in cost], marker="o"),
               Series("GD", [d + 1 for d in dims], [c[1] for c in cost], marker="s")], xlog=True, ylog=True,
              legend="upper left"),
    ], title="Newton against GD: steps, seconds, and the price of a step")
    numbers: dict[str, float | int | str] = {
        "Rosenbrock: Newton steps to 1e-6": shown(nt.steps_to_tol, steps),
        "Rosenbrock: GD steps to 1e-6 (best lr)": shown(gd.steps_to_tol, steps),
        "Rosenbrock: GD best lr": float(gd.hyper["lr"]),
        "Rosenbrock: Newton seconds": float(nt.wall_time), "Rosenbrock: GD seconds": float(gd.wall_time),
        "logistic: Newton steps to |grad| < 1e-6": shown(nts["steps"], nts["budget"]),
        "logistic: GD steps to |grad| < 1e-6": shown(gds["steps"], gds["budget"]),
        "logistic: Newton seconds": float(nts["seconds"]), "logistic: GD seconds": float(gds["seconds"]),
    }
    for d, (tn, tg) in zip(dims, cost):
        numbers[f"{d + 1} parameters: seconds per step, Newton / GD"] = f"{tn:.2e} / {tg:.2e} ({tn / tg:.0f}x)"
    return ctx.finding(
        verdict, numbers, [fig, extra],
        rule="held if Newton needs fewer steps than GD on both problems (Rosenbrock to f − f* < 1e-6, GD at its "
        f"best lr of the grid by {BEST_LR}; logistic regression to a gradient norm below 1e-6, GD at lr 1/L) and one Newton "
        "step costs at least 10x more, relative to a GD step, at the largest model than at the smallest (the "
        "cost that keeps it out of practice); depends if only one of the two holds.",
        summary=f"Steps: on Rosenbrock Newton needed {shown(nt.steps_to_tol, steps)} steps, GD "
        f"{shown(gd.steps_to_tol, steps)}; on the logistic regression {shown(nts['steps'], nts['budget'])} against "
        f"{shown(gds['steps'], gds['budget'])}. Time: on these small problems Newton "
        f"{'also won' if newton_time_win else 'lost'} in seconds ({nts['seconds'] * 1e3:.1f} ms against "
        f"{gds['seconds'] * 1e3:.1f} ms on the logistic regression). Cost: a Newton step cost "
        f"{ratio[0]:.0f}x a GD step with {dims[0] + 1} parameters and {ratio[-1]:.0f}x with {dims[-1] + 1}: a "
        "Newton step needs the whole Hessian (one Hessian-vector product per parameter) and a linear solve, so "
        "its price grows much faster than the model, which is why models with millions of weights do not use it.",
        setup=f"Rosenbrock from (−1.2, 1): descend.optim.Newton(line_search=True) against GD (lab.race fair=True, "
        f"{len(grid)} lrs), {steps} steps. Breast cancer (standardized, float64) logistic regression with L2 "
        "0.01: Newton (exact Hessian, Armijo line search) against GD at lr 1/L (L from the data). Seconds per "
        f"step on random logistic problems with {', '.join(str(d + 1) for d in dims)} parameters.",
        caption="Top: Rosenbrock. Bottom: a real logistic regression in steps and in seconds, and the cost of a "
        "step against the number of parameters.",
    )

