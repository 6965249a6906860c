"""Texts of a figure that leave its canvas or run into each other, measured after drawing.

Titles, axis labels, notes, annotations and legends count (tick labels do not: matplotlib lays
those out itself). Used by the figure tests of the lab, the tour and the training plots.
"""

from __future__ import annotations

from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _texts(fig: Figure) -> list[tuple[str, Any]]:
    supers = [getattr(fig, name, None) for name in ("_suptitle", "_supxlabel", "_supylabel")]
    items: list[tuple[str, Any]] = [("suptitle", t) for t in supers if t is not None and t.get_text().strip()]
    items += [("figure text", t) for t in fig.texts if t.get_text().strip() and all(t is not s for s in supers)]
    items += [("figure legend", lg) for lg in fig.legends]
    for k, ax in enumerate(fig.axes):
        items += [(f"axes {k} title", t) for t in (ax.title, ax._left_title, ax._right_title) if t.get_text().strip()]
        items += [(f"axes {k} label", t) for t in (ax.xaxis.label, ax.yaxis.label) if t.get_text().strip()]
        items += [(f"axes {k} text", t) for t in ax.texts if t.get_visible() and t.get_text().strip()]
        if ax.get_legend() is not None:
            items.append((f"axes {k} legend", ax.get_legend()))
    return items


def text_problems(fig: Figure) -> list[str]:
    """One line per text cut off by the canvas edge and per pair of texts that overlap."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    boxes = []
    out = []
    for kind, artist in _texts(fig):
        box = artist.get_window_extent(renderer)
        what = f"{kind} {artist.get_text()[:60]!r}" if hasattr(artist, "get_text") else kind
        if box.x0 < -0.5 or box.y0 < -0.5 or box.x1 > width + 0.5 or box.y1 > height + 0.5:
            out.append(f"{what} is cut off: x {box.x0:.0f}..{box.x1:.0f} of {width:.0f}, "
                       f"y {box.y0:.0f}..{box.y1:.0f} of {height:.0f}")
        boxes.append((kind, what, box))
    for i, (kind, what, box) in enumerate(boxes):
        for kind2, what2, box2 in boxes[i + 1:]:
            if box.overlaps(box2) and not (kind.endswith("label") and kind2.endswith("label")):
                out.append(f"{what} overlaps {what2}")
    return out
