"""Argument checks for the schedules.

Every check names the argument, the value it got and the allowed range, e.g.
``ValueError("gamma must be in (0, 1], got 1.5")``.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterable
from typing import Any


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open else "["
    right = ")" if hi_open or hi == math.inf else "]"
    hi_text = "inf" if hi == math.inf else f"{hi:g}"
    return f"{left}{lo:g}, {hi_text}{right}"


def real(
    name: str,
    value: Any,
    lo: float = 0.0,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is a finite real number in the interval, else raise."""
    allowed = _interval(lo, hi, lo_open, hi_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number in {allowed}, got {value!r}")
    inside_lo = x > lo if lo_open else x >= lo
    inside_hi = x < hi if hi_open else x <= hi
    if not (inside_lo and inside_hi):
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return x


def positive(name: str, value: Any) -> float:
    """A finite real number > 0 (``real`` on ``(0, inf)``)."""
    return real(name, value, lo_open=True)


def decay_factor(name: str, value: Any) -> float:
    """A decay factor in ``(0, 1]`` (``real`` on that interval)."""
    return real(name, value, 0.0, 1.0, lo_open=True)


def integer(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return n


def increasing(name: str, values: Iterable[Any], minimum: int = 1) -> tuple[int, ...]:
    """Return ``values`` as a tuple of strictly increasing integers >= ``minimum``, else raise."""
    what = f"{name} must be strictly increasing integers >= {minimum}"
    try:
        items = list(values)
    except TypeError:
        raise ValueError(f"{what}, got {values!r}") from None
    out: list[int] = []
    for v in items:
        if isinstance(v, bool):
            raise ValueError(f"{what}, got {items!r}")
        try:
            out.append(operator.index(v))
        except TypeError:
            raise ValueError(f"{what}, got {items!r}") from None
    if any(v < minimum for v in out) or any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{what}, got {out!r}")
    return tuple(out)


def flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is True or False, else raise."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise."""
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {shown}, got {value!r}")
    return value


def step(value: Any) -> int:
    """The step a schedule is evaluated at: an integer >= 0."""
    return integer("step", value, minimum=0)
