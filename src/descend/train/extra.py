"""State a run checkpoints beside its own: ``Trainer(..., extra_state={"sched": sched})``.

The Trainer checkpoints what it drives (the model, the optimizer, its descend
Scheduler, the RNGs...). Objects a user drives from the callback hold state of
their own that a resume must restore too: a torch LR scheduler stepped there (the
way the Trainer names for ``schedule=<torch scheduler>``), an EMA of the weights,
a counter. Give each by name in ``extra_state``; every checkpoint then holds
``{name: obj.state_dict()}`` and a resume calls ``obj.load_state_dict`` on the
objects given under the same names (build them as in the run that wrote it).

Such a state must read back with ``torch.load(weights_only=True)``, as the whole
checkpoint does (tensors, numbers, strings, lists and dicts); one that does not
is refused when the checkpoint is written, naming the entry.

A torch LR scheduler built on the run's optimizer and not given here cannot be
restored: with a run folder the Trainer warns at construction, and a resume from
a checkpoint that holds no extra state is refused while such a scheduler drives the
optimizer (it would start over at its first step, and the resumed run would differ
from the uninterrupted one).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError


def check(extra_state: Any) -> dict[str, Any]:
    """The ``extra_state`` argument as a dict, or a ValueError naming what is wrong with it."""
    if extra_state is None:
        return {}
    if not isinstance(extra_state, Mapping):
        raise ValueError(f"extra_state must be a mapping of names to objects with state_dict() and "
                         f"load_state_dict(), e.g. extra_state={{'sched': sched}}; got {type(extra_state).__name__}")
    for name, obj in extra_state.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"extra_state's names must be non-empty strings, got {name!r}")
        if not (callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))):
            raise ValueError(f"extra_state[{name!r}] must have state_dict() and load_state_dict() (a torch LR "
                             f"scheduler, a module, an optimizer), got {type(obj).__name__}")
    return dict(extra_state)


def _optimizers(opt: Any) -> list[Any]:
    parts = getattr(opt, "optimizers", None)  # (a PartOptimizer: one optimizer per part)
    return list(parts.values()) if isinstance(parts, Mapping) else [opt]


def torch_scheduled(opt: Any) -> bool:
    """Whether a torch.optim.lr_scheduler scheduler was built on ``opt`` (or one of its parts): each one
    wraps ``optimizer.step`` and marks the wrapper ``_wrapped_by_lr_sched``."""
    return any(hasattr(getattr(o, "step", None), "_wrapped_by_lr_sched") for o in _optimizers(opt))


def _unsaved(tr: Any) -> str:
    return (f"a torch LR scheduler was built on the optimizer ({type(tr.optimizer).__name__}) and extra_state "
            f"gives no state to checkpoint")


def warn_unsaved(tr: Any) -> None:
    """Warn, for a run that writes checkpoints, that a torch scheduler on its optimizer is not in them."""
    if tr.out is None or tr.extra_state or not torch_scheduled(tr.optimizer):
        return
    warnings.warn(f"{_unsaved(tr)}: a resume from this run's checkpoints could not restore the scheduler and "
                  f"is refused; give it to the Trainer, extra_state={{'sched': sched}}, to checkpoint it",
                  UserWarning, stacklevel=3)  # (the line that builds the Trainer)


def gather(tr: Any) -> dict[str, Any]:
    """``{name: obj.state_dict()}`` for the checkpoint; a ValueError naming an entry that would not
    read back with ``weights_only=True`` (the checkpoint would then be unreadable)."""
    out = {}
    for name, obj in tr.extra_state.items():
        state = obj.state_dict()
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        try:
            torch.load(buf, weights_only=True)
        except Exception as err:  # noqa: BLE001 - torch's unpickler says what it refused
            raise ValueError(f"extra_state[{name!r}].state_dict() holds something a checkpoint cannot hold "
                             f"(it must load with torch.load(weights_only=True): tensors, numbers, strings, "
                             f"lists, dicts): {str(err).splitlines()[0]}") from None
        out[name] = state
    return out


def check_saved(tr: Any, path: Path, state: dict[str, Any]) -> None:
    """CheckpointError unless the checkpoint's extra state fits the objects this run gives."""
    saved, given = sorted(state.get("extra_state") or {}), sorted(tr.extra_state)
    if saved != given:
        def names(xs: list[str]) -> str:
            return ", ".join(map(repr, xs)) if xs else "none"

        raise CheckpointError(
            f"checkpoint {path} holds extra state for {names(saved)}, but this run's extra_state gives "
            f"{names(given)}; give the objects of the run that wrote it under the same names"
            + ("" if saved else " (it checkpointed none: start over with overwrite=True (--overwrite))")
        )
    if not saved and torch_scheduled(tr.optimizer):
        raise CheckpointError(
            f"checkpoint {path} cannot be resumed exactly: {_unsaved(tr)}, so the checkpoint does not hold the "
            f"scheduler's position and it would start over at its first step. Give it to the Trainer, "
            f"extra_state={{'sched': sched}}, and start over with overwrite=True (--overwrite)"
        )


def load(tr: Any, path: Path, state: dict[str, Any]) -> None:
    """``load_state_dict`` each object of ``extra_state`` from the checkpoint (after :func:`check_saved`)."""
    for name, obj in tr.extra_state.items():
        try:
            obj.load_state_dict(state["extra_state"][name])
        except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as err:
            raise CheckpointError(f"checkpoint {path}: its extra state {name!r} does not fit "
                                  f"extra_state[{name!r}] ({type(tr.extra_state[name]).__name__}): {err}") from None
