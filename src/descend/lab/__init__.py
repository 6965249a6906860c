r"""The lab: run optimizers on landscapes and real data, and compare them.

=============================================  ==================================================
``minimize(f, x0, optimizer, steps, tol, ...)`` one trajectory: path, losses, gradient norms, lrs,
                                                steps to tolerance, converged/diverged, wall time
``minimize_many(f, [run, ...], **common)``     several runs (any optimizers) in lockstep, one
                                                evaluation of ``f`` per step; equals ``minimize``
``run_many(f, starts, optimizer, ..., lr=[...])`` N trajectories as one ``(N, d)`` tensor with
                                                per-row hyperparameters; rows equal ``minimize``
``race(f, entries, steps, tol, fair=False)``    several optimizers from one start; ``fair=True``
                                                tunes each on the same lr grid and horizon
``sweep(f, optimizer, lrs, betas=None)``        final loss against lr with regions (too small,
                                                good, too large, divergent); lr x beta heat-map
``lr_find(model, loss_fn, batches, ...)``       the learning-rate range test on real data;
                                                restores model and optimizer exactly
``best_index(steps_to_tol, finals, diverged)``  the one "best run" rule (:data:`BEST_RULE`) of
                                                sweep, heat-map, fair race and tour
=============================================  ==================================================

One rows engine (:mod:`descend.lab.engine`) runs every trajectory: ``minimize`` is
one row, ``run_many`` and ``minimize_many`` are many rows advanced in lockstep with
one evaluation of ``f`` per step and one stopping rule. Long runs are computed in
chunks of steps; ``cancel()`` (``minimize_many``, ``run_many``) is checked between
chunks and raises :class:`Cancelled`. Steps are capped at :data:`MAX_STEPS`.

Figures of these results are drawn by :mod:`descend.plots.lab`; the
``descend race``, ``descend sweep`` and ``descend lr-find`` commands come
from :func:`descend.cli.lab.register`.

    from descend import lab
    run = lab.minimize("rosenbrock", optimizer="adam", lr=0.02, steps=3000)
    runs = lab.run_many("bowl", None, "gd", lr=[0.01, 0.1, 0.3], steps=500)
    a, b = lab.minimize_many("rosenbrock", [{"optimizer": "adam", "lr": 0.02}, {"optimizer": "gd", "lr": 1e-3}],
                             steps=2000, tol=1e-6)
    result = lab.race("rosenbrock", [("gd", {"lr": 1e-3}), ("adam", {"lr": 0.02})], steps=2000)
"""

from .best import BEST_RULE, best_index
from .engine import MAX_STEPS, Cancelled
from .lr_find import LRFindResult, lr_find
from .race import RACE_NOTE, RaceResult, race
from .results import Run, Runs
from .runner import RunError, minimize, minimize_many, run_many
from .sweep import REGIONS, SweepResult, classify, sweep

__all__ = [
    "minimize",
    "minimize_many",
    "run_many",
    "Cancelled",
    "RunError",
    "MAX_STEPS",
    "BEST_RULE",
    "best_index",
    "race",
    "sweep",
    "lr_find",
    "Run",
    "Runs",
    "RaceResult",
    "SweepResult",
    "LRFindResult",
    "RACE_NOTE",
    "REGIONS",
    "classify",
]
