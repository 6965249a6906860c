r"""``minimize`` (one trajectory), ``run_many`` (N rows, one optimizer) and ``minimize_many`` (N runs).

All three are the rows engine (:mod:`descend.lab.engine`) with different
ways of asking: ``minimize`` is one row; ``run_many`` stacks N starts and
per-row hyperparameters of one optimizer; ``minimize_many`` takes a list of
runs, each with its own optimizer, options and schedule, and advances them
together. Each records, at step ``t = 0, 1, ...``, the point ``x_t``,
``f(x_t)``, the gradient norm ``||grad f(x_t)||`` and the lr used by step
``t`` (from ``x_{t-1}`` to ``x_t``).

**Objective.** ``f`` is a :class:`~descend.landscapes.Landscape`, a landscape
name, or any differentiable torch function of one tensor returning a scalar.
On a landscape the gradient is the landscape's own (closed form for the
built-ins); otherwise autograd (``torch.func.vmap`` for many rows).

**Stopping** (one rule for every runner, in the engine):

* converged: ``f(x_t) - f_star < tol`` when ``f_star`` is known, else
  ``||grad f(x_t)|| < tol`` (``tol=None`` never converges). Without
  ``f_star`` this only says the run reached a *stationary point* (``Run.outcome``);
* diverged: ``f(x_t)`` or the gradient is NaN or infinite, or some
  ``|x_t[j]| > bound``, where ``bound`` is ``100 * max |box|`` on a
  landscape and ``1e6`` otherwise, or 100x the largest start coordinate where
  that is larger (a start far outside the box has not diverged there).

A run stops at the first step ``s`` where either holds; ``x_s`` is its last
recorded point (it may be non-finite when the run diverged).

**Equality.** Row ``i`` of ``run_many`` and run ``i`` of ``minimize_many``
equal ``minimize`` with that row's start and hyperparameters bit for bit
(``float64``; ``tests/lab`` holds them so, and holds ``minimize`` against a
plain one-trajectory loop).

**Caps.** ``steps <= 1,000,000`` and at most 200,000 recorded points per run
(raise ``record_every``); see :mod:`descend.lab.engine`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..landscapes import Landscape
from ..schedules import Schedule
from ._common import check_int, check_tol, is_sequence
from .engine import Cancelled, Row, Stats, build, run_rows
from .objective import Objective
from .results import Run, Runs, record_grid

Tensor = torch.Tensor
Progress = Callable[[int, int], None]
# minimize's own keywords; every other keyword is the optimizer's
RUN_KEYS = ("x0", "optimizer", "steps", "tol", "schedule", "record_every", "bound", "progress")


class RunError(ValueError):
    """A bad run of :func:`minimize_many`: ``index`` is its position in ``runs``."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"runs[{index}]: {message}")
        self.index = index


START_WORDS = ("start", "x", "x_0", "start_point", "init", "initial")  # what users write for x0


def _row(x: Tensor, optimizer: Any, schedule: Any, hyper: dict[str, Any]) -> Row:
    """A validated row: the optimizer is built once on a copy of the start, so bad options fail here."""
    for k, v in hyper.items():
        if k in START_WORDS:
            raise ValueError(f"{k}={v!r}: the start point is x0 (minimize's second argument), not {k}")
        if is_sequence(v):
            raise ValueError(f"{k} must be a single value for minimize, got {v!r}; use run_many for many values")
    row = Row(optimizer, dict(hyper), schedule, x)
    build(row.cls, [x.clone().requires_grad_(True)], row.hyper)  # the engine's own construction
    return row


