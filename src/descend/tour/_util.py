"""Small shared pieces of the tour's experiments.

* :func:`rows_optimizer`: one descend optimizer over ``R`` independent
  copies of a model stacked along the first dimension of each tensor, with
  per-row hyperparameters as broadcasting tensors (``lr`` of shape
  ``(R, 1)`` on a parameter of shape ``(R, d)``), so that R learning rates
  (or R schedules, R inits) train in one loop. The element-wise rules of
  :mod:`descend.optim` keep the rows independent: row ``i`` moves exactly
  as a model trained alone with row ``i``'s hyperparameters would.
* :func:`descend_rows`: full-batch descent of ``R`` rows on a function that
  returns one loss per row, recording every row's loss: the lab's rows engine
  (:mod:`descend.lab.engine`) on a rows objective, with no row ever stopped.
* :class:`MLPRows`: R ReLU MLPs stacked along a first dimension, trained
  together by one optimizer built with :func:`rows_optimizer`.
* :func:`soft_threshold`: the proximal step of an L1 penalty.
* :func:`steps_to`, :func:`first_true`: reading numbers off recorded curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as D
from .. import optim as O
from ..lab.engine import Row, run_rows
from ..lab.objective import Objective
from ..train import TrainConfig, Trainer, TrainingDiverged
from .base import Context

Tensor = torch.Tensor
F64 = torch.float64
QUIET = {"progress": False, "plots": False, "tensorboard": False, "log_every": 10**9}


BEST_LR = "the lab's best-run rule: fewest steps to the tolerance, then lowest final loss"


def take(measured: dict[str, Any], names: str) -> tuple[Any, ...]:
    """The values of ``measured`` for the space-separated ``names``, in order (a writer's unpacking)."""
    return tuple(measured[k] for k in names.split())


def race_grid() -> np.ndarray:
    """The fair races' lr grid: 1e-4 .. 1, four per decade (the lab's default density)."""
    return np.logspace(-4, 0, 17)


def digits(ctx: Context) -> D.Dataset:
    """scikit-learn's digits, split and standardized by :func:`descend.data.load` (once per tour)."""
    return ctx.cached("digits", lambda: D.load("digits", seed=ctx.seed))


def fit(model: torch.nn.Module, ds: D.Dataset, **cfg: object) -> tuple[list[dict], dict | None, bool]:
    """Train with :class:`descend.train.Trainer`, quietly; returns (history, final metrics or None, diverged)."""
    trainer = Trainer(model, ds, TrainConfig(**{**QUIET, **cfg}))
    try:
        result = trainer.fit()
        return result.history, result.final, False
    except TrainingDiverged:
        return trainer.history, None, True


def per_row(value: Any, like: Tensor) -> Any:
    """A list of R numbers as a tensor ``(R, 1, ..., 1)`` broadcasting against ``like``; numbers stay."""
    if isinstance(value, list | tuple | np.ndarray):
        t = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=like.dtype)
        return t.reshape((-1,) + (1,) * (like.ndim - 1))
    return value


def rows_optimizer(spec: Any, params: Sequence[Tensor], **hyper: Any) -> torch.optim.Optimizer:
    """The optimizer ``spec`` (a name such as ``"adam"``, or a class) over stacked parameters.

    Built by :func:`descend.optim.build`, one param group per tensor. Every tensor of ``params``
    has the rows on its first dimension; a hyperparameter given as a list of R numbers becomes,
    in each group, a tensor of shape ``(R, 1, ...)`` matching that tensor. The lab's conventions
    apply: eager steps, non-finite gradients not checked (a diverging row turns into NaN without
    stopping the others).
    """
    groups = [{"params": [p], **{k: per_row(v, p) for k, v in hyper.items()}} for p in params]
    return O.build(spec, groups, impl="eager", nonfinite="ignore")


def set_row_lrs(opt: torch.optim.Optimizer, values: Sequence[float]) -> None:
    """Write per-row learning rates into every group's (tensor) lr in place."""
    for g in opt.param_groups:
        lr = g["lr"]
        lr.copy_(torch.as_tensor(values, dtype=lr.dtype).reshape(lr.shape))


def descend_rows(
    loss_rows: Callable[[Tensor], Tensor],
    W0: Tensor,
    spec: Any,
    steps: int,
    *,
    record_every: int = 1,
    **hyper: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-batch descent of R rows of ``W0`` (shape ``(R, ...)``) on ``loss_rows(W) -> (R,)``.

    Returns ``(record_steps, losses, points)``: the steps recorded (0, e, 2e, ... and the last),
    the loss of every row at those steps ``(k, R)`` (NaN once a row diverged) and the rows
    themselves ``(k, R, ...)``. The lab's rows engine moves them (:func:`descend.lab.engine.run_rows`
    on a rows objective, ``halt=False``: no row stops, every row takes every step); a hyperparameter
    given as a list holds one number per row.
    """
    W0 = W0.detach()
    R = W0.shape[0]
    per = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in hyper.items()
           if isinstance(v, list | tuple | np.ndarray)}
    rows = [Row(spec, {k: float(per[k][i]) if k in per else v for k, v in hyper.items()}, None, W0[i].clone())
            for i in range(R)]
    runs = run_rows(Objective(loss_rows, rows=True), rows, steps=steps, tol=None, record_every=record_every,
                    bound=math.inf, halt=False)
    shape = (-1, *W0.shape[1:])
    losses = np.stack([r.losses for r in runs], axis=1)
    points = np.stack([r.path.reshape(shape) for r in runs], axis=1).astype(np.float64, copy=False)
    return runs[0].record_steps, losses, points


class MLPRows:
    """R independent ReLU MLPs stacked along a first dimension (one ``baddbmm`` per layer).

    Row ``r``'s weights are ``weights[i][r]`` (shape ``(fan_in, fan_out)``) and ``biases[i][r]``;
    He-normal initial weights drawn from ``gen``, zero biases. ``repeat`` rows share each
    initialization (``init_rows`` distinct ones, repeated ``repeat`` times, row order
    ``[init 0..n-1] * repeat``), so variants of a run start from the same weights.
    """

    def __init__(self, sizes: Sequence[int], init_rows: int, gen: torch.Generator, repeat: int = 1) -> None:
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        for a, b in zip(sizes, sizes[1:]):
            w = torch.randn(init_rows, a, b, generator=gen) * math.sqrt(2.0 / a)
            self.weights.append(w.repeat(repeat, 1, 1).requires_grad_(True))
            self.biases.append(torch.zeros(init_rows * repeat, 1, b, requires_grad=True))

    @property
    def params(self) -> list[Tensor]:
        return [*self.weights, *self.biases]

    def losses(self, xb: Tensor, yb: Tensor) -> Tensor:
        """Mean cross-entropy of every row on the batch ``(xb, yb)``: shape ``(R,)``."""
        h = xb.expand(self.weights[0].shape[0], -1, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        R, k = h.shape[0], h.shape[-1]
        return F.cross_entropy(h.reshape(-1, k), yb.repeat(R), reduction="none").view(R, -1).mean(1)


def soft_threshold(W: Tensor, amount: Tensor | float) -> None:
    """The proximal step of ``amount * |w|_1`` in place: ``w <- sign(w) * max(|w| - amount, 0)``."""
    with torch.no_grad():
        W.copy_(torch.sign(W) * torch.clamp(W.abs() - amount, min=0.0))


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
