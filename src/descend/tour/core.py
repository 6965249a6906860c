"""The tour's machinery: :class:`Section`, :class:`TourResult`, the topic registry and :func:`tour`.

A *topic* is a function ``fn(ctx) -> Finding`` registered with :func:`topic`
together with what it tests: an id, a title, the notes it cites, the
claim (in English) and a short quote of the note. :func:`tour` runs every
registered topic in the notes' order, times it, turns its
:class:`Finding` into a :class:`Section` and writes the page.

**Verdicts** are computed from the run's numbers, each topic by its own
rule (stated in ``Finding.rule`` and on the page): ``"held"``, ``"did not
hold"`` or ``"depends"`` (the claim held in part, or only under some of the
conditions measured). No verdict is written by hand. A topic that raises
becomes an error section (``Section.error`` holds the traceback, the page
shows it, the verdict is ``"depends"`` and the rule says that no verdict
was reached), so one broken topic never takes the page down with it;
``descend tour`` then exits with status 1.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import (  # noqa: F401  (re-exported: the tour's public names)
    DEPENDS,
    HELD,
    NOT_HELD,
    TOPICS,
    VERDICTS,
    Context,
    Finding,
    Number,
    Topic,
    claims,
    judge,
    topic,
)


@dataclass(kw_only=True)
class Section(Finding):
    """One topic of the tour, run and judged: its :class:`Finding` (verdict, rule, texts, numbers,
    figures) with the topic's metadata and timing.

    Attributes:
        id: short identifier (the HTML anchor), e.g. ``"momentum"``.
        title: heading.
        note: the seed notes cited, e.g. ``"000, 002"``.
        claim: the notes' claim in English; ``quote``: a short quote of the note itself.
        seconds: wall time of the topic (experiment and figures).
        error: the traceback if the topic failed (then ``figure`` is a placeholder).
    """

    id: str
    title: str
    note: str
    claim: str
    quote: str
    seconds: float
    error: str | None = None

    @property
    def figures(self) -> list[bytes]:
        """Every figure of the section, the main one first."""
        return [self.figure, *self.extra_figures]


@dataclass
class TourResult:
    """A finished tour: where the page is, every section, and the run's facts."""

    path: Path
    sections: list[Section]
    seconds: float
    started: str
    machine: dict[str, str]
    quick: bool
    seed: int
    only: list[str] | None = None  # the topics of a partial page (``--only``), None for the whole tour

    def verdicts(self) -> dict[str, str]:
        """``{section id: verdict}`` in page order."""
        return {s.id: s.verdict for s in self.sections}

    def section(self, id: str) -> Section:
        """The section with this id."""
        for s in self.sections:
            if s.id == id:
                return s
        raise KeyError(f"no section {id!r}; sections: {', '.join(s.id for s in self.sections)}")


# Page order: the order of the tables in claims.toml (the notes' topics, in the issue's order).
ORDER = tuple(claims())


def topic_ids() -> list[str]:
    """The ids of every topic, in page order."""
    _load_topics()
    return [t.id for t in TOPICS]


def _load_topics() -> None:
    from . import (  # noqa: F401  (importing a topic module registers its topics)
        topics_combine,
        topics_data,
        topics_landscapes,
        topics_newton,
        topics_practice,
        topics_regularization,
        topics_rules,
        topics_schedules,
    )

    rank = {id: i for i, id in enumerate(ORDER)}
    TOPICS.sort(key=lambda t: rank.get(t.id, len(ORDER)))


