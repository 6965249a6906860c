"""What a tour topic is made of: verdicts, :class:`Finding`, :class:`Context` and the registry.

A topic module imports only this module (never :mod:`descend.tour.core`), so the
machinery that runs the topics and the topics themselves do not import each other.

A topic is written in three parts:

* **measure**: a function that runs the experiment and returns its numbers (a
  dataclass or dict of plain numbers and arrays);
* **judge**: a small pure function of those numbers that returns a verdict by the
  rule the topic states;
* **write**: the prose and figures, which take every parameter from the measured
  result (nothing is typed twice), handed to :meth:`Context.finding`.

``@topic("id")`` registers ``fn(ctx) -> Finding``, which calls the three; the topic's title,
the notes it cites, the claim and the quote of the note are data, in ``claims.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HELD = "held"
NOT_HELD = "did not hold"
DEPENDS = "depends"
VERDICTS = (HELD, NOT_HELD, DEPENDS)

Number = float | int | str


def judge(held: bool, partly: bool = False) -> str:
    """``"held"`` if ``held``, else ``"depends"`` if ``partly``, else ``"did not hold"``."""
    if held:
        return HELD
    return DEPENDS if partly else NOT_HELD


@dataclass
class Finding:
    """What a topic function returns: its measurement and what it makes of it.

    Attributes:
        verdict: one of :data:`VERDICTS`, computed from ``numbers`` by ``rule``.
        rule: the verdict rule in one or two sentences.
        summary: what happened in this run, with the numbers that decided the verdict.
        setup: what was run (problem, optimizers, budgets).
        numbers: the measured values (finite floats, ints or strings).
        figure: PNG bytes of the main figure; ``extra_figures`` more PNGs.
        caption: one line under the figure.
    """

    verdict: str
    rule: str
    summary: str
    setup: str
    numbers: dict[str, Number]
    figure: bytes
    caption: str = ""
    extra_figures: list[bytes] = field(default_factory=list)


@dataclass
class Context:
    """What a topic function gets: the mode, the seed, shared data and the sections run so far.

    ``facts[id]`` holds what a topic leaves for later topics (the last topic sets the notes'
    practical advice against what the earlier ones measured).
    """

    quick: bool
    seed: int
    dpi: int
    done: dict[str, Any] = field(default_factory=dict)  # id -> core.Section, the sections run so far
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _cache: dict[Any, Any] = field(default_factory=dict)

    def pick(self, full: Any, quick: Any) -> Any:
        """``quick`` in quick mode, ``full`` otherwise."""
        return quick if self.quick else full

    def generator(self, k: int = 0) -> torch.Generator:
        """A CPU generator seeded from the tour's seed and ``k``."""
        return torch.Generator().manual_seed(int(self.seed) * 7919 + int(k))

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` once per tour for ``key`` (data sets loaded once)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def finding(self, verdict: str, numbers: dict[str, Number], figures: Sequence[Figure], *, rule: str,
                summary: str, setup: str, caption: str = "") -> Finding:
        """A topic's :class:`Finding`: ``figures`` (the main one first) rendered as PNG at the tour's dpi."""
        from ..plots.tour import png

        main, *extra = (png(fig, self.dpi) for fig in figures)
        return Finding(verdict, rule, summary, setup, numbers, main, caption, extra)


@dataclass(frozen=True)
class Topic:
    """A registered topic: metadata and the function that measures it."""

    id: str
    title: str
    note: str
    claim: str
    quote: str
    fn: Callable[[Context], Finding]


TOPICS: list[Topic] = []

# Page order: the order of the notes' topics (the issue's list).
ORDER = (
    "gradient", "learning_rate", "batch", "momentum", "nesterov", "adagrad", "adam", "newton", "saddle",
    "minima", "scaling", "mse_vs_ce", "batchnorm", "l2", "schedules", "linear_scaling", "adam_then_sgd",
    "parts", "choose",
)


CLAIMS_PATH = Path(__file__).parent / "claims.toml"


@cache
def claims() -> dict[str, dict[str, str]]:
    """The notes' claims (``claims.toml``): ``{id: {"title", "note", "claim", "quote"}}``, in page order."""
    with open(CLAIMS_PATH, "rb") as f:
        return tomllib.load(f)


def topic(id: str, title: str | None = None, *, note: str | None = None, claim: str | None = None,
          quote: str | None = None) -> Callable[[Callable[[Context], Finding]], Callable[[Context], Finding]]:
    """Register ``fn(ctx) -> Finding`` as the topic ``id``.

    The title, the notes cited, the claim and the quote come from ``claims.toml`` (the table ``[id]``);
    any given here replaces that entry's value.
    """
    entry = {**claims().get(id, {}), **{k: v for k, v in (("title", title), ("note", note), ("claim", claim),
                                                           ("quote", quote)) if v is not None}}
    missing = [k for k in ("title", "note", "claim", "quote") if k not in entry]
    if missing:
        raise ValueError(f"topic {id!r} lacks {', '.join(missing)} (add a [{id}] table to {CLAIMS_PATH.name})")

    def wrap(fn: Callable[[Context], Finding]) -> Callable[[Context], Finding]:
        if any(t.id == id for t in TOPICS):
            raise ValueError(f"topic {id!r} is registered twice")
        TOPICS.append(Topic(id, entry["title"], entry["note"], entry["claim"], entry["quote"], fn))
        return fn

    return wrap
