"""Small shared pieces of the lab: argument checks, labels, JSON conversion.

Optimizer names, aliases and display names come from :mod:`descend.optim` (its registry).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..optim.registry import accepted_keywords  # noqa: F401  (re-exported for older imports)

# Each optimizer's "beta" for the lr x beta heat-map.
BETA_NAMES = {
    "sgd": "momentum",
    "momentum": "beta",
    "nesterov": "beta",
    "rmsprop": "beta",
    "adam": "beta1",
    "adamw": "beta1",
}


def n_steps(n: int) -> str:
    """``"1 step"``, ``"12 steps"``: a count of steps as the lab's texts and figures print it."""
    return f"{n} step" if n == 1 else f"{n} steps"


def check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_tol(tol: Any) -> float | None:
    if tol is None:
        return None
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.floating) or not tol >= 0:
        raise ValueError(f"tol must be None (never stop early) or a number >= 0, got {tol!r}")
    return float(tol)


def check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def is_sequence(value: Any) -> bool:
    """A per-row hyperparameter: a list, tuple, numpy array or tensor with at least one dimension."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.ndim >= 1
    return isinstance(value, Sequence) and not isinstance(value, str)


def fmt(value: Any) -> str:
    """A hyperparameter as shown in labels: ``0.1``, ``1e-05``, ``True``, ``'ema'``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float | np.floating | np.integer):
        return f"{float(value):.3g}" if isinstance(value, float | np.floating) else str(value)
    return str(value)


def label(display: str, hyper: dict[str, Any]) -> str:
    """``"Adam (lr=0.1)"``, ``"Momentum (lr=0.001, beta=0.9)"``: lr first, then the others given."""
    keys = (["lr"] if "lr" in hyper else []) + [k for k in hyper if k != "lr"]
    inner = ", ".join(f"{k}={fmt(hyper[k])}" for k in keys)
    return f"{display} ({inner})" if inner else display


def finite_or_none(x: Any) -> float | None:
    """``float(x)``, or None for NaN and infinities (JSON has neither)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def jsonable(value: Any) -> Any:
    """Lists, floats, ints, bools, strings and None only; NaN and infinities become None."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":  # one pass in numpy: finite numbers as floats, the rest as None
            finite = np.isfinite(value)
            if finite.all():
                return value.astype(np.float64, copy=False).tolist()
            return np.where(finite, value.astype(np.float64, copy=False), None).tolist()
        if value.dtype.kind in "iub":
            return value.tolist()
        return jsonable(value.tolist())
    if isinstance(value, torch.Tensor):
        return jsonable(value.detach().cpu().tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return finite_or_none(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)
