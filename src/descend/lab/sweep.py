r"""``sweep``: final loss against learning rate, in one vectorized run (notes 000 and 003).

Every lr of the sweep is a row of one :func:`~descend.lab.run_many` call
(all from the same start, same horizon), so a sweep of 64 learning rates is
one run. Each lr gets one of four labels, by this rule:

* ``"divergent"``: the run diverged (non-finite values, or a coordinate beyond
  the divergence bound) or its final loss is above the initial loss;
* ``"good"``: not divergent and ``gap <= good_factor * max(best_gap, floor)``,
  where ``gap = final loss - f_star`` (``final loss - the lowest final loss``
  when ``f_star`` is unknown), ``best_gap`` is the smallest gap of the sweep,
  and ``floor = max(tol, 1e-12 * (initial loss - f_star))`` so that runs
  stopped at the tolerance count as equally good;
* ``"too small"`` / ``"too large"``: the other (finite, non-divergent) lrs
  below / above the best lr.

The **best lr** follows :data:`~descend.lab.best.BEST_RULE` (the same rule as
the heat-map's star, the fair race and the tour): the fewest steps to the
tolerance, then the lowest final loss; when no run reached the tolerance, the
lowest final loss. Runs longer than 10,000 steps record every
``ceil(steps / 10,000)``-th point.

With ``betas`` the lr x beta grid runs as one more vectorized run (``len(lrs)
* len(betas)`` rows) for the heat-map; ``beta_name`` is the optimizer's
keyword (``momentum`` for gd/sgd, ``beta`` for momentum, nesterov and
rmsprop, ``beta1`` for adam and adamw).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import optim as O
from ..landscapes import Landscape
from ..optim.registry import accepted_keywords
from ._common import BETA_NAMES, check_int, check_tol, jsonable
from .best import BEST_RULE, best_index
from .objective import Objective
from .results import Runs
from .runner import run_many

REGIONS = ("too small", "good", "too large", "divergent")
GOOD_FACTOR = 10.0
RULE = (
    "divergent: diverged, or final loss above the initial loss; good: final gap <= "
    "good_factor * max(best gap, floor), gap = f - f_star; too small / too large: the other lrs "
    "below / above the best lr; " + BEST_RULE
)


def classify(
    lrs: np.ndarray,
    final_losses: np.ndarray,
    initial_loss: float,
    diverged: np.ndarray,
    f_star: float | None,
    *,
    good_factor: float = GOOD_FACTOR,
    tol: float | None = None,
    steps_to_tol: Sequence[int | None] | None = None,
) -> tuple[list[str], int | None]:
    """Labels (one of :data:`REGIONS` per lr) and the index of the best lr (None if all diverge).

    The rule is the module docstring's. ``lrs`` must be increasing. Without
    ``steps_to_tol`` the best lr is the one with the lowest final loss.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    final = np.asarray(final_losses, dtype=np.float64)
    div = np.asarray(diverged, dtype=bool) | ~np.isfinite(final) | (final > initial_loss)
    labels = ["divergent"] * len(lrs)
    ok = np.flatnonzero(~div)
    if ok.size == 0:
        return labels, None
    ref = f_star if f_star is not None else float(final[ok].min())
    gap = np.maximum(final - ref, 0.0)
    reached = [None] * len(lrs) if steps_to_tol is None else list(steps_to_tol)
    best = best_index(reached, gap, div, lrs)
    assert best is not None
    floor = max(tol or 0.0, 1e-12 * max(abs(initial_loss - ref), 1e-300))
    threshold = good_factor * max(float(gap[best]), floor)
    for i in ok:
        if gap[i] <= threshold:
            labels[i] = "good"
        else:
            labels[i] = "too small" if lrs[i] < lrs[best] else "too large"
    return labels, best


def regions(lrs: np.ndarray, labels: Sequence[str]) -> list[tuple[str, float, float]]:
    """Contiguous runs of one label as ``(label, lr_from, lr_to)``, edges at geometric midpoints."""
    lrs = np.asarray(lrs, dtype=np.float64)
    if lrs.size == 0:
        return []
    if lrs.size == 1:
        return [(labels[0], float(lrs[0]) / 2, float(lrs[0]) * 2)]
    mids = np.sqrt(lrs[1:] * lrs[:-1])
    lo_edge = lrs[0] ** 2 / mids[0]
    hi_edge = lrs[-1] ** 2 / mids[-1]
    edges = np.concatenate([[lo_edge], mids, [hi_edge]])
    return [(label, float(edges[i]), float(edges[j])) for label, i, j in stretches(labels)]


