"""What a run shows and records: metric lines, TensorBoard, a Rich progress bar, a summary table.

``metrics.jsonl`` holds one JSON object per line, of three types::

    {"type": "iteration", "iteration": 20, "epoch": 1, "phase": 0, "loss": 0.41, "lr": 0.001,
     "examples_per_s": 51234.0, "elapsed": 0.8}                     every log_every iterations
    {"type": "epoch", "epoch": 1, "iteration": 17, "phase": 0, "train_loss": 0.52,
     "val_loss": 0.31, "val_accuracy": 0.93, "lr": 0.001, "elapsed": 0.9}   every epoch
    {"type": "phase", "phase": 1, "iteration": 170, "optimizer": "SGD", "lr": 0.05,
     "reason": "planned"}                                           at each optimizer switch

``loss`` is the mean training loss of the iterations since the previous line;
``train_loss`` the mean over the epoch's examples (both measured during
training, in training mode); ``val_*`` are evaluations in eval mode.
``examples_per_s`` and ``elapsed`` are wall-clock figures: the only fields
that differ between two runs of the same configuration.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

TIMING_FIELDS = ("examples_per_s", "elapsed")


def clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


class MetricsLog:
    """Appends records to ``metrics.jsonl``; ``offset()`` is its size after a flush."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._f = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(clean(record)) + "\n")

    def offset(self) -> int:
        if self._f is None:
            return 0
        self._f.flush()
        return self._f.tell()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class TensorBoard:
    """Scalars to TensorBoard event files under ``folder`` (only when tensorboard is installed)."""

    def __init__(self, folder: Path | None, wanted: bool | None) -> None:
        self.writer = None
        if folder is None or wanted is False:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if wanted:
                raise ValueError(
                    "tensorboard=True but the tensorboard package is not installed "
                    "(pip install tensorboard), or pass tensorboard=None"
                ) from None
            return
        self.writer = SummaryWriter(log_dir=str(folder))

    @staticmethod
    def available() -> bool:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            return False
        return True

    def write(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        kind = record.get("type")
        step = record.get("iteration", 0)
        for key, value in record.items():
            if key in ("type", "iteration", "epoch", "phase") or not isinstance(value, int | float):
                continue
            if isinstance(value, bool) or not math.isfinite(value):
                continue
            self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressView:
    """A Rich progress bar: epoch, iteration, loss, lr, examples/s and time left."""

    def __init__(self, total: int, epochs: int | None, console: Console | None, enabled: bool) -> None:
        self.progress = None
        self.console = console
        if not enabled:
            return
        self.epochs = epochs
        self.progress = Progress(
            TextColumn("[bold]{task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("it  loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} ex/s"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, epoch="", loss="-", lr="-", speed="-")

    def update(
        self, iteration: int, epoch: int | None, loss: float | None, lr: float | None, speed: float | None
    ) -> None:
        if self.progress is None:
            return
        if epoch is not None and self.epochs:
            epoch = min(epoch, self.epochs - 1)  # after the last epoch: still "epoch E/E"
        ep = "" if epoch is None else f"epoch {epoch + 1}" + (f"/{self.epochs}" if self.epochs else "")
        self.progress.update(
            self.task,
            completed=iteration,
            epoch=ep,
            loss="-" if loss is None else f"{loss:.4g}",
            lr="-" if lr is None else f"{lr:.3g}",
            speed="-" if speed is None else f"{speed:,.0f}",
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def summary_table(summary: dict[str, Any]) -> Table:
    """The end-of-run table: final losses and accuracies, iterations, time, run folder."""
    title = (f"{summary.get('status', 'run')}: {summary.get('iterations')} iterations, "
             f"{summary.get('epochs')} epochs, {summary.get('seconds', 0.0):.1f} s")
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column("split")
    table.add_column("loss", justify="right")
    table.add_column("accuracy", justify="right")
    for split, label in (("train", "train"), ("val", "validation"), ("test", "test")):
        loss = summary.get(f"{split}_loss")
        if loss is None:
            continue
        acc = summary.get(f"{split}_accuracy")
        table.add_row(label, f"{loss:.6g}", "-" if acc is None else f"{100 * acc:.2f}%")
    if summary.get("run_dir"):
        table.caption = f"run folder: {summary['run_dir']}"
    return table
