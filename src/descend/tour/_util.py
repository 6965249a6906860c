"""Small shared pieces of the tour's experiments.

* :func:`rows_optimizer`: one descend optimizer over ``R`` independent
  copies of a model stacked along the first dimension of each tensor, with
  per-row hyperparameters as broadcasting tensors (``lr`` of shape
  ``(R, 1)`` on a parameter of shape ``(R, d)``), so that R learning rates
  (or R schedules, R inits) train in one loop. The element-wise rules of
  :mod:`descend.optim` keep the rows independent: row ``i`` moves exactly
  as a model trained alone with row ``i``'s hyperparameters would.
* :func:`descend_rows`: full-batch descent of ``R`` rows on a function that
  returns one loss per row, recording every row's loss.
* :func:`steps_to`, :func:`first_true`: reading numbers off recorded curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .. import optim as O

Tensor = torch.Tensor


def per_row(value: Any, like: Tensor) -> Any:
    """A list of R numbers as a tensor ``(R, 1, ..., 1)`` broadcasting against ``like``; numbers stay."""
    if isinstance(value, list | tuple | np.ndarray):
        t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=like.dtype)
        return t.reshape((-1,) + (1,) * (like.ndim - 1))
    return value


def rows_optimizer(cls: type[O.Optimizer], params: Sequence[Tensor], **hyper: Any) -> O.Optimizer:
    """``cls`` over stacked parameters, one param group per tensor, list-valued hyperparameters per row.

    Every tensor of ``params`` has the rows on its first dimension; a hyperparameter given as
    a list of R numbers becomes, in each group, a tensor of shape ``(R, 1, ...)`` matching that
    tensor. The lab's conventions apply: eager steps, non-finite gradients not checked (a
    diverging row turns into NaN without stopping the others).
    """
    groups = [{"params": [p], **{k: per_row(v, p) for k, v in hyper.items()}} for p in params]
    kwargs: dict[str, Any] = {"impl": "eager", "nonfinite": "ignore"}
    return cls(groups, **kwargs)


def set_row_lrs(opt: torch.optim.Optimizer, values: Sequence[float]) -> None:
    """Write per-row learning rates into every group's (tensor) lr in place."""
    for g in opt.param_groups:
        lr = g["lr"]
        lr.copy_(torch.as_tensor(values, dtype=lr.dtype).reshape(lr.shape))


def descend_rows(
    loss_rows: Callable[[Tensor], Tensor],
    W0: Tensor,
    cls: type[O.Optimizer],
    steps: int,
    *,
    record_every: int = 1,
    **hyper: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-batch descent of R rows of ``W0`` (shape ``(R, ...)``) on ``loss_rows(W) -> (R,)``.

    Returns ``(record_steps, losses, points)``: the steps recorded (0, e, 2e, ... and the last),
    the loss of every row at those steps ``(k, R)`` (NaN once a row diverged) and the rows
    themselves ``(k, R, ...)``.
    """
    W = W0.detach().clone().requires_grad_(True)
    opt = rows_optimizer(cls, [W], **hyper)
    marks = sorted(set(range(0, steps + 1, record_every)) | {steps})
    keep = set(marks)
    losses, points = [], []
    for t in range(steps + 1):
        opt.zero_grad()
        rows = loss_rows(W)
        if t in keep:
            losses.append(rows.detach().double().numpy().copy())
            points.append(W.detach().double().numpy().copy())
        if t == steps:
            break
        rows.sum().backward()
        opt.step()
    return np.asarray(marks), np.stack(losses), np.stack(points)


def first_true(mask: np.ndarray, steps: np.ndarray) -> int | None:
    """The step of the first True in ``mask`` (None if there is none)."""
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(steps[idx[0]]) if idx.size else None


def steps_to(values: np.ndarray, steps: np.ndarray, below: float) -> int | None:
    """The first recorded step where ``values < below`` (None if never)."""
    v = np.asarray(values, dtype=np.float64)
    return first_true(np.isfinite(v) & (v < below), steps)


def shown(steps: int | None, budget: int) -> int | str:
    """Steps for a table: the number, or ``"> budget"`` when the target was not reached."""
    return steps if steps is not None else f"> {budget}"


def as_inf(steps: int | None) -> float:
    """Steps as a number for comparisons: ``inf`` when never reached."""
    return math.inf if steps is None else float(steps)


def rel(a: float, b: float) -> float:
    """``a / b`` guarded against zero."""
    return a / b if b else math.inf
