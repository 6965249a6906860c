"""Figures of lab results: races, sweeps, heat-maps and the lr range test.

Every function takes a finished result of :mod:`descend.lab` and only draws
it (no optimizer is run here), on matplotlib's Agg canvas (``Figure``, no
pyplot). Paths are clipped to the landscape's view box for drawing, so a
diverging run never blows up the axes: where a path leaves the box an
arrow on the edge says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import animation
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..lab._common import n_steps
from ..lab.best import BEST_RULE
from ..lab.lr_find import MIN_CURVE, LRFindResult
from ..lab.race import RACE_NOTE, RaceResult
from ..lab.results import Run
from ..lab.sweep import SweepResult
from .fit import panel_width, wrap
from .landscape import contour

REGION_COLORS = {
    "too small": "#4c72b0",
    "good": "#55a868",
    "too large": "#dd8452",
    "divergent": "#c44e52",
}
TINY = 1e-16


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path | None) -> None:
    if path is not None:
        fig.savefig(Path(path), dpi=120)


PATH_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#000000"]
CONTOUR = {"cmap": "Greys", "alpha": 0.55}  # a pale map, so that coloured paths read on it and on white


def _colors(n: int) -> list[Any]:
    return [PATH_COLORS[i % len(PATH_COLORS)] for i in range(n)]


def _race_box(result: RaceResult, pad: float = 0.06) -> tuple[float, float, float, float]:
    """The view: the landscape's box, widened to fit every path that stays near it.

    Runs that diverged, and points more than a box-width outside the landscape's
    own box, are left out: those paths leave the view with an arrow on its edge.
    Without a landscape, the box around all finite points.
    """
    kept = [r.path for r in result.runs if r.path.shape[1] == 2 and not r.diverged]
    pts = np.concatenate(kept) if kept else np.empty((0, 2))
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if result.landscape is not None:
        x0, x1, y0, y1 = result.landscape.box
        w, h = x1 - x0, y1 - y0
        near = (pts[:, 0] > x0 - w) & (pts[:, 0] < x1 + w) & (pts[:, 1] > y0 - h) & (pts[:, 1] < y1 + h)
        pts = pts[near]
        if pts.size == 0:
            return (x0, x1, y0, y1)
        return (float(min(x0, pts[:, 0].min() - pad * w)), float(max(x1, pts[:, 0].max() + pad * w)),
                float(min(y0, pts[:, 1].min() - pad * h)), float(max(y1, pts[:, 1].max() + pad * h)))
    if pts.size == 0:
        pts = np.concatenate([r.path for r in result.runs if r.path.shape[1] == 2])
        pts = pts[np.all(np.isfinite(pts), axis=1)]
    pts = pts[np.all(np.abs(pts) < 1e3, axis=1)] if len(pts) else pts
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.maximum(hi - lo, 1e-3)
    return (float(lo[0] - 0.15 * span[0]), float(hi[0] + 0.15 * span[0]),
            float(lo[1] - 0.15 * span[1]), float(hi[1] + 0.15 * span[1]))


FIT_LIMIT = 20.0  # a start up to this many box sizes away widens the view; farther, an edge marker


def _fit_start(result: RaceResult, box: tuple[float, float, float, float], notes: list[str]) -> tuple:
    """``box`` widened to hold the start (and the paths near it) when the start lies outside it."""
    x, y = (float(v) for v in result.x0[:2])
    if _inside(np.array([x, y]), box) or not (np.isfinite(x) and np.isfinite(y)):
        return box
    w, h = box[1] - box[0], box[3] - box[2]
    lo_x, hi_x, lo_y, hi_y = min(box[0], x), max(box[1], x), min(box[2], y), max(box[3], y)
    if (hi_x - lo_x) > FIT_LIMIT * w or (hi_y - lo_y) > FIT_LIMIT * h:
        return box
    pad_x, pad_y = 0.06 * (hi_x - lo_x), 0.06 * (hi_y - lo_y)
    notes.append(f"start ({x:.3g}, {y:.3g}) lies outside the landscape's box: the view was widened to show it")
    return (lo_x - pad_x, hi_x + pad_x, lo_y - pad_y, hi_y + pad_y)


def _inside(p: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    return (np.all(np.isfinite(p), axis=-1) & (p[..., 0] >= box[0]) & (p[..., 0] <= box[1])
            & (p[..., 1] >= box[2]) & (p[..., 1] <= box[3]))


def _edge_point(a: np.ndarray, b: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Where the segment from ``a`` (inside) towards ``b`` crosses the box's edge."""
    d = b - a
    if not np.all(np.isfinite(d)):
        d = np.where(np.isfinite(d), d, np.sign(np.nan_to_num(b, posinf=1.0, neginf=-1.0)))
    t = 1.0
    for k, (lo, hi) in enumerate(((box[0], box[1]), (box[2], box[3]))):
        if d[k] > 0:
            t = min(t, (hi - a[k]) / d[k])
        elif d[k] < 0:
            t = min(t, (lo - a[k]) / d[k])
    return a + max(t, 0.0) * d