def _settings(obj: Objective, steps: Any, tol: Any, record_every: Any, bound: Any) -> tuple:
    steps = check_int("steps", steps, 0)
    record_every = check_int("record_every", record_every, 1)
    tol = check_tol(tol)
    bound = None if bound is None else float(bound)  # (None: run_rows sets it from the starts)
    return steps, tol, record_every, bound


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
    progress: Progress | None = None,
    **hyper: Any,
) -> Run:
    """Run one optimizer from ``x0`` on ``f`` for at most ``steps`` steps.

    Args:
        f: a Landscape, a landscape name or a differentiable torch function of one tensor
            returning a scalar.
        x0: the start (default: the landscape's ``start``); kept in its dtype if it is a
            floating tensor, else float64.
        optimizer: a name of :func:`descend.optim.names` (``"gd"`` is SGD on full-batch
            gradients) or an optimizer class.
        steps: step budget (at most 1,000,000).
        tol: stop when ``f - f_star < tol`` (gradient norm ``< tol`` when ``f_star`` is unknown);
            None never stops early except on divergence.
        schedule: a descend schedule setting the lr of every step: ``lr * s(t) / s.base_lr``
            when ``lr`` is given, ``s(t)`` otherwise (``plateau`` schedules observe ``f``).
        record_every: record every ``e``-th point (and always the last).
        bound: divergence bound on ``|x_j|`` (default: 100x the landscape's box, or 1e6, or 100x the
            start's largest coordinate where that is larger).
        progress: called as ``progress(t, steps)`` every few hundred steps.
        **hyper: the optimizer's keyword arguments (``lr``, ``beta``, ``line_search``, ...).

    Returns:
        a :class:`Run`.

    >>> run = minimize("bowl", optimizer="gd", lr=0.15, steps=500)
    >>> run.converged, run.steps_to_tol, run.label
    (True, 61, 'GD (lr=0.15)')
    """
    obj = Objective(f)
    steps, tol, record_every, bound = _settings(obj, steps, tol, record_every, bound)
    x = obj.start(x0)
    obj.check_start(x)
    row = _row(x, optimizer, schedule, hyper)
    return run_rows(obj, [row], steps=steps, tol=tol, record_every=record_every, bound=bound,
                    progress=progress)[0]


