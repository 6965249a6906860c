"""A run's folder, its summary and its result; hints when a run ends far from converged.

A run folder (``out=``) holds ``metrics.jsonl`` (see :mod:`descend.train.observe`),
``summary.json``, ``checkpoint.pt`` (see :mod:`descend.train.checkpoint`),
``tensorboard/`` event files (when tensorboard is installed), ``figures/``
when the caller's ``on_end`` hook draws them (``descend train`` does), and
``changes.jsonl`` when a resume applied changed settings.

**Hints** (:mod:`descend.train.hints`): a run that ends with its training loss blown up, at a
linear model's floor, unmoved or still falling fast says so, with what to try.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from .. import data as D
from .. import models
from . import checkpoint as ckpt
from . import distributed as dd
from .config import TrainConfig, lr_of, with_options
from .hints import fit_context, hints
from .observe import MetricsLog, TensorBoard, clean

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["TrainResult", "TensorBoard", "open_run", "finish", "close", "hints", "train", "build_model"]

RUN_FILES = ("metrics.jsonl", "summary.json", "changes.jsonl", ckpt.NAME)


@dataclass
class TrainResult:
    """What a run produced.

    ``status``: ``"completed"``, ``"stopped"`` (early, by ``trainer.stop()``), ``"diverged"`` or
    ``"interrupted"`` (the last two in ``summary.json``: fit raises);
    ``final``: ``train_loss``/``train_accuracy``/``val_*``/``test_*`` of the final
    parameters (accuracies for classifiers only), e.g. ``result.final["test_accuracy"]``;
    ``history``: one record per epoch (``train_loss``, ``val_loss``, ``val_accuracy``, ``lr``...);
    ``log``: the iteration records written every ``log_every``; ``phases``: one record per
    phase (start iteration, optimizer, lr, reason); ``hints``: advice such as "still
    improving: train longer"; paths are None without a run folder.
    """

    status: str
    iterations: int
    epochs: int
    seconds: float
    final: dict[str, float | None]
    history: list[dict[str, Any]] = field(repr=False)
    log: list[dict[str, Any]] = field(repr=False)
    phases: list[dict[str, Any]] = field(repr=False)
    config: dict[str, Any] = field(repr=False)
    run_dir: Path | None = None
    checkpoint: Path | None = None
    metrics: Path | None = None
    summary: Path | None = None
    figures: list[Path] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    budget: int = 0


def open_run(tr: Trainer, state: dict[str, Any] | None) -> None:
    """Lock, check, clear or truncate the run folder; open the metric and TensorBoard writers."""
    out, tr._lock = tr.out, None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ValueError(f"run folder {out} is an existing file, not a folder; pick another --out")
        out.mkdir(parents=True, exist_ok=True)
        tr._lock = ckpt.lock_folder(out)  # (released by close(), or below when the folder is refused)
    try:
        if out is not None:
            _prepare(tr, out, state)
        tr.metrics = MetricsLog(out / "metrics.jsonl" if out is not None else None)
        tr.tensorboard = TensorBoard(out / "tensorboard" if out is not None else None, tr.cfg.tensorboard,
                                     purge_step=state["iteration"] + 1 if state is not None else None)
    except BaseException:
        ckpt.unlock_folder(tr._lock)
        tr._lock = None
        raise


def _prepare(tr: Trainer, out: Path, state: dict[str, Any] | None) -> None:
    held = [f for f in RUN_FILES if (out / f).exists()]
    if state is None and held and not tr.cfg.overwrite:
        resume = ("resume it with resume=True (--resume), " if ckpt.NAME in held else
                  "it stopped before its first checkpoint, so it cannot be resumed: ")
        raise ValueError(
            f"run folder {out} already holds a run ({', '.join(held)}); {resume}start over with "
            f"overwrite=True (--overwrite), or pick another folder"
        )
    ckpt.remove_temporaries(out)
    if state is None:
        for f in [*RUN_FILES, *(p.name for p in out.glob("checkpoint-*.pt"))]:
            (out / f).unlink(missing_ok=True)
        for sub in ("figures", "tensorboard"):
            shutil.rmtree(out / sub, ignore_errors=True)
    elif (out / "metrics.jsonl").exists():
        metrics = out / "metrics.jsonl"
        _check_metrics(metrics, state)
        if metrics.stat().st_size > state["metrics_offset"]:
            os.truncate(metrics, state["metrics_offset"])
    if tr.changes and state is not None and state.get("changes") != tr.changes:
        with open(out / "changes.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(clean(tr.changes[-1])) + "\n")


def _check_metrics(metrics: Path, state: dict[str, Any]) -> None:
    """Refuse, before anything in the folder changes, a checkpoint whose run did not write this
    ``metrics.jsonl`` (copied in from another run) or a metrics file edited since (an editor's line
    ends): cutting it at the checkpoint's offset would split a record."""
    offset, digest = state["metrics_offset"], state.get("metrics_sha256")
    size = metrics.stat().st_size
    with open(metrics, "rb") as f:
        head = f.read(offset)
    if size < offset or (digest is not None and hashlib.sha256(head).hexdigest() != digest):
        raise ckpt.CheckpointError(
            f"the checkpoint in {metrics.parent} does not match its metrics.jsonl: the checkpoint recorded "
            f"the file's first {offset} bytes, and they are not there (the file has {size}, "
            f"{'too few' if size < offset else 'other bytes'}): the checkpoint comes from another run, or "
            f"metrics.jsonl was edited. Nothing was changed; resume a run in its own folder, or start over "
            f"with --overwrite"
        )


