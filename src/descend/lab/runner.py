r"""``minimize`` (one trajectory) and ``run_many`` (N trajectories as one tensor).

Both run an optimizer of :mod:`descend.optim` on an objective ``f`` and
record, at step ``t = 0, 1, ...``: the point ``x_t``, ``f(x_t)``, the gradient
norm ``||grad f(x_t)||`` and the lr used by step ``t`` (from ``x_{t-1}`` to
``x_t``).

**Objective.** ``f`` is a :class:`~descend.landscapes.Landscape`, a landscape
name, or any differentiable torch function of one tensor returning a scalar.
On a landscape the gradient is the landscape's own (closed form for the
built-ins); otherwise autograd (``torch.func.vmap`` for many rows).

**Stopping.** After every step (and at the start):

* converged: ``f(x_t) - f_star < tol`` when ``f_star`` is known, else
  ``||grad f(x_t)|| < tol`` (``tol=None`` never converges);
* diverged: ``f(x_t)`` or the gradient is NaN or infinite, or some
  ``|x_t[j]| > bound``, where ``bound`` is ``100 * max |box|`` on a
  landscape (300 for Rosenbrock's view box) and ``1e6`` otherwise.

A run stops at the first step ``s`` where either holds; ``x_s`` is its last
recorded point (it may be non-finite when the run diverged).

**Many rows.** :func:`run_many` stacks N starting points into one ``(N, d)``
parameter and turns per-row hyperparameters into ``(N, 1)`` tensors, so one
optimizer step moves all N trajectories (the element-wise rules broadcast).
A row that has stopped is *frozen*: from then on its gradient is replaced
by zero (``torch.where``, so a NaN cannot leak through) and after every
step its row of the parameter is copied back from the value it had before
the step, so its point no longer moves whatever its optimizer state does. A
row that diverged is held at its last finite point, so the numbers the
optimizer sees stay finite. Rows still running are untouched by either
operation, which is why row ``i`` equals ``minimize`` with row ``i``'s start
and hyperparameters bit for bit (``float64``; see ``tests/lab``), per-row
betas included (Adam's bias corrections raise per-row betas to the power t
in Python floats, exactly as for a single number).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import landscapes
from .. import optim as O
from ..landscapes import Landscape
from ..schedules import Schedule, Scheduler
from ._common import (
    build_optimizer,
    check_int,
    check_tol,
    is_sequence,
    jsonable,
    label,
    resolve_optimizer,
    vectorizable,
)

Tensor = torch.Tensor
DIVERGE_BOX_FACTOR = 100.0
DIVERGE_BOUND = 1e6


# --------------------------------------------------------------------------- objective


class Objective:
    """``f`` with what the runners need: values and gradients for one point or N rows."""

    def __init__(self, f: Landscape | str | Callable[[Tensor], Tensor]) -> None:
        if isinstance(f, str):
            f = landscapes.get(f)
        self.landscape: Landscape | None = f if isinstance(f, Landscape) else None
        if self.landscape is None and not callable(f):
            raise ValueError(
                f"f must be a Landscape, a landscape name ({', '.join(landscapes.names())}) or a "
                f"differentiable torch function of one tensor, got {f!r}"
            )
        self.fn = f
        self.f_star = None if self.landscape is None else self.landscape.f_star
        self.name = None if self.landscape is None else self.landscape.name
        self._vmapped: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
        self._vmap_failed = False

    @property
    def bound(self) -> float:
        """|x_j| beyond this means diverged: 100x the view box, or 1e6 without a landscape."""
        if self.landscape is None:
            return DIVERGE_BOUND
        return DIVERGE_BOX_FACTOR * max(abs(v) for v in self.landscape.box)

    def start(self, x0: Any, name: str = "x0") -> Tensor:
        """``x0`` as a floating tensor (float64 unless it already is a floating tensor)."""
        if x0 is None:
            if self.landscape is None:
                raise ValueError(f"{name} is required when f is a function (it has no default start)")
            x0 = self.landscape.start
        if isinstance(x0, Tensor):
            x = x0.detach()
            x = x if x.is_floating_point() else x.to(torch.float64)
        else:
            try:
                x = torch.as_tensor(np.asarray(x0, dtype=np.float64))
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a point (a sequence of numbers or a tensor), got {x0!r}") from None
        if x.numel() == 0:
            raise ValueError(f"{name} must hold at least one coordinate, got shape {tuple(x.shape)}")
        return x.clone()

    def check_point_shape(self, shape: tuple[int, ...], name: str) -> None:
        if self.landscape is not None and shape != (2,):
            raise ValueError(f"{name} must be a 2-D point (x, y) on landscape {self.name!r}, got shape {shape}")

    # one point -------------------------------------------------------------------
    def value_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(x), grad f(x))`` for one point, both detached."""
        if self.landscape is not None:
            with torch.no_grad():
                return self.landscape.f(x), self.landscape.grad(x)
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            v = self._scalar(self.fn(z))
            if not v.requires_grad:
                return v.detach(), torch.zeros_like(z)
            (g,) = torch.autograd.grad(v, z, allow_unused=True)
        return v.detach(), torch.zeros_like(x) if g is None else g

    def loss(self, x: Tensor) -> Tensor:
        """``f(x)`` with its graph (Newton's closure)."""
        if self.landscape is not None:
            return self.landscape.f(x)
        return self._scalar(self.fn(x))

    @staticmethod
    def _scalar(v: Any) -> Tensor:
        if not isinstance(v, Tensor) or v.numel() != 1:
            shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"f must return a scalar tensor, got {shape}")
        return v.reshape(())

    # N rows ------------------------------------------------------------------------
    def value_grad_many(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(X[i]), grad f(X[i]))`` for every row: shapes ``(N,)`` and ``(N, d)``."""
        if self.landscape is not None:
            with torch.no_grad():
                return self.landscape.f(X), self.landscape.grad(X)
        if not self._vmap_failed:
            try:
                if self._vmapped is None:
                    gv = torch.func.grad_and_value(lambda z: self._scalar(self.fn(z)))
                    self._vmapped = torch.func.vmap(gv)
                G, F = self._vmapped(X.detach())
                return F.detach(), G.detach()
            except ValueError:
                raise
            except Exception:  # an operation without a batching rule: one row at a time
                self._vmap_failed = True
        pairs = [self.value_grad(row) for row in X.detach()]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _lr_of(opt: torch.optim.Optimizer) -> Any:
    return opt.param_groups[0]["lr"]


def _scheduler(opt: torch.optim.Optimizer, schedule: Any, lr_given: bool) -> Scheduler | None:
    if schedule is None:
        return None
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be None or a descend schedule such as cosine(0.1, 1000), got {schedule!r}")
    # lr given: the schedule is scaled to it (lr * s(t) / s.base_lr); otherwise lr = s(t) itself
    return Scheduler(opt, schedule, relative=lr_given)


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    """One trajectory.

    Attributes:
        optimizer: display name (``"GD"``, ``"Adam"``, ...).
        hyper: the hyperparameters passed, plus the ``lr`` in effect at the start.
        path: points ``x_t`` at ``record_steps``, shape ``(k, d)`` (``d = 2`` on a landscape).
        losses: ``f(x_t)`` at ``record_steps``.
        grad_norms: ``||grad f(x_t)||`` at ``record_steps``.
        lrs: the lr used by each step taken, ``lrs[t - 1]`` for step ``t`` (Newton: the
            accepted step length).
        record_steps: the step of each record: ``0, e, 2e, ...`` (``e = record_every``) and the last step.
        steps_to_tol: first step with ``f - f_star < tol`` (or gradient norm < tol), None if never.
        converged, diverged: how the run ended (both False: the step budget ran out).
        wall_time: seconds (for a row of :func:`run_many`: the whole run's time / N).
        f_star: the known minimum value, None when unknown.
        landscape: the landscape's name, None for a plain function.
        tol: the tolerance used.
    """

    optimizer: str
    hyper: dict[str, Any]
    path: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    lrs: np.ndarray
    record_steps: np.ndarray
    steps_to_tol: int | None
    converged: bool
    diverged: bool
    wall_time: float
    f_star: float | None
    landscape: str | None
    tol: float | None = None

    @property
    def steps(self) -> int:
        """Steps taken."""
        return int(self.record_steps[-1])

    @property
    def label(self) -> str:
        """Legend label, e.g. ``"Adam (lr=0.1)"``."""
        return label(self.optimizer, self.hyper)

    @property
    def end(self) -> np.ndarray:
        """The last point."""
        return self.path[-1]

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def final_gap(self) -> float | None:
        """``f - f_star`` at the last point (None when ``f_star`` is unknown)."""
        return None if self.f_star is None else self.final_loss - self.f_star

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists and numbers, NaN and infinities as None."""
        return jsonable({
            "optimizer": self.optimizer,
            "label": self.label,
            "hyper": self.hyper,
            "path": self.path,
            "losses": self.losses,
            "grad_norms": self.grad_norms,
            "lrs": self.lrs,
            "record_steps": self.record_steps,
            "steps": self.steps,
            "steps_to_tol": self.steps_to_tol,
            "converged": self.converged,
            "diverged": self.diverged,
            "wall_time": self.wall_time,
            "f_star": self.f_star,
            "final_loss": self.final_loss,
            "final_gap": self.final_gap,
            "landscape": self.landscape,
            "tol": self.tol,
        })


def _status(fv: float, gn: float, xmax: float, f_star: float | None, tol: float | None, bound: float) -> tuple[bool, bool]:
    diverged = not (math.isfinite(fv) and math.isfinite(gn) and xmax <= bound)
    if diverged or tol is None:
        return False, diverged
    return (fv - f_star < tol) if f_star is not None else (gn < tol), False


def minimize(
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
    """Run one optimizer from ``x0`` on ``f`` for at most ``steps`` steps.

    Args:
        f: a Landscape, a landscape name or a differentiable torch function of one tensor
            returning a scalar.
        x0: the start (default: the landscape's ``start``); kept in its dtype if it is a
            floating tensor, else float64.
        optimizer: ``"gd"`` (alias of ``"sgd"``), a name of ``descend.optim.OPTIMIZERS`` or an
            optimizer class.
        steps: step budget.
        tol: stop when ``f - f_star < tol`` (gradient norm ``< tol`` when ``f_star`` is unknown);
            None never stops early except on divergence.
        schedule: a descend schedule setting the lr of every step: ``lr * s(t) / s.base_lr``
            when ``lr`` is given, ``s(t)`` otherwise (``plateau`` schedules observe ``f``).
        record_every: record every ``e``-th point (and always the last).
        bound: divergence bound on ``|x_j|`` (default: 100x the landscape's box, or 1e6).
        **hyper: the optimizer's keyword arguments (``lr``, ``beta``, ``line_search``, ...).

    Returns:
        a :class:`Run`.

    >>> run = minimize("bowl", optimizer="gd", lr=0.15, steps=500)
    >>> run.converged, run.steps_to_tol, run.label
    (True, 61, 'GD (lr=0.15)')
    """
    obj = Objective(f)
    cls, display, _ = resolve_optimizer(optimizer)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    tol = check_tol(tol)
    x = obj.start(x0)
    obj.check_point_shape(tuple(x.shape), "x0")
    bound = obj.bound if bound is None else float(bound)
    for k, v in hyper.items():
        if is_sequence(v):
            raise ValueError(f"{k} must be a single value for minimize, got {v!r}; use run_many for many values")
    x.requires_grad_(True)
    opt = build_optimizer(cls, display, [x], hyper)
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


# --------------------------------------------------------------------------- many runs


@dataclass
class Runs:
    """N trajectories run together; ``row(i)`` is trajectory ``i`` as a :class:`Run`.

    Attributes:
        optimizer: display name.
        hyper: hyperparameters; per-row ones as numpy arrays of length N.
        paths: ``(R, N, d)`` points at ``record_steps`` (a stopped row repeats its last point).
        losses, grad_norms: ``(R, N)``.
        lrs: ``(steps, N)`` lr of every step of every row (rows that stopped early: only
            the first ``stop_steps[i]`` count).
        record_steps: ``(R,)`` steps of the records, ``0, e, 2e, ..., steps``.
        stop_steps: ``(N,)`` the step each row stopped at (``steps`` if it ran out of budget).
        steps_to_tol: per row, as in :class:`Run`.
        converged, diverged: ``(N,)`` booleans.
        final_points, final_losses, final_grad_norms: each row's last point and values.
        wall_time: seconds for the whole run.
        f_star, landscape, tol, steps: as given / known.
    """

    optimizer: str
    hyper: dict[str, Any]
    paths: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    lrs: np.ndarray
    record_steps: np.ndarray
    stop_steps: np.ndarray
    steps_to_tol: list[int | None]
    converged: np.ndarray
    diverged: np.ndarray
    final_points: np.ndarray
    final_losses: np.ndarray
    final_grad_norms: np.ndarray
    wall_time: float
    f_star: float | None
    landscape: str | None
    tol: float | None
    steps: int
    _per_row: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return int(self.paths.shape[1])

    def hyper_of(self, i: int) -> dict[str, Any]:
        """Row ``i``'s hyperparameters as plain values."""
        return {k: (float(v[i]) if k in self._per_row else v) for k, v in self.hyper.items()}

    def row(self, i: int) -> Run:
        """Trajectory ``i`` as a :class:`Run` (equal to ``minimize`` with its start and hyperparameters)."""
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not -n <= i < n:
            raise ValueError(f"i must be an integer in [0, {n - 1}], got {i!r}")
        i = int(i) % n
        stop = int(self.stop_steps[i])
        keep = self.record_steps < stop
        return Run(
            optimizer=self.optimizer,
            hyper=self.hyper_of(i),
            path=np.concatenate([self.paths[keep, i], self.final_points[i][None]]),
            losses=np.append(self.losses[keep, i], self.final_losses[i]),
            grad_norms=np.append(self.grad_norms[keep, i], self.final_grad_norms[i]),
            lrs=self.lrs[:stop, i].copy(),
            record_steps=np.append(self.record_steps[keep], stop),
            steps_to_tol=self.steps_to_tol[i],
            converged=bool(self.converged[i]),
            diverged=bool(self.diverged[i]),
            wall_time=self.wall_time / n,
            f_star=self.f_star,
            landscape=self.landscape,
            tol=self.tol,
        )

    def rows(self) -> list[Run]:
        return [self.row(i) for i in range(len(self))]

    @property
    def final_gaps(self) -> np.ndarray | None:
        """``f - f_star`` at each row's last point (None when ``f_star`` is unknown)."""
        return None if self.f_star is None else self.final_losses - self.f_star

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and arrays (NaN and infinities as None)."""
        return jsonable({
            "optimizer": self.optimizer,
            "hyper": self.hyper,
            "paths": self.paths,
            "losses": self.losses,
            "grad_norms": self.grad_norms,
            "lrs": self.lrs,
            "record_steps": self.record_steps,
            "stop_steps": self.stop_steps,
            "steps_to_tol": self.steps_to_tol,
            "converged": self.converged,
            "diverged": self.diverged,
            "final_points": self.final_points,
            "final_losses": self.final_losses,
            "wall_time": self.wall_time,
            "f_star": self.f_star,
            "landscape": self.landscape,
            "tol": self.tol,
            "steps": self.steps,
        })

    @classmethod
    def from_runs(
        cls, runs: Sequence[Run], hyper: dict[str, Any], per_row: Sequence[str], *, steps: int,
        record_every: int, wall_time: float,
    ) -> Runs:
        """Stack separate runs of one horizon and ``record_every`` into one :class:`Runs`."""
        first = runs[0]
        grid = _record_grid(steps, record_every)
        N, d = len(runs), first.path.shape[1]
        paths = np.empty((len(grid), N, d))
        losses = np.empty((len(grid), N))
        gnorms = np.empty((len(grid), N))
        lrs = np.full((steps, N), np.nan)
        for i, r in enumerate(runs):
            pos = np.searchsorted(r.record_steps, grid, side="right") - 1
            paths[:, i] = r.path[pos]
            losses[:, i] = r.losses[pos]
            gnorms[:, i] = r.grad_norms[pos]
            lrs[: len(r.lrs), i] = r.lrs
        return cls(
            optimizer=first.optimizer, hyper=hyper, paths=paths, losses=losses, grad_norms=gnorms,
            lrs=lrs, record_steps=grid, stop_steps=np.array([r.steps for r in runs], dtype=np.int64),
            steps_to_tol=[r.steps_to_tol for r in runs],
            converged=np.array([r.converged for r in runs]), diverged=np.array([r.diverged for r in runs]),
            final_points=np.stack([r.path[-1] for r in runs]), final_losses=np.array([r.losses[-1] for r in runs]),
            final_grad_norms=np.array([r.grad_norms[-1] for r in runs]), wall_time=wall_time,
            f_star=first.f_star, landscape=first.landscape, tol=first.tol, steps=steps, _per_row=tuple(per_row),
        )


def _record_grid(steps: int, every: int) -> np.ndarray:
    grid = list(range(0, steps + 1, every))
    if grid[-1] != steps:
        grid.append(steps)
    return np.asarray(grid, dtype=np.int64)


def _rows_hyper(hyper: dict[str, Any], n_starts: int | None) -> tuple[int, dict[str, np.ndarray]]:
    per_row: dict[str, np.ndarray] = {}
    for k, v in hyper.items():
        if is_sequence(v):
            arr = v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v)
            try:
                arr = arr.astype(np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise ValueError(f"{k} must be a number or a list of numbers (one per row), got {v!r}") from None
            if arr.size == 0:
                raise ValueError(f"{k} must hold at least one value, got an empty list")
            per_row[k] = arr
    sizes = {k: a.size for k, a in per_row.items()}
    if n_starts is not None:
        sizes["starts"] = n_starts
    distinct = set(sizes.values())
    if len(distinct) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in sizes.items())
        raise ValueError(f"per-row arguments must all have the same length N, got {shown}")
    return (distinct.pop() if distinct else 1), per_row


def run_many(
    f: Landscape | str | Callable[[Tensor], Tensor],
    starts: Any = None,
    optimizer: str | type[torch.optim.Optimizer] = "gd",
    *,
    steps: int = 1000,
    tol: float | None = 1e-8,
    schedule: Schedule | None = None,
    record_every: int = 1,
    bound: float | None = None,
    **hyper: Any,
) -> Runs:
    """N independent trajectories in one ``(N, d)`` tensor, moved by one optimizer step per step.

    Args:
        f: as in :func:`minimize`.
        starts: ``(N, d)`` starting points, or one point ``(d,)`` shared by every row
            (default: the landscape's start).
        optimizer: as in :func:`minimize`.
        steps, tol, schedule, record_every, bound: as in :func:`minimize`.
        **hyper: the optimizer's keyword arguments; any number-valued one may be a list, array
            or tensor of length N (row ``i`` uses element ``i``; it becomes an ``(N, 1)`` tensor).

    Every row stops on its own convergence or divergence and is then frozen (see the module
    docstring). Newton and optimizer classes outside descend's element-wise rules run row by
    row (the same results, without the speed-up).

    >>> runs = run_many("bowl", None, "gd", lr=[0.01, 0.1, 0.5], steps=300)
    >>> runs.steps_to_tol, runs.diverged.tolist()
    ([None, 93, None], [False, False, True])
    """
    obj = Objective(f)
    cls, display, _ = resolve_optimizer(optimizer)
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    tol = check_tol(tol)
    bound = obj.bound if bound is None else float(bound)
    if schedule is not None and getattr(schedule, "_stateful", False):
        raise ValueError("schedule must be time-based for run_many: a plateau schedule follows one loss; "
                         "use minimize for each row")
    S = obj.start(starts, "starts")
    if S.ndim == 1:
        obj.check_point_shape(tuple(S.shape), "starts")
        n_starts = None
    elif S.ndim == 2:
        obj.check_point_shape(tuple(S.shape[1:]), "starts[i]")
        n_starts = S.shape[0]
    else:
        raise ValueError(f"starts must have shape (N, d) or (d,), got {tuple(S.shape)}")
    N, per_row = _rows_hyper(hyper, n_starts)
    S = S.expand(N, -1).clone() if S.ndim == 1 else S
    hyper_out = {k: (per_row[k] if k in per_row else v) for k, v in hyper.items()}

    if not vectorizable(cls):
        t0 = time.perf_counter()
        runs = [
            minimize(obj.fn, S[i], cls, steps=steps, tol=tol, schedule=schedule, record_every=record_every,
                     bound=bound, **{k: (float(per_row[k][i]) if k in per_row else v) for k, v in hyper.items()})
            for i in range(N)
        ]
        if "lr" not in hyper_out:
            hyper_out = {"lr": runs[0].hyper["lr"], **hyper_out}
        return Runs.from_runs(runs, hyper_out, tuple(per_row), steps=steps, record_every=record_every,
                              wall_time=time.perf_counter() - t0)

    X = S.clone().requires_grad_(True)
    shape_1 = (N,) + (1,) * (X.ndim - 1)
    opt_hyper = {
        k: (torch.tensor(per_row[k], dtype=X.dtype, device=X.device).reshape(shape_1) if k in per_row else v)
        for k, v in hyper.items()
    }
    opt = build_optimizer(cls, display, [X], opt_hyper)
    sched = _scheduler(opt, schedule, "lr" in hyper)
    if "lr" not in hyper_out:
        hyper_out = {"lr": float(schedule(0)) if sched is not None else _as_float(_lr_of(opt)), **hyper_out}
    lookahead = bool(opt.param_groups[0].get("lookahead", False))
    f_star = obj.f_star
    grid = _record_grid(steps, record_every)
    R, D = len(grid), X[0].numel()
    slots = {int(s): j for j, s in enumerate(grid)}
    f64 = torch.float64

    t0 = time.perf_counter()
    Xf = X.detach().view(N, D)
    paths = torch.zeros(R, N, D, dtype=X.dtype)
    losses = torch.zeros(R, N, dtype=f64)
    gnorms = torch.zeros(R, N, dtype=f64)
    lrs = torch.empty(steps, N, dtype=f64) if sched is not None else None
    active = torch.ones(N, dtype=torch.bool)
    stop_step = torch.full((N,), steps, dtype=torch.int64)
    conv_flag = torch.zeros(N, dtype=torch.bool)
    div_flag = torch.zeros(N, dtype=torch.bool)
    final_x = torch.zeros(N, D, dtype=X.dtype)
    final_f = torch.zeros(N, dtype=f64)
    final_g = torch.zeros(N, dtype=f64)
    zero = torch.zeros((), dtype=X.dtype)
    col = (N,) + (1,) * (X.ndim - 1)

    F, G = obj.value_grad_many(X.detach())

    def measure() -> tuple[Tensor, Tensor, Tensor, Tensor]:
        fd = F.to(f64)
        gn = torch.sqrt((G * G).reshape(N, -1).sum(-1)).to(f64)
        xmax = Xf.abs().amax(-1).to(f64)
        div = ~(torch.isfinite(fd) & torch.isfinite(gn) & (xmax <= bound))
        if tol is None:
            conv = torch.zeros_like(div)
        else:
            crit = (fd - f_star) if f_star is not None else gn
            conv = ~div & (crit < tol)
        return fd, gn, conv, div

    def closure_grad() -> Tensor:
        Fz, Gz = obj.value_grad_many(X.detach())
        X.grad = torch.where(active.view(col), Gz, zero)
        return Fz.sum()

    n_active = N
    t = 0
    hold: Tensor | None = None
    fd, gn, conv, div = measure()
    while True:
        newly = active & (conv | div)
        if bool(newly.any()):
            stop_step[newly] = t
            conv_flag |= newly & conv
            div_flag |= newly & div
            final_x[newly] = Xf[newly]
            final_f[newly] = fd[newly]
            final_g[newly] = gn[newly]
            active &= ~newly
            n_active = int(active.sum())
            held = newly & div
            if hold is not None and bool(held.any()):  # hold diverged rows at their last finite point
                with torch.no_grad():
                    Xf[held] = hold.view(N, D)[held]
        if t in slots:
            j = slots[t]
            if n_active == N:
                paths[j] = Xf
                losses[j] = fd
                gnorms[j] = gn
            else:
                a = active.view(N, 1)
                paths[j] = torch.where(a, Xf, final_x)
                losses[j] = torch.where(active, fd, final_f)
                gnorms[j] = torch.where(active, gn, final_g)
        if n_active == 0 or t == steps:
            break
        t += 1
        if lrs is not None:
            lr_now = _lr_of(opt)
            lrs[t - 1] = lr_now.reshape(-1) if isinstance(lr_now, Tensor) else lr_now
        hold = X.detach().clone()
        if lookahead:
            opt.step(closure_grad)
        else:
            X.grad = G if n_active == N else torch.where(active.view(col), G, zero)
            opt.step()
        if sched is not None:
            sched.step()
        if n_active < N:
            with torch.no_grad():
                X.copy_(torch.where(active.view(col), X, hold))
        F, G = obj.value_grad_many(X.detach())
        fd, gn, conv, div = measure()
    if t < steps:  # every row stopped early: the remaining records repeat the last points
        for j in range(int(np.searchsorted(grid, t, side="right")), R):
            paths[j] = final_x
            losses[j] = final_f
            gnorms[j] = final_g
    final_x[active] = Xf[active]
    final_f[active] = fd[active]
    final_g[active] = gn[active]
    wall = time.perf_counter() - t0

    if lrs is None:
        lr0 = _lr_of(opt)
        row_lr = lr0.reshape(-1).to(f64) if isinstance(lr0, Tensor) else torch.full((N,), float(lr0), dtype=f64)
        lrs_np = np.broadcast_to(row_lr.numpy(), (steps, N)).copy()
    else:
        lrs_np = lrs.numpy()
    stops = stop_step.numpy().copy()
    conv_np = conv_flag.numpy().copy()
    return Runs(
        optimizer=display,
        hyper=hyper_out,
        paths=paths.numpy(),
        losses=losses.numpy(),
        grad_norms=gnorms.numpy(),
        lrs=lrs_np,
        record_steps=grid,
        stop_steps=stops,
        steps_to_tol=[int(s) if c else None for s, c in zip(stops, conv_np)],
        converged=conv_np,
        diverged=div_flag.numpy().copy(),
        final_points=final_x.numpy(),
        final_losses=final_f.numpy(),
        final_grad_norms=final_g.numpy(),
        wall_time=wall,
        f_star=f_star,
        landscape=obj.name,
        tol=tol,
        steps=steps,
        _per_row=tuple(per_row),
    )


__all__ = ["Run", "Runs", "minimize", "run_many", "Objective"]
