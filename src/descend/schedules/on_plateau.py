r"""Reduce on plateau, composed with any time-based schedule.

``plateau(schedule, mode="min", factor=0.1, patience=10, threshold=1e-4,
threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8)``::

    lr(n) = schedule(n) * scale

``scale`` starts at 1 and is the only state. ``observe(metric)`` follows
torch's ``ReduceLROnPlateau.step(metric)`` exactly, on the lr
``L = base_lr * scale`` (``base_lr`` the wrapped schedule's):

* the metric improves when ``metric < best * (1 - threshold)`` (mode min,
  rel), ``metric < best - threshold`` (min, abs), ``metric > best * (1 + threshold)``
  (max, rel) or ``metric > best + threshold`` (max, abs); an improvement
  resets the count of bad observations, anything else (NaN included) adds one;
* during ``cooldown`` observations after a reduction, bad observations are not
  counted;
* when more than ``patience`` bad observations accumulate, ``L`` becomes
  ``max(L * factor, min_lr)`` unless that changes it by ``eps`` or less;
  the count resets and the cooldown starts.

So with a constant schedule this *is* ``ReduceLROnPlateau`` (tested to 1e-12),
and with a decaying one the reduction multiplies the whole curve, never
below ``min_lr / base_lr`` times it. torch cannot combine ``ReduceLROnPlateau``
with other schedulers; here ``plateau(warmup(cosine(...), ...))`` works.

``plateau`` must be the outermost schedule (``plateau(0.5 * s)``, not
``0.5 * plateau(s)``). It is the one stateful schedule (``stateful`` is True;
:mod:`descend.schedules.base` says why it is a Schedule all the same): ``state_dict()`` and
``load_state_dict()`` save and restore ``scale``, ``best`` and the counters;
:class:`~descend.schedules.Scheduler` includes them in its own state dict and
feeds it from ``Scheduler.step(metric)``; several Schedulers sharing one
plateau feed it one observation per step (``observe(metric, round=k)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, SupportsFloat

from . import _validate as check
from .base import Schedule, check_schedule

MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")
_STATE_KEYS = ("scale", "best", "num_bad", "cooldown_counter", "observations")


@dataclass(eq=False, repr=False)
class Plateau(Schedule):
    """``schedule(n) * scale``, with ``scale`` reduced when a metric stops improving.

    See the module docstring. ``factor`` in (0, 1); ``patience``, ``cooldown``
    integers >= 0; ``threshold``, ``min_lr``, ``eps`` >= 0.
    """

    _name = "plateau"
    stateful = True
    _stateful = True  # the older spelling of `stateful`, still read by lab/
    schedule: Schedule
    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0
    eps: float = 1e-8
    scale: float = field(default=1.0, init=False)
    best: float = field(default=math.inf, init=False)
    num_bad: int = field(default=0, init=False)
    cooldown_counter: int = field(default=0, init=False)
    observations: int = field(default=0, init=False)
    _round: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        check.choice("mode", self.mode, MODES)
        self.factor = check.real("factor", self.factor, 0.0, 1.0, lo_open=True, hi_open=True)
        self.patience = check.integer("patience", self.patience, minimum=0)
        self.threshold = check.real("threshold", self.threshold)
        check.choice("threshold_mode", self.threshold_mode, THRESHOLD_MODES)
        self.cooldown = check.integer("cooldown", self.cooldown, minimum=0)
        self.min_lr = check.real("min_lr", self.min_lr)
        self.eps = check.real("eps", self.eps)
        self.reset()

    @property
    def base_lr(self) -> float:
        return self.schedule.base_lr

    def _lr(self, n: int) -> float:
        return self.schedule(n) * self.scale

    def reset(self) -> None:
        """Forget every observation: scale 1, no best, counters 0."""
        self.scale = 1.0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad = 0
        self.cooldown_counter = 0
        self.observations = 0

    def improves(self, metric: float, best: float) -> bool:
        """Whether ``metric`` counts as better than ``best`` (torch's rule)."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return metric < best * (1.0 - self.threshold)
        if self.mode == "min":
            return metric < best - self.threshold
        if self.threshold_mode == "rel":
            return metric > best * (self.threshold + 1.0)
        return metric > best + self.threshold

    @property
    def round(self) -> int:
        """The last round counted by :meth:`observe` with ``round=`` (0 before any)."""
        return self._round

    def observe(self, metric: SupportsFloat, *, round: int | None = None) -> bool:  # noqa: A002 - (the word)
        """Record one value of the monitored metric; return True if the lr was reduced.

        ``round``: the feeder's count of metrics it gave this plateau (the first is 1). Several
        Schedulers sharing one plateau each pass their own, and a round already counted is
        ignored: the plateau counts one observation per step, not one per Scheduler. Without
        ``round`` every call counts.
        """
        if round is not None:
            if round <= self._round:
                return False
            self._round = round
        current = float(metric)
        self.observations += 1
        if self.improves(current, self.best):
            self.best = current
            self.num_bad = 0
        else:
            self.num_bad += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad = 0
        reduced = False
        if self.num_bad > self.patience:
            base = self.schedule.base_lr
            old = base * self.scale
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.scale = self.scale * self.factor if old * self.factor >= self.min_lr else self.min_lr / base
                reduced = True
            self.cooldown_counter = self.cooldown
            self.num_bad = 0
        return reduced

    def state_dict(self) -> dict[str, Any]:
        """The metric-driven state: ``scale``, ``best`` and the counters."""
        return {key: getattr(self, key) for key in _STATE_KEYS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (ValueError if keys are missing or extra)."""
        if not isinstance(state, dict) or set(state) != set(_STATE_KEYS):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"plateau state must have keys {sorted(_STATE_KEYS)}, got {got}")
        self.scale = check.real("scale", state["scale"], lo_open=False)
        best = state["best"]
        if not isinstance(best, (int, float)) or math.isnan(best):
            raise ValueError(f"best must be a number, got {best!r}")
        self.best = float(best)
        self.num_bad = check.integer("num_bad", state["num_bad"], minimum=0)
        self.cooldown_counter = check.integer("cooldown_counter", state["cooldown_counter"], minimum=0)
        self.observations = check.integer("observations", state["observations"], minimum=0)
