"""Texts that fit their figure: titles, captions and notes wrapped at word breaks to a width.

Constrained layout makes room for a title's height, never for its width: a title wider than its
figure (or its panel) is cut off at the canvas edge or runs into the next panel's title. Every
figure module wraps its titles with :func:`wrap` before it sets them, measured with the figure's
own renderer and font, so the lines fit however long the landscape's name or the numbers are.
"""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

__all__ = ["wrap", "panel_width"]


def _width(renderer: object, text: str, prop: FontProperties) -> float:
    w, _, _ = renderer.get_text_width_height_descent(text, prop, ismath=False)  # type: ignore[attr-defined]
    return float(w)


def wrap(fig: Figure, text: str, width_in: float, fontsize: float | str = 10) -> str:
    """``text`` with line breaks so that no line is wider than ``width_in`` inches at ``fontsize``.

    Breaks go between words (a word wider than the width alone is cut between characters);
    the line breaks already in ``text`` are kept.
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    prop = FontProperties(size=fontsize)
    limit = max(width_in, 0.5) * fig.dpi
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            while _width(renderer, word, prop) > limit and len(word) > 1:  # (a long token: cut it)
                cut = len(word) - 1
                while cut > 1 and _width(renderer, word[:cut], prop) > limit:
                    cut -= 1
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            trial = f"{line} {word}" if line else word
            if line and _width(renderer, trial, prop) > limit:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return "\n".join(lines)


def panel_width(fig: Figure, panels: int, reserved: float = 0.8) -> float:
    """Inches a title of one of ``panels`` side-by-side axes may take (``reserved``: tick labels, margins)."""
    return max(fig.get_figwidth() / max(panels, 1) - reserved, 1.0)
