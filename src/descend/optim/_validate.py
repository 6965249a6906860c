"""Argument checks shared by every optimizer.

Each check names the argument, the value it got and what is allowed, in the
style of scikit-learn's parameter validation. Hyperparameters may be Python
numbers or floating-point tensors that broadcast against the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Range:
    """An interval of allowed values, e.g. ``Range(0, 1, hi_open=True)`` is [0, 1)."""

    lo: float = 0.0
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = True

    def describe(self) -> str:
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open or self.hi == math.inf else "]"
        hi = "inf" if self.hi == math.inf else f"{self.hi:g}"
        return f"{left}{self.lo:g}, {hi}{right}"

    def contains(self, x: torch.Tensor | float) -> bool:
        if isinstance(x, torch.Tensor):
            lo_ok = (x > self.lo) if self.lo_open else (x >= self.lo)
            hi_ok = (x < self.hi) if self.hi_open else (x <= self.hi)
            return bool((lo_ok & hi_ok).all())
        lo_ok = x > self.lo if self.lo_open else x >= self.lo
        hi_ok = x < self.hi if self.hi_open else x <= self.hi
        return bool(lo_ok and hi_ok)


NONNEG = Range(0.0, math.inf)
POSITIVE = Range(0.0, math.inf, lo_open=True)
UNIT_OPEN = Range(0.0, 1.0, hi_open=True)  # [0, 1): betas
UNIT_CLOSED = Range(0.0, 1.0, hi_open=False)  # [0, 1]: dampening


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        if value.numel() <= 4:
            return f"tensor({value.tolist()})"
        return f"tensor of shape {tuple(value.shape)} (min {value.min().item():g}, max {value.max().item():g})"
    return repr(value)


def as_number(value: Any) -> Any:
    """A NumPy number or 0-d array (``np.float32(1e-3)``, a value read from a config or a sweep) as
    the Python number it holds, as torch.optim takes it; anything else unchanged."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 \
            and getattr(getattr(value, "dtype", None), "kind", "") in ("f", "i", "u"):
        return value.item()
    return value


def check_number(name: str, value: Any, allowed: Range, *, tensor_ok: bool = True) -> None:
    """Raise ValueError unless ``value`` is a real number (or tensor) inside ``allowed``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise ValueError(
            f"{name} must be a number{' or a floating-point tensor' if tensor_ok else ''} "
            f"in {allowed.describe()}, got {value!r} of type {type(value).__name__}"
        )
    if isinstance(value, torch.Tensor):
        if not tensor_ok:
            raise ValueError(f"{name} must be a Python number for this optimizer, got {_show(value)}")
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must be finite, got {_show(value)}")
    elif not math.isfinite(value):
        raise ValueError(f"{name} must be finite and in {allowed.describe()}, got {value!r}")
    if not allowed.contains(value):
        raise ValueError(f"{name} must be in {allowed.describe()}, got {_show(value)}")


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {shown}; got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_broadcast(name: str, value: Any, param: torch.Tensor, where: str) -> None:
    """A tensor hyperparameter must broadcast to the parameter's shape without growing it."""
    if not isinstance(value, torch.Tensor):
        return
    try:
        shape = torch.broadcast_shapes(value.shape, param.shape)
    except RuntimeError:
        shape = None
    if shape != param.shape:
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} does not broadcast against {where} "
            f"of shape {tuple(param.shape)}; a tensor hyperparameter must broadcast to the "
            f"parameter's shape (e.g. lr of shape (N, 1) for a parameter of shape (N, 2))"
        )


# Specification of one hyperparameter: a Range for numbers, a tuple for choices,
# ``bool`` for flags, or a callable for anything else (it raises itself).
Spec = Range | tuple | type | Callable[[str, Any], None] | None


def check(name: str, value: Any, spec: Spec) -> None:
    if spec is None:
        return
    if isinstance(spec, Range):
        check_number(name, value, spec)
    elif isinstance(spec, tuple):
        check_choice(name, value, spec)
    elif spec is bool:
        check_bool(name, value)
    elif callable(spec):
        spec(name, value)


def optional(spec: Range) -> Callable[[str, Any], None]:
    """A number in ``spec`` or None (None means 'derived from another argument')."""

    def _check(name: str, value: Any) -> None:
        if value is not None:
            check_number(name, value, spec)

    return _check
