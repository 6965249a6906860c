"""torch.optim's state-dict hooks, run where a user of descend's optimizers meets them.

``state_dict`` and ``load_state_dict`` of :class:`~descend.optim.base.Optimizer` do
work of their own around torch's: converting a torch.optim state dict, matching
parameters by name, validating, dropping unstepped entries. torch runs the hooks
inside its own method, which would put them in the middle of that work: a load
pre-hook that repairs a checkpoint (drops a param group, renames keys) would run
after descend had refused it, and a save post-hook would see the dict before
descend finished it (with descend's keys when ``format="torch"`` was asked for).
:func:`held` keeps torch's method from running them; :func:`save_pre` and
friends run them at the boundary, with torch's calling conventions.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

SAVE = ("_optimizer_state_dict_pre_hooks", "_optimizer_state_dict_post_hooks")
LOAD = ("_optimizer_load_state_dict_pre_hooks", "_optimizer_load_state_dict_post_hooks")


@contextlib.contextmanager
def held(opt: Any, names: tuple[str, str]) -> Iterator[None]:
    """torch's ``state_dict``/``load_state_dict`` called inside runs no hooks of ``names``
    (the registered dicts are put back unchanged: their handles still remove them)."""
    saved = [opt.__dict__.get(name) for name in names]
    for name in names:
        setattr(opt, name, OrderedDict())
    try:
        yield
    finally:
        for name, hooks in zip(names, saved):
            if hooks is None:
                delattr(opt, name)
            else:
                setattr(opt, name, hooks)


def save_pre(opt: Any) -> None:
    """The state-dict pre-hooks: ``hook(opt)``."""
    for hook in list(getattr(opt, SAVE[0], {}).values()):
        hook(opt)


def save_post(opt: Any, state_dict: Any) -> Any:
    """The state-dict post-hooks on the finished dict: ``hook(opt, sd)``; one that returns
    a value replaces the dict."""
    for hook in list(getattr(opt, SAVE[1], {}).values()):
        result = hook(opt, state_dict)
        if result is not None:
            state_dict = result
    return state_dict


def load_pre(opt: Any, state_dict: Any) -> Any:
    """The load pre-hooks on (a shallow copy of) the dict as given, before anything reads
    it: ``hook(opt, sd)``; one that returns a value replaces the dict."""
    if isinstance(state_dict, dict):
        state_dict = state_dict.copy()  # (as torch: the caller's dict is not changed at its top level)
    for hook in list(getattr(opt, LOAD[0], {}).values()):
        result = hook(opt, state_dict)
        if result is not None:
            state_dict = result
    return state_dict


def load_post(opt: Any) -> None:
    """The load post-hooks, once the optimizer holds the loaded state: ``hook(opt)``."""
    for hook in list(getattr(opt, LOAD[1], {}).values()):
        hook(opt)
