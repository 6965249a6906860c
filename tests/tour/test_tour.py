"""The quick tour, run once: every topic's section on the page, with a figure, a verdict and finite numbers."""

from __future__ import annotations

import math
import re

import pytest

import descend.plots.tour as plots_tour
from descend.tour import HELD, VERDICTS, topic_ids, tour
from descend.tour.core import ORDER
from tests.plot_checks import text_problems

PNG = b"\x89PNG\r\n\x1a\n"


FIGURE_PROBLEMS: list[str] = []  # texts of the quick tour's figures that are cut off or overlap


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour")
    render = plots_tour.png

    def checked(fig, dpi=100):  # every figure of the tour, looked at before it is rendered
        FIGURE_PROBLEMS.extend(f"{fig._suptitle.get_text()[:50] if fig._suptitle else '?'}: {p}"
                               for p in text_problems(fig))
        return render(fig, dpi)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots_tour, "png", checked)
        result = tour(out, quick=True, seed=0)
    return result, result.path.read_text(encoding="utf-8")


def section_html(page: str, id: str) -> str:
    m = re.search(rf'<section id="{re.escape(id)}">(.*?)</section>', page, flags=re.S)
    assert m, f"no section {id!r} on the page"
    return m.group(1)


def test_every_topic_of_the_issue_is_registered_in_the_notes_order():
    assert topic_ids() == list(ORDER)
    assert len(ORDER) == 22


def test_quick_tour_writes_one_page_with_every_section(quick):
    result, page = quick
    assert result.path.name == "index.html" and result.path.exists()
    assert [s.id for s in result.sections] == topic_ids()
    assert sorted(p.name for p in result.path.parent.iterdir()) == ["index.html"]  # no temp file left
    for s in result.sections:
        assert s.error is None, f"{s.id} failed:\n{s.error}"
        body = section_html(page, s.id)
        assert "<img " in body and 'src="data:image/png;base64,' in body
        assert '<span class="badge' in body and f">{s.verdict}</span>" in body
        assert s.claim and s.rule and s.summary and s.note


def test_no_figure_text_is_cut_off_or_runs_into_another(quick):
    """The sweep figure's title ran into its legend; titles must fit their figure."""
    assert FIGURE_PROBLEMS == []


def test_verdicts_are_in_the_allowed_set_and_numbers_are_finite(quick):
    result, _ = quick
    for s in result.sections:
        assert s.verdict in VERDICTS
        assert s.figure.startswith(PNG) and all(f.startswith(PNG) for f in s.extra_figures)
        assert s.numbers, s.id
        for k, v in s.numbers.items():
            assert isinstance(v, int | float | str), (s.id, k, v)
            if isinstance(v, float):
                assert math.isfinite(v), (s.id, k, v)
        assert s.seconds > 0


def test_note_003_worked_example_is_exact(quick):
    result, _ = quick
    s = result.section("gradient")
    assert s.verdict == HELD
    assert (s.numbers["gradient x"], s.numbers["gradient y"]) == (6.0, 3.0)
    assert (s.numbers["new x"], s.numbers["new y"]) == (0.94, 0.97)
    assert s.numbers["bit-exact (0.94, 0.97)"] == "yes"


def steps(value) -> float:
    return math.inf if isinstance(value, str) else float(value)


def test_theory_backed_sections_hold(quick):
    result, _ = quick
    v = result.verdicts()
    for id in ("gradient", "learning_rate", "momentum", "nesterov", "saddle", "scaling", "l2", "mse_vs_ce",
               "schedules", "linear_scaling", "l1"):
        assert v[id] == HELD, (id, result.section(id).summary)
    mom = result.section("momentum").numbers
    assert steps(mom["momentum steps to 1e-6"]) < steps(mom["GD steps to 1e-6"])
    nt = result.section("newton").numbers
    assert steps(nt["Rosenbrock: Newton steps to 1e-6"]) < steps(nt["Rosenbrock: GD steps to 1e-6 (best lr)"])
    assert steps(nt["logistic: Newton steps to |grad| < 1e-6"]) < steps(nt["logistic: GD steps to |grad| < 1e-6"])


def test_page_is_self_contained(quick):
    result, page = quick
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert refs, "the page has no src or href at all"
    assert not [r for r in refs if re.match(r"(?i)\s*(https?:)?//", r)]
    assert not re.search(r"(?i)<script|<link|@import", page)
    assert [u[:22] for u in re.findall(r"url\(([^)]*)\)", page)] == ["data:font/woff;base64,"]  # the font only
    assert page.count('src="data:image/png;base64,') >= len(result.sections)
    for id in topic_ids():  # the table of contents links to every section
        assert f'href="#{id}"' in page


def test_page_header_has_date_machine_and_total_time(quick):
    result, page = quick
    assert result.started in page and result.machine["torch"] in page
    assert "threads" in result.machine and result.machine["threads"] in page
    assert f"{result.seconds:.1f} s" in page
