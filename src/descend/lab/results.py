"""What the runners return: :class:`Run` (one trajectory) and :class:`Runs` (N of them, stacked).

Both are plain data (numpy arrays and numbers) with ``to_dict()`` for JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._common import jsonable, label


def exported(obj: Any, keys: Sequence[str]) -> dict[str, Any]:
    """``{key: obj.key}`` for ``keys``, JSON-ready (lists and numbers, NaN and infinities as None)."""
    return jsonable({k: getattr(obj, k) for k in keys})


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
    def outcome(self) -> str:
        """How the run ended, in words: ``"converged"`` (``f - f* < tol``), ``"stationary point (f* unknown)"``
        (gradient norm < tol without a known minimum: perhaps a saddle or a local minimum),
        ``"diverged"`` or ``"step budget used"``."""
        if self.diverged:
            return "diverged"
        if self.converged:
            return "converged" if self.f_star is not None else "stationary point (f* unknown)"
        return "step budget used"

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

    # the keys of to_dict(), in order: fields and properties
    _exported: ClassVar[tuple[str, ...]] = (
        "optimizer", "label", "hyper", "path", "losses", "grad_norms", "lrs", "record_steps", "steps",
        "steps_to_tol", "converged", "diverged", "outcome", "wall_time", "f_star", "final_loss",
        "final_gap", "landscape", "tol",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists and numbers, NaN and infinities as None."""
        return exported(self, self._exported)



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

    # the keys of to_dict(), in order (final_grad_norms and the per-row bookkeeping stay out)
    _exported: ClassVar[tuple[str, ...]] = (
        "optimizer", "hyper", "paths", "losses", "grad_norms", "lrs", "record_steps", "stop_steps",
        "steps_to_tol", "converged", "diverged", "final_points", "final_losses", "wall_time", "f_star",
        "landscape", "tol", "steps",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and arrays (NaN and infinities as None)."""
        return exported(self, self._exported)

    @classmethod
    def from_runs(
        cls, runs: Sequence[Run], hyper: dict[str, Any], per_row: Sequence[str], *, steps: int,
        record_every: int, wall_time: float,
    ) -> Runs:
        """Stack separate runs of one horizon and ``record_every`` into one :class:`Runs`."""
        first = runs[0]
        grid = record_grid(steps, record_every)
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


def record_grid(steps: int, every: int) -> np.ndarray:
    grid = list(range(0, steps + 1, every))
    if grid[-1] != steps:
        grid.append(steps)
    return np.asarray(grid, dtype=np.int64)

