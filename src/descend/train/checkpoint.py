"""Checkpoints that survive a crash: atomic writes, validated reads, every RNG.

A checkpoint is one ``torch.save`` file (it loads with ``weights_only=True``)
holding ``{"format", "sha256", "payload"}``: ``payload`` is the bytes of a
second ``torch.save`` of the state below (tensors, numbers, strings, lists and
dicts only) and ``sha256`` its SHA-256. :func:`load` checks the format and the
checksum before it unpickles anything of the payload, then the type and shape of
every entry (:mod:`descend.train.schema`: a file crafted with a valid checksum
but another structure is refused as well), and calls a file that fails any of
these *corrupt*, in those words; it never suggests
``weights_only=False`` (unpickling an untrusted file runs code). The state:

==================  ==========================================================
``model``           the (unwrapped) model's ``state_dict``, buffers included
``signature``       ``{name: shape}`` of that state dict, to reject another model
``optimizer``       the current phase's optimizer ``state_dict``
``scheduler``       the current phase's ``Scheduler.state_dict`` (or None)
``phase``           phase index and the iteration it started at; SWATS state
``position``        iteration, epoch, batches consumed in the epoch
``running``         the epoch's and the log window's partial loss sums
``rng``             torch (CPU and CUDA), numpy and Python generator states
``history``         epoch records and logged iteration records so far
``metrics_offset``  the size of ``metrics.jsonl`` when it was written
``fingerprint``     batch size, seed, data size, phases...: what must match to resume
``config``          the run's resolved :class:`~descend.train.TrainConfig`
``changes``         settings changed on resume (``apply_changes=True``), with the iteration
``extra_state``     ``{name: state_dict()}`` of the Trainer's ``extra_state`` (a torch scheduler)
==================  ==========================================================

The trainer's side (what goes in, how a run is restored from it, and which
changed settings a resume refuses) is :func:`save_run` and :func:`restore`.

**Atomic write.** The bytes go to a temporary file next to the target
(``.checkpoint.pt.tmp-<pid>``), are flushed and fsynced, and the file is then
renamed over the target with ``os.replace`` (atomic on POSIX and Windows), and
the folder is fsynced. A crash at any moment leaves either the old or the new
checkpoint, never a mixture; a leftover temporary file (its process has ended)
is removed when the run folder is opened again, and by a resume that finds no
checkpoint (a run killed while it wrote its first), which says so.

**One run per folder.** A run holds a lock on its folder while it goes
(:func:`lock_folder`); a second run in the same folder, resumed or started over,
is refused before it changes anything.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..schedules.base import without_addresses
from . import extra, schema
from .config import trainable
from .errors import CheckpointError
from .phases import Swats, swats_phase

FORMAT = "descend.train.checkpoint/2"
NAME = "checkpoint.pt"


def _write(f: Any, payload: bytes) -> None:
    """Write ``payload`` to the open file ``f`` (one place, so tests can interrupt it)."""
    f.write(payload)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            _write(f, payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - folders cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _ended(pid: str) -> bool:
    """Whether the process ``pid`` (from a temporary file's name) has ended, so its write never will."""
    if not pid.isdigit() or int(pid) == os.getpid() or os.name == "nt":  # (Windows: signal 0 is CTRL_C)
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # (alive, another user's)
        return False
    return False


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the ``.*.tmp-<pid>`` files that interrupted writes left in ``folder`` (a process killed
    while writing); a live process's own is left to it. Returns the files removed."""
    gone = []
    for p in Path(folder).glob(".*.tmp-*"):
        if _ended(p.name.rpartition("-")[2]):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def lock_folder(folder: Path) -> int | None:
    """Hold an exclusive lock on the run folder until :func:`unlock_folder` or the end of the process
    (killed or not): a second run in the same folder is refused (ValueError) instead of clearing or
    truncating the files of the one that is going. An ``flock`` on the folder itself: no lock file is
    left behind. POSIX; elsewhere, and on file systems without locks, nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(f"run folder {folder} is in use by another run that is still going (it holds the "
                         f"folder's lock); wait for it to end, or pick another folder (--out)") from None
    except OSError:  # pragma: no cover - no locks here
        os.close(fd)
        return None
    return fd


def unlock_folder(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # (releases the flock)


def serialize(state: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint holding ``state``: the payload, its SHA-256 and the format tag."""
    inner = io.BytesIO()
    torch.save(state, inner)
    payload = inner.getvalue()
    outer = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, outer)
    return outer.getvalue()


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Serialize ``state`` and write it atomically to ``path``."""
    atomic_write_bytes(path, serialize(state))


def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is corrupt: {why}. It cannot be resumed; use an earlier checkpoint "
        f"(Trainer's keep_checkpoints=N keeps several: copy one over checkpoint.pt) or start over with --overwrite"
    )


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`, verifying its checksum and its keys.

    Raises :class:`CheckpointError` naming the path when the file is missing,
    is not a descend checkpoint, or is corrupt (truncated, changed bytes, missing keys).
    """
    path = Path(path)
    if not path.is_file():
        torn = [p.name for p in remove_temporaries(path.parent) if p.name.startswith(f".{path.name}.tmp-")]
        if torn:
            raise CheckpointError(
                f"no checkpoint at {path}: the run was stopped while it wrote its first checkpoint (the "
                f"unfinished {', '.join(torn)} is not one, and was removed); nothing to resume: start over "
                f"with --overwrite"
            )
        raise CheckpointError(
            f"no checkpoint at {path}; nothing to resume (check --out; a run that stopped before "
            f"its first checkpoint starts over with --overwrite)"
        )
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch's text may suggest weights_only=False: never repeat it
        raise _corrupt(path, "the file is truncated or its bytes are damaged (it does not read as a checkpoint)") from None
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        tag = outer.get("format") if isinstance(outer, dict) else None
        if isinstance(tag, str) and tag.startswith("descend.train.checkpoint/"):
            raise CheckpointError(f"{path} is a checkpoint of another format ({tag}); this descend reads {FORMAT}")
        raise CheckpointError(f"{path} is not a descend training checkpoint ({FORMAT})")
    payload = outer.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8 or not isinstance(outer.get("sha256"), str):
        raise _corrupt(path, "its payload or checksum is missing")
    data = payload.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != outer["sha256"]:
        raise _corrupt(path, "its checksum does not match its contents (bytes were changed after it was written)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001
        raise _corrupt(path, "its payload does not read as a training state") from None
    try:
        schema.check_state(state)
    except schema.BadState as err:
        raise _corrupt(path, str(err)) from None
    return state


def signature(state_dict: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    """``{name: shape}`` of a model state dict."""
    return {k: list(v.shape) for k, v in state_dict.items()}


def check_signature(path: Path, saved: dict[str, list[int]], model_sd: dict[str, torch.Tensor]) -> None:
    """CheckpointError unless the checkpoint's model has exactly this model's tensors and shapes."""
    mine = signature(model_sd)
    if saved == mine:
        return
    missing = sorted(set(mine) - set(saved))
    extra = sorted(set(saved) - set(mine))
    shapes = [f"{k}: {saved[k]} vs {mine[k]}" for k in mine if k in saved and saved[k] != mine[k]]
    details = []
    if missing:
        details.append(f"it lacks {', '.join(missing[:5])}")
    if extra:
        details.append(f"it has extra {', '.join(extra[:5])}")
    if shapes:
        details.append(f"shapes differ ({'; '.join(shapes[:5])})")
    raise CheckpointError(
        f"checkpoint {path} was saved from another model: {', '.join(details)}; build the model as "
        f"in the run that wrote it"
    )


def finite(*trees: Any) -> bool:
    """Whether every floating tensor inside ``trees`` (dicts, lists) is finite."""
    stack = list(trees)
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            if x.is_floating_point() and x.numel() and not bool(torch.isfinite(x).all()):
                return False
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list | tuple):
            stack.extend(x)
    return True


# ---------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """torch (CPU, every CUDA device), numpy and Python RNG states, as plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached),
        },
        "python": [py[0], list(py[1]), py[2]],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------------- the trainer's side

