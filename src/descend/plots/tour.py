"""Figures of the tour (``descend tour``) that the other plot modules do not draw.

Everything here only draws numbers it is given (no optimizer runs inside a
plot function), on matplotlib's Agg canvas (``Figure``, no pyplot):

* :func:`panels_figure`: one row of panels, each a :class:`Panel` of line
  :class:`Series` or a :class:`Bars` chart; the workhorse of the tour;
* :func:`gradient_figure`: note 003's worked example: the step on the
  contours, the first-order (Taylor) prediction against the true loss, and
  the slope in every direction;
* :func:`basins_figure`: which minimum each start of a grid ends in, for
  several optimizers, with the paths from one start;
* :func:`png`: a figure as PNG bytes.

Figures with 2-D paths carry :data:`descend.lab.RACE_NOTE` as a caption.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from ..lab.race import RACE_NOTE
from ..landscapes import Landscape
from .fit import panel_width, wrap
from .landscape import contour

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#7f7f7f", "#000000"]


def color(i: int) -> str:
    """The ``i``-th colour of the tour's palette (cycled)."""
    return COLORS[i % len(COLORS)]


def png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


@dataclass
class Series:
    """One line of a panel: ``y`` against ``x``.

    ``style`` is a matplotlib line style (``"-"``, ``"--"``, ``":"``); ``marker``
    an optional marker; ``steps`` draws a staircase (a value held until the
    next x); ``end_marker`` marks the last point (e.g. ``"x"`` for a run that
    diverged there). Non-finite points are left out.
    """

    label: str
    x: Sequence[float] | np.ndarray
    y: Sequence[float] | np.ndarray
    color: str | None = None
    style: str = "-"
    marker: str | None = None
    width: float = 1.8
    steps: bool = False
    end_marker: str | None = None
    alpha: float = 1.0


@dataclass
class Bars:
    """A grouped bar chart: ``groups`` of ``(label, values, colour)`` over ``categories``.

    Each bar carries its value as text (``fmt``); ``ylim`` fixes the value axis.
    """

    categories: Sequence[str]
    groups: Sequence[tuple[str, Sequence[float], str | None]]
    fmt: str = "{:.3g}"
    ylim: tuple[float, float] | None = None
    log: bool = False


@dataclass
class Panel:
    """One axes of :func:`panels_figure`.

    Attributes:
        title, xlabel, ylabel: texts.
        series: the lines (ignored when ``bars`` is given).
        bars: a :class:`Bars` chart instead of lines.
        xlog, ylog: logarithmic axes (``"symlog"`` for an x axis that starts at 0).
        hlines, vlines: ``(value, label)`` reference lines (grey, dotted, labelled).
        ylim, xlim: fixed limits.
        xticks: put the x ticks exactly at these values (e.g. the batch sizes tried).
        integer_x: x ticks on whole numbers only (epochs).
        legend: legend location, ``"outside"`` (right of the axes) or None for no legend.
        note: a small text in the lower left corner of the axes.
    """

    title: str
    xlabel: str = ""
    ylabel: str = ""
    series: list[Series] = field(default_factory=list)
    bars: Bars | None = None
    xlog: bool | str = False
    ylog: bool = False
    hlines: list[tuple[float, str]] = field(default_factory=list)
    vlines: list[tuple[float, str]] = field(default_factory=list)
    ylim: tuple[float, float] | None = None
    xlim: tuple[float, float] | None = None
    legend: str | None = "best"
    note: str | None = None
    xticks: Sequence[float] | None = None
    integer_x: bool = False


def _finite(x: np.ndarray, y: np.ndarray, ylog: bool) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x) & np.isfinite(y)
    if ylog:
        ok &= y > 0
    return x[ok], y[ok]


def _plain(v: float, _pos: Any = None) -> str:
    return f"{v:g}"


def _tidy_log(ax: Axes, which: str, lo: float, hi: float) -> None:
    """On a log axis spanning less than three decades, label 1-2-5 ticks as plain numbers."""
    if not (lo > 0 and hi > lo) or hi / lo >= 1e3:
        return
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())