def stretches(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Runs of neighbouring equal labels as ``(label, first index, index after the last)``, in order."""
    out: list[tuple[str, int, int]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append((labels[start], start, i))
            start = i
    return out


@dataclass
class SweepResult:
    """Final loss per lr with region labels, and optionally the lr x beta grid.

    Attributes:
        optimizer: display name; ``hyper``: the fixed hyperparameters.
        landscape: its name (None for a plain function); ``f_star``: known minimum or None.
        lrs: the learning rates, increasing; ``final_losses``: loss at each run's end.
        initial_loss: ``f(x0)``.
        labels: one of :data:`REGIONS` per lr; ``best_index`` / ``best_lr``: the best lr.
        runs: the vectorized run behind the sweep.
        betas, beta_name, grid_final_losses ``(len(betas), len(lrs))``, grid_labels,
        grid_runs: the heat-map (None without ``betas``); ``grid_best``: the best cell
            ``(beta index, lr index)`` by :data:`~descend.lab.best.BEST_RULE`; ``grid_row_best``:
            the best lr index of each beta (None where every lr diverged); ``beta_default``: the
            value of ``beta_name`` the plain lr sweep (``lrs``, ``final_losses``, ``labels``) ran with.
        steps, tol, good_factor: as used.
    """

    optimizer: str
    hyper: dict[str, Any]
    landscape: str | None
    f_star: float | None
    lrs: np.ndarray
    final_losses: np.ndarray
    initial_loss: float
    labels: list[str]
    best_index: int | None
    runs: Runs
    steps: int
    tol: float | None
    good_factor: float
    betas: np.ndarray | None = None
    beta_name: str | None = None
    grid_final_losses: np.ndarray | None = None
    grid_labels: list[list[str]] | None = None
    grid_runs: Runs | None = None
    grid_best: tuple[int, int] | None = None
    grid_row_best: list[int | None] | None = None
    beta_default: float | None = None
    rule: str = ""

    @property
    def best_lr(self) -> float | None:
        return None if self.best_index is None else float(self.lrs[self.best_index])

    @property
    def final_gaps(self) -> np.ndarray | None:
        return None if self.f_star is None else self.final_losses - self.f_star

    def regions(self) -> list[tuple[str, float, float]]:
        """Contiguous lr ranges of one label: ``(label, lr_from, lr_to)``."""
        return regions(self.lrs, self.labels)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and infinities as None)."""
        return jsonable({
            "optimizer": self.optimizer, "hyper": self.hyper, "landscape": self.landscape,
            "f_star": self.f_star, "lrs": self.lrs, "final_losses": self.final_losses,
            "initial_loss": self.initial_loss, "labels": self.labels, "best_lr": self.best_lr,
            "regions": [list(r) for r in self.regions()], "steps": self.steps, "tol": self.tol,
            "good_factor": self.good_factor, "betas": self.betas, "beta_name": self.beta_name,
            "grid_final_losses": self.grid_final_losses, "grid_labels": self.grid_labels,
            "grid_best_lrs": None if self.grid_row_best is None else [
                None if i is None else float(self.lrs[i]) for i in self.grid_row_best],
            "beta_default": self.beta_default,
            "diverged": self.runs.diverged, "steps_to_tol": self.runs.steps_to_tol, "rule": self.rule,
        })


def _check_values(name: str, values: Any, low_open: bool) -> np.ndarray:
    try:
        arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one value, got none")
    bad = ~np.isfinite(arr) | ((arr <= 0) if low_open else (arr < 0))
    if bad.any():
        rng = "> 0" if low_open else ">= 0"
        raise ValueError(f"{name} must be finite numbers {rng}, got {float(arr[bad][0])!r}")
    return np.sort(arr)


def sweep(
    f: Landscape | str | Callable[[torch.Tensor], torch.Tensor],
    optimizer: str | type[torch.optim.Optimizer],
    lrs: Sequence[float] | np.ndarray,
    *,
    steps: int = 1000,
    betas: Sequence[float] | np.ndarray | None = None,
    beta_name: str | None = None,
    x0: Any = None,
    tol: float | None = 1e-8,
    good_factor: float = GOOD_FACTOR,
    progress: Callable[[int, int], None] | None = None,
    **hyper: Any,
) -> SweepResult:
    """Final loss of ``optimizer`` for every lr of ``lrs`` (one vectorized run), labelled by region.

    Args:
        f: a Landscape, a landscape name or a differentiable function of one tensor.
        optimizer: a name (``"gd"``, ``"momentum"``, ``"adam"``, ...) or an optimizer class.
        lrs: learning rates (> 0); sorted increasingly.
        steps: horizon of every run.
        betas: optional values of the optimizer's beta for the lr x beta heat-map.
        beta_name: the keyword ``betas`` set (default per optimizer, see the module docstring).
        x0: the start (default: the landscape's).
        tol: runs stop once ``f - f_star < tol``.
        good_factor: the "good" band's factor (module docstring).
        progress: called as ``progress(t, steps)`` every few hundred steps of each vectorized run.
        **hyper: other fixed hyperparameters.
    """
    if "lr" in hyper:
        raise ValueError("lr is what a sweep varies; pass the learning rates as lrs")
    lr_arr = _check_values("lrs", lrs, low_open=True)
    steps = check_int("steps", steps, 1)
    tol = check_tol(tol)
    if isinstance(good_factor, bool) or not isinstance(good_factor, int | float) or not (
        math.isfinite(good_factor) and good_factor >= 1
    ):
        raise ValueError(f"good_factor must be a finite number >= 1, got {good_factor!r}")
    cls, display, key = O.resolve(optimizer)
    name, beta_arr = _grid_keyword(cls, display, key, betas, beta_name, hyper, float(lr_arr[0]))
    obj = Objective(f)
    start = obj.start(x0)
    obj.check_start(start)
    every = max(1, math.ceil(steps / 10_000))
    runs = run_many(obj.fn, start, optimizer, steps=steps, tol=tol, lr=lr_arr, record_every=every,
                    progress=progress, **hyper)
    initial = float(runs.losses[0, 0])
    labels, best = classify(lr_arr, runs.final_losses, initial, runs.diverged, runs.f_star,
                            good_factor=good_factor, tol=tol, steps_to_tol=runs.steps_to_tol)
    result = SweepResult(
        optimizer=display, hyper=dict(hyper), landscape=obj.name, f_star=obj.f_star, lrs=lr_arr,
        final_losses=runs.final_losses.copy(), initial_loss=initial, labels=labels, best_index=best,
        runs=runs, steps=steps, tol=tol, good_factor=float(good_factor), rule=RULE,
    )
    if beta_arr is None or name is None:
        return result
    B, L = np.meshgrid(beta_arr, lr_arr, indexing="ij")  # (n_beta, n_lr)
    grid = run_many(obj.fn, start, optimizer, steps=steps, tol=tol, lr=L.ravel(), record_every=every,
                    progress=progress, **{name: B.ravel()}, **hyper)
    finals = grid.final_losses.reshape(B.shape)
    div = grid.diverged.reshape(B.shape)
    cell = best_index(grid.steps_to_tol, grid.final_losses, grid.diverged | (grid.final_losses > initial), L.ravel())
    result.grid_best = None if cell is None else divmod(cell, len(lr_arr))
    result.betas = beta_arr
    result.beta_name = name
    result.grid_final_losses = finals
    per_beta = [
        classify(lr_arr, finals[j], initial, div[j], obj.f_star, good_factor=good_factor, tol=tol,
                 steps_to_tol=grid.steps_to_tol[j * len(lr_arr):(j + 1) * len(lr_arr)])
        for j in range(len(beta_arr))
    ]
    result.grid_labels = [labels for labels, _ in per_beta]
    result.grid_row_best = [best for _, best in per_beta]
    result.grid_runs = grid
    # (the plain sweep ran with the optimizer's own value of the swept keyword: say which)
    value = _group(cls, float(lr_arr[0]), hyper).get(name)
    result.beta_default = float(value) if isinstance(value, int | float) else None
    return result


def _group(cls: type, lr: float, hyper: dict[str, Any]) -> dict[str, Any]:
    """The param group ``cls`` builds from these settings (on a one-element tensor)."""
    return cls([torch.zeros(1, requires_grad=True)], lr=lr, **hyper).param_groups[0]


def _grid_keyword(cls: type, display: str, key: str | None, betas: Any, beta_name: str | None,
                  hyper: dict[str, Any], lr: float) -> tuple[str | None, np.ndarray | None]:
    """The keyword the heat-map varies and its values, checked before anything runs (``(None, None)``
    without ``betas``); a value the optimizer refuses is named with ``betas``."""
    if betas is None:
        if beta_name is not None:
            raise ValueError("beta_name is only used with betas")
        return None, None
    name = beta_name or BETA_NAMES.get(key or "")
    if name is None:
        raise ValueError(f"{display} has no default beta; pass beta_name (one of {', '.join(accepted_keywords(cls))})")
    if name not in accepted_keywords(cls):
        raise ValueError(f"beta_name must be a hyperparameter of {display} ({', '.join(accepted_keywords(cls))}), got {name!r}")
    if name in hyper:
        raise ValueError(f"{name} is what the heat-map varies; pass its values as betas")
    beta_arr = _check_values("betas", betas, low_open=False)
    for b in beta_arr:
        try:
            _group(cls, lr, {**hyper, name: float(b)})
        except ValueError as e:
            raise ValueError(f"betas: {display} refuses {name}={b:g} ({e})") from None
    return name, beta_arr


__all__ = ["REGIONS", "GOOD_FACTOR", "RULE", "SweepResult", "sweep", "classify", "regions", "stretches"]
