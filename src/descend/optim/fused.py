"""The fused path: one pass over memory per optimizer step.

An optimizer step is memory-bound: it reads the parameter, the gradient and
the state and writes the parameter and the state. The fused path keeps, per
param group and per (device, dtype), the parameters, their gradients and
every state tensor as views into one contiguous buffer each (a *bucket*),
and updates a bucket with a single kernel that ``torch.compile`` generates
(C++ on the CPU, Triton on a GPU) from the very rule the eager path runs:
``rules.X(P, G, *state, **hypers)`` on the flat buffers.

* Hyperparameters reach the kernel as 0-d tensors, so a schedule that
  changes lr every step causes no recompilation; shapes are dynamic, so one
  kernel per rule and option set serves every bucket size.
* Compiled kernels land in Inductor's on-disk cache and are reused by later
  processes.
* Gradients stay views into the flat gradient buffer as long as they are
  zeroed in place: ``zero_grad()`` of a fused optimizer zeroes the buffer
  (torch's ``set_to_none=False``) instead of dropping it. If user code
  replaces ``p.grad`` (or sets it to None and backward allocates a new one),
  the step copies it into the buffer first: correct, one extra pass, and a
  warning once.
* A parameter whose gradient is None is not stepped (torch's semantics); its
  bucket then takes the eager path for that step, with a warning once.
* Non-finite checks read the gradient buffer once more before any update,
  so that a skipped or failed step changes nothing.
"""

from __future__ import annotations

import operator
import types
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from . import rules

_compile_count = 0
_KERNELS: dict[str, Any] = {}


def compile_count() -> int:
    """How many graphs the fused path has compiled in this process."""
    return _compile_count


def _backend(gm: torch.fx.GraphModule, example_inputs: list) -> Any:
    global _compile_count
    _compile_count += 1
    from torch._inductor.compile_fx import compile_fx

    return compile_fx(gm, example_inputs)


def _update(P, G, states, rule, prep, hypers):
    g = rules.prepare_grad(P, G, **prep)
    new = rule(P, g, *states, **hypers)
    P.copy_(new[0])
    for s, v in zip(states, new[1:]):
        if s is not None:
            s.copy_(v)


def _all_finite(G):
    return torch.isfinite(G).all()


def kernel(name: str, key: tuple = ()) -> Any:
    """The compiled ``"update"`` or ``"finite"`` function for one static configuration.

    Each (rule, static options) gets a code object of its own, so Dynamo keeps
    one small cache per configuration instead of hitting its recompile limit on
    a single function shared by every optimizer.
    """
    full = (name, *key)
    if full not in _KERNELS:
        base = {"update": _update, "finite": _all_finite}[name]
        code = base.__code__.replace(co_name=f"{base.__name__}_{len(_KERNELS)}")
        fn = types.FunctionType(code, base.__globals__, code.co_name)
        _KERNELS[full] = torch.compile(fn, dynamic=True, fullgraph=True, backend=_backend)
    return _KERNELS[full]


def static_key(rule: Any, states: list, prep: dict[str, Any], hypers: dict[str, Any]) -> tuple:
    """What a compiled kernel specializes on: the rule, flags, absent state, zero terms."""
    flags = tuple(
        (k, v) for k, v in sorted({**prep, **hypers}.items())
        if v is None or isinstance(v, (bool, str)) or (isinstance(v, float) and v == 0.0)
    )
    return (rule.__qualname__, tuple(s is None for s in states), flags)


def warn_once(owner: Any, key: str, message: str) -> None:
    seen = owner.__dict__.setdefault("_warned", set())
    if key not in seen:
        seen.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


_GRAD = operator.attrgetter("grad")
_DATA_PTR = operator.methodcaller("data_ptr")


