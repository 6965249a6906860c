r"""The rows engine: every trajectory of the lab is a row of one tensor, and all rows move in lockstep.

:func:`run_rows` is the one loop behind :func:`~descend.lab.minimize` (one
row), :func:`~descend.lab.run_many` (N rows, one optimizer) and
:func:`~descend.lab.minimize_many` (N rows, any optimizers). Each step it

1. evaluates ``f`` and its gradient **once for all rows** (``X`` has shape
   ``(N, *shape)``; the landscape's closed forms or ``vmap`` of autograd);
2. lets each *group* step its rows: rows with the same optimizer class and
   the same options (apart from numbers) share one optimizer whose parameter
   is their slice of ``X`` and whose number-valued options that differ between
   rows are ``(n, 1)`` tensors. Newton and optimizers that are not element-wise
   step their row on its own;
3. measures every row (``f``, ``||grad f||``, converged, diverged) with a few
   vectorized operations.

**Stopping.** After every step (and at the start), per row:

* converged: ``f(x_t) - f_star < tol`` when ``f_star`` is known, else
  ``||grad f(x_t)|| < tol`` (``tol=None`` never converges);
* diverged: ``f(x_t)`` or the gradient is NaN or infinite, or some
  ``|x_t[j]| > bound``.

A row stops at the first step where either holds. From then on it is
*frozen*: its gradient is replaced by zero and after every step its row is
copied back from before the step (a diverged row keeps its non-finite or far
point; every operation is row by row, so it cannot reach the others). Rows
still running are untouched, so every row equals the same row run alone bit
for bit (``tests/lab`` holds this against a plain one-trajectory loop). After
every step ``X`` is a fresh tensor gathered from the groups' own tensors, so
the records keep it without a copy.

**Chunks.** The loop runs in chunks of :data:`CHUNK` steps; between chunks
it calls ``cancel()`` (raising :class:`Cancelled` when it returns True) and
``progress(t, steps)``.

**Caps.** ``steps`` is at most :data:`MAX_STEPS`; a run records at most
:data:`MAX_RECORDS` points per row (raise ``record_every`` for longer runs).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import optim as O
from ..optim.registry import accepted_keywords
from ..schedules import Schedule, Scheduler
from .objective import Objective
from .results import Run

Tensor = torch.Tensor
CHUNK = 250
MAX_STEPS = 1_000_000
MAX_RECORDS = 200_000


class Cancelled(Exception):
    """The caller's ``cancel()`` returned True; the computation stopped between two chunks of steps."""


@dataclass
class Row:
    """One requested trajectory: an optimizer with its options, an optional schedule and a start."""

    optimizer: Any
    hyper: dict[str, Any]
    schedule: Schedule | None
    x0: Tensor
    cls: type = field(init=False)
    display: str = field(init=False)

    def __post_init__(self) -> None:
        self.cls, self.display, _ = O.resolve(self.optimizer)
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise ValueError(
                f"schedule must be None or a descend schedule such as cosine(0.1, 1000), got {self.schedule!r}"
            )


@dataclass
class Stats:
    """Where the time of :func:`run_rows` went: ``step_time`` inside the optimizers, ``wall_time`` in all."""

    wall_time: float = 0.0
    step_time: float = 0.0
    steps: int = 0
    groups: int = 0

    @property
    def overhead(self) -> float:
        """Seconds outside the optimizers' steps: evaluation, measuring, recording, Python."""
        return self.wall_time - self.step_time


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _elementwise(cls: type) -> bool:
    """Rows of an ``(N, d)`` parameter stay independent: the element-wise descend rules."""
    return issubclass(cls, O.Optimizer) and getattr(cls, "_tensor_hypers", False)


def _lr_of(opt: torch.optim.Optimizer) -> Any:
    return opt.param_groups[0]["lr"]


def _as_float(lr: Any) -> float:
    return float(lr.reshape(-1)[0]) if isinstance(lr, Tensor) else float(lr)


