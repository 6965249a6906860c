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
            every log_every  -> metric line (and on_progress)
            phase finished?  -> next phase's optimizer and scheduler (see descend.train.phases)
            callback(trainer); then every checkpoint_every -> checkpoint
    final evaluation of train/val/test, final checkpoint, summary.json, on_end(result)

Where the work lives: the batches in :mod:`~descend.train.feed`, phases and
SWATS in :mod:`~descend.train.phases`, DDP in :mod:`~descend.train.distributed`,
checkpoints and resume in :mod:`~descend.train.checkpoint`, the run folder,
summary and hints in :mod:`~descend.train.run`.

Batch sizes are customarily powers of two (note 003); ``None`` is the full batch.

**Hooks.** ``on_progress(event)`` receives every record the run writes
(``type`` ``"start"``, ``"iteration"``, ``"epoch"``, ``"eval"``, ``"phase"``)
with ``total`` (iterations) and ``epochs`` added (``"start"`` also carries ``notes``, what the run
does other than asked such as a batch clamped to the training set, and ``data``, how your own
file was read); ``on_end(result)`` runs
after ``summary.json`` is written and may return paths of figures it drew,
which are then listed in ``summary.json``. ``descend train`` draws its progress
bar (or plain lines) and figures through them; the Trainer itself prints nothing.

