r"""The tour: every claim of the seed notes, measured live and judged, on one self-contained page.

::

    from descend.tour import tour
    result = tour("runs/tour", quick=False, seed=0)    # writes runs/tour/index.html
    result.path, result.seconds
    {s.id: s.verdict for s in result.sections}         # "held" / "did not hold" / "depends"
    result.section("momentum").numbers                 # the numbers that decided it

or from the shell: ``descend tour [--quick] [--out DIR] [--seed N] [--only id,id]``.

Each topic (:func:`topic_ids`, in the notes' order) measures (runs its
experiment with descend's own optimizers, schedules, lab and trainer and
returns the numbers), judges (a small pure function of those numbers, by the
rule the page states) and writes (figure and prose from the measured result);
see :mod:`descend.tour.base`. The Korean quotes render in an embedded subset
of NanumGothic (:mod:`descend.tour.page`). :class:`TourResult` holds the page's path and one
:class:`Section` per topic (``id``, ``title``, ``note``, ``claim``,
``verdict``, ``numbers``, ``figure`` as PNG bytes, ``seconds``, ...).

The page (:mod:`descend.tour.page`) embeds every figure as base64 PNG with
inline CSS and no external reference, and is written atomically. The tour runs
with one torch thread (restored afterwards): its problems are small, and
timings then do not depend on what else runs on the machine. ``quick=True``
shrinks step budgets and epochs (about 22 s of one CPU core); the full tour
takes about 40 s.
"""

from .core import (
    DEPENDS,
    HELD,
    NOT_HELD,
    VERDICTS,
    Context,
    Finding,
    Section,
    TourResult,
    topic_ids,
    tour,
)

__all__ = ["tour", "TourResult", "Section", "Finding", "Context", "topic_ids", "VERDICTS", "HELD", "NOT_HELD",
           "DEPENDS"]