def _draw_lines(ax: Axes, panel: Panel) -> None:
    ys_all: list[np.ndarray] = []
    xs_all: list[np.ndarray] = []
    for i, s in enumerate(panel.series):
        x = np.asarray(s.x, dtype=np.float64)
        y = np.asarray(s.y, dtype=np.float64)
        x, y = _finite(x, y, panel.ylog)
        c = s.color or color(i)
        if x.size == 0:
            ax.plot([], [], color=c, linestyle=s.style, label=s.label)
            continue
        ys_all.append(y)
        xs_all.append(x)
        ax.plot(x, y, color=c, linestyle=s.style, marker=s.marker, markersize=4, linewidth=s.width,
                label=s.label, drawstyle="steps-post" if s.steps else "default", alpha=s.alpha)
        if s.end_marker:
            ax.plot(x[-1], y[-1], marker=s.end_marker, color=c, markersize=9, mew=2, linestyle="none")
    if panel.xlog == "symlog":
        ax.set_xscale("symlog", linthresh=1.0)
    elif panel.xlog:
        ax.set_xscale("log")
    if panel.ylog:
        ax.set_yscale("log")
    if panel.ylim is None and ys_all and panel.ylog:
        y = np.concatenate(ys_all)
        lo, hi = float(y.min()), float(y.max())
        if hi / max(lo, 1e-300) > 1e12:  # keep twelve decades: a run at 1e-30 would squash the rest
            ax.set_ylim(hi * 1e-12, hi * 3)
        _tidy_log(ax, "y", lo, hi)
    if panel.xlog is True and xs_all and panel.xticks is None:
        x = np.concatenate(xs_all)
        _tidy_log(ax, "x", float(x.min()), float(x.max()))
    if panel.integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panel.xticks is not None:
        ax.set_xticks(list(panel.xticks), [_plain(v) for v in panel.xticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.minorticks_off()


def _draw_bars(ax: Axes, bars: Bars) -> None:
    k = len(bars.groups)
    n = len(bars.categories)
    width = 0.8 / max(k, 1)
    x = np.arange(n)
    top = 0.0
    for j, (label, values, c) in enumerate(bars.groups):
        vals = np.asarray(values, dtype=np.float64)
        pos = x - 0.4 + width * (j + 0.5)
        rects = ax.bar(pos, np.where(np.isfinite(vals), vals, 0.0), width * 0.92, label=label,
                       color=c or color(j))
        for r, v in zip(rects, vals):
            text = bars.fmt.format(v) if np.isfinite(v) else "n/a"
            ax.annotate(text, (r.get_x() + r.get_width() / 2, r.get_height()), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)
        if np.isfinite(vals).any():
            top = max(top, float(np.nanmax(vals[np.isfinite(vals)])))
    ax.set_xticks(x, list(bars.categories), fontsize=8)
    if bars.log:
        ax.set_yscale("log")
    if bars.ylim is not None:
        ax.set_ylim(*bars.ylim)
    elif not bars.log:
        ax.set_ylim(0, top * 1.18 if top > 0 else 1.0)


def _references(ax: Axes, panel: Panel) -> None:
    """The reference lines, each labelled outside the axes at its value (a horizontal line on the right,
    a vertical one on top): labels written inside the axes covered the curves that cross them."""
    for value, _ in panel.hlines:
        ax.axhline(value, color="grey", linestyle=":", linewidth=1.1)
    for value, _ in panel.vlines:
        ax.axvline(value, color="grey", linestyle=":", linewidth=1.1)
    for lines, side in ((panel.hlines, "right"), (panel.vlines, "top")):
        named = [(value, text) for value, text in lines if text]
        if not named:
            continue
        extra = ax.secondary_yaxis("right") if side == "right" else ax.secondary_xaxis("top")
        axis = extra.yaxis if side == "right" else extra.xaxis
        axis.set_ticks([value for value, _ in named], [text for _, text in named])
        axis.set_minor_locator(NullLocator())
        extra.tick_params(length=0, labelsize=7, labelcolor="dimgrey", pad=2)


def panels_figure(
    panels: Sequence[Panel],
    *,
    title: str | None = None,
    caption: str | None = None,
    width: float | None = None,
    height: float = 4.4,
) -> Figure:
    """One row of panels (lines or bars), a title and an optional caption below.

    The width defaults to 5.2 inches per panel.
    """
    if not panels:
        raise ValueError("panels must hold at least one Panel")
    fig = _figure(width or 5.2 * len(panels), height)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        if panel.bars is not None:
            _draw_bars(ax, panel.bars)
        else:
            _draw_lines(ax, panel)
        _references(ax, panel)
        if panel.xlim is not None:
            ax.set_xlim(*panel.xlim)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        room = panel_width(fig, len(panels), 1.9 if panel.legend == "outside" else 0.8)
        ax.set_title(wrap(fig, panel.title, room, 10), fontsize=10)
        ax.set_xlabel(panel.xlabel, fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, which="major", alpha=0.3)
        if panel.legend and ax.get_legend_handles_labels()[0]:
            if panel.legend == "outside":
                ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
            else:
                ax.legend(fontsize=7.5, loc=panel.legend, framealpha=0.85)
        if panel.note:
            ax.text(0.01, 0.01, wrap(fig, panel.note, room, 7), transform=ax.transAxes, fontsize=7, ha="left", va="bottom",
                    color="dimgrey", bbox={"fc": "white", "alpha": 0.7, "lw": 0})
    if title:
        fig.suptitle(wrap(fig, title, fig.get_figwidth() - 0.3, 11), fontsize=11)
    if caption:
        fig.supxlabel(wrap(fig, caption, fig.get_figwidth() - 0.3, 8), fontsize=8, style="italic", color="dimgrey")
    return fig


# ------------------------------------------------------------------------ note 003's example


def gradient_figure(
    landscape: Landscape,
    point: Sequence[float],
    grad: Sequence[float],
    new_point: Sequence[float],
    lr: float,
    *,
    taylor_lrs: Sequence[float],
    taylor_true: Sequence[float],
    taylor_linear: Sequence[float],
    angles: Sequence[float],
    slopes: Sequence[float],
    box: tuple[float, float, float, float],
) -> Figure:
    """Note 003's step: contours with the gradient and the step (left), the loss after a step of
    size ``lr`` against its first-order prediction (middle), and the slope in every direction (right).

    ``taylor_*`` hold ``f(p - lr g)`` and ``f(p) - lr |g|^2`` for each lr of ``taylor_lrs`` (drawn as
    the true and the predicted decrease, log-log);
    ``slopes[i]`` is the directional derivative ``g . (cos a_i, sin a_i)`` for ``angles[i]``
    in degrees.
    """
    fig = _figure(15.0, 4.8)
    ax, bx, cx = fig.subplots(1, 3, width_ratios=[1.0, 1.0, 1.0])
    contour(ax, landscape, box=box, cmap="Greys", alpha=0.5, resolution=160, n_levels=16)
    p = np.asarray(point, dtype=np.float64)
    g = np.asarray(grad, dtype=np.float64)
    q = np.asarray(new_point, dtype=np.float64)
    span = box[1] - box[0]
    unit = g / (np.linalg.norm(g) or 1.0)
    ax.annotate("", xy=p + 0.3 * span * unit, xytext=p,
                arrowprops={"arrowstyle": "-|>", "color": "#d62728", "lw": 2.2})
    ax.text(*(p + 0.31 * span * unit), f"gradient ({g[0]:g}, {g[1]:g}):\nsteepest uphill", color="#d62728",
            fontsize=8, ha="right", va="bottom", bbox={"fc": "white", "alpha": 0.85, "lw": 0})
    ax.annotate("", xy=q, xytext=p, arrowprops={"arrowstyle": "-|>", "color": "#1f77b4", "lw": 2.2})
    ax.plot(*p, marker="o", markersize=8, markerfacecolor="white", markeredgecolor="black", zorder=7)
    ax.plot(*q, marker="o", markersize=7, color="#1f77b4", zorder=7)
    ax.text(q[0] - 0.01 * span, q[1] - 0.02 * span, f"({q[0]:.2f}, {q[1]:.2f})\nafter one step, lr {lr:g}",
            color="#1f77b4", fontsize=8, ha="right", va="top", bbox={"fc": "white", "alpha": 0.85, "lw": 0})
    ax.text(p[0] + 0.02 * span, p[1] - 0.02 * span, f"({p[0]:g}, {p[1]:g})", fontsize=8, ha="left", va="top")
    ax.set_title(wrap(fig, f"{landscape.title}: one step of gradient descent", panel_width(fig, 3), 10), fontsize=10)
    ax.set_xlabel("x")
    ax.set_ylabel("y")

    lrs = np.asarray(taylor_lrs, dtype=np.float64)
    gg = float(g @ g)
    f0 = float(np.asarray(taylor_linear, dtype=np.float64)[0]) + float(lrs[0]) * gg  # f at the point
    true_drop = f0 - np.asarray(taylor_true, dtype=np.float64)
    pred_drop = lrs * gg
    ok = true_drop > 0
    bx.plot(lrs[ok], true_drop[ok], color="black", linewidth=2, label="true decrease f(p) − f(p − lr·g)")
    bx.plot(lrs, pred_drop, color="#ff7f0e", linestyle="--", linewidth=1.8,
            label="first-order prediction lr·|g|²")
    bx.axvline(lr, color="#1f77b4", linestyle=":", linewidth=1.2)
    bx.text(lr, 0.97, f" lr {lr:g}", transform=bx.get_xaxis_transform(), color="#1f77b4", fontsize=8, va="top")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("learning rate (step size)")
    bx.set_ylabel("decrease of f after one step")
    bx.set_title("small steps: the gradient predicts the decrease", fontsize=10)
    bx.grid(True, alpha=0.3)
    bx.legend(fontsize=8, loc="lower right")

    a = np.asarray(angles, dtype=np.float64)
    s = np.asarray(slopes, dtype=np.float64)
    cx.plot(a, s, color="black", linewidth=1.8)
    i_min = int(np.argmin(s))
    i_max = int(np.argmax(s))
    cx.plot(a[i_min], s[i_min], marker="v", color="#1f77b4", markersize=9, linestyle="none",
            label=f"steepest descent at {a[i_min]:.0f}° (−gradient)")
    cx.plot(a[i_max], s[i_max], marker="^", color="#d62728", markersize=9, linestyle="none",
            label=f"steepest ascent at {a[i_max]:.0f}° (gradient)")
    cx.axhline(0, color="grey", linewidth=0.8)
    cx.set_xlabel("direction (degrees from the x axis)")
    cx.set_ylabel("slope of f in that direction")
    cx.set_xticks(np.arange(0, 361, 45))
    cx.set_xlim(0, 360)
    cx.set_title("the gradient is the steepest way up", fontsize=10)
    cx.grid(True, alpha=0.3)
    cx.legend(fontsize=8, loc="upper center")
    return fig


# ------------------------------------------------------------------------ basins of attraction


def basins_figure(
    landscape: Landscape,
    xs: np.ndarray,
    ys: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, float]],
    *,
    start: Sequence[float],
    labels: Sequence[str] = ("global minimum", "local minimum", "neither"),
) -> Figure:
    """For each optimizer, the grid of starts coloured by where it ended, and its path from ``start``.

    ``panels`` holds ``(title, outcome, path, share)``: ``outcome`` is an integer array of shape
    ``(len(ys), len(xs))`` with 0 (global minimum), 1 (local minimum) or 2 (neither), ``path`` the
    ``(k, 2)`` path from ``start`` and ``share`` the fraction of starts that reached the global minimum.
    """
    fig = _figure(6.2 * len(panels), 5.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    cmap = ListedColormap(["#b7dfb1", "#f6c8a5", "#d9d9d9"])
    box = landscape.box
    dx = (xs[1] - xs[0]) / 2 if len(xs) > 1 else 0.1
    dy = (ys[1] - ys[0]) / 2 if len(ys) > 1 else 0.1
    for ax, (title, outcome, path, share) in zip(axes, panels):
        ax.imshow(outcome, origin="lower", cmap=cmap, vmin=-0.5, vmax=2.5, interpolation="nearest",
                  extent=(xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy), aspect="auto", zorder=0)
        contour(ax, landscape, cmap="Greys", alpha=0.0, resolution=150, n_levels=14)  # lines and minima only
        p = np.asarray(path, dtype=np.float64)
        keep = np.all(np.isfinite(p), axis=1)
        p = np.clip(p[keep], [box[0], box[2]], [box[1], box[3]])
        ax.plot(p[:, 0], p[:, 1], color="#1f3b73", linewidth=1.8, zorder=5)
        ax.plot(p[-1, 0], p[-1, 1], marker="X", markersize=10, markerfacecolor="#1f3b73", markeredgecolor="white",
                linestyle="none", zorder=8)
        ax.plot(*start, marker="o", markersize=9, markerfacecolor="white", markeredgecolor="black",
                linestyle="none", zorder=8)
        ax.set_xlim(box[0], box[1])
        ax.set_ylim(box[2], box[3])
        ax.set_title(wrap(fig, f"{title}\n{share:.0%} of the starts reach the global minimum", panel_width(fig, len(panels)),
                          10), fontsize=10)
        ax.set_xlabel("x (start)")
        ax.set_ylabel("y (start)")
    handles = [Patch(color=cmap(i), label=f"start ends in the {lab}" if i < 2 else "start ends elsewhere")
               for i, lab in enumerate(labels[:2])]
    handles += [Line2D([], [], marker="*", markersize=12, markerfacecolor="white", markeredgecolor="black",
                       linestyle="none", label="global minimum"),
                Line2D([], [], marker="D", markersize=7, markerfacecolor="white", markeredgecolor="black",
                       linestyle="none", label="local minimum"),
                Line2D([], [], color="#1f3b73", marker="X", label="path from the white start")]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(wrap(fig, f"{landscape.title}: which minimum does each start end in?\n{RACE_NOTE}",
                      fig.get_figwidth() - 0.3, 11), fontsize=11)
    return fig


def log_ticks_ok(values: Sequence[float]) -> bool:
    """Whether positive finite ``values`` span more than a decade (a log axis then reads better)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x) and x > 0], dtype=np.float64)
    return v.size > 1 and v.max() / v.min() > 10


__all__ = ["Series", "Bars", "Panel", "panels_figure", "gradient_figure", "basins_figure", "png", "color",
           "COLORS", "log_ticks_ok"]