def draw_path(ax: Axes, run: Run, box: tuple[float, float, float, float], color: Any, label: str,
              upto: int | None = None, linewidth: float = 1.8) -> list[Any]:
    """Draw ``run``'s path (records ``[:upto]``) inside ``box``; an arrow on the edge where it leaves for good.

    The path is drawn up to its last point inside the box (excursions that come back are
    drawn, clipped by the axes); if it ends outside, the segment towards the next point is
    drawn up to the box's edge and ends in an arrow labelled "diverged" (or "leaves view").
    """
    path = run.path if upto is None else run.path[:upto]
    artists: list[Any] = []
    if len(path) == 0:
        return artists
    w, h = box[1] - box[0], box[3] - box[2]
    inside = _inside(path, box)
    if not inside.any():
        return artists
    last_in = int(np.flatnonzero(inside)[-1])
    pts = path[: last_in + 1]
    leaves = last_in < len(path) - 1
    edge = _edge_point(path[last_in], path[last_in + 1], box) if leaves else None
    if edge is not None:
        pts = np.vstack([pts, edge])
    lo = np.array([box[0] - w, box[2] - h])
    hi = np.array([box[1] + w, box[3] + h])
    shown = np.clip(pts, lo, hi)  # excursions that come back: far points pulled in, the axes clip the rest
    (line,) = ax.plot(shown[:, 0], shown[:, 1], color=color, linewidth=linewidth, label=label, zorder=4,
                      solid_capstyle="round")
    artists.append(line)
    if len(pts) <= 60:
        artists.append(ax.plot(shown[:, 0], shown[:, 1], linestyle="none", marker="o", markersize=2.5,
                               color=color, zorder=4)[0])
    if edge is None:
        end = path[-1]
        artists.append(ax.plot(end[0], end[1], marker="X", markersize=8, markerfacecolor=color,
                               markeredgecolor="black", linestyle="none", zorder=7)[0])
        return artists
    a = path[last_in]
    d = edge - a
    norm = float(np.hypot(*d)) or 1.0
    tail = edge - d / norm * 0.08 * max(w, h)
    why = "diverged" if (run.diverged and upto is None) else "leaves view"
    artists.append(ax.annotate(
        why, xy=(edge[0], edge[1]), xytext=(tail[0], tail[1]), color="white", fontsize=8, zorder=8,
        ha="center", va="center", arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2.0},
        bbox={"boxstyle": "round,pad=0.2", "fc": color, "alpha": 0.85, "lw": 0}, annotation_clip=False,
    ))
    return artists


def _run_label(run: Run) -> str:
    if run.diverged:
        return f"{run.label}: diverged at step {run.steps}"
    if run.converged and run.f_star is None:
        return f"{run.label}: stationary point (f* unknown) at step {run.steps_to_tol}"
    if run.converged:
        return f"{run.label}: {n_steps(run.steps_to_tol)}"
    return f"{run.label}: not within tol"


def _gap(run: Run, f_star: float | None) -> np.ndarray:
    vals = run.losses - (f_star if f_star is not None else 0.0)
    return vals


