r"""Combinators: warmup in front of a schedule, schedules joined in time, the linear scaling rule.

``warmup(schedule, steps, start=0.0, shape="linear")``: with ``target = schedule(0)``,
``p = n / steps``::

    lr(n) = start + (target - start) * w(p)     for n < steps
    lr(n) = schedule(n - steps)                 for n >= steps

with ``w(p) = p`` (linear), ``(1 - cos(pi p)) / 2`` (cosine) or ``0``
(constant: hold ``start``, then jump, Goyal et al.'s "constant warmup").
The wrapped schedule starts after the warmup (as in torch's ``SequentialLR``),
so ``warmup(cosine(lr, total - w), w)`` is note 003's "linear warmup then
cosine decay" over ``total`` steps, and torch's
``SequentialLR([LinearLR(start_factor=a, total_iters=w), CosineAnnealingLR(T_max=T)],
milestones=[w])`` is ``warmup(cosine(L, T), w, start=a * L)``.

``join([s0, s1, ...], [b1, b2, ...])``: ``s0(n)`` for ``n < b1``,
``s1(n - b1)`` for ``b1 <= n < b2``, ... (each part restarts its own clock,
as in optax's ``join_schedules`` and torch's ``SequentialLR``).

``scale_lr(base_lr, base_batch_size, batch_size) = base_lr * batch_size / base_batch_size``:
the linear scaling rule (note 003: batch x N means lr x N; Goyal et al.
2017: lr = 0.1 * kn / 256). Note 003 explains why it comes with a warmup:
starting a large batch at the scaled lr can diverge. Goyal et al.'s ImageNet
recipe for batch 8192 (one step per iteration, ``ipe`` iterations per epoch;
the milestones count from the end of the warmup)::

    peak = scale_lr(0.1, 256, 8192)                                   # 3.2
    sched = warmup(multi_step(peak, [25 * ipe, 55 * ipe, 75 * ipe]), 5 * ipe, start=0.1)
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from . import _validate as check
from .base import Schedule, check_schedule

_schedule = dataclass(frozen=True, repr=False)

WARMUP_SHAPES = ("linear", "cosine", "constant")


@_schedule
class Warmup(Schedule):
    """A warmup of ``steps`` steps from ``start`` up to ``schedule(0)``, then ``schedule``.

    See the module docstring for the formula. ``steps`` >= 1; ``start`` in
    ``[0, schedule(0)]``, so the warmup never decreases and reaches exactly
    ``schedule(0)`` at ``n = steps``. ``base_lr`` is the wrapped schedule's.
    """

    _name = "warmup"
    schedule: Schedule
    steps: int
    start: float = 0.0
    shape: str = "linear"

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        object.__setattr__(self, "steps", check.integer("steps", self.steps))
        target = self.schedule(0)
        object.__setattr__(self, "start", check.real("start", self.start, 0.0, target))
        check.choice("shape", self.shape, WARMUP_SHAPES)

    @property
    def base_lr(self) -> float:
        return self.schedule.base_lr

    def _lr(self, n: int) -> float:
        if n >= self.steps:
            return self.schedule(n - self.steps)
        target = self.schedule(0)
        p = n / self.steps
        if self.shape == "linear":
            w = p
        elif self.shape == "cosine":
            w = (1 - math.cos(math.pi * p)) / 2
        else:
            w = 0.0
        # rounding of (target - start) * w must not overshoot the target
        return min(self.start + (target - self.start) * w, target)


@_schedule
class Join(Schedule):
    """Schedules one after another, switching at ``boundaries``; see the module docstring.

    ``len(boundaries) == len(schedules) - 1``; boundaries strictly increasing
    integers >= 1. ``base_lr`` is the largest of the parts' base lrs (so that a
    join that starts with a ramp from 0 still has a reference lr).
    """

    _name = "join"
    schedules: Sequence[Schedule]
    boundaries: Sequence[int]

    def __post_init__(self) -> None:
        try:
            parts = tuple(self.schedules)
        except TypeError:
            raise ValueError(f"schedules must be a list of schedules, got {self.schedules!r}") from None
        if not parts:
            raise ValueError("schedules must hold at least one schedule, got []")
        for i, s in enumerate(parts):
            check_schedule(f"schedules[{i}]", s)
        bounds = check.increasing("boundaries", self.boundaries)
        if len(bounds) != len(parts) - 1:
            raise ValueError(
                f"boundaries must have len(schedules) - 1 = {len(parts) - 1} entries, got {len(bounds)}"
            )
        object.__setattr__(self, "schedules", parts)
        object.__setattr__(self, "boundaries", bounds)

    @property
    def base_lr(self) -> float:
        return max(s.base_lr for s in self.schedules)

    def _lr(self, n: int) -> float:
        i = bisect_right(self.boundaries, n)
        offset = self.boundaries[i - 1] if i else 0
        return self.schedules[i](n - offset)


def scale_lr(base_lr: float, base_batch_size: int, batch_size: int) -> float:
    """The linear scaling rule: ``base_lr * batch_size / base_batch_size``.

    Note 003: trained with batch 20 and lr 0.01, batch 40 wants lr 0.02:
    ``scale_lr(0.01, 20, 40) == 0.02``. Goyal et al. 2017 use it with a
    warmup (see the module docstring).
    """
    lr = check.real("base_lr", base_lr)
    b0 = check.integer("base_batch_size", base_batch_size)
    b = check.integer("batch_size", batch_size)
    return lr * b / b0
