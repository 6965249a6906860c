"""Build the Korean font subset that the tour's page embeds: src/descend/tour/fonts/tour-ko.woff.

The page quotes the seed notes in Korean. So that the quotes render on a machine with no
CJK font, the page embeds a subset of NanumGothic (SIL Open Font License 1.1) holding
exactly the Hangul and CJK characters of the quotes. The quotes are fixed text in the
topic modules, so the subset is built once here and committed; rebuild it whenever a
quote changes (tests/tour/test_font.py fails until you do).

Usage::

    .venv/bin/pip install koreanize-matplotlib      # ships NanumGothic.ttf (build time only)
    .venv/bin/python tools/build_tour_font.py [path/to/NanumGothic.ttf]

Without an argument the script looks in koreanize_matplotlib's package and in Debian's
fonts-nanum (/usr/share/fonts/truetype/nanum). The OFL reserves the name "Nanum" for the
original fonts, so the subset (a modified version) is renamed "Tour Korean".
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from descend.tour.page import FONT_FAMILY, FONT_PATH, korean_characters  # noqa: E402

CANDIDATES = [
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
]


def find_source(argv: list[str]) -> Path:
    if argv:
        return Path(argv[0])
    try:
        import koreanize_matplotlib

        CANDIDATES.insert(0, str(Path(koreanize_matplotlib.__file__).parent / "fonts" / "NanumGothic.ttf"))
    except ImportError:
        pass
    for c in CANDIDATES:
        if Path(c).exists():
            return Path(c)
    raise SystemExit("NanumGothic.ttf not found: pip install koreanize-matplotlib, or give its path")


def main(argv: list[str]) -> None:
    from descend.tour.core import TOPICS, _load_topics

    _load_topics()
    chars = korean_characters(" ".join(t.quote for t in TOPICS))
    source = find_source(argv)
    font = TTFont(source, recalcTimestamp=False)  # a rebuild gives the same bytes
    missing = sorted(c for c in chars if ord(c) not in font.getBestCmap())
    if missing:
        raise SystemExit(f"{source} lacks {''.join(missing)!r}")
    options = subset.Options()
    options.flavor = "woff"          # zlib-compressed; woff2 would need brotli
    options.hinting = False          # screens rescale anyway; hinting is most of the bytes
    options.layout_features = []
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
    options.drop_tables += ["TSI0", "TSI1", "TSI2", "TSI3", "TSI5", "kern"]
    sub = subset.Subsetter(options)
    sub.populate(unicodes=[ord(c) for c in chars])
    sub.subset(font)
    names = {1: FONT_FAMILY, 3: f"{FONT_FAMILY} (subset of NanumGothic 3.021)", 4: FONT_FAMILY,
             6: FONT_FAMILY.replace(" ", "")}
    for rec in font["name"].names:   # OFL: a modified version may not use the reserved name
        if rec.nameID in names:
            rec.string = names[rec.nameID]
        elif "Nanum" in rec.toUnicode() or "나눔" in rec.toUnicode():
            rec.string = rec.toUnicode().replace("NanumGothic", FONT_FAMILY).replace("나눔고딕", FONT_FAMILY)
    FONT_PATH.parent.mkdir(parents=True, exist_ok=True)
    font.flavor = "woff"
    font.save(FONT_PATH)
    print(f"{FONT_PATH.relative_to(ROOT)}: {len(chars)} characters, {FONT_PATH.stat().st_size} bytes "
          f"(from {source}, {source.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
