"""The multi-tensor path: the rules of :mod:`descend.optim.rules` evaluated over lists.

A rule is written for one tensor (``p - lr * g``). :class:`Many` is a list of
tensors that answers the same arithmetic with torch's multi-tensor
(``torch._foreach_*``) ops, so ``rule(Many(ps), Many(gs), ...)`` runs the very
same function over every parameter of a group with a handful of calls, however
many tensors there are, and no compiler. Parameters and gradients stay where
they are: the results are copied back into the user's tensors.

Python numbers and 0-d tensors act as scalars; ``torch.sqrt``, ``torch.sign``
and ``torch.maximum`` map to their ``_foreach`` twins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

_F = torch


def _other(x: Any, n: int) -> Any:
    """An operand as foreach ops take it: a list for Many, a list of n for a tensor, else the number."""
    if isinstance(x, Many):
        return x.ts
    if isinstance(x, torch.Tensor):
        return [x] * n
    return x


class Many:
    """A list of tensors that does arithmetic element-wise over the list."""

    __slots__ = ("ts",)

    def __init__(self, ts: Sequence[torch.Tensor]) -> None:
        self.ts = list(ts)

    def __len__(self) -> int:
        return len(self.ts)

    def __add__(self, o: Any) -> Many:
        return Many(_F._foreach_add(self.ts, _other(o, len(self.ts))))

    __radd__ = __add__

    def __mul__(self, o: Any) -> Many:
        return Many(_F._foreach_mul(self.ts, _other(o, len(self.ts))))

    __rmul__ = __mul__

    def __sub__(self, o: Any) -> Many:
        return Many(_F._foreach_sub(self.ts, _other(o, len(self.ts))))

    def __rsub__(self, o: Any) -> Many:
        return Many(_F._foreach_add(_F._foreach_neg(self.ts), _other(o, len(self.ts))))

    def __truediv__(self, o: Any) -> Many:
        return Many(_F._foreach_div(self.ts, _other(o, len(self.ts))))

    def __rtruediv__(self, o: Any) -> Many:
        return Many(_F._foreach_mul(_F._foreach_reciprocal(self.ts), _other(o, len(self.ts))))

    def __neg__(self) -> Many:
        return Many(_F._foreach_neg(self.ts))

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _UNARY and not kwargs:
            return Many(_UNARY[func](args[0].ts))
        if func is torch.maximum and not kwargs:
            return Many(_F._foreach_maximum(args[0].ts, _other(args[1], len(args[0].ts))))
        if func in _REVERSED and len(args) == 2 and isinstance(args[1], Many):
            # a 0-d tensor on the left: ``tensor * many`` arrives here as Tensor.__mul__
            return _REVERSED[func](args[1], args[0])
        raise TypeError(f"descend.optim.foreach.Many does not support {getattr(func, '__name__', func)}")


_UNARY = {torch.sqrt: _F._foreach_sqrt, torch.sign: _F._foreach_sign}
_REVERSED = {
    torch.Tensor.__mul__: Many.__rmul__, torch.Tensor.__add__: Many.__radd__,
    torch.Tensor.__sub__: Many.__rsub__, torch.Tensor.__truediv__: Many.__rtruediv__,
    torch.Tensor.__rmul__: Many.__mul__, torch.Tensor.__radd__: Many.__add__,
}


def write(targets: list[torch.Tensor], new: Any) -> None:
    """Copy a rule's result (a Many, or one tensor for a one-tensor group) into ``targets``."""
    ts = new.ts if isinstance(new, Many) else [new]
    if type(targets[0]) in (torch.Tensor, torch.nn.Parameter):
        torch._foreach_copy_(targets, ts)
    else:  # tensor subclasses (DTensor) have no _foreach_copy_
        for t, v in zip(targets, ts):
            t.copy_(v)
