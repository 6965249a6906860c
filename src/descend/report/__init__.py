"""descend.report: the tour of the notes (``descend tour``)."""

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
