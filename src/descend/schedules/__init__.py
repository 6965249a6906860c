r"""Learning-rate schedules: the lr as a pure function of the step.

A schedule is a small, frozen, picklable object; ``schedule(n)`` (n counted
from 0) returns the lr for step ``n``, with no optimizer involved, so it can
be printed, plotted and tested on its own. ``Scheduler`` applies one to any
``torch.optim.Optimizer``. Formulas, with ``alpha0 = lr`` (notes 002, 003):

=====================================================  =========================================
``constant(lr)``                                       ``alpha0``
``step(lr, every, gamma=0.1)``                         ``alpha0 * gamma ** (n // every)``
``multi_step(lr, milestones, gamma=0.1)``              ``alpha0 * gamma ** #(milestones <= n)``
``exponential(lr, gamma)``                             ``alpha0 * gamma ** n``
``inverse_time(lr, rate, every=1, staircase=False)``   ``alpha0 / (1 + rate * n / every)``
``inverse_sqrt(lr, k)``                                ``alpha0 * min(1, k / sqrt(n))``
``linear(lr, steps, final_lr=0.0)``                    straight line to ``final_lr`` at ``steps``
``polynomial(lr, steps, power=1.0, final_lr=0.0)``     ``f + (alpha0 - f)(1 - n/steps)^power``
``cosine(lr, steps, final_lr=0.0)``                    ``f + (alpha0 - f)(1 + cos(pi n/steps))/2``
``cosine_restarts(lr, period, mult=1, final_lr=0.0)``  cosine restarted, cycles ``period * mult**i``
``one_cycle(lr, steps, pct_start=0.3, ...)``           up to ``lr``, down to ``lr/25/1e4``
``cyclic(lr, max_lr, steps_up, steps_down=None, ...)`` triangles between ``lr`` and ``max_lr``
``piecewise(lr, boundaries, values)``                  ``values[i]`` from ``boundaries[i]``
=====================================================  =========================================

(``n`` is clamped at ``steps`` where there is one; ``f = final_lr``.)

Combinators:

* ``warmup(schedule, steps, start=0.0, shape="linear")``: ramp from ``start``
  to ``schedule(0)`` over ``steps``, then ``schedule(n - steps)``;
* ``join([s0, s1, ...], [b1, ...])``: ``s0`` until ``b1``, then ``s1``
  restarted at 0, ...;
* ``factor * schedule``: scaling by a constant;
* ``cycle_momentum(s, base_momentum=0.85, max_momentum=0.95)``: the momentum
  torch's ``OneCycleLR``/``CyclicLR`` cycle against a ``one_cycle`` or
  ``cyclic`` lr ``s``; ``Scheduler(opt, ..., key="beta1")`` (or ``"momentum"``)
  applies it, as any schedule can drive any hyperparameter of a param group;
* ``plateau(schedule, mode="min", factor=0.1, patience=10, ...)``:
  ``schedule(n) * scale``, ``scale`` reduced like torch's
  ``ReduceLROnPlateau`` when the metric fed to it stops improving.

``scale_lr(base_lr, base_batch_size, batch_size)`` is the linear scaling
rule (note 003: batch x N means lr x N), used with a warmup as in Goyal et
al. 2017. Every argument is validated: a bad one raises ``ValueError``
naming the argument, the value and the allowed range.

By name, in the one spec syntax of :mod:`descend.spec` (the CLI, the web API
and the tour build schedules this way; errors carry the offending ``field``)::

    build("multi-step:milestones=30/60/90,gamma=0.1", steps=100, lr=0.1)
    build("cosine", steps=1000, lr=0.1, warmup=100)   # warmup(cosine(0.1, 900), 100)

``describe()`` lists every name with its options (kind, default, help) as data.

Example::

    from descend.schedules import Scheduler, cosine, warmup
    sched = warmup(cosine(0.1, 9_000), 1_000)       # note 003: linear warmup, then cosine
    [round(sched(n), 4) for n in (0, 500, 1000, 5500, 10000)]  # [0.0, 0.05, 0.1, 0.05, 0.0]
    scheduler = Scheduler(optimizer, sched)           # sets sched(0) now, sched(t) after t steps
"""

from typing import TYPE_CHECKING, Any

from .base import Schedule
from .combine import Join as join
from .combine import Warmup as warmup
from .combine import scale_lr
from .cycles import CosineRestarts as cosine_restarts
from .cycles import CycleMomentum as cycle_momentum
from .cycles import Cyclic as cyclic
from .cycles import OneCycle as one_cycle
from .decay import Constant as constant
from .decay import Cosine as cosine
from .decay import Exponential as exponential
from .decay import InverseSqrt as inverse_sqrt
from .decay import InverseTime as inverse_time
from .decay import Linear as linear
from .decay import MultiStep as multi_step
from .decay import Piecewise as piecewise
from .decay import Polynomial as polynomial
from .decay import Step as step
from .on_plateau import Plateau as plateau
from .registry import build, describe, names

if TYPE_CHECKING:
    from .scheduler import Scheduler


def __getattr__(name: str) -> Any:
    """``Scheduler`` (and torch with it) is imported on first use: schedules alone need no torch."""
    if name == "Scheduler":
        from .scheduler import Scheduler

        return Scheduler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Schedule",
    "Scheduler",
    "build",
    "constant",
    "cosine",
    "cosine_restarts",
    "cycle_momentum",
    "cyclic",
    "describe",
    "exponential",
    "inverse_sqrt",
    "inverse_time",
    "join",
    "linear",
    "multi_step",
    "names",
    "one_cycle",
    "piecewise",
    "plateau",
    "polynomial",
    "scale_lr",
    "step",
    "warmup",
]
