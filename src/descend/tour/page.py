"""The tour's page: one self-contained ``index.html`` (inline CSS, figures as base64 PNG).

Nothing on the page points outside it: no scripts, no external fonts, images
or links, so it opens offline and can be mailed as one file. The Korean
quotes of the notes render in an embedded font: a subset of NanumGothic (SIL
Open Font License 1.1, renamed "Tour Korean" as the license asks of modified
versions) holding just the characters of the quotes, ``fonts/tour-ko.woff``,
built by ``tools/build_tour_font.py``; a machine with no CJK font shows them
too. The
page is written to a temporary file in the same folder and renamed over
``index.html``, so a crash never leaves half a page.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from functools import cache
from pathlib import Path

from .core import DEPENDS, HELD, NOT_HELD, Section, TourResult

FONT_FAMILY = "Tour Korean"
FONT_PATH = Path(__file__).parent / "fonts" / "tour-ko.woff"
# Hangul Jamo, CJK symbols and punctuation, Hangul compatibility Jamo, CJK ideographs, Hangul syllables
KOREAN_RANGES = ((0x1100, 0x11FF), (0x3000, 0x303F), (0x3130, 0x318F), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF))


def korean_characters(text: str) -> list[str]:
    """The distinct characters of ``text`` in :data:`KOREAN_RANGES`, sorted."""
    return sorted({c for c in text if any(lo <= ord(c) <= hi for lo, hi in KOREAN_RANGES)})


@cache
def font_face() -> str:
    """The ``@font-face`` rule embedding the Korean subset as base64 (limited to the Korean ranges)."""
    data = base64.b64encode(FONT_PATH.read_bytes()).decode("ascii")
    ranges = ", ".join(f"U+{lo:04X}-{hi:04X}" for lo, hi in KOREAN_RANGES)
    return (f'@font-face {{ font-family: "{FONT_FAMILY}"; src: url(data:font/woff;base64,{data}) format("woff"); '
            f"unicode-range: {ranges}; font-display: block; }}")


CSS = """
:root { --held: #1e7b34; --not: #b3261e; --dep: #9a6700; --ink: #1f2328; --muted: #59636e; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.55 "Tour Korean", system-ui, -apple-system, "Segoe UI", "Noto Sans", sans-serif;
       color: var(--ink); margin: 0; background: #f6f8fa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 0 0 6px; }
.sub { color: var(--muted); margin: 0 0 14px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px;
         background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.txt { max-width: 640px; }
.toc { margin: 18px 0 8px; width: 100%; }
.toc a { color: var(--ink); text-decoration: none; border-bottom: 1px dotted var(--muted); }
.badge { display: inline-block; padding: 1px 10px; border-radius: 12px; color: #fff; font-weight: 600;
         font-size: 12.5px; white-space: nowrap; }
.badge.held { background: var(--held); } .badge.not { background: var(--not); } .badge.dep { background: var(--dep); }
section { border-top: 3px solid var(--line); margin-top: 34px; padding-top: 16px; }
.meta { color: var(--muted); font-size: 13px; margin: 0 0 10px; }
blockquote { margin: 10px 0; padding: 8px 14px; border-left: 4px solid #8c959f; background: #f6f8fa; }
blockquote p { margin: 2px 0; } blockquote .ko { color: var(--muted); }
blockquote cite { font-size: 12.5px; color: var(--muted); font-style: normal; }
.verdict { margin: 12px 0; padding: 10px 14px; border-radius: 6px; border: 1px solid var(--line); }
.verdict.held { border-color: var(--held); background: #eaf6ec; }
.verdict.not { border-color: var(--not); background: #fbecea; }
.verdict.dep { border-color: var(--dep); background: #fbf5e6; }
.verdict p { margin: 6px 0 0; }
.rule, .setup { font-size: 13px; color: var(--muted); }
figure { margin: 14px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { font-size: 12.5px; color: var(--muted); }
.numbers { margin-top: 6px; }
.error { white-space: pre-wrap; font-size: 12px; background: #fbecea; padding: 8px; border-radius: 4px; }
footer { margin-top: 40px; font-size: 12.5px; color: var(--muted); }
"""

_BADGE = {HELD: "held", NOT_HELD: "not", DEPENDS: "dep"}


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def badge(verdict: str) -> str:
    """The verdict as a coloured badge."""
    return f'<span class="badge {_BADGE.get(verdict, "dep")}">{_esc(verdict)}</span>'


def fmt_number(value: object) -> str:
    """A number as shown in the tables: 4 significant digits, integers as they are."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u2009")
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{_esc(alt)}">'


def section_html(index: int, s: Section) -> str:
    """One ``<section>`` of the page."""
    rows = "".join(
        f'<tr><td>{_esc(k)}</td><td class="{"txt" if isinstance(v, str) and len(v) > 24 else "num"}">'
        f"{_esc(fmt_number(v))}</td></tr>"
        for k, v in s.numbers.items()
    )
    figures = "".join(
        f"<figure>{_img(data, f'{s.title}: figure {j + 1}')}"
        + (f"<figcaption>{_esc(s.caption)}</figcaption>" if j == 0 and s.caption else "")
        + "</figure>"
        for j, data in enumerate(s.figures)
    )
    error = f'<pre class="error">{_esc(s.error)}</pre>' if s.error else ""
    quote = f'<p class="ko" lang="ko">“{_esc(s.quote)}”</p>' if s.quote else ""
    return f"""
<section id="{_esc(s.id)}">
<h2>{index}. {_esc(s.title)}</h2>
<p class="meta">note {_esc(s.note)} · ran in {s.seconds:.1f} s · id <code>{_esc(s.id)}</code></p>
<blockquote><p>“{_esc(s.claim)}”</p>{quote}<cite>— seed note {_esc(s.note)}</cite></blockquote>
<div class="verdict {_BADGE.get(s.verdict, 'dep')}">{badge(s.verdict)} <strong>In this run:</strong>
<p>{_esc(s.summary)}</p>
<p class="rule"><strong>Verdict rule:</strong> {_esc(s.rule)}</p></div>
<p class="setup"><strong>What ran:</strong> {_esc(s.setup)}</p>
{figures}
<table class="numbers"><tr><th>measured</th><th>value</th></tr>{rows}</table>
{error}
</section>"""


def render(result: TourResult) -> str:
    """The whole page as a string."""
    counts = {v: sum(1 for s in result.sections if s.verdict == v) for v in (HELD, DEPENDS, NOT_HELD)}
    toc = "".join(
        f'<tr><td class="num">{i}</td><td><a href="#{_esc(s.id)}">{_esc(s.title)}</a></td>'
        f"<td>{_esc(s.note)}</td><td>{badge(s.verdict)}</td><td class=\"num\">{s.seconds:.1f} s</td></tr>"
        for i, s in enumerate(result.sections, 1)
    )
    facts = {
        "run": result.started,
        "mode": "quick (--quick: small budgets)" if result.quick else "full",
        **({} if result.only is None else {
            "topics": f"only {', '.join(result.only)} (--only: a part of the tour; the whole tour's page is "
                      f"index.html)"}),
        "seed": str(result.seed),
        "total time": f"{result.seconds:.1f} s",
        "verdicts": f"{counts[HELD]} held, {counts[DEPENDS]} depends, {counts[NOT_HELD]} did not hold",
        **result.machine,
    }
    facts_html = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts.items())
    body = "".join(section_html(i, s) for i, s in enumerate(result.sections, 1))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>descend tour: the notes' claims, measured</title>
<style>{font_face()}
{CSS}</style>
</head>
<body>
<main>
<h1>A tour of the notes, measured</h1>
<p class="sub">Every section below ran its experiment live in this run of <code>descend tour</code>,
states a claim of the seed notes (000–003) and judges it by the numbers this run measured.
A verdict is <em>held</em>, <em>did not hold</em> or <em>depends</em> (held in part, or only under some
of the conditions measured); each section states its rule. Paths on 2-D landscapes show how each rule
moves; they do not rank optimizers on real models.</p>
<dl class="facts">{facts_html}</dl>
<h2 style="margin-top:22px">Contents</h2>
<table class="toc"><tr><th>#</th><th>topic</th><th>note</th><th>verdict</th><th>time</th></tr>{toc}</table>
{body}
<footer>Written by <code>descend tour</code>. The page is self-contained: figures and the Korean font are
embedded, nothing is loaded from elsewhere. Korean text: a subset of NanumGothic (© NHN Corporation, SIL Open
Font License 1.1), renamed "Tour Korean".</footer>
</main>
</body>
</html>
"""


def write_page(result: TourResult) -> Path:
    """Write ``result.path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(result.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(result)
    fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".html.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
