r"""``lr_find``: the learning-rate range test (Smith 2015; fastai's ``lr_find``).

For ``i = 0 .. num_iter - 1`` the lr grows exponentially,
``lr_i = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))``, and one
training step is taken on the next batch with that lr (the batches are
cycled). The test stops early once a bias-corrected exponential moving
average of the loss (factor ``smooth``) exceeds ``diverge`` times its lowest
value (or on a non-finite loss).

The suggestions come from a **lag-free** curve, the mean of the raw losses
over a centred window of ``2h + 1`` steps (``h = max(2, n // 20)``,
:func:`centered`): a moving average lags the loss by about ``1 / (1 - smooth)``
steps (50 at 0.98, a decade of lr on a 100-step ramp), which put "valley"
where the loss had not started to fall.

* ``"min_over_10"`` (``best``): the lr of the curve's minimum, divided by 10;
* ``"steepest"``: where ``d curve / d log(lr)`` is most negative, between the
  first tenth of the ramp (left out: there the loss moves by noise, not by the
  lr) and the minimum;
* ``"valley"`` (fastai's): the longest stretch over which the curve keeps
  decreasing (longest decreasing subsequence), and the point one half of the
  way into its middle third: ``start + len/3 + len/6``.

Checked against the truth of a grid (``tests/lab/test_lr_find.py``): on four
problems (softmax and an MLP on digits, logistic regression on breast cancer,
linear regression on diabetes) ``best`` is within one step of a 9-lr grid
(1e-4 .. 10) of the lr whose 100-step training run ends lowest.

Afterwards the model's parameters, buffers (BatchNorm running statistics
and counters included), gradients and train/eval modes, the optimizer's
state and hyperparameters, a ``Batches`` object's epoch and torch's global
random state are all restored exactly: ``lr_find`` has no side effect.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import optim as O
from ._common import check_int, check_positive, jsonable
from .engine import build

Tensor = torch.Tensor
SUGGESTIONS = ("valley", "steepest", "min_over_10")
BEST = "min_over_10"


@dataclass
class LRFindResult:
    """The range test's curve and suggestions.

    Attributes:
        lrs: the lr of every step taken.
        losses: the raw training loss of every step.
        smoothed: the lag-free smoothed loss (:func:`centered`) the suggestions read.
        ema: the bias-corrected moving average of the stop rule (it lags the loss).
        suggestions: ``{"valley": lr, "steepest": lr, "min_over_10": lr}`` (None where the
            curve is too short).
        best: the recommended lr, ``suggestions[best_rule]``.
        best_rule: ``"min_over_10"`` (see the module docstring).
        stop_reason: ``"completed"``, ``"diverged"`` (ema > diverge x its lowest),
            ``"non-finite loss"`` or ``"out of batches"``.
        optimizer: display name; start_lr, end_lr, num_iter, smooth, diverge: as given.
        notes: what the curve says about the range (it began too high or ended too early).
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    ema: np.ndarray
    suggestions: dict[str, float | None]
    best: float | None
    best_rule: str
    stop_reason: str
    optimizer: str
    start_lr: float
    end_lr: float
    num_iter: int
    smooth: float
    diverge: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and infinities as None)."""
        return jsonable({k: getattr(self, k) for k in (
            "lrs", "losses", "smoothed", "ema", "suggestions", "best", "best_rule", "stop_reason", "optimizer",
            "start_lr", "end_lr", "num_iter", "smooth", "diverge", "notes",
        )})


# ----------------------------------------------------------------------------- suggestions


def valley_index(losses: np.ndarray) -> int | None:
    """fastai's valley: the longest decreasing run (subsequence) and a point in its middle third."""
    n = len(losses)
    if n < 3:
        return None
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return min(n - 1, max(0, max_start + int(sections) + int(sections / 2)))


MIN_ITER = 10  # the centred window is at least 5 steps wide; a ramp of 3 smoothed into a flat line