@dataclass
class Bucket:
    """Parameters of one group, device and dtype, laid out in flat buffers."""

    params: list[torch.Tensor]
    states: list[dict[str, Any]]
    keys: tuple[str, ...]  # the rule's state keys, in order (unused ones map to None)
    P: torch.Tensor
    G: torch.Tensor
    flat_state: dict[str, torch.Tensor]
    grad_views: list[torch.Tensor]
    ptrs: list[int]
    copied: bool = field(default=False)

    def state_args(self) -> list[torch.Tensor | None]:
        return [self.flat_state.get(k) for k in self.keys]

    def sync_grads(self) -> str:
        """'ok', 'missing' (some grad is None) or 'moved' (a parameter no longer lives in P).

        A replaced gradient is copied into the flat buffer and its view put back.
        The common case (nothing replaced, nothing moved) is checked at C speed.
        """
        views, ptrs = self.grad_views, self.ptrs
        if all(map(operator.is_, map(_GRAD, self.params), views)) and all(
            map(operator.eq, map(_DATA_PTR, self.params), ptrs)
        ):
            return "ok"
        for i, p in enumerate(self.params):
            if p.data_ptr() != ptrs[i]:
                return "moved"
            g = p.grad
            if g is views[i]:
                continue
            if g is None:
                return "missing"
            views[i].copy_(g)
            p.grad = views[i]
            self.copied = True
        return "ok"


def build_bucket(opt: Any, group: dict[str, Any], params: list[torch.Tensor]) -> Bucket | None:
    """Move ``params`` (one device and dtype) and their state into flat buffers.

    Returns None when the parameters cannot share a bucket (their step counts
    differ, so Adam's bias corrections would too).
    """
    steps = {opt.state[p].get("step", 0) if opt.state.get(p) else 0 for p in params}
    if len(steps) > 1:
        return None
    rule, keys = opt._rule(group)
    used = opt._state_keys(group)
    total = sum(p.numel() for p in params)
    ref = params[0]
    P = torch.empty(total, dtype=ref.dtype, device=ref.device)
    G = torch.zeros(total, dtype=ref.dtype, device=ref.device)
    init = opt._init_state(P, group)
    flat_state = {k: init[k] for k in used}
    states, views, ptrs = [], [], []
    offset = 0
    for p in params:
        n = p.numel()
        sl = slice(offset, offset + n)
        P[sl].copy_(p.detach().reshape(-1))
        if p.grad is not None:
            G[sl].copy_(p.grad.reshape(-1))
        st = opt.state[p]
        if st:
            for k in used:
                flat_state[k][sl].copy_(st[k].reshape(-1))
        else:
            st["step"] = 0
        for k in used:
            st[k] = flat_state[k][sl].view_as(p)
        p.data = P[sl].view_as(p)
        view = G[sl].view_as(p)
        p.grad = view
        states.append(st)
        views.append(view)
        ptrs.append(p.data_ptr())
        offset += n
    return Bucket(list(params), states, keys, P, G, flat_state, views, ptrs)


REGULARIZERS = ("decay",)


def scalar_hypers(hypers: dict[str, Any], like: torch.Tensor) -> dict[str, Any]:
    """Numbers become 0-d tensors (values change without recompiling); flags stay static."""
    out: dict[str, Any] = {}
    for k, v in hypers.items():
        if k in REGULARIZERS:
            out[k] = regularizer(v, like)
        elif isinstance(v, bool) or isinstance(v, str) or v is None:
            out[k] = v
        elif isinstance(v, torch.Tensor):
            out[k] = v.to(device=like.device, dtype=_scalar_dtype(like))
        else:
            out[k] = torch.tensor(float(v), dtype=_scalar_dtype(like), device=like.device)
    return out


def _scalar_dtype(like: torch.Tensor) -> torch.dtype:
    """Scalars are computed in double, as Python floats are on the eager path
    (``1 - 0.999**t`` in float32 would lose most of its digits)."""
    return torch.float64


def regularizer(value: Any, like: torch.Tensor) -> Any:
    """Zero stays a static 0.0 (the term is skipped); anything else is a 0-d tensor."""
    if isinstance(value, (int, float)) and value == 0:
        return 0.0
    if isinstance(value, torch.Tensor):
        return value.to(device=like.device, dtype=_scalar_dtype(like))
    return torch.tensor(float(value), dtype=_scalar_dtype(like), device=like.device)


def is_scalar(value: Any) -> bool:
    return not isinstance(value, torch.Tensor) or value.dim() == 0