def race_figure(result: RaceResult, path: str | Path | None = None, *, title: str | None = None) -> Figure:
    """Contour with every path (left) and loss against step (right), with the race note as caption.

    The start is a white circle, minima are white stars, each run's end an ``X`` in its colour
    (an arrow on the edge when the path left the view). The legend reads ``"Adam (lr=0.02): 732
    steps"``. Loss is ``f - f*`` on a log axis when ``f*`` is known.
    """
    colors = _colors(len(result.runs))
    if result.runs[0].path.shape[1] != 2:  # no plane to draw paths in: the loss panel alone
        fig = _new_figure(8.0, 5.4)
        bx = fig.add_subplot()
        _loss_panel(bx, result.runs, colors, result.f_star, result.tol)
        handles = [Line2D([], [], color=c, linewidth=2.2, label=_run_label(r)) for r, c in zip(result.runs, colors)]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(2, len(handles)), fontsize=9, frameon=False)
        fig.suptitle(wrap(fig, f"{title or _race_title(result)}\n{RACE_NOTE}", fig.get_figwidth() - 0.3, 11),
                     fontsize=11)
        _save(fig, path)
        return fig
    fig = _new_figure(13.0, 5.6)
    ax, bx = fig.subplots(1, 2, width_ratios=[1.05, 1.0])
    land = result.landscape
    box = _race_box(result)
    notes: list[str] = []
    box = _fit_start(result, box, notes)
    if land is not None:
        contour(ax, land, box=box, **CONTOUR)
    else:
        contour(ax, result.fn, box=box, log_levels=False, **CONTOUR)
    labels = []
    for run, c in zip(result.runs, colors):
        drawn = draw_path(ax, run, box, c, _run_label(run))
        labels.append(_run_label(run) + ("" if drawn else " (path outside the view)"))
    if _inside(result.x0, box):
        ax.plot(result.x0[0], result.x0[1], marker="o", markersize=9, markerfacecolor="white",
                markeredgecolor="black", linestyle="none", zorder=8)
    else:  # too far to fit: a marker on the edge, towards the start, with its coordinates
        centre = np.array([(box[0] + box[1]) / 2, (box[2] + box[3]) / 2])
        edge = _edge_point(centre, np.asarray(result.x0, dtype=float), box)
        text = f"start ({result.x0[0]:.3g}, {result.x0[1]:.3g})"
        ax.annotate(text, xy=(edge[0], edge[1]), xytext=(centre + 0.8 * (edge - centre)), fontsize=8, zorder=9,
                    ha="center", va="center", arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5},
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.9, "lw": 0.5})
        notes.append(f"{text} is far outside the landscape's box; it is marked on the view's edge")
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(wrap(fig, land.title if land is not None else "paths", panel_width(fig, 2), 12))
    extra = []  # only what the panel shows
    if _inside(result.x0, box):
        extra.append(Line2D([], [], marker="o", markerfacecolor="white", markeredgecolor="black", linestyle="none",
                            label="start"))
    if any(_inside(r.path[-1], box) for r in result.runs):
        extra.append(Line2D([], [], marker="X", markerfacecolor="grey", markeredgecolor="black", linestyle="none",
                            label="end"))
    if land is not None and any(_inside(np.array(m.point), box) for m in land.minima):
        extra.insert(1, Line2D([], [], marker="*", markersize=12, markerfacecolor="white", markeredgecolor="black",
                               linestyle="none", label="minimum"))
    ax.legend(handles=extra, loc="upper left", fontsize=8, framealpha=0.85)

    f_star = result.f_star
    _loss_panel(bx, result.runs, colors, f_star, result.tol)
    handles = [Line2D([], [], color=c, linewidth=2.2, label=lab) for lab, c in zip(labels, colors)]
    ncol = min(3 if max(len(lab) for lab in labels) < 45 else 2, len(handles))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=9, frameon=False)
    if notes:
        ax.text(0.99, 0.01, "\n".join(notes), transform=ax.transAxes, fontsize=7, ha="right", va="bottom",
                zorder=10, bbox={"fc": "white", "alpha": 0.85, "lw": 0})
    fig.descend_notes = notes  # type: ignore[attr-defined]  (the CLI prints them)
    head = title or _race_title(result)
    fig.suptitle(wrap(fig, f"{head}\n{RACE_NOTE}", fig.get_figwidth() - 0.3, 11), fontsize=11)
    _save(fig, path)
    return fig


def _race_title(result: RaceResult) -> str:
    name = result.landscape.name if result.landscape is not None else "function"
    what = "f - f*" if result.f_star is not None else "the gradient norm"
    tol = "" if result.tol is None else f", tol {result.tol:g} on {what}"
    fair = f"; fair: each optimizer's best lr of {len(result.lr_grid)} on one grid" if result.fair else ""
    return f"Race on {name}: {n_steps(result.steps)}{tol}{fair}"


