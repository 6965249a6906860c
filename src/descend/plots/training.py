"""Training curves from a run's recorded metrics: loss, accuracy and learning rate.

Reads the records a :class:`descend.train.Trainer` writes to ``metrics.jsonl``
(or the same dicts in memory) and draws them on matplotlib's Agg canvas; the
only computation is picking the fields out of the records.

* ``loss.png``: the train loss at every metric line (against iteration): the
  mean over the steps since the previous line, labelled "train loss (mean of
  each N steps)" (N the logging interval) or "... (mean since the previous
  point)" when the intervals differ; "train loss (epoch mean)" and "validation
  loss" at each epoch's last iteration;
* ``accuracy.png``: "validation accuracy" per epoch (only when recorded);
* ``lr.png``: "lr", the learning rate each optimizer step used, as a staircase:
  a metric line at iteration ``i`` holds the lr of step ``i``, which held since
  the previous line; a phase switch at iteration ``p`` (its ``phase`` record)
  starts the new phase's lr at step ``p + 1``, so the line steps exactly at
  ``p`` (between two metric lines, and after the last one up to the run's
  last record, the lr is drawn as the last one recorded).

Phase switches are drawn as vertical dotted lines on every figure, and each phase's optimizer (and
starting lr) is named above the axes, from the iteration where the phase starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .fit import wrap


def _records(source: str | Path | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    return list(source)


def _series(records: list[Mapping[str, Any]], kind: str, key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        if r.get("type") == kind and r.get(key) is not None:
            xs.append(r["iteration"])
            ys.append(r[key])
    return xs, ys


def _figure(title: str, ylabel: str, log: bool = False) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(wrap(fig, title, fig.get_figwidth() - 0.8, 12))
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if log:
        ax.set_yscale("log")
    return fig, ax


def _phase_name(record: Mapping[str, Any]) -> str:
    name = str(record.get("optimizer", "")) + (" (SWATS)" if record.get("reason") == "swats" else "")
    lr = record.get("lr")
    return name + (f", lr {lr:.3g}" if isinstance(lr, int | float) else "")


def _phases(ax: Any, records: list[Mapping[str, Any]]) -> None:
    """Each phase switch as a dotted line; every phase's optimizer named above the axes where it starts.

    (Above the axes, on a top axis of their own, the names cover no curve and no legend, and each
    one starts at its phase's first iteration, on the side of the line the phase is on.)
    """
    marks = [r for r in records if r.get("type") == "phase" and r.get("iteration") is not None]
    switches = [r for r in marks if r["iteration"] > 0]
    if not switches:
        return
    for r in switches:
        ax.axvline(r["iteration"], color="gray", linestyle=":", linewidth=1.0)
    named = [r for r in marks if r["iteration"] == 0][:1] + switches
    top = ax.secondary_xaxis("top")
    top.set_xticks([r["iteration"] for r in named], [_phase_name(r) for r in named])
    top.tick_params(length=0, labelsize="x-small", labelcolor="dimgray", pad=2)
    for label in top.get_xticklabels():
        label.set_horizontalalignment("left")


def lr_steps(records: list[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    """The staircase ``(xs, ys)`` of the lr against iteration (see the module docstring)."""
    points: list[tuple[int, float]] = []  # (iteration i, lr of the steps after the previous point up to i)
    last: float | None = None
    switches = {int(r["iteration"]): float(r["lr"]) for r in records
                if r.get("type") == "phase" and r.get("lr") is not None}
    # at one iteration, its metric line (the lr of that step) comes before a switch after it
    events = sorted([(int(r["iteration"]), 0, float(r["lr"])) for r in records
                     if r.get("type") == "iteration" and r.get("lr") is not None]
                    + [(i, 1, lr) for i, lr in switches.items()])
    for it, kind, lr in events:
        if kind == 1 and it > 0 and last is not None and (not points or points[-1][0] != it):
            points.append((it, last))  # the old lr held up to the switch
        if kind == 0:
            points.append((it, lr))
        last = lr
    end = max((int(r["iteration"]) for r in records if r.get("iteration") is not None), default=0)
    if points and last is not None and end > points[-1][0]:
        points.append((end, last))  # the steps after the last metric line, up to the last record
    xs: list[float] = []
    ys: list[float] = []
    prev = 0.0
    for it, lr in points:
        if it <= prev:
            continue
        xs += [prev, float(it)]
        ys += [lr, lr]
        prev = float(it)
    return xs, ys


def window_label(iterations: list[float]) -> str:
    """What a metric line's loss is: the mean over the steps since the previous line."""
    gaps = {b - a for a, b in zip([0.0, *iterations], iterations)}
    if len(gaps) == 1:
        n = int(gaps.pop())
        return "train loss (each step)" if n == 1 else f"train loss (mean of each {n} steps)"
    return "train loss (mean since the previous point)"


def loss_figure(records: list[Mapping[str, Any]], prefix: str = "") -> Figure:
    """Train loss at every metric line and per epoch, validation loss; phase switches."""
    windows = _series(records, "iteration", "loss")
    losses = [(windows, window_label(windows[0]), {"linewidth": 1.0, "alpha": 0.7}),
              (_series(records, "epoch", "train_loss"), "train loss (epoch mean)", {"marker": "o", "markersize": 3}),
              (_series(records, "epoch", "val_loss"), "validation loss", {"marker": "o", "markersize": 3}),
              (_series(records, "eval", "val_loss"), "validation loss", {"marker": "o", "markersize": 3})]
    positive = all(y > 0 for (_, ys), _, _ in losses for y in ys)
    fig, ax = _figure(prefix + "loss", "loss", log=positive and any(ys for (_, ys), _, _ in losses))
    for (xs, ys), label, style in losses:
        if xs:
            ax.plot(xs, ys, label=label, **style)
    _phases(ax, records)
    if ax.lines:
        ax.legend(fontsize="small")
    return fig


def lr_figure(records: list[Mapping[str, Any]], prefix: str = "") -> Figure:
    """The lr of every step as a staircase (``lr_steps``); phase switches."""
    fig, ax = _figure(prefix + "learning rate", "lr")
    xs, ys = lr_steps(records)
    if xs:
        ax.plot(xs, ys, label="lr")
        ax.legend(fontsize="small")
    _phases(ax, records)
    return fig


def plot_training(
    source: str | Path | Iterable[Mapping[str, Any]],
    folder: str | Path,
    *,
    title: str | None = None,
) -> list[Path]:
    """Write ``loss.png``, ``accuracy.png`` (if any accuracy was recorded) and ``lr.png`` to ``folder``.

    Args:
        source: a ``metrics.jsonl`` path or its records.
        folder: created if needed.
        title: prefix of each figure's title.

    Returns:
        The paths written.
    """
    records = _records(source)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"{title}: " if title else ""
    written = [folder / "loss.png"]
    loss_figure(records, prefix).savefig(written[-1], dpi=110)

    accs = [_series(records, "epoch", "val_accuracy"), _series(records, "eval", "val_accuracy")]
    if any(xs for xs, _ in accs):
        fig, ax = _figure(prefix + "validation accuracy", "accuracy")
        for xs, ys in accs:
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label="validation accuracy")
        _phases(ax, records)
        written.append(folder / "accuracy.png")
        fig.savefig(written[-1], dpi=110)

    written.append(folder / "lr.png")
    lr_figure(records, prefix).savefig(written[-1], dpi=110)
    return written