def minimize_many(
    landscape: Landscape | str | Callable[[Tensor], Tensor],
    runs: Sequence[Mapping[str, Any]],
    *,
    cancel: Callable[[], bool] | None = None,
    **common: Any,
) -> list[Run]:
    """Several runs on one objective, computed together; equal to ``[minimize(landscape, **common, **run)
    for run in runs]`` bit for bit.

    Args:
        landscape: as ``f`` of :func:`minimize`.
        runs: one mapping per run of the keyword arguments :func:`minimize` takes for it
            (``optimizer``, its hyperparameters, ``schedule``, ``x0``, ...).
        cancel: called between chunks of steps; when it returns True the computation stops
            and :class:`~descend.lab.Cancelled` is raised.
        **common: keyword arguments shared by every run (``x0``, ``steps``, ``tol``, ...); a key
            given both here and in a run is an error, as it would be for ``minimize``.

    All runs advance in lockstep over one stacked tensor, with one evaluation of the
    objective per step for all of them; runs with the same optimizer share it, with
    per-run numbers as tensor hyperparameters. Runs whose starts differ in shape or
    dtype, or whose ``steps``/``tol``/``record_every``/``bound`` differ, form separate
    lockstep batches. A bad run raises :class:`RunError` (a ValueError) with its ``index``.

    >>> a, b = minimize_many("bowl", [{"optimizer": "gd", "lr": 0.15}, {"optimizer": "adam", "lr": 0.1}],
    ...                      steps=500)
    >>> a.steps_to_tol
    61
    """
    if isinstance(runs, Mapping | str) or not isinstance(runs, Sequence):
        raise ValueError(f"runs must be a list of mappings of minimize's keyword arguments, got {runs!r}")
    if cancel is not None and not callable(cancel):
        raise ValueError(f"cancel must be None or a callable returning True to stop, got {cancel!r}")
    obj = Objective(landscape)
    batches: dict[tuple, list[int]] = {}
    prepared: list[tuple[Row, tuple]] = []
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise RunError(i, f"must be a mapping of minimize's keyword arguments, got {run!r}")
        both = sorted(set(run) & set(common))
        if both:
            raise RunError(i, f"{both[0]!r} is given both in the run and as a common argument")
        kw = {**common, **run}
        try:
            steps, tol, record_every, bound = _settings(
                obj, kw.get("steps", 1000), kw.get("tol", 1e-8), kw.get("record_every", 1), kw.get("bound"))
            x = obj.start(kw.get("x0"))
            obj.check_start(x)
            hyper = {k: v for k, v in kw.items() if k not in RUN_KEYS}
            row = _row(x, kw.get("optimizer", "gd"), kw.get("schedule"), hyper)
        except ValueError as e:
            raise RunError(i, str(e)) from e
        settings = (steps, tol, record_every, bound, kw.get("progress"))
        key = (tuple(x.shape), x.dtype, steps, tol, record_every, bound, id(kw.get("progress")))
        if row.schedule is not None and getattr(row.schedule, "_stateful", False):
            key = key + (i,)  # a plateau schedule carries state: its run goes alone, in order
        batches.setdefault(key, []).append(i)
        prepared.append((row, settings))
    out: list[Run | None] = [None] * len(prepared)
    for idx in batches.values():
        steps, tol, record_every, bound, progress = prepared[idx[0]][1]
        done = run_rows(obj, [prepared[i][0] for i in idx], steps=steps, tol=tol, record_every=record_every,
                        bound=bound, cancel=cancel, progress=progress)
        for i, r in zip(idx, done):
            out[i] = r
    return out  # type: ignore[return-value]


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
    cancel: Callable[[], bool] | None = None,
    progress: Progress | None = None,
    **hyper: Any,
) -> Runs:
    """N independent trajectories of one optimizer in one ``(N, d)`` tensor, moved by one step per step.

    Args:
        f: as in :func:`minimize`.
        starts: ``(N, d)`` starting points, or one point ``(d,)`` shared by every row
            (default: the landscape's start).
        optimizer: as in :func:`minimize`.
        steps, tol, schedule, record_every, bound, progress: as in :func:`minimize`.
        cancel: as in :func:`minimize_many`.
        **hyper: the optimizer's keyword arguments; any number-valued one may be a list, array
            or tensor of length N (row ``i`` uses element ``i``; it becomes an ``(N, 1)`` tensor).

    Every row stops on its own convergence or divergence and is then frozen (see
    :mod:`descend.lab.engine`). Newton and optimizer classes outside descend's element-wise
    rules step row by row (the same results, without the speed-up).

    >>> runs = run_many("bowl", None, "gd", lr=[0.01, 0.1, 0.5], steps=300)
    >>> runs.steps_to_tol, runs.diverged.tolist()
    ([None, 93, None], [False, False, True])
    """
    obj = Objective(f)
    steps, tol, record_every, bound = _settings(obj, steps, tol, record_every, bound)
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
    S = S.expand(N, -1) if S.ndim == 1 else S
    rows = [
        _row(S[i].clone(), optimizer, schedule,
             {k: (float(per_row[k][i]) if k in per_row else v) for k, v in hyper.items()})
        for i in range(N)
    ]
    t0 = time.perf_counter()
    done = run_rows(obj, rows, steps=steps, tol=tol, record_every=record_every, bound=bound, cancel=cancel,
                    progress=progress)
    hyper_out = {k: (per_row[k] if k in per_row else v) for k, v in hyper.items()}
    if "lr" not in hyper_out:
        hyper_out = {"lr": done[0].hyper["lr"], **hyper_out}
    return Runs.from_runs(done, hyper_out, tuple(per_row), steps=steps, record_every=record_every,
                          wall_time=time.perf_counter() - t0)


__all__ = ["Run", "Runs", "RunError", "Cancelled", "Stats", "minimize", "minimize_many", "run_many",
           "Objective", "record_grid"]