# Settings that never decide the numbers of a run: they may differ on resume without a word.
FREE = ("out", "overwrite", "progress", "plots", "tensorboard", "checkpoint_every", "keep_checkpoints",
        "eval_batch_size", "device", "distributed", "log_every")
# Settings a resume can apply (``apply_changes=True``): they change hyperparameters or the
# model's behaviour, not the data order or the model's shape.
APPLICABLE = ("lr", "weight_decay", "l1", "optimizer", "optimizer_options", "schedule", "schedule_unit", "warmup",
              "clip_norm", "clip_value", "model_options", "eval_every", "eval_interval", "evaluate", "carry_lr",
              "swats_eps")
BUDGET = ("epochs", "iterations")


def fingerprint(tr: Any) -> dict[str, Any]:
    """What must match for a resume to continue the same data order and phases."""
    b = tr.feed.batches
    return {
        "batch_size": b.batch_size if b is not None else None,
        "n_train": b.n if b is not None else None,
        "seed": tr.cfg.seed, "shuffle": tr.cfg.shuffle, "drop_last": tr.cfg.drop_last,
        "accumulate": tr.cfg.accumulate, "world_size": tr.world, "swats": tr.cfg.swats,
        "phase_starts": [p["start"] for p in tr.phases[: (1 if tr.cfg.swats else None)]],
    }