def build(cls: type, params: list[Tensor], hyper: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer through :func:`descend.optim.build`, with the lab's ``impl="eager"`` and
    ``nonfinite="ignore"`` (the lab detects non-finite values itself; Newton keeps its policy)."""
    allowed = accepted_keywords(cls)
    kwargs = dict(hyper)
    if "impl" in allowed:
        kwargs.setdefault("impl", "eager")
    if "nonfinite" in allowed and cls is not O.Newton:
        kwargs.setdefault("nonfinite", "ignore")
    return O.build(cls, params, **kwargs)


class _Group:
    """Rows ``a:b`` of ``X`` moved by one optimizer (``solo``: one row with its own leaf tensor)."""

    def __init__(self, obj: Objective, rows: list[Row], a: int, X: Tensor) -> None:
        first = rows[0]
        self.a, self.b = a, a + len(rows)
        self.obj = obj
        self.solo = not _elementwise(first.cls)
        self.newton = issubclass(first.cls, O.Newton)
        lr_given = "lr" in first.hyper
        if self.solo:
            self.x = X[a].clone().requires_grad_(True)
            params = [self.x]
            hyper = dict(first.hyper)
        else:
            self.x = X[a:self.b].clone().requires_grad_(True)  # the optimizer's own leaf; X holds a copy
            params = [self.x]
            shape = (len(rows),) + (1,) * (X.ndim - 1)
            hyper = {}
            for k, v in first.hyper.items():
                values = [r.hyper[k] for r in rows]
                if all(u == v for u in values[1:]) or not _is_number(v):
                    hyper[k] = v
                else:
                    hyper[k] = torch.tensor([float(u) for u in values], dtype=X.dtype).reshape(shape)
        self.opt = build(first.cls, params, hyper)
        # torch wraps every step() in a profiler scope and its global hooks, which costs about as much
        # as a whole SGD step on two numbers; the lab's own optimizers have no hooks, so call the step
        # the optimizer class defines.
        self.step_fn = functools.partial(getattr(type(self.opt).step, "__wrapped__", type(self.opt).step), self.opt)
        self.sched = None
        if first.schedule is not None:
            # lr given: the schedule is scaled to it (lr * s(t) / s.base_lr); otherwise lr = s(t) itself
            self.sched = Scheduler(self.opt, first.schedule, relative=lr_given)
        self.metric = self.sched is not None and self.sched.needs_metric
        self.lookahead = bool(self.opt.param_groups[0].get("lookahead", False))
        self.failed = False  # Newton: a non-finite value inside its own evaluations
        self.whole = False  # the only group: its gradient is G itself
        self.hyper_out = []
        for r in rows:
            out = dict(r.hyper)
            if not lr_given:
                out = {"lr": float(r.schedule(0)) if r.schedule is not None else _as_float(_lr_of(self.opt)), **out}
            self.hyper_out.append(out)

    def lr_now(self) -> Any:
        return _lr_of(self.opt)

    def step(self, X: Tensor, G: Tensor, active: Tensor, all_active: bool) -> float | None:
        """One step of this group's rows; returns Newton's step length (None for the others)."""
        a, b = self.a, self.b
        if self.newton:
            try:
                self.step_fn(lambda: self.obj.loss(self.x))
            except O.NonFiniteGradientError:
                self.failed = True
                return float("nan")
            return float(self.opt.last["step_size"])
        if self.solo:
            if self.lookahead:
                self.step_fn(self._closure_one)
            else:
                self.x.grad = G[a]
                self.step_fn()
            return None
        mask = None if all_active else active[a:b].view((b - a,) + (1,) * (X.ndim - 1))
        if self.lookahead:
            def closure() -> Tensor:  # Nesterov(lookahead=True) evaluates the gradient where it asks
                Fz, Gz = self.obj.value_grad_many(self.x.detach())
                self.x.grad = Gz if mask is None else torch.where(mask, Gz, 0.0)
                return Fz.sum()
            self.step_fn(closure)
        else:
            g = G if self.whole else G[a:b]
            self.x.grad = g if mask is None else torch.where(mask, g, 0.0)
            self.step_fn()
        if mask is not None:  # frozen rows go back to where they were (X still holds it)
            with torch.no_grad():
                self.x.copy_(torch.where(mask, self.x, X[a:b]))
        return None

    def rows(self) -> Tensor:
        """This group's rows now, shaped ``(n, *shape)``."""
        x = self.x.detach()
        return x.unsqueeze(0) if self.solo else x

    def _closure_one(self) -> Tensor:
        v, g = self.obj.value_grad(self.x.detach())
        self.x.grad = g
        return v


def _group_key(row: Row, index: int, dtype: torch.dtype) -> tuple:
    """Rows with equal keys share one optimizer (numbers may differ: they become per-row tensors)."""
    if not _elementwise(row.cls) or dtype != torch.float64:
        return ("solo", index)
    if row.schedule is not None and getattr(row.schedule, "_stateful", False):
        return ("solo", index)  # a plateau schedule follows its own row's loss
    opts = tuple(sorted((k, None if _is_number(v) else repr(v)) for k, v in row.hyper.items()))
    return (row.cls, opts, None if row.schedule is None else id(row.schedule))


def check_steps(steps: int, record_every: int) -> None:
    """ValueError when ``steps`` is above :data:`MAX_STEPS` or would record too many points."""
    if steps > MAX_STEPS:
        raise ValueError(
            f"steps must be at most {MAX_STEPS:,} (about 100 s of 2-D steps), got {steps:,}; "
            "a longer run is better split or tuned with a larger lr"
        )
    if steps // record_every + 1 > MAX_RECORDS:
        need = math.ceil(steps / (MAX_RECORDS - 1))
        raise ValueError(
            f"record_every={record_every} would record {steps // record_every + 1:,} points per run "
            f"(at most {MAX_RECORDS:,}); pass record_every >= {need}"
        )


def run_rows(
    obj: Objective,
    rows: list[Row],
    *,
    steps: int,
    tol: float | None,
    record_every: int = 1,
    bound: float | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stats: Stats | None = None,
) -> list[Run]:
    """Run every row of ``rows`` for at most ``steps`` steps in lockstep; one :class:`Run` per row.

    All starts must have one shape and dtype. See the module docstring for
    the stopping rule, freezing, chunks and caps.
    """
    check_steps(steps, record_every)
    t_start = time.perf_counter()
    bound = obj.bound if bound is None else float(bound)
    shape, dtype = rows[0].x0.shape, rows[0].x0.dtype
    keys = [_group_key(r, i, dtype) for i, r in enumerate(rows)]
    order: list[int] = []
    members: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    for idx in members.values():
        order += idx
    N, D = len(rows), int(np.prod(shape, dtype=np.int64))
    X = torch.stack([rows[i].x0 for i in order]).to(dtype)
    Xf = X.view(N, D)
    groups: list[_Group] = []
    a = 0
    for idx in members.values():
        groups.append(_Group(obj, [rows[i] for i in idx], a, X))
        a += len(idx)
    f_star = obj.f_star
    f64 = torch.float64
    timed = stats is not None
    step_time = 0.0

    active = torch.ones(N, dtype=torch.bool)
    stop_step = torch.full((N,), steps, dtype=torch.int64)
    conv_flag = torch.zeros(N, dtype=torch.bool)
    div_flag = torch.zeros(N, dtype=torch.bool)
    final_x = torch.zeros(N, D, dtype=dtype)
    final_f = torch.zeros(N, dtype=f64)
    final_g = torch.zeros(N, dtype=f64)
    rec_t: list[int] = []
    rec_x: list[Tensor] = []
    rec_f: list[Tensor] = []
    rec_g: list[Tensor] = []
    lr_cols: dict[int, list[Any]] = {}  # group index -> per-step lr (scheduled groups and Newton)
    per_step = [gi for gi, g in enumerate(groups) if g.sched is not None or g.newton]
    for gi in per_step:
        lr_cols[gi] = []
    newton_fail = [gi for gi, g in enumerate(groups) if g.newton]

    def measure(F: Tensor, G: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``f``, ``||grad f||``, ``ok`` (not diverged) and ``go`` (not diverged, not converged) per row."""
        fd = F if F.dtype == f64 else F.to(f64)
        gg = G * G
        gn = torch.sqrt((gg if gg.ndim == 2 else gg.reshape(N, -1)).sum(-1))
        gn = gn if gn.dtype == f64 else gn.to(f64)
        ok = torch.isfinite(fd) & torch.isfinite(gn) & (Xf.abs().amax(-1) <= bound)
        if tol is None:
            return fd, gn, ok, ok
        crit = (fd - f_star) if f_star is not None else gn
        return fd, gn, ok, ok & (crit >= tol)  # (crit is finite where ok: crit >= tol is not converged)

    F, G = obj.value_grad_many(X)
    fd, gn, ok, go = measure(F, G)
    n_active = N
    t = 0
    next_check = CHUNK
    for g in groups:
        g.whole = len(groups) == 1
    while True:
        if n_active == N:
            newly = None if bool(go.all()) else ~go
        else:
            newly = active & ~go
            newly = newly if bool(newly.any()) else None
        if newly is not None:
            div = newly & ~ok
            stop_step[newly] = t
            conv_flag |= newly & ok
            div_flag |= div
            final_x[newly] = Xf[newly]
            final_f[newly] = fd[newly]
            final_g[newly] = gn[newly]
            active &= ~newly
            n_active = int(active.sum())
        if t % record_every == 0 or t == steps:
            rec_t.append(t)
            rec_x.append(Xf)
            rec_f.append(fd)
            rec_g.append(gn)
        if n_active == 0 or t == steps:
            break
        if t == next_check:
            next_check += CHUNK
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled after {t} of {steps} steps")
            if progress is not None:
                progress(t, steps)
        t += 1
        all_active = n_active == N
        if timed:
            t0 = time.perf_counter()
        for gi, g in enumerate(groups):
            if not all_active and not bool(active[g.a:g.b].any()):
                if gi in lr_cols:
                    lr_cols[gi].append(float("nan"))
                continue
            if g.sched is not None and not g.newton:
                lr = g.lr_now()
                lr_cols[gi].append(lr.reshape(-1).clone() if isinstance(lr, Tensor) else lr)
            out = g.step(X, G, active, all_active)
            if g.newton:
                lr_cols[gi].append(out)
        if timed:
            step_time += time.perf_counter() - t0
        X = groups[0].rows().clone() if len(groups) == 1 else torch.cat([g.rows() for g in groups])
        Xf = X.view(N, D)
        F, G = obj.value_grad_many(X)
        fd, gn, ok, go = measure(F, G)
        for gi in newton_fail:
            g = groups[gi]
            if g.failed:  # Newton's own evaluation saw NaN/inf: diverged at this step, x unchanged
                g.failed = False  # (f and the gradient at the unchanged x are the last ones measured)
                ok[g.a] = go[g.a] = False
        for g in groups:
            if g.sched is not None:
                if g.metric:
                    fv = float(fd[g.a])
                    g.sched.step(fv if math.isfinite(fv) else None)
                else:
                    g.sched.step()
    if progress is not None:
        progress(t, steps)
    final_x[active] = Xf[active]
    final_f[active] = fd[active]
    final_g[active] = gn[active]

    # ---------------------------------------------------------------- per-row results
    wall = time.perf_counter() - t_start
    if stats is not None:
        stats.wall_time, stats.step_time, stats.steps, stats.groups = wall, step_time, t, len(groups)
    rec_steps = np.asarray(rec_t, dtype=np.int64)
    paths = torch.stack(rec_x).numpy()
    losses = torch.stack(rec_f).numpy()
    gnorms = torch.stack(rec_g).numpy()
    stops = stop_step.numpy()
    conv_np, div_np = conv_flag.numpy(), div_flag.numpy()
    fx, ff, fg = final_x.numpy(), final_f.numpy(), final_g.numpy()
    lrs_of: dict[int, np.ndarray] = {}
    for gi, g in enumerate(groups):
        n = g.b - g.a
        if gi in lr_cols:
            vals = lr_cols[gi]
            arr = np.empty((len(vals), n))
            for s, v in enumerate(vals):
                arr[s] = v.numpy() if isinstance(v, Tensor) else v
        else:
            lr = g.lr_now()
            row_lr = lr.reshape(-1).to(f64).numpy() if isinstance(lr, Tensor) else np.full(n, float(lr))
            arr = np.broadcast_to(row_lr, (t, n))
        for j in range(n):
            lrs_of[g.a + j] = arr[:, j]
    out: list[Run | None] = [None] * N
    per_row = wall / N
    for pos, i in enumerate(order):
        g = next(g for g in groups if g.a <= pos < g.b)
        stop = int(stops[pos])
        keep = rec_steps < stop
        converged = bool(conv_np[pos])
        out[i] = Run(
            optimizer=rows[i].display,
            hyper=g.hyper_out[pos - g.a],
            path=np.concatenate([paths[keep, pos], fx[pos][None]]).reshape((-1, D)),
            losses=np.append(losses[keep, pos], ff[pos]),
            grad_norms=np.append(gnorms[keep, pos], fg[pos]),
            lrs=np.ascontiguousarray(lrs_of[pos][:stop], dtype=np.float64),
            record_steps=np.append(rec_steps[keep], stop),
            steps_to_tol=stop if converged else None,
            converged=converged,
            diverged=bool(div_np[pos]),
            wall_time=per_row,
            f_star=f_star,
            landscape=obj.name,
            tol=tol,
        )
    return out  # type: ignore[return-value]
