"""Contour plots of 2-D landscapes.

:func:`contour` draws a landscape on a given matplotlib ``Axes``: filled
contours of ``f`` over the landscape's ``box`` with log-spaced levels of
``f - f_star`` when ``landscape.log_levels`` (the valley floor of Rosenbrock
or an ill-conditioned bowl is invisible with linear levels), linear levels
between the 1st and 99th percentile otherwise, and the known minima marked.
Figures are built on matplotlib's Agg canvas (``Figure``, no pyplot).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..landscapes import Landscape

Box = tuple[float, float, float, float]


def grid_values(
    f: Landscape | Callable[[torch.Tensor], torch.Tensor],
    box: Sequence[float],
    resolution: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, Y, Z)`` on a ``resolution x resolution`` grid over ``box``.

    ``f`` is a Landscape or any function of an ``(..., 2)`` tensor (vectorized) or of one
    point ``(2,)`` returning a scalar (then evaluated point by point).
    """
    xmin, xmax, ymin, ymax = (float(v) for v in box)
    xs = np.linspace(xmin, xmax, resolution)
    ys = np.linspace(ymin, ymax, resolution)
    X, Y = np.meshgrid(xs, ys)
    pts = torch.as_tensor(np.stack([X, Y], axis=-1), dtype=torch.float64)
    with torch.no_grad():
        if isinstance(f, Landscape):
            Z = f.value(pts)
        else:
            Z = _evaluate(f, pts)
    return X, Y, Z.detach().cpu().numpy().astype(np.float64)


def _evaluate(f: Callable[[torch.Tensor], torch.Tensor], pts: torch.Tensor) -> torch.Tensor:
    """``f`` on a grid of points: vectorized if ``f`` is, else through ``vmap``, else point by point."""
    shape = pts.shape[:-1]
    try:
        Z = f(pts)
        if isinstance(Z, torch.Tensor) and tuple(Z.shape) == tuple(shape):
            return Z
    except Exception:  # a function of one point: try the next way
        pass
    flat = pts.reshape(-1, 2)
    try:
        return torch.func.vmap(lambda p: f(p).reshape(()))(flat).reshape(shape)
    except Exception:
        return torch.stack([f(p).reshape(()) for p in flat]).reshape(shape)


def contour_levels(Z: np.ndarray, f_star: float | None, log: bool, n: int = 18) -> tuple[np.ndarray, float]:
    """``(levels, shift)``: the levels of ``Z - shift`` to draw.

    Log-spaced: ``shift = f_star`` (or the grid's minimum), levels geometric from the
    0.5th percentile of the positive gaps (at least ``1e-6`` of the largest) to the largest.
    Linear: ``shift = 0``, levels between the 1st and 99th percentile of ``Z``.
    """
    finite = Z[np.isfinite(Z)]
    if finite.size == 0:
        raise ValueError("the landscape has no finite value in the view box")
    if log:
        shift = float(f_star) if f_star is not None else float(finite.min())
        gap = finite - shift
        pos = gap[gap > 0]
        hi = float(pos.max()) if pos.size else 1.0
        lo = max(float(np.percentile(pos, 0.5)) if pos.size else hi * 1e-6, hi * 1e-6)
        return np.geomspace(lo, hi, n), shift
    lo, hi = np.percentile(finite, [1, 99])
    if not hi > lo:
        lo, hi = float(finite.min()), float(finite.max()) + 1e-12
    return np.linspace(lo, hi, n), 0.0


def contour(
    ax: Axes,
    landscape: Landscape | Callable[[torch.Tensor], torch.Tensor],
    *,
    box: Sequence[float] | None = None,
    resolution: int = 200,
    n_levels: int = 18,
    log_levels: bool | None = None,
    f_star: float | None = None,
    cmap: str = "viridis",
    alpha: float = 1.0,
    mark_minima: bool = True,
    colorbar: bool = False,
) -> Any:
    """Draw ``landscape`` on ``ax``: filled contours, thin contour lines, minima marked.

    Args:
        ax: the axes to draw on; its limits are set to the box.
        landscape: a Landscape (or a function of ``(..., 2)`` points, with ``box`` given).
        box: ``(xmin, xmax, ymin, ymax)``, default the landscape's.
        resolution: grid points per side.
        n_levels: number of contour levels.
        log_levels: log-spaced levels of ``f - f_star`` (default: ``landscape.log_levels``).
        f_star: the minimum value for a plain function (a Landscape brings its own).
        cmap: matplotlib colormap name.
        alpha: opacity of the filled contours (lower it to make paths drawn on top stand out).
        mark_minima: draw the known minima (white stars; local minima as diamonds).
        colorbar: add a colorbar.

    Returns:
        the filled ``QuadContourSet``.
    """
    is_land = isinstance(landscape, Landscape)
    if box is None:
        if not is_land:
            raise ValueError("box is required when drawing a plain function (a Landscape has its own)")
        box = landscape.box
    if log_levels is None:
        log_levels = bool(landscape.log_levels) if is_land else False
    if is_land:
        f_star = landscape.f_star
    X, Y, Z = grid_values(landscape, box, resolution)
    levels, shift = contour_levels(Z, f_star, log_levels, n_levels)
    if log_levels:
        data = np.clip(Z - shift, levels[0], levels[-1])
        filled = ax.contourf(X, Y, data, levels=levels, cmap=cmap, norm=LogNorm(levels[0], levels[-1]), alpha=alpha)
    else:
        data = np.clip(Z, levels[0], levels[-1])
        filled = ax.contourf(X, Y, data, levels=levels, cmap=cmap, alpha=alpha)
    line_color = "white" if alpha >= 0.9 else "#555555"
    ax.contour(X, Y, data, levels=levels, colors=line_color, linewidths=0.4, alpha=0.5)
    if mark_minima and is_land:
        for m in landscape.minima:
            glob = m.kind == "global"
            ax.plot(m.x, m.y, marker="*" if glob else "D", markersize=18 if glob else 9,
                    markerfacecolor="white", markeredgecolor="black", linestyle="none", zorder=6)
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_aspect("auto")
    if colorbar:
        cb = ax.figure.colorbar(filled, ax=ax, shrink=0.85)
        cb.set_label("f - f*" if log_levels else "f")
        if log_levels:  # one labelled tick per decade
            decades = np.arange(math.ceil(math.log10(levels[0])), math.floor(math.log10(levels[-1])) + 1)
            cb.set_ticks([10.0**k for k in decades], labels=[f"$10^{{{k}}}$" for k in decades])
            cb.minorticks_off()
    return filled


def landscape_figure(landscape: Landscape, path: str | Path | None = None, *, resolution: int = 200) -> Figure:
    """One landscape on its own: contours, minima, start point, title and note."""
    fig = Figure(figsize=(6.0, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    contour(ax, landscape, resolution=resolution, colorbar=True)
    ax.plot(*landscape.start, marker="o", markersize=8, markerfacecolor="white", markeredgecolor="black",
            linestyle="none", zorder=7, label="start")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(landscape.title)
    if path is not None:
        fig.savefig(Path(path), dpi=120)
    return fig


__all__ = ["contour", "contour_levels", "grid_values", "landscape_figure"]
