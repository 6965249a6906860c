r"""``race``: several optimizers on one landscape, from one start, with one step budget.

Each entry is a name (``"adam"``), an optimizer class, or a pair
``(optimizer, {hyperparameters})``. Without ``fair`` every entry runs once
with its own hyperparameters (:func:`~descend.lab.minimize`). With
``fair=True`` every optimizer gets the *same* lr grid and the *same* horizon:
one vectorized :func:`~descend.lab.run_many` per optimizer over the grid,
and the race keeps each optimizer's best lr, chosen by this rule:

1. among the grid lrs whose run converged (``f - f_star < tol``), the one
   that got there in the fewest steps (ties: lower final loss, then smaller lr);
2. if none converged, the lowest final loss among the runs that did not diverge;
3. if all diverged, the smallest lr.

(:func:`descend.lab.best.best_index`, the rule of the sweep and the tour too.)
Without ``fair`` the entries run together in one lockstep computation
(:func:`~descend.lab.minimize_many`); each run equals its own ``minimize``.

The kept run is row ``i`` of that vectorized run, which equals
``minimize(f, x0, optimizer, lr=grid[i], ...)`` exactly.

2-D paths show how each method moves; they do not rank optimizers on real
models (:data:`RACE_NOTE`, printed on every race figure).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import optim as O
from ..landscapes import Landscape
from ._common import check_int, check_tol, is_sequence, jsonable
from .best import best_index
from .objective import Objective
from .results import Run, Runs
from .runner import RunError, minimize_many, run_many

RACE_NOTE = "2-D paths show how each method moves; they do not rank optimizers on real models."
DEFAULT_LR_GRID = tuple(float(v) for v in np.logspace(-5, 0, 21))  # 1e-5 .. 1, four per decade

Entry = str | type | tuple[Any, dict[str, Any]]


@dataclass
class RaceResult:
    """What a race produced; the race plots take it as it is.

    Attributes:
        runs: one :class:`Run` per entry, in entry order.
        landscape: the Landscape raced on (None for a plain function).
        fn: the objective as given (a Landscape or a function).
        x0: the common start.
        steps, tol: the horizon and tolerance every entry had.
        fair: whether each optimizer's lr was picked from ``lr_grid``.
        lr_grid: the grid (fair races only).
        tuning: per entry, the vectorized run over the grid (fair races only).
        best_index: per entry, the index of the kept lr in ``lr_grid`` (fair races only).
        note: :data:`RACE_NOTE`.
    """

    runs: list[Run]
    landscape: Landscape | None
    fn: Any
    x0: np.ndarray
    steps: int
    tol: float | None
    fair: bool
    lr_grid: np.ndarray | None = None
    tuning: list[Runs] | None = None
    best_index: list[int] | None = None
    wall_time: float = 0.0
    note: str = RACE_NOTE

    @property
    def f_star(self) -> float | None:
        return self.runs[0].f_star if self.runs else None

    def table(self) -> list[dict[str, Any]]:
        """One row per entry: label, lr, steps to tolerance, final f - f* (or f), converged, diverged."""
        rows = []
        for r in self.runs:
            rows.append({
                "optimizer": r.optimizer,
                "label": r.label,
                "lr": r.hyper.get("lr"),
                "steps_to_tol": r.steps_to_tol,
                "steps": r.steps,
                "final_gap": r.final_gap,
                "final_loss": r.final_loss,
                "converged": r.converged,
                "diverged": r.diverged,
                "outcome": r.outcome,
                "end": r.end.tolist(),
                "wall_time": r.wall_time,
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the table, every run and the tuning grid (NaN and infinities as None)."""
        return jsonable({
            "landscape": None if self.landscape is None else self.landscape.name,
            "x0": self.x0,
            "steps": self.steps,
            "tol": self.tol,
            "fair": self.fair,
            "lr_grid": self.lr_grid,
            "best_index": self.best_index,
            "table": self.table(),
            "runs": [r.to_dict() for r in self.runs],
            "tuning": None if self.tuning is None else [
                {"optimizer": t.optimizer, "final_losses": t.final_losses, "steps_to_tol": t.steps_to_tol,
                 "diverged": t.diverged} for t in self.tuning
            ],
            "note": self.note,
        })


