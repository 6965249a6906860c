"""Hints when a run ends: advice that says what happened to the training loss, and what to try.

:func:`hints` reads the loss curve (the iteration records, else the epochs) and, when
:func:`fit_context` could describe the model and the data, two more facts: the loss of a
prediction that ignores the inputs (the class shares, or the mean target), and for a linear
model (one ``nn.Linear``: linear, logistic and softmax regression) the lowest loss any lr and
budget could reach, found by L-BFGS on the training set. In this order, the first that applies:

* **blew up / rose**: the run ended with a training loss above where it began (``RISE``), or
  above ``HUGE`` times it (or times the loss of ignoring the inputs): the lr is too large;
* **cannot fit**: a linear model ended at its best fit and that fit is hardly better
  (``POOR``) than ignoring the inputs: no lr or budget helps, a nonlinear model may;
* **at its best**: the loss did not move because the linear model was already at its best fit
  (not because the lr is small);
* **barely moved**: the loss moved by less than ``FLAT`` of itself from the first record to the
  end: the lr may be far too small;
* **still falling**: the last fifth of the run brought more than ``HINT_SHARE`` of the whole
  decrease (a straight descent brings 20%, a converged run about 0%): train longer.

A linear model whose best fit is poor gets that said after any other hint too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .. import models

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["hints", "Fit", "fit_context", "linear_best", "HINT_SHARE", "FLAT", "RISE", "HUGE", "POOR"]

HINT_SHARE = 0.10
FLAT = 1e-3  # a training loss that moved less than this share of itself did not move
RISE = 1.10  # a run that ends above this multiple of its first loss made things worse
HUGE = 1e3  # ... and above this multiple it blew up
POOR = 0.9  # a best fit above this share of the loss of ignoring the inputs explains next to nothing
AT_BEST = 0.01  # within this share of the best fit, a run has reached it
BEST_MAX_ENTRIES = 20_000_000  # larger training sets (rows x features x outputs) skip the L-BFGS fit


@dataclass
class Fit:
    """What the hints know beyond the loss curve (see :func:`fit_context`).

    ``final``: the final training loss on the whole training split; ``baseline``: the loss of a
    prediction that ignores the inputs (``ignoring``: its words); ``accuracy`` and ``majority``:
    the final training accuracy and the share of the most common class (classifiers); ``best``: the
    lowest loss a linear model reaches on the training set, computed when first asked (None for
    other models).
    """

    final: float | None = None
    baseline: float | None = None
    ignoring: str = ""
    accuracy: float | None = None
    majority: float | None = None
    best: Callable[[], float | None] | None = None


def _baseline(task: str, y: torch.Tensor) -> tuple[float, str, float | None]:
    """The loss of the best constant prediction: the entropy of the class shares, or the variance."""
    if task == "classification":
        counts = torch.bincount(y.reshape(-1).long().cpu()).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log()).sum()), "predicting the class shares", float(p.max())
    t = y.double()
    return float(((t - t.mean(dim=0)) ** 2).mean()), "predicting the mean target", None


def linear_best(module: nn.Linear, X: torch.Tensor, y: torch.Tensor, loss_fn: Callable) -> float | None:
    """The lowest training loss ``module``'s architecture reaches (L-BFGS from its weights, in float64).

    A linear model's loss is convex in its weights, so this is the floor of every run. The module
    itself is not changed. None when the training set is too large for a quick fit.
    """
    if X.numel() * module.out_features > BEST_MAX_ENTRIES:
        return None
    model = copy.deepcopy(module).double()
    X = X.double()
    y = y.double() if y.is_floating_point() else y
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=500, history_size=20, tolerance_grad=1e-12,
                            tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        best = float(loss_fn(model(X), y))
    return best if math.isfinite(best) else None


def fit_context(tr: Trainer, final: dict[str, Any]) -> Fit | None:
    """A :class:`Fit` for a run on a :class:`descend.data.Dataset` with its task's own loss, else None."""
    ds = getattr(tr.feed, "dataset", None)
    builtin = (models.mse, models.cross_entropy, models.binary_cross_entropy)
    if ds is None or tr.feed.task is None or tr.loss_fn not in builtin or len(ds.y_train) == 0:
        return None
    baseline, ignoring, majority = _baseline(tr.feed.task, ds.y_train)
    fit = Fit(final=final.get("train_loss"), baseline=baseline, ignoring=ignoring,
              accuracy=final.get("train_accuracy"), majority=majority)
    module = tr.module
    if type(module) is nn.Linear and tr.world == 1:
        cache: list[float | None] = []

        def best() -> float | None:
            if not cache:
                cache.append(linear_best(module, ds.X_train, ds.y_train, tr.loss_fn))
            return cache[0]

        fit.best = best
    return fit


def _series(history: list[dict[str, Any]], log: list[dict[str, Any]]) -> list[float]:
    series = [r["loss"] for r in log if r.get("loss") is not None]
    if len(series) < 10:
        series = [r["train_loss"] for r in history if r.get("train_loss") is not None] or series
    return [float(v) for v in series]