def trainer_state(tr: Any) -> dict[str, Any]:
    """Everything a checkpoint of the Trainer ``tr`` holds (see the module docstring)."""
    model_sd = tr.module.state_dict()

    def floats(xs: list[Any]) -> list[float]:
        return [float(x) for x in xs]

    return {
        "iteration": tr.iteration, "epoch": tr.epoch, "batch_in_epoch": tr.batch_in_epoch,
        "consumed": tr.consumed, "phase": tr.phase_index,
        "model": model_sd, "signature": signature(model_sd),
        "optimizer": tr.optimizer.state_dict(), "optimizer_name": type(tr.optimizer).__name__,
        "scheduler": tr.scheduler.state_dict() if tr.scheduler is not None else None,
        "swats": tr.swats.state_dict() if tr.swats is not None else None,
        "rng": rng_state(),
        "running": {"ev": floats(tr._ev), "en": list(tr._en), "wv": floats(tr._wv), "wn": list(tr._wn)},
        "history": tr.history, "log": tr.log, "phase_log": tr.phase_log,
        "metrics_offset": tr.metrics.offset(), "metrics_sha256": tr.metrics.digest(), "fingerprint": fingerprint(tr),
        "elapsed": tr.elapsed(), "config": tr.settings, "changes": tr.changes, "extra_state": extra.gather(tr),
    }


