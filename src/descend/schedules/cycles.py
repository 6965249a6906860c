r"""Schedules that rise and fall: warm restarts, one-cycle, cyclic.

``cosine_restarts(lr, period, mult=1, final_lr=0.0)`` (SGDR, Loshchilov &
Hutter 2017): cycle ``i`` lasts ``T_i = period * mult**i`` steps; with
``t`` the steps since the last restart and ``w = (1 + cos(pi * t / T_i)) / 2``,
``lr(n) = w * lr + (1 - w) * final_lr`` (exactly ``lr`` at every restart).
torch: ``CosineAnnealingWarmRestarts(T_0=period, T_mult=mult, eta_min=final_lr)``.

``one_cycle(lr, steps, pct_start=0.3, anneal="cos", div_factor=25, final_div_factor=1e4,
three_phase=False)`` (Smith & Topin 2017, fastai's two phases by default):
from ``lr / div_factor`` up to ``lr`` at step ``pct_start * steps - 1``, then
down to ``lr / div_factor / final_div_factor`` at step ``steps - 1``, annealing
with ``anneal(a, b, p) = b + (a - b) / 2 * (1 + cos(pi p))`` (``"cos"``) or
``a + (b - a) p`` (``"linear"``). With ``three_phase`` the way down mirrors the
way up (to ``lr / div_factor`` at ``2 * pct_start * steps - 2``) and a third
phase anneals to the minimum. Phase ends are torch's (floats, as in
``OneCycleLR``); after ``steps - 1`` the lr stays at the minimum (torch raises).

``cyclic(lr, max_lr, steps_up, steps_down=None, mode="triangular", gamma=1.0)``
(Smith 2017, CLR): with ``T = steps_up + steps_down``,
``cycle = floor(1 + n / T)``, ``x = 1 + n / T - cycle``,
``h = x / r`` if ``x <= r`` else ``(x - 1) / (r - 1)`` where ``r = steps_up / T``,
``lr(n) = lr + (max_lr - lr) * h * scale``, with ``scale`` = 1 (triangular),
``0.5 ** (cycle - 1)`` (triangular2) or ``gamma ** n`` (exp_range).
torch: ``CyclicLR(base_lr=lr, max_lr, step_size_up, step_size_down, mode, gamma,
scale_fn, scale_mode)``.

``cycle_momentum(schedule, base_momentum=0.85, max_momentum=0.95)``: the
momentum (or beta1) that torch's ``OneCycleLR`` and ``CyclicLR`` cycle against
the lr (``cycle_momentum=True``; Smith 2018: high lr with low momentum). For
``one_cycle`` each phase anneals between ``max_momentum`` (where the lr is
low) and ``base_momentum`` (at the lr's peak) with the lr's own ``pct`` and
anneal; for ``cyclic``, ``momentum(n) = max_momentum - (max_momentum -
base_momentum) * h * scale``. Drive it with
``Scheduler(optimizer, cycle_momentum(s), key="momentum")`` (or ``"beta1"``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from . import _validate as check
from .base import Schedule, set_field
from .decay import cosine_between

_schedule = dataclass(frozen=True, repr=False)


@_schedule
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR); see the module docstring.

    ``period`` (>= 1) is the first cycle's length, ``mult`` (integer >= 1) the
    factor by which each cycle is longer than the previous one. The lr is
    ``lr`` at the start of every cycle; with ``mult=1`` it is periodic:
    ``lr(n + period) == lr(n)``.
    """

    _name = "cosine_restarts"
    _checks = {"lr": check.real, "period": check.integer, "mult": check.integer, "final_lr": check.real}
    lr: float
    period: int
    mult: int = 1
    final_lr: float = 0.0

    def position(self, n: int) -> tuple[int, int]:
        """``(t, T_i)``: steps since the last restart and the current cycle's length."""
        n = check.step(n)
        if self.mult == 1:
            return n % self.period, self.period
        start, length = 0, self.period
        while n >= start + length:
            start += length
            length *= self.mult
        return n - start, length

    def _lr(self, n: int) -> float:
        t, length = self.position(n)
        return cosine_between(self.lr, self.final_lr, t, length)


ANNEAL = ("cos", "linear")


@_schedule
class OneCycle(Schedule):
    """The 1cycle policy with peak ``lr`` over ``steps`` steps; see the module docstring.

    ``pct_start`` in (0, 1) and long enough that every phase has at least
    one step; ``div_factor`` and ``final_div_factor`` > 0. ``base_lr`` is the
    peak ``lr``.
    """

    _name = "one_cycle"
    _checks = {
        "lr": check.real, "steps": check.integer,
        "pct_start": functools.partial(check.real, lo=0.0, hi=1.0, lo_open=True, hi_open=True),
        "anneal": functools.partial(check.choice, choices=ANNEAL),
        "div_factor": check.positive, "final_div_factor": check.positive, "three_phase": check.flag,
    }
    lr: float
    steps: int
    pct_start: float = 0.3
    anneal: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        ends = [end for end, _, _ in self.phases()]
        if any(b <= a for a, b in zip([0.0, *ends], ends)):
            raise ValueError(
                f"pct_start * steps must leave at least one step in every phase "
                f"(phase ends {', '.join(f'{e:.4g}' for e in ends)}); got pct_start={self.pct_start!r}, "
                f"steps={self.steps!r}"
            )

    def phases(self) -> list[tuple[float, float, float]]:
        """``(end_step, start_lr, end_lr)`` of each phase, as in torch's ``OneCycleLR``."""
        initial = self.lr / self.div_factor
        minimum = initial / self.final_div_factor
        up = float(self.pct_start * self.steps) - 1
        if self.three_phase:
            return [
                (up, initial, self.lr),
                (float(2 * self.pct_start * self.steps) - 2, self.lr, initial),
                (self.steps - 1, initial, minimum),
            ]
        return [(up, initial, self.lr), (self.steps - 1, self.lr, minimum)]

    def position(self, n: int) -> tuple[int, float]:
        """``(phase, pct)``: the phase step ``n`` is in and how far along it (torch's ``pct``)."""
        n = min(n, self.steps - 1)
        start = 0.0
        phases = self.phases()
        for i, (end, _, _) in enumerate(phases):
            if n <= end or i == len(phases) - 1:
                return i, (n - start) / (end - start)
            start = end
        raise AssertionError("unreachable")

    def anneal_between(self, a: float, b: float, pct: float) -> float:
        """``anneal(a, b, pct)`` with this schedule's ``anneal`` (see the module docstring)."""
        if self.anneal == "cos":
            return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (b - a) * pct + a

    def _lr(self, n: int) -> float:
        i, pct = self.position(n)
        _, a, b = self.phases()[i]
        return self.anneal_between(a, b, pct)