**Resume.** ``fit(resume=True)`` (the run folder's ``checkpoint.pt``) or
``fit(resume=path)`` restores the model, the current phase's optimizer and
scheduler, the phase, the counters, the position inside the epoch, the partial
loss sums, the history and every RNG state, and truncates ``metrics.jsonl`` to
what it held at the checkpoint. Build the Trainer exactly as for the original
run; on the CPU the resumed run then reproduces the uninterrupted one bit for
bit. A larger budget extends the run; other changed settings are refused with
the list of differences unless ``apply_changes=True`` (see
:func:`descend.train.checkpoint.restore`). A stream is resumed by skipping the
batches the checkpointed run had consumed. Under DDP the RNG state saved is rank 0's.

**Non-finite values.** On the CPU the loss is checked before each backward;
on accelerators at every metric line; descend optimizers check every gradient
before changing anything. Either raises :class:`TrainingDiverged` with the
iteration, the lr, the last good checkpoint and advice; ``summary.json``
records the failure and no checkpoint is written from a non-finite state.

**Ctrl-C.** A ``KeyboardInterrupt`` writes ``summary.json`` with status ``"interrupted"``, the
iteration reached and the checkpoint to resume from (no final evaluation, checkpoint or
``on_end``), then propagates.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import optim
from ..schedules import Schedule, Scheduler
from . import checkpoint as ckpt
from . import distributed as dd
from . import extra, run
from . import phases as ph
from .config import TrainConfig, lr_of, optimizer_name, trainable, with_options
from .errors import TrainingDiverged
from .feed import SPLITS, Feed, evaluate
from .run import TrainResult

Hook = Callable[[dict[str, Any]], None]


class Trainer:
    """Trains ``model`` on ``data`` as ``config`` says; see the module docstring.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to outputs.
        data: a :class:`descend.data.Dataset`, an ``(X, y)`` pair, a DataLoader or list of
            ``(xb, yb)`` batches (epochs), or an iterator of batches (a stream; needs ``iterations``).
        config: a :class:`TrainConfig`; keyword ``overrides`` replace its fields
            (``Trainer(model, ds, epochs=5, lr=0.1)``).
        loss: ``loss(outputs, targets) -> scalar``; default: cross-entropy for
            classifiers (binary CE for one logit), MSE for regression.
        eval_data: the splits to evaluate when ``data`` has none (see :mod:`descend.train.feed`).
        callback: called as ``callback(trainer)`` after every iteration; it may freeze or unfreeze
            parameters (``requires_grad_``); one it unfreezes must be in the optimizer, so build that
            on every parameter (``optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)``).
            ``trainer.stop(reason)`` ends the run after this iteration (early stopping).
        on_progress: called with every record (see "Hooks").
        on_end: called with the :class:`TrainResult`; may return figure paths.
        extra_state: ``{name: object}`` whose ``state_dict()`` every checkpoint holds and a resume loads
            back (``load_state_dict``): a torch LR scheduler stepped from ``callback``
            (``extra_state={"sched": sched}``), an EMA; see :mod:`descend.train.extra`.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        config: TrainConfig | None = None,
        *,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        eval_data: Any = None,
        callback: Callable[[Trainer], None] | None = None,
        on_progress: Hook | None = None,
        on_end: Callable[[TrainResult], Any] | None = None,
        extra_state: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        for name, hook in (("loss", loss), ("callback", callback), ("on_progress", on_progress), ("on_end", on_end)):
            if hook is not None and not callable(hook):
                raise ValueError(f"{name} must be a function or None, got {hook!r}")
        self.cfg = cfg = with_options(config or TrainConfig(), overrides)
        # the settings as given, before a Scheduler sets an lr on an optimizer given as an instance (whose
        # repr shows it): what checkpoints and summary.json record, and what a resume compares
        self.settings = cfg.resolved()
        self.extra_state = extra.check(extra_state)
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        try:
            device = torch.device(cfg.device)
        except RuntimeError:
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {cfg.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {cfg.device!r} is not available here (torch.cuda.is_available() is False)")
        self.rank, self.world, self._owns_group, self.device = dd.join(cfg.distributed, device)
        try:
            self._build(model, data, eval_data, loss)
        except BaseException:
            dd.leave(self._owns_group)
            raise
        self.callback, self.on_progress, self.on_end = callback, on_progress, on_end
        extra.warn_unsaved(self)

    def _build(self, model: nn.Module, data: Any, eval_data: Any, loss: Any) -> None:
        cfg = self.cfg
        self.module = model.to(self.device)
        self.feed = Feed(data, eval_data, cfg, self.device, self.rank, self.world)
        self.stream = self.feed.stream
        self.dataset = self.feed.dataset
        self.task, self.n_classes = self.feed.task, self.feed.n_classes
        self.batches_per_epoch, self.iterations_per_epoch = self.feed.batches_per_epoch, self.feed.iterations_per_epoch
        self._check_dtype()
        self.loss_fn = loss or self.feed.default_loss(self.module)
        self._cpu = self.device.type == "cpu"
        self.phases = ph.plan(cfg, self.iterations_per_epoch)
        self.total = self.phases[-1]["end"]
        self._check_stream_plateau()
        self.swats: ph.Swats | None = None
        self.phase_index = 0
        self._set_phase(*self._build_phase(0, None))
        if cfg.swats:
            self.swats = ph.Swats(self.optimizer, cfg.swats_eps)
        uses_newton = self._closure or any(
            isinstance(p["spec"].optimizer, str) and optim.registry.key_of(p["spec"].optimizer.split(":")[0]) == "newton"
            for p in self.phases)
        if uses_newton and (cfg.accumulate > 1 or cfg.clip_norm or cfg.clip_value or self.world > 1):
            raise ValueError("Newton takes full steps from a closure: no accumulation, clipping or DDP")
        self.model: nn.Module = dd.wrap(self.module, self.device, self.world)
        self.iteration, self.epoch, self.batch_in_epoch, self.consumed = 0, 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.phase_log: list[dict[str, Any]] = [self._phase_record("start")]
        self.changes: list[dict[str, Any]] = []
        self.resume_notes: list[str] = []  # what a resume changed besides the budget (a stretched schedule)
        self._ev: list[Any] = []  # per batch: mean loss (epoch)
        self._en: list[int] = []  # per batch: examples (epoch)
        self._wv: list[Any] = []  # the same since the last metric line
        self._wn: list[int] = []
        self.out = Path(cfg.out) if cfg.out is not None and self.rank == 0 else None
        if cfg.tensorboard and not run.TensorBoard.available():
            raise ValueError("tensorboard=True but the tensorboard package is not installed "
                             "(pip install 'descend[logging]'); leave tensorboard=None to use it when present")
        self.last_checkpoint: tuple[Path, int] | None = None
        self.stop_reason: str | None = None
        self._elapsed0 = 0.0

    def _check_stream_plateau(self) -> None:
        """A plateau follows a loss taken at each epoch's end; a stream has no epochs, so it is fed every
        ``eval_interval`` iterations (see ``_evaluate_stream``): without one it would never be fed, and
        its lr would silently never move."""
        if self.stream is None or self.cfg.eval_interval is not None:
            return
        for i, phase in enumerate(self.phases):
            schedule = phase["spec"].schedule
            if isinstance(schedule, Schedule) and schedule.stateful:
                where = f"phase {i + 1}'s schedule" if self.cfg.phases else "schedule"
                raise ValueError(
                    f"{where} {schedule!r} is a plateau, which follows a loss, but this run trains from a stream, "
                    f"which has no epochs to take one at, and gives no eval_interval: its lr would never move. "
                    f"Give eval_interval=N: every N iterations the plateau is fed the validation loss (give "
                    f"eval_data) or, without validation data, the mean training loss of those N iterations"
                )

    def _check_dtype(self) -> None:
        """A clear error for inputs of another float dtype than the model's (float32 data, a .double()
        model), which torch reports from deep inside the forward; a model that casts them is let be."""
        dtypes = {p.dtype for p in self.module.parameters() if p.is_floating_point()}
        x = self.feed.example_input() if len(dtypes) == 1 else None
        if x is None or not x.is_floating_point() or x.dtype in dtypes:
            return
        was = self.module.training
        try:
            with torch.no_grad():
                self.module.eval()(x)
        except RuntimeError:
            (dtype,) = dtypes
            raise ValueError(
                f"the model's parameters are {dtype} but the data's inputs are {x.dtype}; convert one to "
                f"the other, e.g. the data with X.to({dtype}) or the model with model.to({x.dtype})"
            ) from None
        finally:
            self.module.train(was)

    def _build_phase(self, index: int, carry: list[float] | None) -> tuple[Any, Scheduler | None]:
        return ph.build(self.cfg, self.phases[index], self.module, self.iterations_per_epoch, carry)

    def _set_phase(self, opt: Any, sched: Scheduler | None) -> None:
        self.optimizer, self.scheduler = opt, sched
        self._iter_sched = sched is not None and sched.unit == "iteration"
        self._phase_end = self.phases[self.phase_index]["end"] if self.phase_index < len(self.phases) else self.total
        self._params = [p for p in self.module.parameters() if p.requires_grad]
        self._closure = isinstance(opt, optim.Newton)

    def _phase_record(self, reason: str) -> dict[str, Any]:
        return {"type": "phase", "phase": self.phase_index, "iteration": self.iteration,
                "optimizer": optimizer_name(self.optimizer), "lr": lr_of(self.optimizer), "reason": reason}

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool | str | Path = False, *, apply_changes: bool = False) -> TrainResult:
        """Train to the end of the budget; ``resume`` continues from a checkpoint (see the module docstring)."""
        state = ckpt.restore(self, resume, apply_changes) if resume else None
        run.open_run(self, state)
        self._t0 = self._wt = time.perf_counter()
        if state is None:
            torch.default_generator.manual_seed(self.cfg.seed + self.rank)  # torch.manual_seed, CPU only
            if self.device.type == "cuda":
                torch.cuda.manual_seed_all(self.cfg.seed + self.rank)
            np.random.seed(self.cfg.seed)
            random.seed(self.cfg.seed)
            self._record(self.phase_log[0])
        self._emit({"type": "start", "iteration": self.iteration,
                    "epoch": None if self.stream is not None else self.epoch,
                    "lr": lr_of(self.optimizer), "resumed": state is not None, "notes": self.notes,
                    "data": self.feed.info().get("note")})
        self.module.train()
        try:
            self._train()
            return run.finish(self, "stopped" if self.stop_reason is not None else "completed")
        except TrainingDiverged as err:
            run.finish(self, "diverged", err)
            raise
        except KeyboardInterrupt:  # Ctrl-C: summary.json says where the run stopped and how to go on
            run.finish(self, "interrupted", run.interruption(self))
            raise
        finally:
            run.close(self)

    def _train(self) -> None:
        """The loop: one optimizer step per pass, bookkeeping only where it is due."""
        cfg, every = self.cfg, self.cfg.checkpoint_every
        if self.iteration >= self.total:
            return
        for group, scales in self.feed.groups(self.epoch, self.batch_in_epoch):
            it = self.iteration + 1
            log_now = it % cfg.log_every == 0
            lrs = [float(g["lr"]) for g in self.optimizer.param_groups] if log_now or it == self._phase_end else None
            swats = self.swats if self.phase_index == 0 else None
            if swats is not None:
                swats.before_step()
            try:
                self._step(group, scales, it, lrs)  # forward, backward, clip, optimizer step
            except ValueError as err:
                raise self._explained(err, group) from err
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
            if self.callback is not None:
                self.callback(self)
                self._check_trainable()  # (a callback may freeze or unfreeze parameters)
                if self.stop_reason is not None:
                    return  # (the final checkpoint follows)
            if every and it % every == 0 and it < self.total:
                self.save_checkpoint()  # (after the callback: it holds what the callback did at this iteration)
            if it >= self.total:
                return

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
        if self.cfg.clip_norm is not None or self.cfg.clip_value is not None:
            self._clip(it, lrs)
        try:
            opt.step()
        except optim.NonFiniteGradientError:
            raise self._diverged(it, lrs, "a gradient", None) from None

    def _clip(self, it: int, lrs: list[float] | None) -> None:
        """Clip the gradients of every parameter the optimizer steps: those of its param groups, the
        model's and any it holds beside them (a learnable loss temperature), in their order, as a hand
        loop's ``clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], c)``; a parameter
        without a gradient (frozen) is left out, as torch does."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.cfg.clip_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_norm, foreach=True)
            if not math.isfinite(float(norm)):
                raise self._diverged(it, lrs, "the gradient norm", float(norm))
        if self.cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, self.cfg.clip_value, foreach=True)

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

    def _explained(self, err: ValueError, group: Sequence) -> ValueError:
        """BatchNorm's refusal of a one-example batch, told in the run's terms (the last batch of an
        epoch that the batch size does not divide); other errors as they are."""
        if "more than 1 value per channel" not in str(err):
            return err
        size = min(int(xb.shape[0]) for xb, _ in group)
        where = f" (epoch {self.epoch + 1})" if self.stream is None else ""
        return ValueError(
            f"a training batch of {size} example reached the model's BatchNorm at iteration {self.iteration + 1}"
            f"{where}, which needs at least 2 in training mode ({err}); this is the rest of an epoch "
            f"the batch size does not divide: use drop_last=True (DataLoader(..., drop_last=True) for a loader) or "
            f"another batch size"
        )

    def _check_trainable(self) -> None:
        """Follow parameters frozen or unfrozen since the last step; refuse an unfrozen one the optimizer does not hold, which would silently never train."""
        params = [p for p in self.module.parameters() if p.requires_grad]
        if len(params) == len(self._params) and all(a is b for a, b in zip(params, self._params)):
            return
        held = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        missing = [n for n, p in self.module.named_parameters() if p.requires_grad and id(p) not in held]
        if missing:
            raise ValueError(
                f"parameters {', '.join(missing)} were unfrozen (requires_grad=True) at iteration "
                f"{self.iteration}, but the optimizer ({optimizer_name(self.optimizer)}) was built without "
                f"them, on the parameters then trainable, so they would never train. To unfreeze during a "
                f"run, build the optimizer on every parameter (frozen ones, having no gradient, are skipped): "
                f"optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)"
            )
        self._params = params

    def _note_loss(self, loss: torch.Tensor, n: int, it: int, lrs: list[float] | None) -> None:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss must return one number as a tensor (the batch's mean loss, which backward() "
                             f"needs), got {got}; reduce it, e.g. reduction='mean' or .mean()")
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
        last = self.last_checkpoint
        cause = None
        if it == 1 and what != "a parameter or optimizer state":  # (the forward and backward of step 1: before it)
            cause = ("this is the initial model on the first batch, before any step, so no lr causes it: look at "
                     "the data's scale" + self._target_scale() + " and the model")
        return TrainingDiverged(
            iteration=it, epoch=self.epoch if self.stream is None else None, lr=lrs[0] if lrs else lr_of(self.optimizer),
            checkpoint=last[0] if last else None, checkpoint_iteration=last[1] if last else None,
            what=what, value=value, cause=cause,
        )

    def _target_scale(self) -> str:
        """`` (the regression targets reach ...)`` when their squares pass the loss dtype's range, else ''."""
        batches = self.feed.batches
        if self.feed.task != "regression" or batches is None or not batches.y.is_floating_point():
            return ""
        big = float(batches.y.abs().max())
        if big * big <= torch.finfo(batches.y.dtype).max:
            return ""
        dtype = str(batches.y.dtype).removeprefix("torch.")
        return (f" (the regression targets reach {big:.3g}: their squares pass {dtype}'s largest number, "
                f"{torch.finfo(batches.y.dtype).max:.2g}; rescale them, e.g. divide by "
                f"{10 ** math.floor(math.log10(big)):.0e})")

    # ------------------------------------------------------------------ epochs, logs, phases
    def _end_epoch(self) -> None:
        cfg = self.cfg
        train_loss = dd.reduced_mean(self._ev, self._en, self.world, self.device)
        rec: dict[str, Any] = {"type": "epoch", "epoch": self.epoch + 1, "iteration": self.iteration,
                               "phase": self.phase_index, "train_loss": train_loss}
        # a plateau follows the validation loss when the run evaluates on one, at those epochs only
        # (not the training loss in between: the two are not comparable), else the training loss
        validates = bool(cfg.evaluate and cfg.eval_every and self.feed.has("val"))
        metric = None if validates else train_loss
        if validates and (self.epoch + 1) % cfg.eval_every == 0:
            ev = self.evaluate("val")
            rec["val_loss"] = metric = ev["loss"]
            if "accuracy" in ev:
                rec["val_accuracy"] = ev["accuracy"]
        rec["lr"] = lr_of(self.optimizer)
        if self.scheduler is not None:
            if self.scheduler.unit == "epoch":
                self.scheduler.step(metric if self.scheduler.needs_metric else None)
            elif self.scheduler.needs_metric and metric is not None:
                self.scheduler.observe(metric)
        rec["elapsed"] = self.elapsed()
        self.history.append(rec)
        self._record(rec)
        if not self._cpu and not math.isfinite(train_loss):  # accelerators: checked here, not per step
            raise self._diverged(self.iteration, None, "the epoch's training loss", train_loss)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._ev, self._en = [], []

    def _evaluate_stream(self) -> None:
        """Every ``eval_interval`` iterations of a stream, as at an epoch's end: evaluate on val, and feed
        a plateau the validation loss, or the mean training loss of these iterations when the run does
        not evaluate on validation data (the window then starts over)."""
        plateau = self.scheduler is not None and self.scheduler.needs_metric
        validates = bool(self.cfg.evaluate and self.feed.has("val"))
        if plateau and not validates:
            self.scheduler.observe(dd.reduced_mean(self._ev, self._en, self.world, self.device))
        self._ev, self._en = [], []
        if not validates:
            return
        ev = self.evaluate("val")
        if plateau:
            self.scheduler.observe(ev["loss"])
        rec = {"type": "eval", "iteration": self.iteration, "phase": self.phase_index,
               **{f"val_{k}": v for k, v in ev.items()}, "elapsed": self.elapsed()}
        self.history.append(rec)
        self._record(rec)

    def _log_iteration(self, lr: float) -> None:
        now = time.perf_counter()
        loss = dd.mean(self._wv, self._wn)
        speed = sum(self._wn) * self.world / max(now - self._wt, 1e-12)
        rec = {"type": "iteration", "iteration": self.iteration,
               "epoch": self.epoch if self.stream is None else None, "phase": self.phase_index,
               "loss": loss, "lr": lr, "examples_per_s": speed, "elapsed": self.elapsed()}
        self._wv, self._wn, self._wt = [], [], now
        self.log.append(rec)
        self._record(rec)
        if not math.isfinite(loss):
            raise self._diverged(self.iteration, [lr], "the loss", loss)

    def _next_phase(self, lrs: list[float] | None, reason: str) -> None:
        self.phase_index += 1
        if reason == "swats":
            self.phases = self.phases[:1] + [ph.swats_phase(self.iteration, self.total, self.swats.switch_lr)]
            self.phases[0]["end"] = self.iteration
            self._set_phase(self.swats.sgd(trainable(self.module)), None)
        else:
            self._set_phase(*self._build_phase(self.phase_index, lrs if self.cfg.carry_lr else None))
        rec = self._phase_record(reason)
        self.phase_log.append(rec)
        self._record(rec)

    def _record(self, rec: dict[str, Any]) -> None:
        self.metrics.write(rec)
        self.tensorboard.write(rec)
        self._emit(rec)

    def _emit(self, rec: dict[str, Any]) -> None:
        if self.on_progress is not None and self.rank == 0 and self.cfg.progress is not False:
            epochs = self.total // self.iterations_per_epoch if self.iterations_per_epoch else None
            self.on_progress({**rec, "total": self.total, "epochs": epochs})

    def stop(self, reason: str = "the callback stopped the run") -> None:
        """Stop after the current iteration (call it from ``callback``: early stopping). The run ends as
        one that completed, with final metrics, checkpoint and summary, but status ``"stopped"``
        and ``reason`` first among the hints."""
        self.stop_reason = str(reason)

    @property
    def notes(self) -> list[str]:
        """What the run does other than asked: a batch clamped to the data, a schedule a resume fitted."""
        return [*self.feed.notes, *self.resume_notes]

    def elapsed(self) -> float:
        """Seconds of training so far, including those before a resume."""
        return self._elapsed0 + time.perf_counter() - self._t0

    # ------------------------------------------------------------------ evaluation and checkpoints
    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Mean loss (and accuracy for classifiers) of the current model on ``split``, in eval mode."""
        return evaluate(self.feed, self.module, self.loss_fn, split, self.cfg.eval_batch_size)

    def final_metrics(self) -> dict[str, float | None]:
        """``{split}_loss`` and (classifiers) ``{split}_accuracy`` for train, val and test."""
        out: dict[str, float | None] = {}
        for split in SPLITS:
            if self.feed.has(split):
                ev = self.evaluate(split)
                out[f"{split}_loss"] = ev["loss"]
                if "accuracy" in ev:
                    out[f"{split}_accuracy"] = ev["accuracy"]
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint holds (see :mod:`descend.train.checkpoint`)."""
        return ckpt.trainer_state(self)

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoint.pt`` atomically (see :func:`descend.train.checkpoint.save_run`)."""
        return ckpt.save_run(self)