def close(tr: Trainer) -> None:
    """Close the writers and leave the process group."""
    for thing in ("metrics", "tensorboard"):
        if hasattr(tr, thing):
            getattr(tr, thing).close()
    ckpt.unlock_folder(getattr(tr, "_lock", None))
    tr._lock = None
    dd.leave(tr._owns_group)
    tr._owns_group = False


def finish(tr: Trainer, status: str, error: Exception | str | None = None) -> TrainResult:
    """Final evaluation and checkpoint, ``summary.json``, the result, and the ``on_end`` hook."""
    cfg, out = tr.cfg, tr.out
    ended = status in ("completed", "stopped")  # (a callback's trainer.stop(): ended well, early)
    final = tr.final_metrics() if cfg.evaluate and ended else {}
    if ended and out is not None:
        tr.save_checkpoint()
    seconds = tr.elapsed()
    advice = hints(tr.history, tr.log, tr.iteration, tr.epoch, tr.stream is not None, tr.cfg.phases,
                   fit_context(tr, final)) if ended else []
    if status == "stopped":
        advice.insert(0, f"stopped early after {tr.iteration} of the {tr.total} iterations of the budget: "
                         f"{tr.stop_reason}")
    elif status == "completed" and tr.iteration < tr.total:
        advice.insert(0, f"the data stream ended after {tr.iteration} of the {tr.total} iterations of the budget")
    advice[:0] = tr.notes  # (a batch clamped to the data, a schedule a resume fitted to the new budget)
    summary: dict[str, Any] = {
        "status": status, "iterations": tr.iteration, "epochs": tr.epoch, "seconds": seconds, **final,
        "iterations_per_epoch": tr.iterations_per_epoch or None,
        "batches_per_epoch": tr.batches_per_epoch or None, "budget": tr.total,
        "data": {**tr.feed.info(), "world_size": tr.world},
        "model": {"class": type(tr.module).__name__, "parameters": models.n_parameters(tr.module)},
        "config": tr.settings, "phases": tr.phase_log, "hints": advice, "changes": tr.changes,
        "lr": lr_of(tr.optimizer),
    }
    if error is not None:
        summary["error"] = str(error)
    if out is not None:
        tr.metrics.offset()  # flush
        summary.update({
            "run_dir": str(out), "metrics": str(out / "metrics.jsonl"),
            "checkpoint": str(tr.last_checkpoint[0]) if tr.last_checkpoint else None,
            "checkpoints": sorted(str(p) for p in out.glob("checkpoint*.pt")),
            "figures": [],
        })
        ckpt.atomic_write_bytes(out / "summary.json", _json(summary))
    tr.summary = summary
    result = TrainResult(
        status=status, iterations=tr.iteration, epochs=tr.epoch, seconds=seconds, final=final,
        history=tr.history, log=tr.log, phases=tr.phase_log, config=tr.settings,
        run_dir=out, checkpoint=tr.last_checkpoint[0] if tr.last_checkpoint else None,
        metrics=out / "metrics.jsonl" if out else None, summary=out / "summary.json" if out else None,
        hints=advice, budget=tr.total,
    )
    if tr.on_end is not None and tr.rank == 0 and status != "interrupted":  # (Ctrl-C: out at once)
        tr.metrics.close()
        figures = tr.on_end(result)
        if figures:
            result.figures = [Path(p) for p in figures]
            if out is not None:
                summary["figures"] = [str(p) for p in result.figures]
                ckpt.atomic_write_bytes(out / "summary.json", _json(summary))
    return result


