r"""Decay schedules: the learning rate as a closed form in the step ``n``.

With ``alpha0 = lr`` the first argument of each schedule:

=================================  ==========================================================
``constant(lr)``                   ``alpha0``
``step(lr, every, gamma=0.1)``     ``alpha0 * gamma ** (n // every)``
``multi_step(lr, milestones, g)``  ``alpha0 * g ** (number of milestones <= n)``
``exponential(lr, gamma)``         ``alpha0 * gamma ** n``                       (note 002: 0.95^n)
``inverse_time(lr, rate)``         ``alpha0 / (1 + rate * n / every)``           (note 002)
``inverse_sqrt(lr, k)``            ``alpha0 * min(1, k / sqrt(n))``              (note 002)
``linear(lr, steps, final_lr)``    ``w * alpha0 + (1 - w) * final_lr``, ``w = 1 - p``
``polynomial(lr, steps, power)``   ``w * alpha0 + (1 - w) * final_lr``, ``w = (1 - p) ** power``
``cosine(lr, steps, final_lr)``    ``w * alpha0 + (1 - w) * final_lr``, ``w = (1 + cos(pi p)) / 2``
``piecewise(lr, bounds, values)``  ``alpha0`` before ``bounds[0]``, ``values[i]`` from ``bounds[i]``
=================================  ==========================================================

where ``p = min(n, steps) / steps``.

Note 003's step decay (divide by 10 at epochs 30, 60, 90) is
``multi_step(lr, [30, 60, 90])`` (or ``step(lr, 30)``, which keeps going at
120, 150, ...), stepped once per epoch.

The interpolating schedules are computed as convex combinations,
``w * lr + (1 - w) * final_lr`` with ``w`` the fraction left, so that the
first and the final values are exact and never negative.

Differences from ``torch.optim.lr_scheduler`` (values agree to about 1e-16
relative wherever both are defined; torch computes most of these
recursively, ``lr_n = lr_{n-1} * ratio``, which differs from the closed form
only by accumulated rounding):

* ``cosine`` holds ``final_lr`` after ``steps``; ``CosineAnnealingLR`` keeps
  following the cosine back up (period ``2 * T_max``).
* ``linear`` goes from ``lr`` to ``final_lr``; ``LinearLR(start_factor=a,
  end_factor=b, total_iters=T)`` on base lr ``L`` is ``linear(a * L, T, b * L)``
  with ``Scheduler(..., relative=False)`` (on an optimizer built with lr ``L``,
  relative scaling would multiply it by ``1 / a``).
* ``polynomial`` has a ``final_lr`` (torch's ``PolynomialLR`` ends at 0).
* ``multi_step`` milestones must be strictly increasing (torch accepts repeats
  and multiplies by ``gamma ** count``).
* ``inverse_time`` and ``inverse_sqrt`` have no torch class (only ``LambdaLR``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from . import _validate as check
from .base import Schedule, set_field

_schedule = dataclass(frozen=True, repr=False)


def cosine_between(lr: float, final_lr: float, t: int, length: int) -> float:
    """``w * lr + (1 - w) * final_lr`` with ``w = (1 + cos(pi * t / length)) / 2``: ``lr`` at ``t = 0``,
    ``final_lr`` at ``t = length`` (``cosine``, and each cycle of ``cosine_restarts``)."""
    w = (1.0 + math.cos(math.pi * t / length)) / 2
    return w * lr + (1.0 - w) * final_lr


@_schedule
class Constant(Schedule):
    """``lr(n) = lr``."""

    _name = "constant"
    _checks = {"lr": check.real}
    lr: float

    def _lr(self, n: int) -> float:
        return self.lr


@_schedule
class Step(Schedule):
    """Step decay: ``lr(n) = lr * gamma ** (n // every)``, gamma in (0, 1].

    ``step(0.1, 30)`` divides by 10 every 30 steps (note 003 counts epochs).
    torch: ``StepLR(step_size=every, gamma=gamma)``.
    """

    _name = "step"
    _checks = {"lr": check.real, "every": check.integer, "gamma": check.decay_factor}
    lr: float
    every: int
    gamma: float = 0.1

    def _lr(self, n: int) -> float:
        return self.lr * self.gamma ** (n // self.every)


@_schedule
class MultiStep(Schedule):
    """Multiply by gamma at each milestone: ``lr(n) = lr * gamma ** bisect_right(milestones, n)``.

    ``multi_step(0.1, [30, 60, 90])`` is note 003's step decay: 0.1 for
    n < 30, 0.01 from 30, 0.001 from 60, 1e-4 from 90. Milestones are
    strictly increasing integers >= 1; gamma in (0, 1].
    torch: ``MultiStepLR(milestones, gamma)``.
    """

    _name = "multi_step"
    _checks = {"lr": check.real, "milestones": check.increasing, "gamma": check.decay_factor}
    lr: float
    milestones: Sequence[int]
    gamma: float = 0.1

    def _lr(self, n: int) -> float:
        return self.lr * self.gamma ** bisect_right(self.milestones, n)


@_schedule
class Exponential(Schedule):
    """Exponential decay: ``lr(n) = lr * gamma ** n``, gamma in (0, 1].

    Note 002: ``alpha = 0.95^n * alpha0`` is ``exponential(alpha0, 0.95)``.
    torch: ``ExponentialLR(gamma)``.
    """

    _name = "exponential"
    _checks = {"lr": check.real, "gamma": check.decay_factor}
    lr: float
    gamma: float

    def _lr(self, n: int) -> float:
        return self.lr * self.gamma**n


@_schedule
class InverseTime(Schedule):
    """Inverse-time decay: ``lr(n) = lr / (1 + rate * p)``, ``p = n / every``.

    With ``staircase=True``, ``p = n // every`` (the lr changes only every
    ``every`` steps). Note 002: ``alpha = alpha0 / (1 + r * n)``, so
    ``inverse_time(0.2, 1.0)`` gives 0.2, 0.1, 0.0667, 0.05 at n = 0, 1, 2, 3.
    rate >= 0. Keras: ``InverseTimeDecay(lr, every, rate, staircase)``.
    """

    _name = "inverse_time"
    _checks = {"lr": check.real, "rate": check.real, "every": check.integer, "staircase": check.flag}
    lr: float
    rate: float
    every: int = 1
    staircase: bool = False

    def _lr(self, n: int) -> float:
        p = n // self.every if self.staircase else n / self.every
        return self.lr / (1.0 + self.rate * p)


@_schedule
class InverseSqrt(Schedule):
    """Inverse square root: ``lr(n) = lr * min(1, k / sqrt(n))``, k > 0.

    Note 002's ``alpha = k / sqrt(n) * alpha0``, capped at ``alpha0`` so that
    it is defined at n = 0: the lr is ``alpha0`` for ``n <= k**2`` and exactly
    ``k / sqrt(n) * alpha0`` after. With ``k = 1``: ``alpha0`` at n = 0 and 1,
    ``alpha0 / 2`` at n = 4, ``alpha0 / 10`` at n = 100. (T5's
    ``1 / sqrt(max(n, warmup))`` is ``inverse_sqrt(lr, sqrt(warmup))``.)
    """

    _name = "inverse_sqrt"
    _checks = {"lr": check.real, "k": check.positive}
    lr: float
    k: float

    def _lr(self, n: int) -> float:
        if n <= self.k * self.k:
            return self.lr
        return self.lr * self.k / math.sqrt(n)


@_schedule
class _ToFinal(Schedule):
    """What ``linear`` and ``cosine`` share: ``lr`` at n = 0 to ``final_lr`` at ``n = steps``."""

    _checks = {"lr": check.real, "steps": check.integer, "final_lr": check.real}
    lr: float
    steps: int
    final_lr: float = 0.0


@_schedule
class Linear(_ToFinal):
    """Linear: ``lr(n) = (1 - p) * lr + p * final_lr``, ``p = min(n, steps) / steps``.

    Goes from ``lr`` at n = 0 to ``final_lr`` at ``n = steps`` and stays there
    (up or down). torch: ``LinearLR(start_factor=a, end_factor=b,
    total_iters=steps)`` on base lr ``L`` is ``linear(a * L, steps, b * L)`` under
    ``Scheduler(..., relative=False)`` (see the module docstring).
    """

    _name = "linear"

    def _lr(self, n: int) -> float:
        p = min(n, self.steps) / self.steps
        return (1.0 - p) * self.lr + p * self.final_lr


@_schedule
class Polynomial(Schedule):
    """Polynomial: ``lr(n) = w * lr + (1 - w) * final_lr``, ``w = (1 - min(n, steps) / steps) ** power``.

    power > 0; ``power=1`` is linear decay. torch: ``PolynomialLR(total_iters=steps,
    power=power)`` (which has ``final_lr = 0``).
    """

    _name = "polynomial"
    _checks = {"lr": check.real, "steps": check.integer, "power": check.positive, "final_lr": check.real}
    lr: float
    steps: int
    power: float = 1.0
    final_lr: float = 0.0

    def _lr(self, n: int) -> float:
        w = (1.0 - min(n, self.steps) / self.steps) ** self.power
        return w * self.lr + (1.0 - w) * self.final_lr


@_schedule
class Cosine(_ToFinal):
    """Cosine decay to a floor (note 003; SGDR without restarts).

    ``lr(n) = w * lr + (1 - w) * final_lr``, ``w = (1 + cos(pi * min(n, steps) / steps)) / 2``:
    ``lr`` at n = 0, ``final_lr`` from ``n = steps`` on. torch:
    ``CosineAnnealingLR(T_max=steps, eta_min=final_lr)`` for n <= steps (torch
    rises again after ``T_max``; this holds the floor).
    """

    _name = "cosine"

    def _lr(self, n: int) -> float:
        return cosine_between(self.lr, self.final_lr, min(n, self.steps), self.steps)


@_schedule
class Piecewise(Schedule):
    """Piecewise constant ("manual changes", note 002).

    ``lr(n) = lr`` for ``n < boundaries[0]`` and ``values[i]`` for
    ``boundaries[i] <= n < boundaries[i + 1]``. Boundaries are strictly
    increasing integers >= 1, one value per boundary, values >= 0.
    ``piecewise(0.1, [100, 200], [0.05, 0.01])``.
    """

    _name = "piecewise"
    _checks = {"lr": check.real}
    lr: float
    boundaries: Sequence[int]
    values: Sequence[float]

    def __post_init__(self) -> None:
        super().__post_init__()
        bounds = check.increasing("boundaries", self.boundaries)
        try:
            values = tuple(self.values)
        except TypeError:
            raise ValueError(f"values must be a list of numbers >= 0, got {self.values!r}") from None
        if len(values) != len(bounds):
            raise ValueError(
                f"values must have one entry per boundary ({len(bounds)}), got {len(values)}"
            )
        values = tuple(check.real(f"values[{i}]", v) for i, v in enumerate(values))
        set_field(self, "boundaries", bounds)
        set_field(self, "values", values)

    def _lr(self, n: int) -> float:
        i = bisect_right(self.boundaries, n)
        return self.lr if i == 0 else self.values[i - 1]