def _loss_panel(bx: Axes, runs: list[Run], colors: list[Any], f_star: float | None, tol: float | None) -> None:
    log = f_star is not None or all(np.nanmin(r.losses[np.isfinite(r.losses)], initial=np.inf) > 0 for r in runs)
    starts = []
    lows = []
    for run, c in zip(runs, colors):
        y = _gap(run, f_star)
        ok = np.isfinite(y)
        if log:
            y = np.where(ok, np.maximum(y, TINY), np.nan)
        # (a single finite point, e.g. the start of a run that overflowed at step 1, as a marker: a
        # one-point line draws nothing)
        bx.plot(run.record_steps[ok], y[ok], color=c, linewidth=1.6, marker="o" if ok.sum() == 1 else None,
                markersize=5)
        if ok.any():
            starts.append(y[ok][0])
            lows.append(np.nanmin(y[ok]))
    if starts:
        top = max(starts)
        peak = max(float(np.nanmax(np.where(np.isfinite(_gap(r, f_star)), _gap(r, f_star), -np.inf)))
                   for r in runs)
        if log:
            lo = max(min(lows), TINY)
            if tol is not None and f_star is not None:
                lo = min(lo, tol)
            bx.set_yscale("log")
            bx.set_ylim(lo / 3, min(max(peak, top), top * 1e3) * 3)
        else:  # f takes values <= 0 and f* is unknown: a linear axis in f itself
            kept = [lo for lo, r in zip(lows, runs) if not r.diverged] or lows
            low, high = min(kept), max(peak, top)
            span = max(high - low, 1e-12)
            bx.set_ylim(low - 0.05 * span, high + 0.1 * span)
            if min(lows) < low - 0.05 * span:  # a run that ran off towards -inf leaves through the bottom
                bx.text(0.99, 0.01, "diverged runs fall below the axis", transform=bx.transAxes, fontsize=7,
                        ha="right", va="bottom", color="dimgrey")
    for run, c in zip(runs, colors):  # runs that blew up end with a cross at the top edge; runs that
        if run.diverged:              # fell without limit (a landscape unbounded below) at the bottom one
            seen = _gap(run, f_star)
            seen = seen[np.isfinite(seen)]
            falling = seen.size > 1 and seen[-1] < seen[0]
            bx.plot(run.steps, 0.0 if falling else 1.0, marker="x", color=c, markersize=9, mew=2,
                    transform=bx.get_xaxis_transform(), clip_on=False, linestyle="none")
    if tol is not None and f_star is not None:
        bx.axhline(tol, color="grey", linestyle=":", linewidth=1)
        bx.text(0.01, tol, "tol", transform=bx.get_yaxis_transform(), ha="left", va="bottom", color="grey",
                fontsize=8)
    bx.set_xscale("symlog", linthresh=1.0)
    bx.set_xlim(0, max(max(r.steps for r in runs), 1) * 1.05)
    bx.set_xlabel("step (log scale after 1)")
    bx.set_ylabel("f - f*" if f_star is not None else "f")
    bx.grid(True, which="major", alpha=0.3)
    bx.set_title("loss against step")


