"""What a run records: metric lines in ``metrics.jsonl`` and TensorBoard scalars.

What a run *shows* (a progress bar, plain progress lines, the summary table,
figures) is drawn by the caller from the records the Trainer hands to its
``on_progress`` and ``on_end`` hooks: ``descend train`` does that in
:mod:`descend.cli.train`; the Python API shows nothing unless given a hook.

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

import hashlib
import itertools
import json
import math
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

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
    """Appends records to ``metrics.jsonl``; ``offset()`` is its size after a flush and ``digest()``
    the SHA-256 of those bytes (kept as it is written: a checkpoint records both, so a resume can
    tell that the file is the one its run wrote)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._f = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115
        self._hash = hashlib.sha256(path.read_bytes() if path is not None and path.exists() else b"")

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            line = json.dumps(clean(record)) + "\n"
            self._f.write(line)
            self._hash.update(line.encode("utf-8"))

    def offset(self) -> int:
        if self._f is None:
            return 0
        self._f.flush()
        return self._f.tell()

    def digest(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class TensorBoard:
    """Scalars to a TensorBoard event file under ``folder`` (when the ``tensorboard`` package is installed:
    ``pip install descend[logging]``).

    Every numeric field of a record becomes the scalar ``"<type>/<field>"`` at step
    ``iteration``: ``iteration/loss``, ``iteration/lr``, ``epoch/train_loss``,
    ``epoch/val_loss``, ``epoch/val_accuracy``, ... (the wall-clock fields too).

    The events are written here, in the training thread, one record at a time
    (tensorboard's record format, the file ``SummaryWriter`` would write): ``SummaryWriter``
    writes from a thread of its own, whose failure (a full disk, a folder removed) printed
    a traceback and then stopped the run at the next scalar. A write that fails here
    instead warns once (:class:`TensorBoardWarning`, naming the file and the error) and
    turns TensorBoard off for the rest of the run; training and ``metrics.jsonl`` go on.
    """

    def __init__(self, folder: Path | None, wanted: bool | None, purge_step: int | None = None) -> None:
        """``purge_step``: on a resume, the first step after the checkpoint; events an interrupted
        run logged from there on are hidden, so no step shows twice."""
        self._records: Any = None
        self.path: Path | None = None
        if folder is None or wanted is False:
            return
        if not self.available():
            if wanted:
                raise ValueError(
                    "tensorboard=True but the tensorboard package is not installed "
                    "(pip install tensorboard), or pass tensorboard=None"
                )
            return
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = Event, Summary
        self.path = folder / (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                              f"{os.getpid()}.{next(_UIDS)}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._records = RecordWriter(open(self.path, "wb"))  # noqa: SIM115 - (closed in close())
            self._add(Event(wall_time=time.time(), file_version="brain.Event:2"))
            if purge_step is not None:  # (what SummaryWriter(purge_step=...) writes)
                self._add(Event(step=purge_step, file_version="brain.Event:2"))
                self._add(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
            self._records.flush()
        except OSError as err:
            self._failed(err, "cannot start")

    @staticmethod
    def available() -> bool:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            return False
        return True

    @property
    def writing(self) -> bool:
        """Whether events are being written (False without tensorboard, or after a failed write)."""
        return self._records is not None

    def _add(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def _failed(self, err: OSError, what: str) -> None:
        records, self._records = self._records, None
        if records is not None:
            try:
                records.close()
            except OSError:
                pass
        warnings.warn(
            f"TensorBoard logging {what}: {self.path} could not be written ({_reason(err, self.path)}); "
            f"TensorBoard is off for the rest of this run, training goes on and metrics.jsonl holds every record",
            TensorBoardWarning, stacklevel=3,
        )

    def write(self, record: dict[str, Any]) -> None:
        if self._records is None:
            return
        step = record.get("iteration", 0)
        values = [
            self._summary.Value(tag=f"{record.get('type')}/{key}", simple_value=float(value))
            for key, value in record.items()
            if key not in ("type", "iteration", "epoch", "phase") and isinstance(value, int | float)
            and not isinstance(value, bool) and math.isfinite(value)
        ]
        try:
            now = time.time()
            for v in values:
                self._add(self._event(wall_time=now, step=step, summary=self._summary(value=[v])))
            self._records.flush()
        except OSError as err:
            self._failed(err, f"stopped at iteration {step}")

    def close(self) -> None:
        if self._records is not None:
            try:
                self._records.close()
            except OSError as err:
                self._failed(err, "could not finish")
            self._records = None


def _reason(err: OSError, path: Path | None) -> str:
    """The OS's reason, naming the path it concerns when that is not the event file itself (a file
    where the log folder belongs gives 'File exists' for the folder, not for the events)."""
    reason = err.strerror or str(err)
    if err.filename is not None and path is not None and Path(err.filename) != path:
        reason += f": {err.filename}"
    return reason


class TensorBoardWarning(UserWarning):
    """TensorBoard event files could not be written; the run goes on without them."""


_UIDS = itertools.count()