CYCLIC_MODES = ("triangular", "triangular2", "exp_range")
SCALE_MODES = ("cycle", "iterations")
_MODE_SCALE = {"triangular": "cycle", "triangular2": "cycle", "exp_range": "iterations"}


@_schedule
class Cyclic(Schedule):
    """Cyclical learning rates between ``lr`` and ``max_lr``; see the module docstring.

    ``steps_up`` (>= 1) steps up, ``steps_down`` (default ``steps_up``) down.
    ``mode``: ``"triangular"``, ``"triangular2"`` (amplitude halves every
    cycle) or ``"exp_range"`` (amplitude times ``gamma ** n``, gamma in (0, 1]).
    A custom ``scale_fn(x)`` in [0, 1] replaces ``mode``; it is evaluated on the
    cycle number (``scale_mode="cycle"``, default) or the step
    (``"iterations"``). Use a module-level function so the schedule stays
    picklable.
    """

    _name = "cyclic"
    lr: float
    max_lr: float
    steps_up: int
    steps_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0
    scale_fn: Callable[[float], float] | None = None
    scale_mode: str | None = None

    def __post_init__(self) -> None:
        set_field(self, "lr", check.real("lr", self.lr))
        try:
            set_field(self, "max_lr", check.real("max_lr", self.max_lr, self.lr))
        except ValueError as e:
            raise ValueError(
                f"{e} (max_lr is the top of the cycle, so at least the base lr {self.lr:g})"
            ) from None
        set_field(self, "steps_up", check.integer("steps_up", self.steps_up))
        if self.steps_down is not None:
            set_field(self, "steps_down", check.integer("steps_down", self.steps_down))
        check.choice("mode", self.mode, CYCLIC_MODES)
        set_field(self, "gamma", check.decay_factor("gamma", self.gamma))
        if self.scale_fn is not None and not callable(self.scale_fn):
            raise ValueError(f"scale_fn must be a function of one number, got {self.scale_fn!r}")
        if self.scale_mode is not None:
            check.choice("scale_mode", self.scale_mode, SCALE_MODES)
            if self.scale_fn is None and self.scale_mode != _MODE_SCALE[self.mode]:
                raise ValueError(
                    f"scale_mode applies to a custom scale_fn; mode {self.mode!r} uses "
                    f"scale_mode {_MODE_SCALE[self.mode]!r}, got {self.scale_mode!r}"
                )

    def _scale(self, cycle: int, n: int) -> float:
        if self.scale_fn is not None:
            x = n if self.scale_mode == "iterations" else cycle
            return self.scale_fn(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 0.5 ** (cycle - 1)  # torch's 1 / 2.0 ** (cycle - 1), without its overflow
        return self.gamma**n

    def position(self, n: int) -> tuple[float, float]:
        """``(h, scale)``: the triangle's height in [0, 1] at step ``n`` and the amplitude's scale."""
        up = float(self.steps_up)
        total = up + float(self.steps_down if self.steps_down is not None else self.steps_up)
        ratio = up / total
        cycle = math.floor(1 + n / total)
        x = 1.0 + n / total - cycle
        h = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        return h, self._scale(cycle, n)

    def _lr(self, n: int) -> float:
        h, scale = self.position(n)
        return self.lr + (self.max_lr - self.lr) * h * scale


@_schedule
class CycleMomentum(Schedule):
    """The momentum that cycles against a ``one_cycle`` or ``cyclic`` lr; see the module docstring.

    ``base_momentum`` <= ``max_momentum``, both in [0, 1]. ``base_lr`` (the
    reference value) is ``max_momentum``, the value at step 0.
    """

    _name = "cycle_momentum"
    schedule: Schedule
    base_momentum: float = 0.85
    max_momentum: float = 0.95

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, OneCycle | Cyclic):
            raise ValueError(
                f"schedule must be a one_cycle(...) or cyclic(...) lr schedule to cycle against, "
                f"got {self.schedule!r}"
            )
        set_field(self, "max_momentum", check.real("max_momentum", self.max_momentum, 0.0, 1.0))
        set_field(self, "base_momentum", check.real("base_momentum", self.base_momentum, 0.0, self.max_momentum))

    @property
    def base_lr(self) -> float:
        return self.max_momentum

    def _lr(self, n: int) -> float:
        low, high = self.base_momentum, self.max_momentum
        if isinstance(self.schedule, Cyclic):
            h, scale = self.schedule.position(n)
            return high - (high - low) * h * scale
        ends = [(high, low), (low, high), (high, high)]  # torch's momentum phases
        i, pct = self.schedule.position(n)
        return self.schedule.anneal_between(*ends[i], pct)