def race_gif(result: RaceResult, path: str | Path, *, frames: int = 40, fps: int = 10, dpi: int = 80) -> Path:
    """An animated GIF of the race: every path growing step by step (matplotlib's PillowWriter).

    Frames are spaced geometrically in the step so that the fast early moves are visible.
    Returns the path written.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2, got {frames!r}")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be an integer >= 1, got {fps!r}")
    path = Path(path)
    if result.runs[0].path.shape[1] != 2:
        raise ValueError(f"race_gif draws 2-D paths; these runs have {result.runs[0].path.shape[1]} coordinates")
    fig = _new_figure(6.4, 5.6)
    ax = fig.add_subplot()
    land = result.landscape
    box = _race_box(result)
    if land is not None:
        contour(ax, land, resolution=150, **CONTOUR)
    else:
        contour(ax, result.fn, box=box, resolution=150, **CONTOUR)
    ax.plot(result.x0[0], result.x0[1], marker="o", markersize=8, markerfacecolor="white",
            markeredgecolor="black", linestyle="none", zorder=8)
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_title(land.title if land is not None else "paths", fontsize=10)
    fig.supxlabel(RACE_NOTE, fontsize=7, style="italic")
    colors = _colors(len(result.runs))
    last = max(r.steps for r in result.runs)
    steps = np.unique(np.round(np.geomspace(1, max(last, 1), frames - 1)).astype(int))
    steps = np.concatenate([[0], steps])
    counter = ax.text(0.02, 0.02, "", transform=ax.transAxes, color="white", fontsize=9,
                      bbox={"fc": "black", "alpha": 0.5, "lw": 0})
    drawn: list[Any] = []
    handles = [Line2D([], [], color=c, linewidth=2, label=r.label) for r, c in zip(result.runs, colors)]
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)

    fig.set_dpi(dpi)
    fig.canvas.draw()
    fig.set_layout_engine("none")  # lay out once; re-running constrained layout per frame is slow

    def update(k: int) -> list[Any]:
        for a in drawn:
            a.remove()
        drawn.clear()
        s = int(steps[k])
        for run, c in zip(result.runs, colors):
            upto = int(np.searchsorted(run.record_steps, s, side="right"))
            drawn.extend(draw_path(ax, run, box, c, run.label, upto=max(upto, 1),
                                   linewidth=1.6) if upto < len(run.path) else draw_path(ax, run, box, c, run.label))
        counter.set_text(f"step {s}")
        return drawn

    writer = animation.PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi):
        for k in range(len(steps)):  # one draw per frame (FuncAnimation.save would draw twice)
            update(k)
            writer.grab_frame()
    return path


def _sweep_y(result: SweepResult, finals: np.ndarray) -> tuple[np.ndarray, bool, str]:
    if result.f_star is not None:
        return np.maximum(finals - result.f_star, TINY), True, "final f - f*"
    finite = finals[np.isfinite(finals)]
    log = finite.size > 0 and bool(np.all(finite > 0))
    return finals, log, "final f"


def sweep_figure(result: SweepResult, path: str | Path | None = None, *, title: str | None = None) -> Figure:
    """Final loss against lr (log axes), regions shaded: too small, good, too large, divergent.

    Divergent lrs are drawn as crosses on the top edge (their losses are huge or not numbers), or
    as triangles on the bottom edge where the run left the bound with its loss falling (a landscape
    unbounded below, such as the saddle); the best lr is a dashed line, named in the legend.
    """
    fig = _new_figure(8.5, 4.8)
    ax = fig.add_subplot()
    y, log, ylabel = _sweep_y(result, result.final_losses)
    div = np.array([lab == "divergent" for lab in result.labels])
    for name, lo, hi in result.regions():
        ax.axvspan(lo, hi, color=REGION_COLORS[name], alpha=0.18, lw=0)
    ok = ~div & np.isfinite(y)
    ax.plot(result.lrs[ok], y[ok], color="black", marker="o", markersize=3.5, linewidth=1.4, zorder=3)
    ax.set_xscale("log")
    if log:
        ax.set_yscale("log")
    show_tol = result.f_star is not None and result.tol is not None and bool(result.runs.converged.any())
    if ok.any():
        lo_y, hi_y = float(np.min(y[ok])), float(np.max(y[ok]))
        if show_tol:
            lo_y = min(lo_y, result.tol)
        init = result.initial_loss - (result.f_star or 0.0) if result.f_star is not None else result.initial_loss
        hi_y = max(hi_y, init) if np.isfinite(init) else hi_y
        if log:
            ax.set_ylim(lo_y / 5, hi_y * 5)
        else:
            span = hi_y - lo_y or 1.0
            ax.set_ylim(lo_y - 0.1 * span, hi_y + 0.2 * span)
    # Divergent losses are off the scale: huge or not numbers (crosses under the top edge), or, on a
    # landscape unbounded below, falling without limit as the point leaves the bound (over the bottom edge)
    finals = np.asarray(result.final_losses, dtype=np.float64)
    down = div & np.isfinite(finals) & (finals < result.initial_loss)
    up = div & ~down
    for rows, height, marker in ((up, 0.96, "x"), (down, 0.04, "v")):
        if rows.any():
            ax.plot(result.lrs[rows], np.full(int(rows.sum()), height), linestyle="none", marker=marker,
                    color=REGION_COLORS["divergent"], markersize=7, mew=2, transform=ax.get_xaxis_transform(),
                    zorder=4)
    best_handle = None
    if result.best_lr is not None:  # (named in the legend: a label in the axes sat on the curve)
        ax.axvline(result.best_lr, color="black", linestyle="--", linewidth=1)
        reached = result.runs.steps_to_tol[result.best_index]
        how = f"{n_steps(reached)} to tol" if reached is not None else "lowest final loss\n(none reached tol)"
        best_handle = Line2D([], [], color="black", linestyle="--", linewidth=1,
                             label=f"best lr {result.best_lr:.3g}:\n{how}")
        fig.text(0.01, 0.005, BEST_RULE, fontsize=7, color="dimgrey", ha="left", va="bottom")
    if show_tol:  # only when some run reached it (else the line would sit off the scale)
        ax.axhline(result.tol, color="grey", linestyle=":", linewidth=1)
        ax.text(0.005, result.tol, "tol (runs stop here)", transform=ax.get_yaxis_transform(), ha="left",
                va="bottom", color="grey", fontsize=7)
    edges = result.regions()
    ax.set_xlim(edges[0][1], edges[-1][2])
    handles = [Patch(color=REGION_COLORS[n], alpha=0.45, label=n) for n in REGION_COLORS if n in result.labels]
    if up.any():
        handles.append(Line2D([], [], marker="x", color=REGION_COLORS["divergent"], linestyle="none", mew=2,
                              label="diverged (off the scale)"))
    if down.any():
        handles.append(Line2D([], [], marker="v", color=REGION_COLORS["divergent"], linestyle="none", mew=2,
                              label="left the bound, f falling\nwithout limit (off the scale)"))
    if best_handle is not None:
        handles.append(best_handle)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="lr region",
              title_fontsize=8, frameon=False)  # (beside the axes, under the title)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    where = result.landscape or "function"
    # (a figure title above the legend too: an axes title ran into the legend beside it)
    text = title or (f"{result.optimizer}{_setting(result)} on {where}: final loss after at most "
                     f"{n_steps(result.steps)} ({len(result.lrs)} lrs, one vectorized run)")
    fig.suptitle(wrap(fig, text, fig.get_figwidth() - 0.3, 10), fontsize=10)
    _save(fig, path)
    return fig


def _setting(result: SweepResult) -> str:
    """`` (beta=0.9, its default)`` when the sweep also ran an lr x beta grid, and the fixed hyperparameters."""
    parts = [f"{k}={v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else f"{k}={v}"
             for k, v in result.hyper.items()]
    if result.beta_default is not None:
        parts.insert(0, f"{result.beta_name}={result.beta_default:g}, its default")
    return f" ({'; '.join(parts)})" if parts else ""


def heatmap_figure(result: SweepResult, path: str | Path | None = None, *, title: str | None = None) -> Figure:
    """Final loss over the lr x beta grid (log colour); divergent cells grey with a cross."""
    if result.betas is None or result.grid_final_losses is None:
        raise ValueError("result has no lr x beta grid; run sweep(..., betas=[...]) first")
    fig = _new_figure(8.5, 4.8)
    ax = fig.add_subplot()
    finals = result.grid_final_losses
    vals, log, label = _sweep_y(result, finals)
    div = np.array([[lab == "divergent" for lab in row] for row in result.grid_labels or []], dtype=bool)
    if div.shape != finals.shape:
        div = ~np.isfinite(finals)
    shown = np.ma.masked_array(vals, mask=div | ~np.isfinite(vals))
    lrs = result.lrs
    if len(lrs) > 1:
        mids = np.sqrt(lrs[1:] * lrs[:-1])
        x_edges = np.concatenate([[lrs[0] ** 2 / mids[0]], mids, [lrs[-1] ** 2 / mids[-1]]])
    else:
        x_edges = np.array([lrs[0] / 2, lrs[0] * 2])
    y_edges = np.arange(len(result.betas) + 1) - 0.5
    ax.set_facecolor("#d0d0d0")
    ok = shown.compressed()
    norm = None
    floor = result.tol if (result.f_star is not None and result.tol) else None
    if floor is not None:  # runs stop once below tol: differences under it mean nothing
        shown = np.ma.masked_array(np.maximum(shown.filled(np.nan), floor), mask=shown.mask)
        ok = shown.compressed()
    if log and ok.size:
        lo, hi = float(ok.min()), float(ok.max())
        norm = LogNorm(lo, max(hi, lo * 10))
    mesh = ax.pcolormesh(x_edges, y_edges, shown, cmap="viridis_r", norm=norm, shading="flat")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label(label + (" (reached tol: lowest colour)" if floor is not None else ""))
    jj, ii = np.nonzero(div)
    ax.plot(lrs[ii], jj, linestyle="none", marker="x", color="#7a1f1f", markersize=5, mew=1.2)
    best_name = "best cell"
    if result.grid_best is not None and result.grid_runs is not None:  # the lab's rule (lab.best)
        j, i = result.grid_best
        reached = result.grid_runs.steps_to_tol[j * len(lrs) + i]
        best_name = (f"best: {n_steps(reached)} to tol (fewest; ties: lowest final loss)" if reached is not None
                     else "best: lowest final loss (no cell reached tol)")
        ax.plot(lrs[i], j, marker="*", markersize=14, markerfacecolor="white", markeredgecolor="black",
                linestyle="none")
    ax.set_xscale("log")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_yticks(range(len(result.betas)), [f"{b:g}" for b in result.betas])
    ax.set_xlabel("learning rate")
    ax.set_ylabel(result.beta_name or "beta")
    handles = [Line2D([], [], marker="x", color="#7a1f1f", linestyle="none", label="divergent"),
               Line2D([], [], marker="*", markerfacecolor="white", markeredgecolor="black", linestyle="none",
                      markersize=12, label=best_name)]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    where = result.landscape or "function"
    fixed = _setting(dataclasses.replace(result, beta_default=None))
    text = title or (f"{result.optimizer}{fixed} on {where}: {label} after at most {n_steps(result.steps)}, "
                     f"lr x {result.beta_name}")
    fig.suptitle(wrap(fig, text, fig.get_figwidth() - 0.3, 10), fontsize=10)
    _save(fig, path)
    return fig


SUGGESTION_STYLE = {"valley": "#2ca02c", "steepest": "#d62728", "min_over_10": "#1f77b4"}


def lr_find_figure(result: LRFindResult, path: str | Path | None = None, *, title: str | None = None) -> Figure:
    """Loss against lr (log x): raw losses faint, the smoothed curve bold, the suggestions as lines."""
    fig = _new_figure(8.0, 4.8)
    ax = fig.add_subplot()
    if len(result.lrs) == 0:
        raise ValueError("result holds no step; the range test stopped before its first step")
    short = len(result.lrs) < MIN_CURVE  # (a mean over a window wider than the run would draw a flat line)
    ax.plot(result.lrs, result.losses, "o-" if short else "-", color="grey", alpha=0.8 if short else 0.45,
            linewidth=1, label="loss per step")
    if not short:
        ax.plot(result.lrs, result.smoothed, color="black", linewidth=2,
                label=f"smoothed (centred mean of {2 * max(2, len(result.lrs) // 20) + 1} steps, no lag)")
    ax.set_xscale("log")
    for name, lr in result.suggestions.items():
        if lr is None:
            continue
        best = name == result.best_rule
        ax.axvline(lr, color=SUGGESTION_STYLE.get(name, "purple"), linestyle="-" if best else "--",
                   linewidth=2 if best else 1.2, label=f"{name}: {lr:.2g}" + (" (best)" if best else ""))
    if short:  # every recorded step shown, on a log scale if it blew up
        if np.nanmax(result.losses) > 10 * max(np.nanmin(result.losses), 1e-12) > 0:
            ax.set_yscale("log")
    else:
        sm = result.smoothed
        k = int(np.argmin(sm)) + 1  # up to the smoothed minimum; the blow-up after it leaves the top
        raw = result.losses[:k][np.isfinite(result.losses[:k])]
        lo = float(min(np.min(sm), raw.min() if raw.size else np.inf))
        hi = float(max(sm[0], np.max(sm[:k]), np.percentile(raw, 95) if raw.size else -np.inf))
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        ax.set_ylim(lo - 0.1 * span, hi + 0.25 * span)
    if len(result.lrs) > 1 and not short:  # (a few points keep the margins: a marker on the edge is cut)
        ax.set_xlim(result.lrs[0], result.lrs[-1])
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.grid(True, which="major", alpha=0.3)
    # (below the axes: inside, the legend hid the start of the curve, where the loss is highest)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    stop = "" if result.stop_reason == "completed" else f"; stopped: {result.stop_reason}"
    text = title or (f"lr range test, {result.optimizer}: {n_steps(len(result.lrs))} from {result.start_lr:.0e} "
                     f"towards {result.end_lr:g}{stop}")
    fig.suptitle(wrap(fig, text, fig.get_figwidth() - 0.3, 10), fontsize=10)
    _save(fig, path)
    return fig


__all__ = ["race_figure", "race_gif", "sweep_figure", "heatmap_figure", "lr_find_figure", "draw_path",
           "REGION_COLORS"]