def machine_facts(threads: int) -> dict[str, str]:
    """Facts about this machine and software for the page's header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import matplotlib

    return {
        "torch": torch.__version__,
        "threads": f"{threads} torch thread(s) of {os.cpu_count()} CPU(s)",
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(terse=True),
    }


def _clean_numbers(numbers: dict[str, Any]) -> dict[str, Number]:
    """Finite floats, ints and strings only: anything else becomes its text."""
    out: dict[str, Number] = {}
    for k, v in numbers.items():
        if isinstance(v, bool):
            out[str(k)] = "yes" if v else "no"
        elif isinstance(v, int | np.integer):
            out[str(k)] = int(v)
        elif isinstance(v, float | np.floating):
            out[str(k)] = float(v) if math.isfinite(float(v)) else ("diverged" if math.isnan(v) else str(float(v)))
        else:
            out[str(k)] = str(v)
    return out


def _error_section(t: Topic, err: BaseException, seconds: float, dpi: int) -> Section:
    from ..plots.tour import Panel, panels_figure, png

    fig = panels_figure([Panel(title=f"{t.title}: the experiment failed", legend=None,
                               note=f"{type(err).__name__}: {err}"[:120])], width=7, height=2.5)
    fig.axes[0].set_axis_off()  # (nothing was measured: no axes with made-up ranges)
    return Section(
        id=t.id, title=t.title, note=t.note, claim=t.claim, quote=t.quote, verdict=DEPENDS,
        rule="no verdict: the experiment raised an error", summary=f"The experiment failed: {err!r}",
        setup="", numbers={"error": type(err).__name__}, figure=png(fig, dpi), seconds=seconds,
        error="".join(traceback.format_exception(err)),
    )


def run_topics(
    ctx: Context,
    only: Sequence[str] | None = None,
    progress: Callable[[str, int, int, Topic, Section | None], None] | None = None,
) -> list[Section]:
    """Run the registered topics (all, or the ids in ``only``, in page order) and return their sections.

    ``progress(event, index, total, topic, section)`` is called with ``"start"`` before and
    ``"done"`` after each topic.
    """
    _load_topics()
    chosen = TOPICS if only is None else [t for t in TOPICS if t.id in set(only)]
    if only is not None:
        unknown = sorted(set(only) - {t.id for t in TOPICS})
        if unknown:
            raise ValueError(f"unknown topic(s) {', '.join(unknown)}; topics: {', '.join(t.id for t in TOPICS)}")
    sections: list[Section] = []
    for i, t in enumerate(chosen):
        if progress:
            progress("start", i, len(chosen), t, None)
        torch.manual_seed(ctx.seed)
        np.random.seed(ctx.seed)
        t0 = time.perf_counter()
        try:
            f = t.fn(ctx)
            if f.verdict not in VERDICTS:
                raise ValueError(f"topic {t.id!r} returned verdict {f.verdict!r}, not one of {VERDICTS}")
            sec = Section(
                id=t.id, title=t.title, note=t.note, claim=t.claim, quote=t.quote, verdict=f.verdict,
                rule=f.rule, summary=f.summary, setup=f.setup, numbers=_clean_numbers(f.numbers),
                figure=f.figure, seconds=time.perf_counter() - t0, caption=f.caption,
                extra_figures=list(f.extra_figures),
            )
        except Exception as err:  # one failing topic must not take the page down
            sec = _error_section(t, err, time.perf_counter() - t0, ctx.dpi)
        ctx.done[t.id] = sec
        sections.append(sec)
        if progress:
            progress("done", i, len(chosen), t, sec)
    return sections


PAGE = "index.html"  # the whole tour's page; a partial one (--only) is named after its topics
MAX_NAME = 120


def page_name(only: Sequence[str] | None) -> str:
    """``index.html`` for the whole tour; ``only-<ids in page order>.html`` for a part of it.

    A partial run never writes ``index.html``: the full report there must not be lost to a
    run of two topics. (Names longer than :data:`MAX_NAME` end in a short digest of the ids.)
    """
    if only is None:
        return PAGE
    ids = [t for t in topic_ids() if t in set(only)]
    name = "only-" + "-".join(ids)
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:8]
        name = f"only-{len(ids)}-topics-{digest}"
    return name + ".html"


def tour(
    out: str | Path = "runs/tour",
    quick: bool = False,
    seed: int = 0,
    *,
    only: Sequence[str] | None = None,
    threads: int | None = 1,
    progress: Callable[[str, int, int, Topic, Section | None], None] | None = None,
) -> TourResult:
    """Run every topic of the notes live and write ``out/index.html``; see the package docstring.

    Args:
        out: folder of the page (created).
        quick: shrink step budgets and epochs (the whole tour in about half a minute).
        seed: seeds the models, the data orders and the random starts.
        only: run only these topic ids: the page then has only those sections and is written to
            ``out/only-<ids>.html`` (:func:`page_name`), next to the whole tour's ``index.html``,
            which it leaves as it was.
        threads: torch threads during the tour (1: the small problems of the tour run fastest on one
            thread and their timings do not depend on the load of other cores); None keeps the setting.
        progress: called as ``progress(event, index, total, topic, section)``, event ``"start"``/``"done"``.
    """
    from .page import write_page

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:  # (numpy's seeds)
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    out = Path(out)
    started = _dt.datetime.now().astimezone()
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    try:
        ctx = Context(quick=bool(quick), seed=seed, dpi=80 if quick else 96)
        sections = run_topics(ctx, only, progress)
        facts = machine_facts(torch.get_num_threads())
    finally:
        torch.set_num_threads(before)
    seconds = time.perf_counter() - t0
    result = TourResult(
        path=out / page_name(only), sections=sections, seconds=seconds,
        started=started.strftime("%Y-%m-%d %H:%M:%S %Z"), machine=facts, quick=bool(quick), seed=seed,
        only=None if only is None else [sec.id for sec in sections],
    )
    write_page(result)
    return result
