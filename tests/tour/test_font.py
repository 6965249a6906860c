"""The embedded Korean font: it holds every Korean character the page shows, and Chromium uses it.

The browser test renders a page carrying every topic's Korean quote in Debian's chromium
(headless, via Playwright) on a machine with no CJK font, and checks that the quotes are
drawn with the embedded face: the face is loaded, ``document.fonts.check`` finds it for
every character, and each quote's rendered width differs from the same text drawn without
it (the fallback's boxes).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

from descend.plots.tour import Panel, panels_figure, png
from descend.tour.core import HELD, TOPICS, Section, TourResult, _load_topics
from descend.tour.page import FONT_FAMILY, FONT_PATH, korean_characters, render

CHROMIUM = Path("/usr/bin/chromium")


def quotes() -> list[str]:
    _load_topics()
    return [t.quote for t in TOPICS if t.quote]


def quote_page(path: Path) -> TourResult:
    """A page with one section per topic, each carrying that topic's real quote."""
    fig = png(panels_figure([Panel("t")], width=2, height=1.5), 40)
    _load_topics()
    sections = [Section(id=t.id, title=t.title, note=t.note, claim=t.claim, quote=t.quote, verdict=HELD, rule="r",
                        summary="s", setup="u", numbers={"a": 1}, figure=fig, seconds=0.1) for t in TOPICS]
    return TourResult(path=path, sections=sections, seconds=1.0, started="today", machine={"torch": "t"},
                      quick=True, seed=0)


def embedded_font(page: str) -> TTFont:
    m = re.search(r"url\(data:font/woff;base64,([A-Za-z0-9+/=]+)\)", page)
    assert m, "no embedded woff font on the page"
    return TTFont(io.BytesIO(base64.b64decode(m.group(1))))


def test_every_korean_character_on_the_page_is_in_the_embedded_font(tmp_path):
    page = render(quote_page(tmp_path / "index.html"))
    cmap = embedded_font(page).getBestCmap()
    on_page = korean_characters(page)
    assert len(on_page) > 100  # the quotes are real Korean text
    missing = [c for c in on_page if ord(c) not in cmap]
    assert not missing, f"rebuild the subset (tools/build_tour_font.py): missing {''.join(missing)}"


def test_the_subset_holds_just_the_quotes_and_is_renamed():
    font = TTFont(FONT_PATH)
    wanted = {ord(c) for c in korean_characters(" ".join(quotes()))}
    assert set(font.getBestCmap()) == wanted  # nothing more: rebuild when a quote changes
    family = font["name"].getDebugName(1)
    assert family == FONT_FAMILY and "Nanum" not in family  # the OFL reserves the original name
    assert FONT_PATH.stat().st_size < 40_000
    license_text = (FONT_PATH.parent / "OFL.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in license_text and "NanumGothic" in license_text


def no_cjk_font() -> bool:
    fc = shutil.which("fc-list")
    return fc is not None and not subprocess.run([fc, ":lang=ko"], capture_output=True, text=True).stdout.strip()


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_chromium_draws_the_quotes_with_the_embedded_face(tmp_path):
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    result = quote_page(tmp_path / "index.html")
    result.path.write_text(render(result), encoding="utf-8")
    if not no_cjk_font():
        pytest.skip("a Korean font is installed (fc-list :lang=ko): the fallback would not show boxes here")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: r.url.startswith(("file:", "data:")) or requests.append(r.url))
            page.goto(result.path.as_uri())
            page.evaluate("document.fonts.ready")
            found = page.evaluate(f"""() => {{
                const faces = [...document.fonts].filter(f => f.family.replace(/"/g, '') === '{FONT_FAMILY}');
                const quotes = [...document.querySelectorAll('p.ko')].filter(q => /[\uac00-\ud7af]/.test(q.textContent));
                const width = (text, family) => {{
                    const s = document.createElement('span');
                    s.style.cssText = 'position:absolute; white-space:nowrap; font-size:15px; font-family:' + family;
                    s.textContent = text; document.body.appendChild(s);
                    const w = s.getBoundingClientRect().width; s.remove(); return w;
                }};
                const page = getComputedStyle(document.body).fontFamily;
                return {{
                    status: faces.map(f => f.status),
                    family: page,
                    checks: quotes.map(q => [...q.textContent].filter(c => c >= '\\uac00' && c <= '\\ud7af')
                                              .every(c => document.fonts.check('15px "{FONT_FAMILY}"', c))),
                    widths: quotes.map(q => [width(q.textContent, page),
                                             width(q.textContent, page.replace(/"{FONT_FAMILY}",?\\s*/, ''))]),
                }};
            }}""")
        finally:
            browser.close()
    assert found["status"] == ["loaded"]
    assert found["family"].startswith(f'"{FONT_FAMILY}"')
    with_hangul = [q for q in quotes() if any("\uac00" <= c <= "\ud7af" for c in q)]
    assert len(with_hangul) >= 15 and len(found["checks"]) == len(with_hangul) and all(found["checks"])
    for with_face, without in found["widths"]:
        assert with_face > 0 and abs(with_face - without) > 1.0, (with_face, without)
    assert not requests
