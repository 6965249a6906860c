"""What a run costs on this server: measured seconds per step of each optimizer.

The page estimates a request's time as ``overhead_s + steps * scale *
sum(per_step_s[optimizer] for each run)`` before sending it, and warns or
refuses when that passes the time limit. ``per_step_s`` is measured once (a
short run of every optimizer on Rosenbrock, by the lab itself); ``scale``
follows the requests the server has computed since (all runs of a request
advance together, so a race costs less than the sum of its runs alone).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from descend import lab, optim

PROBE_STEPS = 60
OVERHEAD_S = 0.03


class Costs:
    """Per-step costs of the optimizers, measured on first use and corrected by every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_step: dict[str, float] | None = None
        self.scale = 1.0
        self.observed = 0

    def per_step(self) -> dict[str, float]:
        """Seconds per step of one run of each optimizer (measured once, on first call)."""
        with self._lock:
            if self._per_step is None:
                self._per_step = {name: self._probe(name) for name in optim.OPTIMIZERS}
            return dict(self._per_step)

    @staticmethod
    def _probe(name: str) -> float:
        lab.minimize("rosenbrock", optimizer=name, steps=5, tol=None)  # warm up
        t0 = time.perf_counter()
        lab.minimize("rosenbrock", optimizer=name, steps=PROBE_STEPS, tol=None)
        return (time.perf_counter() - t0) / PROBE_STEPS

    def estimate(self, optimizers: list[str], steps: int) -> float:
        """The expected computing time of ``steps`` steps of runs of ``optimizers``."""
        table = self.per_step()
        each = sum(table[optim.registry.key_of(o)] for o in optimizers)
        return OVERHEAD_S + steps * self.scale * each

    def observe(self, optimizers: list[str], steps_taken: list[int], seconds: float) -> None:
        """Correct ``scale`` by a request whose runs took ``steps_taken`` steps in ``seconds``.

        The prediction counts the steps each run really took (a run that
        converged early stops costing), so ``scale`` measures the speed of
        a step, not how often runs stop early.
        """
        if self._per_step is None or sum(steps_taken) < 50:
            return
        table = self._per_step
        predicted = sum(table[optim.registry.key_of(o)] * n for o, n in zip(optimizers, steps_taken, strict=True))
        if predicted <= 0 or seconds <= 0:
            return
        ratio = min(20.0, max(0.02, seconds / predicted))
        with self._lock:
            weight = 0.3 if self.observed else 1.0
            self.scale = (1 - weight) * self.scale + weight * ratio
            self.observed += 1

    def table(self) -> dict[str, Any]:
        """The figures the page needs: per-step seconds by optimizer (aliases too), scale, overhead."""
        per_step = self.per_step()
        for alias, key in optim.ALIASES.items():
            per_step[alias] = per_step[key]
        return {"per_step_s": per_step, "scale": self.scale, "overhead_s": OVERHEAD_S,
                "observed": self.observed}