def _largest_lr(history: list[dict[str, Any]], log: list[dict[str, Any]]) -> float | None:
    lrs = [float(r["lr"]) for r in (*log, *history) if isinstance(r.get("lr"), int | float)]
    return max(lrs) if lrs else None


def _rise(series: list[float], end: float, lr: float | None, fit: Fit | None, phases: Any) -> str | None:
    start = series[0]
    ignoring = fit is not None and fit.baseline is not None and fit.baseline > 0
    huge = (start > 0 and end > HUGE * start) or (ignoring and end > 100 * fit.baseline)  # type: ignore[union-attr]
    if not (huge or (start > 0 and end > RISE * start)):
        return None
    lower = "a lower lr" if phases or not lr else f"a lower lr, e.g. --lr {lr / 10:g}"
    what = "blew up to huge values" if huge else "rose instead of falling"
    against = f" and {fit.baseline:.4g} for {fit.ignoring} without looking at the inputs" if ignoring else ""  # type: ignore[union-attr]
    return (f"the training loss {what}: it ended at {end:.4g}, against {start:.4g} at the first record{against}; "
            f"the steps are too large and overshoot: try {lower} (or clip gradients with --clip-norm)")


def _linear(fit: Fit, end: float, flat: bool) -> tuple[str | None, str | None]:
    """(a hint that replaces the others, a note to add after them) from the linear model's best fit."""
    if fit.best is None or fit.baseline is None:
        return None, None
    if not (flat or end >= POOR * fit.baseline):  # (the L-BFGS fit runs only where it can tell something)
        return None, None
    best = fit.best()
    if best is None:
        return None, None
    at_best = end <= best + AT_BEST * abs(best) + 1e-9
    poor = best >= POOR * fit.baseline
    versus = f"{fit.baseline:.4g} for {fit.ignoring} without looking at the inputs"
    acc = ""
    if fit.accuracy is not None and fit.majority is not None:
        acc = (f" (training accuracy {100 * fit.accuracy:.1f}%; the most common class is "
               f"{100 * fit.majority:.1f}% of the examples)")
    if at_best and poor:
        return (f"the training loss ended at {end:.4g}, and a linear model can do no better on this data: its best "
                f"fit on the training set scores {best:.4g}, against {versus}{acc}; no lr and no longer run will "
                f"change that: the data needs a nonlinear model, e.g. --model mlp"), None
    if at_best and flat:
        return (f"the training loss barely moved because the model had already reached its best fit: {best:.4g} is "
                f"the lowest loss a linear model reaches on this training set (another lr will not lower it; a "
                f"nonlinear model, e.g. --model mlp, may)"), None
    if poor:
        return None, (f"even at its best, a linear model scores {best:.4g} on this training set, against {versus}: "
                      f"for this data use a nonlinear model, e.g. --model mlp")
    return None, None


def hints(history: list[dict[str, Any]], log: list[dict[str, Any]], iterations: int,
          epochs: int, stream: bool, phases: Any = None, fit: Fit | None = None) -> list[str]:
    """Advice for a run that has ended (see the module docstring); ``phases``: the run's phases, whose
    durations make its budget (then lengthening them is the advice); ``fit``: see :func:`fit_context`."""
    series = _series(history, log)
    if not series:
        return []
    end = fit.final if fit is not None and fit.final is not None and math.isfinite(fit.final) else series[-1]
    rise = _rise(series, end, _largest_lr(history, log), fit, phases)
    if rise is not None:
        return [rise]
    if len(series) < 5:
        return []
    k = max(1, len(series) // 5)
    first, before, last = (sum(part) / k for part in (series[:k], series[-2 * k : -k], series[-k:]))
    # (shares of a change this small are rounding noise; the first record too: a fall then a plateau moved)
    flat = abs(first - last) <= FLAT * abs(first) and abs(series[0] - last) <= FLAT * abs(series[0])
    replace, note = _linear(fit, end, flat) if fit is not None else (None, None)
    if replace is not None:
        return [replace]
    out: list[str] = []
    if flat:
        out.append(f"the training loss barely moved ({first:.6g} -> {last:.6g}, less than {100 * FLAT:g}%): "
                   "the lr may be far too small (an lr of 0 never moves the parameters)")
    elif first > last and before > last and (before - last) / (first - last) > HINT_SHARE:
        share = (before - last) / (first - last)
        longer = f"--iterations {4 * iterations}" if stream or not epochs else f"--epochs {4 * epochs}"
        if phases and all(isinstance(p.optimizer, str) and p.duration for p in phases):  # (the phases are the budget)
            longer = "--phases " + ",".join(
                f"{p.optimizer}:{4 * p.duration}" + ("" if p.lr is None else f":{p.lr:g}") for p in phases)
        elif phases:
            longer = "longer phases"
        out.append(
            f"the training loss was still falling fast at the end: the last fifth of the run brought "
            f"{100 * share:.0f}% of its whole decrease ({first:.4g} -> {last:.4g}), so the run is far from "
            f"converged after {iterations} iterations; train longer (e.g. {longer}) or with a larger lr")
    if note is not None:
        out.append(note)
    return out