class EntryError(ValueError):
    """A bad race entry: ``index`` is its position in ``entries``, ``reason`` the problem."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"entries[{index}]: {reason}")
        self.index, self.reason = index, reason


def parse_entry(entry: Any, index: int = 0) -> tuple[Any, dict[str, Any]]:
    """``(optimizer, hyper)`` from a name, a class or an ``(optimizer, dict)`` pair."""
    if isinstance(entry, str | type):
        O.resolve(entry)
        return entry, {}
    if isinstance(entry, Sequence) and len(entry) == 2 and isinstance(entry[1], dict):
        O.resolve(entry[0])
        return entry[0], dict(entry[1])
    raise ValueError(
        f"entries[{index}] must be an optimizer name, an optimizer class or an (optimizer, dict) pair, "
        f"got {entry!r}"
    )


def best_row(runs: Runs) -> int:
    """Index of the best row by :data:`~descend.lab.best.BEST_RULE` (all diverged: the smallest lr)."""
    lrs = runs.lrs[0] if runs.lrs.size else np.zeros(len(runs))
    best = best_index(runs.steps_to_tol, runs.final_losses, runs.diverged, lrs)
    return int(np.argmin(lrs)) if best is None else best


def race(
    f: Landscape | str | Callable[[torch.Tensor], torch.Tensor],
    entries: Sequence[Entry],
    *,
    steps: int = 1000,
    tol: float | None = 1e-8,
    fair: bool = False,
    lr_grid: Sequence[float] | np.ndarray | None = None,
    x0: Any = None,
    record_every: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> RaceResult:
    """Race ``entries`` on ``f`` from ``x0`` (default: the landscape's start).

    Args:
        f: a Landscape, a landscape name or a differentiable function of one tensor.
        entries: names, classes or ``(optimizer, hyper)`` pairs, e.g.
            ``["gd", ("adam", {"lr": 0.02}), ("newton", {"line_search": True})]``.
        steps: the horizon every entry gets.
        tol: convergence tolerance on ``f - f_star`` (see :func:`~descend.lab.minimize`).
        fair: give every optimizer the same ``lr_grid`` and keep its best lr (module docstring);
            an ``lr`` in an entry's hyperparameters is then replaced by the grid.
        lr_grid: the grid for ``fair`` (default 21 values from 1e-5 to 1, log-spaced).
        x0: the common start.
        record_every: as in :func:`~descend.lab.minimize`.
        progress: called as ``progress(t, steps)`` every few hundred steps (per tuning run when fair).
    """
    if isinstance(entries, str | type) or not isinstance(entries, Sequence) or len(entries) == 0:
        raise ValueError(f"entries must be a non-empty list of optimizers or (optimizer, hyper) pairs, got {entries!r}")
    parsed = [parse_entry(e, i) for i, e in enumerate(entries)]
    steps = check_int("steps", steps, 1)
    tol = check_tol(tol)
    if not isinstance(fair, bool):
        raise ValueError(f"fair must be True or False, got {fair!r}")
    obj = Objective(f)
    start = obj.start(x0)
    obj.check_start(start)
    grid = None
    if fair:
        grid = np.asarray(DEFAULT_LR_GRID if lr_grid is None else lr_grid, dtype=np.float64).reshape(-1)
        if grid.size == 0 or not np.all(np.isfinite(grid) & (grid > 0)):
            raise ValueError(f"lr_grid must hold finite learning rates > 0, got {lr_grid!r}")
    elif lr_grid is not None:
        raise ValueError("lr_grid is only used with fair=True; pass fair=True or leave lr_grid out")
    t0 = time.perf_counter()
    runs: list[Run] = []
    tuning: list[Runs] = []
    best: list[int] = []
    for _, hyper in parsed:
        for k, v in hyper.items():
            if is_sequence(v):
                raise ValueError(f"{k} of a race entry must be a single value, got {v!r}")
    if not fair:
        try:
            runs = minimize_many(obj.fn, [{"optimizer": opt, **hyper} for opt, hyper in parsed], x0=start,
                                 steps=steps, tol=tol, record_every=record_every, progress=progress)
        except RunError as e:  # name the entry as the caller gave it
            raise EntryError(e.index, str(e).removeprefix(f"runs[{e.index}]: ")) from None
    for opt, hyper in parsed if fair else ():
        assert grid is not None
        rest = {k: v for k, v in hyper.items() if k != "lr"}
        many = run_many(obj.fn, start, opt, steps=steps, tol=tol, record_every=record_every, progress=progress,
                        lr=grid, **rest)
        i = best_row(many)
        tuning.append(many)
        best.append(i)
        runs.append(many.row(i))
    return RaceResult(
        runs=runs, landscape=obj.landscape, fn=obj.fn, x0=start.reshape(-1).cpu().numpy(), steps=steps, tol=tol,
        fair=fair, lr_grid=grid, tuning=tuning if fair else None, best_index=best if fair else None,
        wall_time=time.perf_counter() - t0,
    )


__all__ = ["EntryError", "RACE_NOTE", "DEFAULT_LR_GRID", "RaceResult", "race", "best_row", "parse_entry"]
