"""The page writer (escaping, atomic writes), failing topics, and `descend tour` through register(app)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer

import descend.plots.tour as plots_tour
from descend.cli.tour import register
from descend.plots.tour import Panel, panels_figure, png
from descend.tour import core, tour
from descend.tour.core import DEPENDS, HELD, NOT_HELD, Section, TourResult, judge
from descend.tour.page import render, write_page
from tests.cli_app import app_with
from tests.cli_app import invoke as invoke_with
from tests.plot_checks import text_problems


def make_app() -> typer.Typer:
    return app_with(register)


def invoke(*args: str):
    return invoke_with(register, *args)


def fake_result(path: Path, claim: str = "a claim") -> TourResult:
    fig = png(panels_figure([Panel("t")], width=3, height=2), 50)
    s = Section(id="x", title="X", note="003", claim=claim, quote="인용", verdict=HELD, rule="r", summary="s",
                setup="u", numbers={"a": 1.5, "b": 2, "c": "text"}, figure=fig, seconds=0.1)
    return TourResult(path=path, sections=[s], seconds=0.2, started="today", machine={"torch": "t"},
                      quick=True, seed=0)


def test_judge():
    assert judge(True) == HELD
    assert judge(False, partly=True) == DEPENDS
    assert judge(False) == NOT_HELD


def test_page_escapes_text(tmp_path):
    page = render(fake_result(tmp_path / "index.html", claim='<script>alert("x")</script> & more'))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page and "&amp; more" in page
    assert 'lang="ko">“인용”' in page


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "index.html"
    write_page(fake_result(path))
    first = path.read_text(encoding="utf-8")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_page(fake_result(path, claim="a second claim"))
    assert path.read_text(encoding="utf-8") == first  # the old page is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]  # and no temp file is left


def test_a_failing_topic_becomes_an_error_section_and_the_page_is_still_written(tmp_path, monkeypatch):
    core._load_topics()
    i = next(i for i, t in enumerate(core.TOPICS) if t.id == "gradient")

    def broken(ctx):
        raise RuntimeError("experiment broke")

    topics = list(core.TOPICS)
    topics[i] = core.Topic(**{**topics[i].__dict__, "fn": broken})
    monkeypatch.setattr(core, "TOPICS", topics)
    result = tour(tmp_path, quick=True, only=["gradient"])
    s = result.section("gradient")
    assert s.error and "experiment broke" in s.error
    assert "experiment broke" in result.path.read_text(encoding="utf-8")
    r = invoke("tour", "--quick", "--out", str(tmp_path / "cli"), "--only", "gradient")
    assert r.exit_code == 1 and "failed with an error" in r.output


def test_an_error_section_s_figure_title_fits(tmp_path, monkeypatch):
    """The placeholder figure of a failed topic cut its title off at both edges when the error was long."""
    problems: list[str] = []
    render = plots_tour.png

    def checked(fig, dpi=100):
        problems.extend(text_problems(fig))
        return render(fig, dpi)

    monkeypatch.setattr(plots_tour, "png", checked)
    core._load_topics()
    topic = next(t for t in core.TOPICS if t.id == "momentum")
    assert len(topic.title) > 55  # "Zig-zag of gradient descent vs momentum on an elongated bowl"
    missing = "/DATA/EXPERIMENTS/MOMENTUM/ZIGZAG/BOWL-KAPPA-100/WITH-MOMENTUM-0.9/RESULTS/DIGITS.NPZ"  # (no spaces)
    section = core._error_section(topic, FileNotFoundError(f"no such file: {missing}"), 0.1, 80)
    assert section.error and problems == []


def test_only_never_replaces_the_whole_tour_s_page(tmp_path):
    """--only wrote its two sections over index.html: a full report, lost to a run of one topic."""
    out = tmp_path / "tour"
    out.mkdir()
    (out / "index.html").write_text("the full report", encoding="utf-8")
    r = invoke("tour", "--quick", "--out", str(out), "--only", "momentum,gradient")
    assert r.exit_code == 0, r.output
    assert (out / "index.html").read_text(encoding="utf-8") == "the full report"
    page = out / "only-gradient-momentum.html"  # (the topics in page order)
    text = page.read_text(encoding="utf-8")
    assert '<section id="gradient">' in text and '<section id="momentum">' in text
    assert "only gradient, momentum (--only: a part of the tour" in text
    said = " ".join(r.output.split())
    assert f"Page written: {page}" in said and f"{out / 'index.html'} was left as it was" in said
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "only-gradient-momentum.html"]
    r = invoke("tour", "--quick", "--out", str(out), "--only", " , ")
    assert r.exit_code == 2 and "needs at least one topic id" in " ".join(r.output.split())


def test_cli_writes_the_page_and_prints_where_it_is(tmp_path):
    out = tmp_path / "tour"
    r = invoke("tour", "--quick", "--out", str(out), "--only", "gradient,momentum")
    assert r.exit_code == 0, r.output
    page = out / "only-gradient-momentum.html"
    assert page.exists() and not (out / "index.html").exists()
    text = page.read_text(encoding="utf-8")
    assert '<section id="gradient">' in text and '<section id="momentum">' in text
    assert '<section id="newton">' not in text
    assert f"open {page}" in r.output
    assert "held" in r.output and "The gradient and note 003's worked example" in r.output


def test_cli_rejects_unknown_topics(tmp_path):
    r = invoke("tour", "--quick", "--out", str(tmp_path), "--only", "nope")
    assert r.exit_code != 0
    assert "unknown topic" in r.output


def test_cli_refuses_an_out_that_is_a_file_before_running_anything(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("hi")
    for out in (afile, afile / "sub"):
        r = invoke("tour", "--quick", "--out", str(out))
        assert r.exit_code == 2, r.output
        text = " ".join(r.output.split())
        assert "--out" in text and ("existing file, not a folder" in text or "cannot create the folder" in text)
        assert "topic" not in text  # refused before the first topic ran
    assert afile.read_text() == "hi"


def test_a_seed_beyond_numpy_s_range_is_refused_before_anything_runs(tmp_path):
    """--seed 9223372036854775807 ran the first topic and ended in numpy's traceback."""
    r = invoke("tour", "--quick", "--out", str(tmp_path / "t"), "--only", "gradient", "--seed", str(2**63 - 1))
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "--seed" in r.output and "4294967295" in " ".join(r.output.split())
    assert not (tmp_path / "t").exists()
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*32\), got 4294967296"):
        tour(tmp_path / "t", quick=True, seed=2**32, only=["gradient"])


def test_cli_help_lists_options():
    r = invoke("tour", "--help")
    assert r.exit_code == 0
    for opt in ("--quick", "--out", "--seed", "--only"):
        assert opt in r.output
