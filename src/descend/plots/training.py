"""Training curves from a run's recorded metrics: loss, accuracy and learning rate.

Reads the records a :class:`descend.train.Trainer` writes to ``metrics.jsonl``
(or the same dicts in memory) and draws them on matplotlib's Agg canvas; the
only computation is picking the fields out of the records.

* ``loss.png``: training loss at every metric line (against iteration) and
  per epoch (``train_loss`` and ``val_loss`` at the epoch's last iteration);
* ``accuracy.png``: ``val_accuracy`` per epoch (only when recorded);
* ``lr.png``: the lr at every metric line and at every epoch end;

Phase switches are drawn as vertical dotted lines on every figure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


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
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if log:
        ax.set_yscale("log")
    return fig, ax


def _phases(ax: Any, records: list[Mapping[str, Any]]) -> None:
    for r in records:
        if r.get("type") == "phase" and r.get("iteration", 0) > 0:
            ax.axvline(r["iteration"], color="gray", linestyle=":", linewidth=1.0)
            ax.annotate(str(r.get("optimizer", "")), (r["iteration"], 1.0), xycoords=("data", "axes fraction"),
                        fontsize="x-small", color="gray", rotation=90, va="top", ha="right")


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
    written = []

    losses = [(_series(records, "iteration", "loss"), "train (per metric line)", {"linewidth": 1.0, "alpha": 0.7}),
              (_series(records, "epoch", "train_loss"), "train (epoch mean)", {"marker": "o", "markersize": 3}),
              (_series(records, "epoch", "val_loss"), "validation", {"marker": "o", "markersize": 3}),
              (_series(records, "eval", "val_loss"), "validation", {"marker": "o", "markersize": 3})]
    positive = all(y > 0 for (_, ys), _, _ in losses for y in ys)
    fig, ax = _figure(prefix + "loss", "loss", log=positive and any(ys for (_, ys), _, _ in losses))
    for (xs, ys), label, style in losses:
        if xs:
            ax.plot(xs, ys, label=label, **style)
    _phases(ax, records)
    if ax.lines:
        ax.legend(fontsize="small")
    written.append(folder / "loss.png")
    fig.savefig(written[-1], dpi=110)

    accs = [_series(records, "epoch", "val_accuracy"), _series(records, "eval", "val_accuracy")]
    if any(xs for xs, _ in accs):
        fig, ax = _figure(prefix + "validation accuracy", "accuracy")
        for xs, ys in accs:
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label="validation")
        _phases(ax, records)
        written.append(folder / "accuracy.png")
        fig.savefig(written[-1], dpi=110)

    fig, ax = _figure(prefix + "learning rate", "lr")
    for kind, label in (("iteration", "metric lines"), ("epoch", "epoch ends")):
        xs, ys = _series(records, kind, "lr")
        if xs:
            ax.plot(xs, ys, label=label, drawstyle="steps-post" if kind == "iteration" else "default",
                    marker=None if kind == "iteration" else ".")
    _phases(ax, records)
    if ax.lines:
        ax.legend(fontsize="small")
    written.append(folder / "lr.png")
    fig.savefig(written[-1], dpi=110)
    return written
