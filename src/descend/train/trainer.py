"""The Trainer: model, loss, data, optimizer (or phases of them), schedule, budget.

One iteration is one optimizer step (note 003): it consumes ``accumulate``
batches (1 by default), so an epoch of ``n`` examples in batches of ``b``
takes ``ceil(ceil(n / b) / accumulate)`` iterations. The loop, in full::

    while iteration < total:
        for group in the rest of this epoch's batches, accumulate at a time:
            zero_grad; for each batch: loss = loss_fn(model(xb), yb) -> finite? -> backward
            clip; optimizer.step()                        # NonFiniteGradientError -> TrainingDiverged
            iteration += 1; per-iteration scheduler step
            epoch finished?  -> evaluate on val, per-epoch scheduler step, epoch record
            every log_every  -> metric line, progress bar
            phase finished?  -> next phase's optimizer and scheduler (see descend.train.phases)
            every checkpoint_every -> checkpoint; then callback(trainer)
    final evaluation of train/val/test, final checkpoint, summary.json, figures

Batch sizes are customarily powers of two (32, 64, 128: note 003); any size
in ``[1, n]`` works, and ``None`` is the full batch.

Data is a :class:`descend.data.Dataset` (batched by :class:`descend.data.Batches`
with the configured batch size, seed and, under DDP, this rank's shard), an
``(X, y)`` pair, or any iterator of ``(xb, yb)`` batches (streaming, with an
iteration budget; ``eval_data`` then gives the splits to evaluate).

**Resume.** ``fit(resume=True)`` (the run folder's ``checkpoint.pt``) or
``fit(resume=path)`` restores the model, the current phase's optimizer and
scheduler, the phase, the counters, the position inside the epoch (the
batches already consumed are skipped in the epoch's permutation), the partial
loss sums, the history and every RNG state, and truncates ``metrics.jsonl`` to
what it held at the checkpoint. Build the Trainer exactly as for the original
run; on the CPU the resumed run then reproduces the uninterrupted one bit for
bit (parameters and every metric except the wall-clock fields). A stream is
resumed by skipping the batches the checkpointed run had consumed from the
iterator it is given, so a replayable stream such as ``descend.data.stream``
resumes exactly too. Under DDP the RNG state saved is rank 0's.

**Non-finite values.** On the CPU the loss is checked before each backward
(the value is read anyway for the running mean); on accelerators at every
metric line, so that no step waits for the device; descend optimizers check
every gradient before changing anything (under DDP this is the check that
applies, since the gradients are the same on all ranks). Either raises
:class:`TrainingDiverged` with the iteration, the lr, the last good
checkpoint and advice; ``summary.json`` records the failure and no
checkpoint is written from a non-finite state.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from torch import nn

from .. import data as D
from .. import models, optim
from ..schedules import Schedule, Scheduler
from . import checkpoint as ckpt
from .config import (
    Phase,
    TrainConfig,
    lr_of,
    make_optimizer,
    make_schedule,
    optimizer_name,
    trainable,
)
from .errors import CheckpointError, TrainingDiverged
from .observe import MetricsLog, ProgressView, TensorBoard, clean, summary_table
from .phases import Swats

RUN_FILES = ("metrics.jsonl", "summary.json", ckpt.NAME)
SPLITS = ("train", "val", "test")


@dataclass
class TrainResult:
    """What a run produced.

    ``history``: one record per epoch (``train_loss``, ``val_loss``, ``val_accuracy``,
    ``lr``...); ``log``: the iteration records written every ``log_every``;
    ``phases``: one record per phase (start iteration, optimizer, lr, reason);
    ``final``: ``train_loss``/``train_accuracy``/``val_*``/``test_*`` of the final
    parameters (accuracies for classifiers only); paths are None without a run folder.
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

    def __getattr__(self, name: str) -> Any:  # result.test_accuracy, result.val_loss, ...
        final = self.__dict__.get("final", {})
        if name in final:
            return final[name]
        raise AttributeError(name)


def _mean(values: list[Any], sizes: list[int]) -> float:
    """Example-weighted mean of per-batch mean losses (floats, or tensors on an accelerator)."""
    n = sum(sizes)
    if n == 0:
        return float("nan")
    if values and isinstance(values[0], torch.Tensor):
        values = torch.stack(values).double().cpu().tolist()
    return sum(float(v) * s for v, s in zip(values, sizes)) / n