def interruption(tr: Trainer) -> str:
    """What ``summary.json`` says of a run stopped by KeyboardInterrupt (Ctrl-C)."""
    last = tr.last_checkpoint
    then = (f"resume=True (--resume) continues from its checkpoint of iteration {last[1]}" if last else
            "no checkpoint was written (checkpoint_every), so it cannot be resumed")
    return f"interrupted (KeyboardInterrupt) after {tr.iteration} of {tr.total} iterations; {then}"


def _json(obj: Any) -> bytes:
    return (json.dumps(clean(obj), indent=2) + "\n").encode()


# ---------------------------------------------------------------------------- convenience


def build_model(name: str, dataset: D.Dataset, options: dict[str, Any] | None = None, seed: int = 0) -> nn.Module:
    """Model ``name`` sized for ``dataset`` by :func:`descend.models.build_for`, seeded with ``seed``."""
    return models.build_for(dataset, name, seed=seed, **(options or {}))


def train(
    dataset: str | Path | D.Dataset,
    model: str | nn.Module = "mlp",
    config: TrainConfig | None = None,
    *,
    resume: bool | str | Path = False,
    apply_changes: bool = False,
    callback: Callable[[Trainer], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_end: Callable[[TrainResult], Any] | None = None,
    **options: Any,
) -> TrainResult:
    """Load ``dataset`` (a name or a .csv/.npz path), build ``model`` (by name) and train: one call.

    ``options`` are :class:`TrainConfig` fields. The split uses ``data_seed``
    (a file's target column and task are ``target`` and ``task``); the model's
    initialization and the data order use ``seed``.

    >>> r = train("digits", "mlp", optimizer="adam", lr=1e-3, epochs=20)   # doctest: +SKIP
    >>> r.final["test_accuracy"]                                            # doctest: +SKIP
    """
    from .trainer import Trainer

    cfg = with_options(config or TrainConfig(), options)
    if isinstance(model, str):
        key = model.strip().lower()
        if key not in models.names():
            raise ValueError(f"unknown model {model!r}; valid names: {', '.join(models.names())}")
    if isinstance(dataset, D.Dataset):
        ds = dataset
    else:
        ds = D.load(dataset, seed=cfg.data_seed, target=cfg.target, task=cfg.task)
    if isinstance(model, str):
        cfg = dataclasses.replace(cfg, model=model.strip().lower())
        model = build_model(model, ds, cfg.model_options, seed=cfg.seed)
    cfg = dataclasses.replace(cfg, dataset=ds.source or ds.name)
    trainer = Trainer(model, ds, cfg, callback=callback, on_progress=on_progress, on_end=on_end)
    return trainer.fit(resume=resume, apply_changes=apply_changes)