def centered(losses: np.ndarray, half: int | None = None) -> np.ndarray:
    """The lag-free smoothed curve: the mean of the raw losses over a centred window ``i - h .. i + h``.

    ``h = max(2, n // 20)`` (5 steps of a 100-step test); the window shrinks at the ends. Unlike
    the moving average it has no lag, so a fall or a rise shows at the lr where it happens.
    """
    y = np.asarray(losses, dtype=np.float64)
    n = len(y)
    if n == 0:
        return y.copy()
    h = max(2, n // 20) if half is None else int(half)
    c = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.maximum(np.arange(n) - h, 0)
    hi = np.minimum(np.arange(n) + h + 1, n)
    return (c[hi] - c[lo]) / (hi - lo)


def steepest_index(lrs: np.ndarray, losses: np.ndarray, skip: int | None = None) -> int | None:
    """Index of the most negative slope ``d loss / d log(lr)`` between ``skip`` and the minimum.

    The first ``skip`` steps (default: a tenth of the test, at least 3) are left out: at the
    start of the ramp the loss moves by noise, not because of the lr.
    """
    n = len(losses)
    if n < 3:
        return None
    skip = max(3, n // 10) if skip is None else skip
    stop = int(np.argmin(losses))
    if stop <= skip + 1:
        return None
    slope = np.gradient(losses[: stop + 1], np.log(lrs[: stop + 1]))
    return skip + int(np.argmin(slope[skip:]))


MIN_CURVE = 5  # fewer recorded steps make no curve to read (a test that diverged at once)


def suggest(lrs: np.ndarray, losses: np.ndarray) -> dict[str, float | None]:
    """The three suggestions of the module docstring, from the raw losses (smoothed by :func:`centered`).

    None where the curve cannot say: fewer than :data:`MIN_CURVE` steps, or an lr below the
    first one tried (the loss was lowest at the very start: the range began too high).
    """
    if len(losses) < MIN_CURVE:
        return dict.fromkeys(SUGGESTIONS)
    curve = centered(losses)
    v = valley_index(curve)
    s = steepest_index(lrs, curve)
    out = {
        "valley": None if v is None else float(lrs[v]),
        "steepest": None if s is None else float(lrs[s]),
        "min_over_10": float(lrs[int(np.argmin(curve))]) / 10.0,
    }
    return {k: None if v is None or v < lrs[0] * (1 - 1e-12) else v for k, v in out.items()}


SMALL_FALL = 0.10  # a smoothed loss that falls by less than this share of its start has little to read


def notes(result_lrs: np.ndarray, losses: np.ndarray, stop_reason: str) -> list[str]:
    """What the curve says about the range itself: it began too high or ended too early, or the loss
    hardly fell at all (:data:`SMALL_FALL`)."""
    n = len(losses)
    if n < MIN_CURVE:
        return [f"the test recorded {n} step(s) before it stopped ({stop_reason}): no curve to read; "
                f"start lower (--start-lr / start_lr)"]
    curve = centered(losses)
    k = int(np.argmin(curve))
    if k <= max(1, n // 20):
        return ["the loss was lowest at the start of the range and rose from there: start lower "
                "(--start-lr / start_lr)"]
    if stop_reason == "completed" and k >= n - max(2, n // 20):
        return ["the loss was still falling at the end of the range: raise --end-lr (end_lr) to find "
                "where it turns"]
    start, low = float(curve[0]), float(curve[k])
    if start > 0 and (start - low) < SMALL_FALL * start:
        return [f"the smoothed loss fell by only {100 * (start - low) / start:.1f}% across the range "
                f"({start:.4g} -> {low:.4g}): there is little fall for the suggestions to read, so they may point "
                "at noise (a model that cannot fit the data better, such as a linear one on circles, looks like this)"]
    return []


# ----------------------------------------------------------------------------- the test


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    first = True
    while True:
        got = False
        for b in batches:
            got = True
            yield b
        if not got:
            if first:
                raise ValueError("batches yielded no batch; pass a re-iterable of (inputs, targets) pairs")
            return
        first = False


def lr_find(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: str | type[torch.optim.Optimizer] | torch.optim.Optimizer = "adam",
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    smooth: float = 0.98,
    diverge: float = 4.0,
    **hyper: Any,
) -> LRFindResult:
    """The learning-rate range test on ``model``; everything is restored afterwards.

    Args:
        model: any ``nn.Module``.
        loss_fn: ``loss_fn(model(x), y) -> scalar``.
        batches: a re-iterable of ``(x, y)`` batches (e.g. ``descend.data.Batches``), cycled.
        optimizer: a name (``"adam"``, ``"gd"``, ...), an optimizer class (built on
            ``model.parameters()`` with ``**hyper``) or an existing optimizer over the model's
            parameters (its state is saved and restored).
        start_lr, end_lr: the exponential ramp's ends (0 < start_lr < end_lr).
        num_iter: steps of the ramp (>= :data:`MIN_ITER`: twice the smallest centred window, so the
            smoothed curve and the suggestions read more than a few points).
        smooth: the moving average's factor, in [0, 1).
        diverge: stop once the smoothed loss exceeds ``diverge`` times its best (> 1).
        **hyper: the optimizer's other keyword arguments (when it is built here).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    start_lr = check_positive("start_lr", start_lr)
    end_lr = check_positive("end_lr", end_lr)
    if not end_lr > start_lr:
        raise ValueError(f"end_lr must be larger than start_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    num_iter = check_int("num_iter", num_iter, MIN_ITER)
    if isinstance(smooth, bool) or not isinstance(smooth, int | float) or not 0 <= smooth < 1:
        raise ValueError(f"smooth must be a number in [0, 1), got {smooth!r}")
    if isinstance(diverge, bool) or not isinstance(diverge, int | float) or not (math.isfinite(diverge) and diverge > 1):
        raise ValueError(f"diverge must be a finite number > 1, got {diverge!r}")
    if isinstance(optimizer, torch.optim.Optimizer):
        if hyper:
            raise ValueError(f"hyperparameters ({', '.join(hyper)}) apply only when lr_find builds the optimizer")
        opt, display, owned = optimizer, type(optimizer).__name__, False
        cls: type = type(optimizer)
    else:
        cls, display, _ = O.resolve(optimizer)
        owned = True
    if issubclass(cls, O.Newton):
        raise ValueError("optimizer must be a first-order optimizer for lr_find; Newton has no lr to range-test")
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters")

    saved_params = [p.detach().clone() for p in params]
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    saved_buffers = [b.detach().clone() for b in model.buffers()]
    saved_modes = [m.training for m in model.modules()]
    saved_rng = torch.get_rng_state()
    saved_epoch = getattr(batches, "epoch", None)
    if owned:
        opt = build(cls, params, hyper)
        saved_opt = None
    else:
        saved_opt = copy.deepcopy(opt.state_dict())

    ratio = end_lr / start_lr
    schedule = [start_lr * ratio ** (i / (num_iter - 1)) for i in range(num_iter)]
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stop_reason = "completed"
    try:
        model.train()
        stream = _cycle(batches)
        avg, best = 0.0, math.inf
        for i, lr in enumerate(schedule):
            try:
                xb, yb = next(stream)
            except StopIteration:
                stop_reason = "out of batches"
                break
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            value = float(loss.detach())
            if not math.isfinite(value):
                stop_reason = "non-finite loss"
                break
            loss.backward()
            try:
                opt.step()
            except O.NonFiniteGradientError:
                stop_reason = "non-finite loss"
                break
            avg = smooth * avg + (1 - smooth) * value
            sm = avg / (1 - smooth ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(sm)
            best = min(best, sm)
            if i > 0 and sm > diverge * best:
                stop_reason = "diverged"
                break
    finally:
        with torch.no_grad():
            for p, saved, grad in zip(params, saved_params, saved_grads):
                p.copy_(saved)
                p.grad = grad
            for b, saved in zip(model.buffers(), saved_buffers):
                b.copy_(saved)
        for m, mode in zip(model.modules(), saved_modes):
            m.training = mode
        torch.set_rng_state(saved_rng)
        if saved_epoch is not None:
            batches.epoch = saved_epoch  # type: ignore[attr-defined]
        if saved_opt is not None:
            opt.load_state_dict(saved_opt)
    lr_arr = np.asarray(lrs, dtype=np.float64)
    loss_arr = np.asarray(losses, dtype=np.float64)
    sm_arr = centered(loss_arr)
    sugg = suggest(lr_arr, loss_arr)
    return LRFindResult(
        lrs=lr_arr, losses=loss_arr, smoothed=sm_arr,
        ema=np.asarray(smoothed, dtype=np.float64), suggestions=sugg,
        best=sugg[BEST], best_rule=BEST, stop_reason=stop_reason, optimizer=display, start_lr=start_lr,
        end_lr=end_lr, num_iter=num_iter, smooth=float(smooth), diverge=float(diverge),
        notes=notes(lr_arr, loss_arr, stop_reason),
    )


__all__ = ["LRFindResult", "lr_find", "suggest", "notes", "centered", "valley_index", "steepest_index",
           "SUGGESTIONS"]
