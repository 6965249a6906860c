"""A parameter's state as the plan finds it: shapes that still fit, and exactly the tensors the
group's options use now (:func:`conform`). Both run when the step plan is built
(:func:`descend.optim.engine.build`), before anything is written."""

from __future__ import annotations

from typing import Any

import torch


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