def save_run(tr: Any) -> Path | None:
    """Write ``checkpoint.pt`` (and ``checkpoint-<iteration>.pt`` with keep_checkpoints) atomically.

    Only the rank that owns the run folder writes; raises :class:`TrainingDiverged`
    instead of writing a non-finite model or optimizer state.
    """
    if tr.out is None:
        return None
    state = trainer_state(tr)
    if not finite(state["model"], state["optimizer"]):
        raise tr._diverged(tr.iteration, None, "a parameter or optimizer state", None)
    payload = serialize(state)
    path = tr.out / NAME
    keep = tr.cfg.keep_checkpoints
    if keep:
        atomic_write_bytes(tr.out / f"checkpoint-{tr.iteration:08d}.pt", payload)
        for old in sorted(tr.out.glob("checkpoint-*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    atomic_write_bytes(path, payload)
    tr.last_checkpoint = (path, tr.iteration)
    return path


def _plain(value: Any) -> Any:
    """``value`` with the addresses of default reprs (`` at 0x7f...``) removed from its texts: they
    differ in every process, so they never make two settings differ."""
    if isinstance(value, str):
        return without_addresses(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def changed_settings(saved: dict[str, Any], given: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{setting: (saved, given)}`` for every setting that differs, except the free ones."""
    return {k: (saved.get(k), v) for k, v in given.items() if k not in FREE and _plain(saved.get(k)) != _plain(v)}


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    def shown(v: Any) -> str:
        return "the default" if v is None else repr(v)

    return "; ".join(f"{k}: {shown(a)} saved, {shown(b)} given" for k, (a, b) in changes.items())


def _check_changes(path: Path, tr: Any, state: dict[str, Any], apply_changes: bool) -> dict[str, tuple[Any, Any]]:
    changes = changed_settings(state["config"], tr.settings)
    budget = {k: v for k, v in changes.items() if k in BUDGET}
    rest = {k: v for k, v in changes.items() if k not in BUDGET}
    blocked = [k for k in rest if k not in APPLICABLE]
    if blocked:  # (first: another data set also changes what the budget means)
        raise CheckpointError(
            f"checkpoint {path}: {describe_changes({k: rest[k] for k in blocked})} cannot change on resume "
            f"(they decide the data order, the model or the phases); resume with the saved settings (leave "
            f"these out) or start a new run in another folder"
        )
    if rest and not apply_changes:
        raise CheckpointError(
            f"checkpoint {path} was written with other settings ({describe_changes(rest)}); resume with "
            f"the saved settings (leave these out), or apply the new ones with --apply-changes "
            f"(apply_changes=True), which records them in the run folder"
        )
    if state["iteration"] > tr.total:
        why = f" ({describe_changes(budget)})" if budget else ""
        raise CheckpointError(
            f"checkpoint {path} is at iteration {state['iteration']} (epoch {state['epoch']}), past this run's "
            f"budget {tr.total}{why}; give a budget of at least {state['iteration']} iterations"
            + (f" or {state['epoch']} epochs" if tr.iterations_per_epoch else "")
        )
    return changes


def restore(tr: Any, resume: bool | str | Path, apply_changes: bool = False) -> dict[str, Any]:
    """Load and check a checkpoint, then restore the Trainer ``tr`` from it; nothing on disk changes.

    Refused (:class:`CheckpointError`): another model, another data order (batch size, seed,
    data size...), a budget smaller than the checkpoint's iteration, and any other changed
    setting unless ``apply_changes``; then the new lr, weight decay, dropout, ... apply from
    the checkpoint's iteration on and are recorded in ``changes.jsonl``. A larger budget
    (``epochs``/``iterations``) extends the run; a schedule fitted to the budget (cosine, linear,
    one-cycle, ...) then follows the new budget from the checkpoint's step on, so the lr changes
    there (``tr.resume_notes`` says so; a schedule that does not depend on the budget, or none,
    continues exactly as an unbroken run of the new length).
    """
    if resume is True:
        if tr.cfg.out is None:
            raise ValueError("resume=True continues the run in the run folder: give out=... (--out)")
        path = Path(tr.cfg.out) / NAME
    else:
        path = Path(resume)
    state = load(path)
    changes = _check_changes(path, tr, state, apply_changes)
    mine_sd = tr.module.state_dict()
    if changes and list(state["signature"].values()) == list(signature(mine_sd).values()):
        # e.g. a dropout layer added or removed: same tensors in the same order, other module indices
        rename = dict(zip(state["model"], mine_sd))
        state["model"] = dict(zip(mine_sd, state["model"].values()))
        for group in state["optimizer"].get("param_groups", []):
            if "param_names" in group:
                group["param_names"] = [rename.get(n, n) for n in group["param_names"]]
    else:
        check_signature(path, state["signature"], mine_sd)
    mine = fingerprint(tr)
    diff = [f"{k}={state['fingerprint'].get(k)!r} there, {v!r} here"
            for k, v in mine.items() if state["fingerprint"].get(k) != v]
    if diff:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with other settings ({'; '.join(diff)}); "
            f"resume with the settings of that run"
        )
    try:
        schema.check_for_run(state, tr)
    except schema.BadState as err:
        raise CheckpointError(f"checkpoint {path} does not fit this run: {err}; resume it with the model and "
                              f"settings of the run that wrote it") from None
    extra.check_saved(tr, path, state)
    _restore_optimizer(tr, path, state, changes)
    extra.load(tr, path, state)
    tr.iteration, tr.epoch = state["iteration"], state["epoch"]
    tr.batch_in_epoch, tr.consumed = state["batch_in_epoch"], state["consumed"]
    r = state["running"]
    tr._ev, tr._en, tr._wv, tr._wn = list(r["ev"]), list(r["en"]), list(r["wv"]), list(r["wn"])
    tr.history, tr.log, tr.phase_log = list(state["history"]), list(state["log"]), list(state["phase_log"])
    tr.changes = list(state.get("changes") or [])
    if changes:
        tr.changes.append({"iteration": tr.iteration, "changes": {k: {"saved": a, "given": b}
                                                                  for k, (a, b) in changes.items()}})
    tr._elapsed0 = float(state["elapsed"])
    tr.last_checkpoint = (path, tr.iteration)
    tr.feed.skip_stream(tr.consumed)
    set_rng_state(state["rng"])
    return state


def _restore_optimizer(tr: Any, path: Path, state: dict[str, Any], changes: dict[str, Any]) -> None:
    index, changed = state["phase"], bool(changes)
    try:
        if tr.swats is not None:
            swats = Swats(tr.optimizer, tr.cfg.swats_eps)
            swats.load_state_dict(state["swats"])
            opt, sched = (tr.optimizer, tr.scheduler) if index == 0 else (swats.sgd(trainable(tr.module)), None)
        else:
            swats = None
            opt, sched = tr._build_phase(index, None)
        schema.check_optimizer_state(state["optimizer"], opt)
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
        opt.load_state_dict(state["optimizer"])
        if changed:  # the new settings' hyperparameters replace the saved ones
            for g, f in zip(opt.param_groups, fresh):
                g.update(f)
        _restore_schedule(tr, sched, state, changes)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this run's optimizer or schedule: {err}") from None
    tr.module.load_state_dict(state["model"])
    tr.phase_index = index
    if swats is not None:
        tr.swats = swats
        if index == 1:
            tr.phases = tr.phases[:1] + [swats_phase(state["phase_log"][-1]["iteration"], tr.total, swats.switch_lr)]
            tr.phases[0]["end"] = tr.phases[1]["start"]
    tr._set_phase(opt, sched)


def _restore_schedule(tr: Any, sched: Any, state: dict[str, Any], changes: dict[str, Any]) -> None:
    """Load the Scheduler's state; with changed settings (``apply_changes``), the schedule they give.

    A stretched or rescaled schedule continues from the step it had reached; a schedule given where
    the run had none (or one counted in another unit) starts at the step its phase has reached, as
    if it had been there from the start of the phase; a schedule left out leaves the lr the new
    settings give."""
    saved, it = state["scheduler"], state["iteration"]
    given = any(k in changes for k in ("schedule", "warmup", "schedule_unit"))
    if (sched is None) != (saved is None) and not given:
        raise ValueError("one of the runs has a schedule and the other has none")
    if sched is None:
        if saved is not None:
            tr.resume_notes.append(f"the run had the schedule {saved['schedules'][0]}; from iteration {it} it has "
                                   f"none, and the lr is the one the settings given now say")
        return
    now = sched.state_dict()
    if given and (saved is None or saved.get("unit") != sched.unit):
        phase, ipe = tr.phases[state["phase"]], tr.iterations_per_epoch
        t = it - phase["start"] if sched.unit == "iteration" else state["epoch"] - phase["start"] // max(ipe, 1)
        sched.load_state_dict({**now, "t": t})
        tr.resume_notes.append(f"the schedule {now['schedules'][0]} (per {sched.unit}) applies from iteration {it}, "
                               f"at its step {t}, where its phase is: the lr changes there")
        return
    if changes:  # a stretched or rescaled schedule continues from the step it had reached
        saved = {**saved, "base_lrs": now["base_lrs"]}
        if _plain(now["schedules"]) != _plain(saved["schedules"]):
            why = "the settings given now" if given else "the new budget"
            tr.resume_notes.append(
                f"the schedule now fits {why}: from iteration {it} it follows {now['schedules'][0]} where the "
                f"run had {saved['schedules'][0]}, so the lr changes here and the run is not the one an unbroken "
                f"run of this length would have been"
            )
            saved.update(schedules=now["schedules"], identities=now["identities"])
        # (else the same schedule: its saved identity still tells another function of the same repr)
    sched.load_state_dict(saved)


def saved_config(path: str | Path) -> dict[str, Any]:
    """The resolved settings of the run that wrote the checkpoint at ``path``."""
    return load(path)["config"]
