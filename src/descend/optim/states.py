"""A parameter's state as the plan finds it: shapes that still fit, and exactly the tensors the
group's options use now (:func:`conform`). Both run when the step plan is built
(:func:`descend.optim.engine.build`), before anything is written. And a loaded state dict's
layout and torch.optim's ``step`` counts, checked before they are converted (:func:`check_layout`,
:func:`step_count`)."""

from __future__ import annotations

import collections
import math
from typing import Any

import torch

from . import torchnames


def check_shapes(opt: Any, group: dict[str, Any], p: torch.Tensor, st: dict[str, Any]) -> None:
    """Refuse, before anything is written, state tensors whose shape is no longer the parameter's
    (a parameter whose ``.data`` was replaced by a larger one: a grown vocabulary)."""
    for k in opt._all_state_keys(group):
        v = st.get(k)
        if isinstance(v, torch.Tensor) and v.shape != p.shape:
            i = next(i for i, q in enumerate(group["params"]) if q is p)
            raise ValueError(
                f"state '{k}' of {opt._param_name(group, i)} has shape {tuple(v.shape)}, the parameter now "
                f"has shape {tuple(p.shape)} (was it replaced or resized?); nothing was changed. Restart "
                f"its state with `del opt.state[p]`, or resize the state to match"
            )


def conform(opt: Any, p: torch.Tensor, st: dict[str, Any], group: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Give a parameter's state exactly the tensors ``keys`` (what the group's options use now);
    True when a tensor was added.

    An option switched on mid-run (``amsgrad``, ``centered``, SGD's ``momentum`` from 0)
    starts its tensor where a first step would (``opt._fresh`` records the step, which
    SGD takes as its buffer's first: no dampening, as torch starts the buffer at the
    gradient); one switched off drops its tensor, so the state saves and loads as that of
    an optimizer built with the new options.
    """
    missing = [k for k in keys if k not in st]
    if missing:
        init = opt._init_state(p, group)
        for k in missing:
            st[k] = init[k]
    for k in opt._all_state_keys(group):
        if k not in keys and k in st:
            del st[k]
    return bool(missing)


# ---------------------------------------------------------------------- loaded state dicts
def check_layout(state_dict: Any) -> None:
    """Refuse, with the entry named, a state dict whose layout is not ``state_dict()``'s: a dict
    ``state`` of per-parameter dicts and a list ``param_groups`` of dicts each with ``params``."""
    if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups', as returned by state_dict()")
    state, groups = state_dict["state"], state_dict["param_groups"]
    if not isinstance(state, dict):
        raise ValueError(f"state_dict['state'] must be a dict (parameter id -> its state), got "
                         f"{type(state).__name__}")
    for pid, st in state.items():
        if st is not None and not isinstance(st, dict):
            raise ValueError(f"state_dict['state'][{pid!r}] must be a dict of the parameter's state, got "
                             f"{type(st).__name__}")
    if not isinstance(groups, (list, tuple)):
        raise ValueError(f"state_dict['param_groups'] must be a list of dicts, got {type(groups).__name__}")
    for gi, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("params"), (list, tuple)):
            raise ValueError(f"state_dict['param_groups'][{gi}] must be a dict with a list 'params' (the "
                             f"ids of its parameters in 'state'), got {_brief(group)}")


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return type(value).__name__


def step_count(pid: Any, value: Any) -> int:
    """torch.optim's ``step`` of parameter ``pid`` (an int, or a one-element tensor, float in the
    torch versions that keep it on the device) as descend's integer count."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"state of parameter {pid}: step must be a number or a one-element tensor, got a "
                             f"tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or value != int(value):
        raise ValueError(f"state of parameter {pid}: step must be a whole number of steps >= 0, got {value!r}")
    return int(value)


def at_init(keys: tuple[str, str, str], state: dict[Any, Any], groups: list[dict[str, Any]],
            opt: Any) -> dict[Any, Any]:
    """An exported torch.optim ``state`` with the entry torch gives every parameter when it is
    built (Adagrad's ``sum``, step 0) for those that have not stepped: torch's step reads it.
    It holds what descend would start from: a state loaded at step 0, else the group's
    ``initial_accumulator_value``. ``keys``: (descend's key, torch's, the group key of the start)."""
    ours, theirs, value_key = keys
    out = {}
    for group, current in zip(groups, opt.param_groups):
        for pid, p in zip(group["params"], current["params"]):
            held = opt.state.get(p, {}).get(ours)
            start = held.clone(memory_format=torch.preserve_format) if held is not None else \
                torch.zeros_like(p, memory_format=torch.preserve_format).add_(current[value_key])
            out[pid] = state[pid] if pid in state else {"step": torch.tensor(0.0), theirs: start}
    return {**out, **state}


class State(collections.defaultdict):
    """``opt.state``: torch's ``defaultdict(dict)`` that counts the changes of its entries.

    A step plan holds every parameter's state dict. Resetting state from outside
    (``opt.state.clear()``, ``del opt.state[p]``, ``opt.state[p] = {}``, as code written
    for torch.optim does to restart the moments) changes :attr:`changes`, so the next
    step plans again with the dicts that are there now. Reading an entry costs what
    it costs in a defaultdict; new entries are :class:`~descend.optim.torchnames.ParamState`
    dicts (:func:`state_of`), which name torch's keys when read by them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.changes = 0

    def __setitem__(self, key: Any, value: Any) -> None:
        self.changes += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.changes += 1
        super().__delitem__(key)

    def clear(self) -> None:
        self.changes += 1
        super().clear()

    def pop(self, *args: Any) -> Any:
        self.changes += 1
        return super().pop(*args)

    def popitem(self) -> tuple[Any, Any]:
        self.changes += 1
        return super().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.changes += 1
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.changes += 1
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> State:
        self.update(other)
        return self


def state_of(opt: Any, entries: Any, fresh: bool = False) -> State:
    """``opt.state`` as a :class:`State` whose new entries are ``opt``'s per-parameter state class
    (a dict that names torch's keys when read by them: :mod:`descend.optim.torchnames`). ``fresh``:
    the entries were just made (loaded, unpickled) and take that class too; otherwise the dicts put
    in from outside stay the objects they are."""
    kind = torchnames.state_type(opt)
    if fresh:
        entries = {p: kind(st) if type(st) is dict else st for p, st in entries.items()}
    return State(kind, entries)