class Trainer:
    """Trains ``model`` on ``data`` as ``config`` says; see the module docstring.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to outputs.
        data: a :class:`descend.data.Dataset`, an ``(X, y)`` pair, or an iterator of
            ``(xb, yb)`` batches (streaming; needs ``iterations``).
        config: a :class:`TrainConfig`; keyword ``overrides`` replace its fields
            (``Trainer(model, ds, epochs=5, lr=0.1)``).
        loss: ``loss(outputs, targets) -> scalar``; default
            :func:`descend.models.loss_for` the data's task (cross-entropy for
            classifiers, MSE for regression).
        eval_data: the Dataset whose splits are evaluated when ``data`` is a stream.
        callback: called as ``callback(trainer)`` after every iteration.
        console: the Rich console for the progress bar.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        config: TrainConfig | None = None,
        *,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        eval_data: D.Dataset | None = None,
        callback: Callable[[Trainer], None] | None = None,
        console: Console | None = None,
        **overrides: Any,
    ) -> None:
        cfg = config or TrainConfig()
        self.cfg = cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        try:
            self.device = torch.device(cfg.device)
        except RuntimeError:
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {cfg.device!r}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {cfg.device!r} is not available here (torch.cuda.is_available() is False)")
        self.rank, self.world, self._owns_group = 0, 1, False
        self._setup_distributed()
        try:
            self._build(model, data, cfg, loss, eval_data, callback, console)
        except BaseException:
            self._close_group()
            raise

    def _build(
        self,
        model: nn.Module,
        data: Any,
        cfg: TrainConfig,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
        eval_data: D.Dataset | None,
        callback: Callable[[Trainer], None] | None,
        console: Console | None,
    ) -> None:
        self.module = model.to(self.device)
        self.callback, self.console = callback, console
        self._set_data(data, eval_data)
        self.loss_fn = loss or self._default_loss()
        self._cpu = self.device.type == "cpu"
        # budget and phases
        self.phases = self._resolve_phases()
        self.total = self.phases[-1]["end"]
        self.swats: Swats | None = None
        self.phase_index = 0
        self._set_phase(*self._build_phase(0, None))
        if cfg.swats:
            self.swats = Swats(self.optimizer, cfg.swats_eps)
        self._check_closure_use()
        self.model: nn.Module = self.module
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.module, device_ids=ids)
        # counters and records
        self.iteration, self.epoch, self.batch_in_epoch, self.consumed = 0, 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.phase_log: list[dict[str, Any]] = [self._phase_record("start")]
        self._ev: list[Any] = []  # per batch: mean loss (epoch)
        self._en: list[int] = []  # per batch: examples (epoch)
        self._wv: list[Any] = []  # the same since the last metric line
        self._wn: list[int] = []
        self.out = Path(cfg.out) if cfg.out is not None and self.rank == 0 else None
        if cfg.tensorboard and not TensorBoard.available():
            raise ValueError("tensorboard=True but the tensorboard package is not installed "
                             "(pip install tensorboard); leave tensorboard=None to use it when present")
        self.last_checkpoint: tuple[Path, int] | None = None
        self._elapsed0 = 0.0

    # ------------------------------------------------------------------ setup
    def _setup_distributed(self) -> None:
        if self.cfg.distributed == "off" or not dist.is_available():
            return
        if not dist.is_initialized():
            if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "MASTER_ADDR" not in os.environ:
                return
            if self.device.type == "cuda" and self.device.index is None:
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self._owns_group = True
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if self.world > 1 and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.rank % torch.cuda.device_count())))
            torch.cuda.set_device(self.device)

    def _set_data(self, data: Any, eval_data: D.Dataset | None) -> None:
        cfg = self.cfg
        self.stream: Iterator | None = None
        self.batches: D.Batches | None = None
        self.dataset = eval_data
        if isinstance(data, D.Dataset):
            self.dataset = data if self.device.type == "cpu" else data.to(self.device)
            X, y = self.dataset.train
        elif isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
            X, y = (t.to(self.device) for t in data)
            self._pair = (X, y)
        elif isinstance(data, Iterable):
            self.stream = iter(data)
            X = y = None
        else:
            raise ValueError(
                f"data must be a descend.data.Dataset, an (X, y) pair of tensors or an iterator of "
                f"(xb, yb) batches, got {type(data).__name__}"
            )
        if self.dataset is not None:
            self.task, self.n_classes = self.dataset.task, self.dataset.n_classes
        elif y is not None:
            classification = not y.is_floating_point()
            self.task = "classification" if classification else "regression"
            self.n_classes = int(y.max()) + 1 if classification else None
        else:
            self.task, self.n_classes = None, None
        if X is not None:
            self.batches = D.Batches(
                X, y, cfg.batch_size, shuffle=cfg.shuffle, seed=cfg.seed, drop_last=cfg.drop_last,
                rank=self.rank, world_size=self.world,
            )
            self.batches_per_epoch = len(self.batches)
            self.iterations_per_epoch = math.ceil(self.batches_per_epoch / cfg.accumulate)
            self._scales = self._group_scales()
        else:
            self.batches_per_epoch = self.iterations_per_epoch = 0
            k = cfg.accumulate
            self._stream_scales = None if k == 1 else [1.0 / k] * k

    def _group_scales(self) -> list[list[float] | None]:
        """Per iteration: each batch's loss weight, so that the gradient is the global mean's."""
        sizes, k, w = self.batches.global_sizes(), self.cfg.accumulate, self.world
        out: list[list[float] | None] = []
        for g in range(0, len(sizes), k):
            group = sizes[g : g + k]
            total = sum(group)
            bounds = [D.shard_bounds(s, self.rank, w) for s in group]
            scales = [(hi - lo) * w / total for lo, hi in bounds]
            out.append(None if all(s == 1.0 for s in scales) else scales)
        return out

    def _default_loss(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        if self.task is None:
            raise ValueError("give loss=... when training from a stream without eval_data")
        X = self.batches.X if self.batches is not None else self.dataset.X_train
        was = self.module.training
        self.module.eval()
        with torch.no_grad():
            out = self.module(X[:1])
        self.module.train(was)
        n_out = out.shape[-1] if out.ndim == 2 else 1
        return models.loss_for(self.task, self.n_classes, n_outputs=n_out)

    def _resolve_phases(self) -> list[dict[str, Any]]:
        cfg, ipe = self.cfg, self.iterations_per_epoch
        unit = "iteration" if (cfg.iterations or self.stream is not None) else "epoch"
        specs = list(cfg.phases) if cfg.phases else [
            Phase(None, cfg.optimizer, cfg.schedule, cfg.lr, unit=unit, options=cfg.optimizer_options)
        ]

        def iters(n: int, u: str) -> int:
            if u == "epoch" and self.stream is not None:
                raise ValueError("a stream has no epochs: give phase durations and the budget in iterations")
            return n * ipe if u == "epoch" else n

        if cfg.iterations is not None:
            total = cfg.iterations
        elif cfg.epochs is not None:
            total = iters(cfg.epochs, "epoch")
        elif all(s.duration is not None for s in specs):
            total = sum(iters(s.duration, s.unit) for s in specs)
        elif self.stream is not None:
            raise ValueError("training from a stream needs an iteration budget: iterations=N (--iterations)")
        else:
            total = iters(10, "epoch")
        out, start = [], 0
        for i, s in enumerate(specs):
            length = total - start if s.duration is None else iters(s.duration, s.unit)
            if length < 1:
                raise ValueError(f"phase {i + 1} has no iterations left in a budget of {total}")
            out.append({"spec": s, "start": start, "end": start + length})
            start += length
        if start != total:

            def show(n: int) -> str:
                return f"{n / ipe:g} epochs ({n} iterations)" if ipe else f"{n} iterations"

            raise ValueError(
                f"the phases add up to {show(start)} but the budget is {show(total)}; make the phase "
                f"durations add up to the budget"
            )
        return out

    def _build_phase(self, index: int, carry: list[float] | None) -> tuple[Any, Scheduler | None]:
        cfg, ph = self.cfg, self.phases[index]
        spec: Phase = ph["spec"]
        lr = spec.lr if spec.lr is not None else cfg.lr
        if lr is None and isinstance(spec.schedule, Schedule):
            lr = spec.schedule.base_lr
        options = dict(spec.options)
        for name in ("weight_decay", "l1"):
            if getattr(cfg, name):
                options.setdefault(name, getattr(cfg, name))
        opt = make_optimizer(spec.optimizer, self.module, lr, options)
        lr = lr_of(opt) if lr is None else lr
        if carry is not None:
            groups = opt.param_groups
            lrs = carry if len(carry) == len(groups) else [carry[0]] * len(groups)
            for g, v in zip(groups, lrs):
                g["lr"] = v
            lr = lrs[0]
        length = ph["end"] - ph["start"]
        if cfg.schedule_unit == "epoch":
            length = max(1, math.ceil(length / max(self.iterations_per_epoch, 1)))
        schedule = make_schedule(spec.schedule, length, lr, cfg.warmup)
        sched = Scheduler(opt, schedule, unit=cfg.schedule_unit) if schedule is not None else None
        return opt, sched

    def _set_phase(self, opt: Any, sched: Scheduler | None) -> None:
        self.optimizer, self.scheduler = opt, sched
        self._iter_sched = sched is not None and sched.unit == "iteration"
        self._phase_end = self.phases[self.phase_index]["end"] if self.phase_index < len(self.phases) else self.total
        self._params = [p for p in self.module.parameters() if p.requires_grad]
        self._closure = isinstance(opt, optim.Newton)

    def _check_closure_use(self) -> None:
        cfg = self.cfg
        uses = any(
            isinstance(p["spec"].optimizer, str) and p["spec"].optimizer.lower() == "newton" for p in self.phases
        ) or self._closure
        if uses and (cfg.accumulate > 1 or cfg.clip_norm or cfg.clip_value or self.world > 1):
            raise ValueError("Newton takes full steps from a closure: no accumulation, clipping or DDP")

    def _phase_record(self, reason: str) -> dict[str, Any]:
        return {"type": "phase", "phase": self.phase_index, "iteration": self.iteration,
                "optimizer": optimizer_name(self.optimizer), "lr": lr_of(self.optimizer), "reason": reason}

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Train to the end of the budget; ``resume`` continues from a checkpoint (see the module docstring)."""
        state = self._read_checkpoint(resume) if resume else None
        self._open_run(state)
        self._t0 = time.perf_counter()
        self._wt = self._t0
        if state is None:
            torch.default_generator.manual_seed(self.cfg.seed + self.rank)  # torch.manual_seed, CPU only
            if self.device.type == "cuda":
                torch.cuda.manual_seed_all(self.cfg.seed + self.rank)
            np.random.seed(self.cfg.seed)
            random.seed(self.cfg.seed)
            self._record(self.phase_log[0])
        self.module.train()
        try:
            self._train()
            return self._finish("completed")
        except TrainingDiverged as err:
            self._finish("diverged", err)
            raise
        finally:
            self._close()

    def _train(self) -> None:
        """The loop: one optimizer step per pass, bookkeeping only where it is due."""
        cfg, every = self.cfg, self.cfg.checkpoint_every
        if self.iteration >= self.total:
            return
        for group, scales in self._steps():
            it = self.iteration + 1
            log_now = it % cfg.log_every == 0
            lrs = [float(g["lr"]) for g in self.optimizer.param_groups] if log_now or it == self._phase_end else None
            swats = self.swats if self.phase_index == 0 else None
            if swats is not None:
                swats.before_step()
            self._step(group, scales, it, lrs)  # forward, backward, clip, optimizer step
            self.iteration = it
            self.consumed += len(group)
            switch = swats is not None and swats.after_step()
            if self._iter_sched:
                self.scheduler.step()
            if self.stream is None:
                self.batch_in_epoch += len(group)
                if self.batch_in_epoch == self.batches_per_epoch:
                    self._end_epoch()  # evaluate, per-epoch schedule step, epoch record
            elif cfg.eval_interval and it % cfg.eval_interval == 0:
                self._evaluate_stream()
            if log_now:
                self._log_iteration(lrs[0])
            if it < self.total and (switch or it == self._phase_end):
                self._next_phase(lrs, "swats" if switch else "planned")
            if every and it % every == 0 and it < self.total:
                self.save_checkpoint()
            if self.callback is not None:
                self.callback(self)
            if it >= self.total:
                return

    def _steps(self) -> Iterator[tuple[Sequence, list[float] | None]]:
        """Groups of ``accumulate`` batches with their loss weights, epoch after epoch (or from the stream)."""
        k = self.cfg.accumulate
        if self.stream is not None:
            move = self.device.type != "cpu"
            while group := list(islice(self.stream, k)):
                if move:
                    group = [(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
                             for x, y in group]
                yield group, self._stream_scales
            return  # the stream ended before the budget
        while True:
            batches = self.batches.iter_epoch(self.epoch)  # the epoch advances in _end_epoch
            for _ in range(self.batch_in_epoch):  # resume: skip what this epoch already consumed
                next(batches)
            g = self.batch_in_epoch // k
            if k == 1:
                for batch in batches:
                    yield (batch,), self._scales[g]
                    g += 1
                continue
            while group := list(islice(batches, k)):
                yield group, self._scales[g]
                g += 1

    def _step(self, group: Sequence, scales: list[float] | None, it: int, lrs: list[float] | None) -> None:
        """Forward, backward (accumulated over the group), clip and one optimizer step."""
        opt, model = self.optimizer, self.model
        if self._closure:  # Newton: the optimizer evaluates the loss itself
            xb, yb = group[0]
            loss = opt.step(lambda: self.loss_fn(model(xb), yb))
            self._note_loss(loss, xb.shape[0], it, lrs)
            return
        opt.zero_grad()
        if scales is None and len(group) == 1 and self.world == 1:  # the hand-written loop
            xb, yb = group[0]
            loss = self.loss_fn(model(xb), yb)
            self._note_loss(loss, xb.shape[0], it, lrs)
            loss.backward()
        else:
            self._accumulate(group, scales, it, lrs)
        if self.cfg.clip_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self._params, self.cfg.clip_norm, foreach=True)
            if not math.isfinite(float(norm)):
                raise self._diverged(it, lrs, "the gradient norm", float(norm))
        if self.cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self._params, self.cfg.clip_value, foreach=True)
        try:
            opt.step()
        except optim.NonFiniteGradientError:
            raise self._diverged(it, lrs, "a gradient", None) from None

    def _accumulate(self, group: Sequence, scales: list[float] | None, it: int, lrs: list[float] | None) -> None:
        """Backward over several batches (or a shard under DDP), each loss weighted by ``scales``."""
        model, last = self.model, len(group) - 1
        for i, (xb, yb) in enumerate(group):
            with model.no_sync() if self.world > 1 and i < last else nullcontext():
                n = xb.shape[0]
                out = model(xb)
                if n == 0:  # an empty shard still takes part in the all-reduce
                    out.sum().mul(0.0).backward()
                    continue
                loss = self.loss_fn(out, yb)
                self._note_loss(loss, n, it, lrs)
                (loss if scales is None else loss * scales[i]).backward()

    def _note_loss(self, loss: torch.Tensor, n: int, it: int, lrs: list[float] | None) -> None:
        if self._cpu:
            v = loss.item()
            if not math.isfinite(v) and self.world == 1:
                raise self._diverged(it, lrs, "the loss", v)
        else:
            v = loss.detach()
        self._ev.append(v)
        self._en.append(n)
        self._wv.append(v)
        self._wn.append(n)

    def _diverged(self, it: int, lrs: list[float] | None, what: str, value: float | None) -> TrainingDiverged:
        lr = lrs[0] if lrs else lr_of(self.optimizer)
        last = self.last_checkpoint
        return TrainingDiverged(
            iteration=it, epoch=self.epoch if self.stream is None else None, lr=lr,
            checkpoint=last[0] if last else None, checkpoint_iteration=last[1] if last else None,
            what=what, value=value,
        )

    # ------------------------------------------------------------------ epochs, logs, phases
    def _end_epoch(self) -> None:
        cfg = self.cfg
        train_loss = self._reduced_mean(self._ev, self._en)
        rec: dict[str, Any] = {"type": "epoch", "epoch": self.epoch + 1, "iteration": self.iteration,
                               "phase": self.phase_index, "train_loss": train_loss}
        metric = train_loss
        if cfg.evaluate and cfg.eval_every and (self.epoch + 1) % cfg.eval_every == 0 and self._has("val"):
            ev = self.evaluate("val")
            rec["val_loss"] = metric = ev["loss"]
            if "accuracy" in ev:
                rec["val_accuracy"] = ev["accuracy"]
        rec["lr"] = lr_of(self.optimizer)
        if self.scheduler is not None:
            if self.scheduler.unit == "epoch":
                self.scheduler.step(metric if self.scheduler.needs_metric else None)
            elif self.scheduler.needs_metric:
                self.scheduler.observe(metric)
        rec["elapsed"] = self.elapsed()
        self.history.append(rec)
        self._record(rec)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._ev, self._en = [], []
        if not self._cpu and not math.isfinite(train_loss):
            raise self._diverged(self.iteration, None, "the epoch's training loss", train_loss)

    def _evaluate_stream(self) -> None:
        if not (self.cfg.evaluate and self._has("val")):
            return
        ev = self.evaluate("val")
        rec = {"type": "eval", "iteration": self.iteration, "phase": self.phase_index,
               **{f"val_{k}": v for k, v in ev.items()}, "elapsed": self.elapsed()}
        self.history.append(rec)
        self._record(rec)

    def _reduced_mean(self, values: list[Any], sizes: list[int]) -> float:
        if self.world == 1:
            return _mean(values, sizes)
        local = _mean(values, sizes) * sum(sizes) if sum(sizes) else 0.0
        t = torch.tensor([local, float(sum(sizes))], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t[0] / t[1]) if float(t[1]) else float("nan")

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _log_iteration(self, lr: float) -> None:
        now = time.perf_counter()
        loss = _mean(self._wv, self._wn)
        speed = sum(self._wn) * self.world / max(now - self._wt, 1e-12)
        rec = {"type": "iteration", "iteration": self.iteration,
               "epoch": self.epoch if self.stream is None else None, "phase": self.phase_index,
               "loss": loss, "lr": lr, "examples_per_s": speed, "elapsed": self.elapsed()}
        self._wv, self._wn, self._wt = [], [], now
        self.log.append(rec)
        self._record(rec)
        self.progress.update(self.iteration, rec["epoch"], loss, lr, speed)
        if not math.isfinite(loss):
            raise self._diverged(self.iteration, [lr], "the loss", loss)

    def _next_phase(self, lrs: list[float] | None, reason: str) -> None:
        self.phase_index += 1
        if reason == "swats":
            opt = self.swats.sgd(trainable(self.module))
            self.phases = self.phases[:1] + [{"spec": Phase(None, "momentum", lr=self.swats.switch_lr,
                                                            unit="iteration"),
                                               "start": self.iteration, "end": self.total}]
            self.phases[0]["end"] = self.iteration
            self._set_phase(opt, None)
        else:
            self._set_phase(*self._build_phase(self.phase_index, lrs if self.cfg.carry_lr else None))
        rec = self._phase_record(reason)
        self.phase_log.append(rec)
        self._record(rec)

    def _record(self, rec: dict[str, Any]) -> None:
        self.metrics.write(rec)
        self.tensorboard.write(rec)

    def elapsed(self) -> float:
        """Seconds of training so far, including those before a resume."""
        return self._elapsed0 + time.perf_counter() - self._t0

    # ------------------------------------------------------------------ evaluation
    def _has(self, split: str) -> bool:
        if self.dataset is not None:
            return getattr(self.dataset, f"n_{split}") > 0
        return split == "train" and hasattr(self, "_pair")

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dataset is not None:
            return self.dataset.part(split)
        return self._pair

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Mean loss (and accuracy for classifiers) of the current model on ``split``, in eval mode."""
        X, y = self._split(split)
        was = self.module.training
        self.module.eval()
        try:
            total, correct, b = 0.0, 0, self.cfg.eval_batch_size
            for i in range(0, len(X), b):
                out = self.module(X[i : i + b])
                yb = y[i : i + b]
                total += float(self.loss_fn(out, yb)) * len(yb)
                if self.task == "classification":
                    correct += int((models.losses.predictions(out) == yb.reshape(-1)).sum())
        finally:
            self.module.train(was)
        res = {"loss": total / len(X)}
        if self.task == "classification":
            res["accuracy"] = correct / len(X)
        return res

    def final_metrics(self) -> dict[str, float | None]:
        """``{split}_loss`` and (classifiers) ``{split}_accuracy`` for train, val and test."""
        out: dict[str, float | None] = {}
        for split in SPLITS:
            if self._has(split):
                ev = self.evaluate(split)
                out[f"{split}_loss"] = ev["loss"]
                if "accuracy" in ev:
                    out[f"{split}_accuracy"] = ev["accuracy"]
        return out

    # ------------------------------------------------------------------ run folder and checkpoints
    def _open_run(self, state: dict[str, Any] | None) -> None:
        out = self.out
        if out is not None:
            held = [f for f in RUN_FILES if (out / f).exists()]
            if state is None and held and not self.cfg.overwrite:
                raise ValueError(
                    f"run folder {out} already holds a run ({', '.join(held)}); resume it with "
                    f"resume=True (--resume), start over with overwrite=True (--overwrite), or pick "
                    f"another folder"
                )
            out.mkdir(parents=True, exist_ok=True)
            ckpt.remove_temporaries(out)
            if state is None:
                for f in [*RUN_FILES, *(p.name for p in out.glob("checkpoint-*.pt"))]:
                    (out / f).unlink(missing_ok=True)
                for sub in ("figures", "tensorboard"):
                    shutil.rmtree(out / sub, ignore_errors=True)
            elif (out / "metrics.jsonl").exists():
                metrics = out / "metrics.jsonl"
                if metrics.stat().st_size > state["metrics_offset"]:
                    os.truncate(metrics, state["metrics_offset"])
        self.metrics = MetricsLog(out / "metrics.jsonl" if out is not None else None)
        self.tensorboard = TensorBoard(out / "tensorboard" if out is not None else None, self.cfg.tensorboard)
        console = self.console or Console()
        show = self.cfg.progress if self.cfg.progress is not None else console.is_terminal
        epochs = self.total // self.iterations_per_epoch if self.iterations_per_epoch else None
        self.progress = ProgressView(self.total, epochs, console, bool(show) and self.rank == 0)
        self.progress.update(self.iteration, self.epoch if self.stream is None else None, None,
                             lr_of(self.optimizer), None)

    def _close(self) -> None:
        for thing in ("progress", "metrics", "tensorboard"):
            if hasattr(self, thing):
                getattr(self, thing).close()
        self._close_group()

    def _close_group(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    def _fingerprint(self) -> dict[str, Any]:
        b = self.batches
        return {
            "batch_size": b.batch_size if b is not None else None,
            "n_train": b.n if b is not None else None,
            "seed": self.cfg.seed, "shuffle": self.cfg.shuffle, "drop_last": self.cfg.drop_last,
            "accumulate": self.cfg.accumulate, "world_size": self.world, "swats": self.cfg.swats,
            "phase_starts": [p["start"] for p in self.phases[: (1 if self.cfg.swats else None)]],
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (see :mod:`descend.train.checkpoint`)."""
        model_sd = self.module.state_dict()

        def floats(xs: list[Any]) -> list[float]:
            return [float(x) for x in xs]

        return {
            "iteration": self.iteration, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "consumed": self.consumed, "phase": self.phase_index,
            "model": model_sd, "signature": ckpt.signature(model_sd),
            "optimizer": self.optimizer.state_dict(), "optimizer_name": optimizer_name(self.optimizer),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "swats": self.swats.state_dict() if self.swats is not None else None,
            "rng": ckpt.rng_state(),
            "running": {"ev": floats(self._ev), "en": list(self._en), "wv": floats(self._wv), "wn": list(self._wn)},
            "history": self.history, "log": self.log, "phase_log": self.phase_log,
            "metrics_offset": self.metrics.offset(), "fingerprint": self._fingerprint(),
            "elapsed": self.elapsed(), "config": self.cfg.resolved(),
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint.pt`` (and ``checkpoint-<iteration>.pt`` with keep_checkpoints) atomically.

        Only the rank that owns the run folder writes; raises :class:`TrainingDiverged`
        instead of writing a non-finite model or optimizer state.
        """
        if self.out is None:
            return None
        state = self.state_dict()
        if not ckpt.finite(state["model"], state["optimizer"]):
            raise self._diverged(self.iteration, None, "a parameter or optimizer state", None)
        payload = ckpt.serialize(state)
        path = self.out / ckpt.NAME
        keep = self.cfg.keep_checkpoints
        if keep:
            ckpt.atomic_write_bytes(self.out / f"checkpoint-{self.iteration:08d}.pt", payload)
            for old in sorted(self.out.glob("checkpoint-*.pt"))[:-keep]:
                old.unlink(missing_ok=True)
        ckpt.atomic_write_bytes(path, payload)
        self.last_checkpoint = (path, self.iteration)
        return path

    def _read_checkpoint(self, resume: bool | str | Path) -> dict[str, Any]:
        """Load and check a checkpoint, then restore it in memory; nothing on disk changes."""
        if resume is True:
            if self.cfg.out is None:
                raise ValueError("resume=True continues the run in the run folder: give out=... (--out)")
            path = Path(self.cfg.out) / ckpt.NAME
        else:
            path = Path(resume)
        state = ckpt.load(path)
        ckpt.check_signature(path, state["signature"], self.module.state_dict())
        mine = self._fingerprint()
        diff = [f"{k}={state['fingerprint'].get(k)!r} there, {v!r} here"
                for k, v in mine.items() if state["fingerprint"].get(k) != v]
        if diff:
            raise CheckpointError(
                f"checkpoint {path} was written by a run with other settings ({'; '.join(diff)}); "
                f"resume with the settings of that run"
            )
        if state["iteration"] > self.total:
            raise CheckpointError(f"checkpoint {path} is at iteration {state['iteration']}, past this run's budget {self.total}")
        index = state["phase"]
        try:
            if self.swats is not None:
                swats = Swats(self.optimizer, self.cfg.swats_eps)
                swats.load_state_dict(state["swats"])
                opt, sched = (self.optimizer, self.scheduler) if index == 0 else (swats.sgd(trainable(self.module)), None)
            else:
                swats = None
                opt, sched = self._build_phase(index, None)
            opt.load_state_dict(state["optimizer"])
            if (sched is None) != (state["scheduler"] is None):
                raise ValueError("one of the runs has a schedule and the other has none")
            if sched is not None:
                sched.load_state_dict(state["scheduler"])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path} does not fit this run's optimizer or schedule: {err}") from None
        # everything checked: commit
        self.module.load_state_dict(state["model"])
        self.phase_index = index
        if swats is not None:
            self.swats = swats
            if index == 1:
                self.phases = self.phases[:1] + [{"spec": Phase(None, "momentum", lr=swats.switch_lr, unit="iteration"),
                                                   "start": state["phase_log"][-1]["iteration"], "end": self.total}]
                self.phases[0]["end"] = self.phases[1]["start"]
        self._set_phase(opt, sched)
        self.iteration, self.epoch = state["iteration"], state["epoch"]
        self.batch_in_epoch, self.consumed = state["batch_in_epoch"], state["consumed"]
        r = state["running"]
        self._ev, self._en, self._wv, self._wn = list(r["ev"]), list(r["en"]), list(r["wv"]), list(r["wn"])
        self.history, self.log, self.phase_log = list(state["history"]), list(state["log"]), list(state["phase_log"])
        self._elapsed0 = float(state["elapsed"])
        self.last_checkpoint = (path, self.iteration)
        if self.stream is not None:
            for _ in islice(self.stream, self.consumed):
                pass
        ckpt.set_rng_state(state["rng"])
        return state

    # ------------------------------------------------------------------ the end
    def _finish(self, status: str, error: Exception | None = None) -> TrainResult:
        cfg, out = self.cfg, self.out
        self.progress.update(self.iteration, self.epoch if self.stream is None else None,
                             self.log[-1]["loss"] if self.log else None, lr_of(self.optimizer),
                             self.log[-1]["examples_per_s"] if self.log else None)
        final = self.final_metrics() if cfg.evaluate and status == "completed" else {}
        if status == "completed" and out is not None:
            self.save_checkpoint()
        seconds = self.elapsed()
        summary: dict[str, Any] = {
            "status": status, "iterations": self.iteration, "epochs": self.epoch, "seconds": seconds,
            **final,
            "iterations_per_epoch": self.iterations_per_epoch or None,
            "batches_per_epoch": self.batches_per_epoch or None, "budget": self.total,
            "data": self._data_info(), "model": {"class": type(self.module).__name__,
                                                 "parameters": models.n_parameters(self.module)},
            "config": cfg.resolved(), "phases": self.phase_log,
        }
        if error is not None:
            summary["error"] = str(error)
        figures: list[Path] = []
        if out is not None:
            self.metrics.offset()  # flush
            if cfg.plots and (self.log or self.history):
                from ..plots.training import plot_training

                figures = plot_training(out / "metrics.jsonl", out / "figures")
            summary.update({
                "run_dir": str(out), "metrics": str(out / "metrics.jsonl"),
                "checkpoint": str(self.last_checkpoint[0]) if self.last_checkpoint else None,
                "checkpoints": sorted(str(p) for p in out.glob("checkpoint*.pt")),
                "figures": [str(p) for p in figures],
            })
            ckpt.atomic_write_bytes(out / "summary.json", _json(summary))
        self.summary = summary
        if self.progress.progress is not None:  # an interactive run: the table under the bar
            self.progress.close()
            self.progress.console.print(summary_table(summary))
        return TrainResult(
            status=status, iterations=self.iteration, epochs=self.epoch, seconds=seconds, final=final,
            history=self.history, log=self.log, phases=self.phase_log, config=cfg.resolved(),
            run_dir=out, checkpoint=self.last_checkpoint[0] if self.last_checkpoint else None,
            metrics=out / "metrics.jsonl" if out else None, summary=out / "summary.json" if out else None,
            figures=figures,
        )

    def _data_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"task": self.task, "n_classes": self.n_classes}
        if self.dataset is not None:
            info.update(name=self.dataset.name, n_train=self.dataset.n_train, n_val=self.dataset.n_val,
                        n_test=self.dataset.n_test, n_features=self.dataset.n_features)
        if self.batches is not None:
            info.update(batch_size=self.batches.batch_size, n_train=self.batches.n)
        info["world_size"] = self.world
        return info


def _json(obj: Any) -> bytes:
    import json

    return (json.dumps(clean(obj), indent=2) + "\n").encode()


# ---------------------------------------------------------------------------- convenience


def build_model(name: str, dataset: D.Dataset, options: dict[str, Any] | None = None, seed: int = 0) -> nn.Module:
    """Model ``name`` sized for ``dataset`` by :func:`descend.models.build_for`, seeded with ``seed``."""
    return models.build_for(dataset, name, seed=seed, **(options or {}))


def train(
    dataset: str | D.Dataset,
    model: str | nn.Module = "mlp",
    config: TrainConfig | None = None,
    *,
    resume: bool | str | Path = False,
    callback: Callable[[Trainer], None] | None = None,
    console: Console | None = None,
    **options: Any,
) -> TrainResult:
    """Load ``dataset`` (by name), build ``model`` (by name) and train: one call.

    ``options`` are :class:`TrainConfig` fields. The split uses ``data_seed``;
    the model's initialization and the data order use ``seed``.

    >>> r = train("digits", "mlp", optimizer="adam", lr=1e-3, epochs=20)   # doctest: +SKIP
    >>> r.test_accuracy                                                     # doctest: +SKIP
    """
    cfg = config or TrainConfig()
    if options:
        cfg = dataclasses.replace(cfg, **options)
    if isinstance(model, str):
        key = model.strip().lower()
        if key not in models.names():
            raise ValueError(f"unknown model {model!r}; valid names: {', '.join(models.names())}")
    ds = D.load(dataset, seed=cfg.data_seed) if isinstance(dataset, str) else dataset
    if isinstance(model, str):
        cfg = dataclasses.replace(cfg, model=model.strip().lower())
        model = build_model(model, ds, cfg.model_options, seed=cfg.seed)
    cfg = dataclasses.replace(cfg, dataset=ds.name)
    return Trainer(model, ds, cfg, callback=callback, console=console).fit(resume=resume)
