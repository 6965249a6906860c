"""What a run costs on this server: measured seconds per step of each optimizer.

The page estimates a request's time as ``overhead_s + steps * scale *
sum(per_step_s[optimizer] for each optimizer in the race)`` before sending it,
and warns or refuses when that passes the time limit. An optimizer counts once
however many of its runs the race holds: :func:`descend.lab.minimize_many`
steps the runs of one optimizer together, as one tensor, so eight Newton runs
cost about what one does. ``per_step_s`` is measured once, the way requests
are computed (one run by ``minimize_many``, on a landscape where no optimizer
stops early, the difference of a long and a short run so that the setup does
not count); ``scale`` follows the requests the server has computed since.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

from descend import lab, optim

PROBE_LANDSCAPE = "two_minima"  # every optimizer runs every step there with its defaults (none stops or diverges)
PROBE_STEPS = 200  # the setup (about 1 ms) adds a few percent: an estimate on the safe side
OVERHEAD_S = 0.03


def one_thread() -> None:
    """Compute on one intra-op thread in this thread, as every job does (and the cost probe).

    The server computes ``workers`` jobs at once, each on its own thread, on tensors of a few
    numbers, where intra-op threads only cost: MKL's LAPACK (Newton's 2 x 2 Cholesky) waits
    milliseconds per call for threads of a busy machine. ``torch.set_num_threads`` sets the
    calling thread's OpenMP and MKL threads (and those of threads started later), not the
    threads already running.
    """
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def groups(optimizers: list[str], steps_taken: list[int] | None = None) -> dict[str, int]:
    """The race's lockstep groups: each optimizer (by registry key) once, with the most steps of its runs.

    ``minimize_many`` steps the runs of one optimizer together, so a group costs about one run's
    step, whatever the number of its runs. Without ``steps_taken`` every group counts 1.
    """
    out: dict[str, int] = {}
    for i, name in enumerate(optimizers):
        key = optim.registry.key_of(name)
        out[key] = max(out.get(key, 0), steps_taken[i] if steps_taken is not None else 1)
    return out


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
                one_thread()  # as the jobs compute (the probe ran Newton on MKL's threads: 5x slower)
                self._per_step = {name: self._probe(name) for name in optim.OPTIMIZERS}
            return dict(self._per_step)

    @staticmethod
    def _probe(name: str) -> float:
        def timed(steps: int) -> float:
            t0 = time.perf_counter()
            (run,) = lab.minimize_many(PROBE_LANDSCAPE, [{"optimizer": name}], steps=steps, tol=None)
            return (time.perf_counter() - t0) / max(run.steps, 1)

        timed(5)  # warm up
        # the faster of two: a busy machine only ever slows a probe down
        return min(timed(PROBE_STEPS), timed(PROBE_STEPS))

    def estimate(self, optimizers: list[str], steps: int) -> float:
        """The expected computing time of ``steps`` steps of runs of ``optimizers`` (one group each)."""
        table = self.per_step()
        each = sum(table[key] for key in groups(optimizers))
        return OVERHEAD_S + steps * self.scale * each

    def observe(self, optimizers: list[str], steps_taken: list[int], seconds: float) -> None:
        """Correct ``scale`` by a request whose runs took ``steps_taken`` steps in ``seconds``.

        The prediction counts the steps each group really took (a run that
        converged early stops costing), so ``scale`` measures the speed of
        a step, not how often runs stop early.
        """
        if self._per_step is None or sum(steps_taken) < 50:
            return
        table = self._per_step
        predicted = sum(table[key] * n for key, n in groups(optimizers, steps_taken).items())
        if predicted <= 0 or seconds <= OVERHEAD_S:
            return
        # the estimate adds OVERHEAD_S to the steps: the steps' share of the time corrects their cost
        ratio = min(20.0, max(0.02, (seconds - OVERHEAD_S) / predicted))
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
