"""Small shared pieces of the lab: optimizer lookup, argument checks, JSON conversion."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import optim as O

# "gd" is gradient descent: descend.optim.SGD fed full-batch gradients (on a landscape, always).
ALIASES = {"gd": "sgd"}
DISPLAY = {
    "sgd": "GD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
    "newton": "Newton",
}
# Each optimizer's "beta" for the lr x beta heat-map.
BETA_NAMES = {
    "sgd": "momentum",
    "momentum": "beta",
    "nesterov": "beta",
    "rmsprop": "beta",
    "adam": "beta1",
    "adamw": "beta1",
}


def optimizer_names() -> list[str]:
    """Names accepted for ``optimizer``: ``gd`` and every key of ``descend.optim.OPTIMIZERS``."""
    return ["gd", *O.OPTIMIZERS]


def resolve_optimizer(optimizer: Any) -> tuple[type[torch.optim.Optimizer], str, str | None]:
    """``(class, display name, registry key or None)`` for a name or an optimizer class."""
    if isinstance(optimizer, str):
        key = optimizer.strip().lower().replace("-", "_")
        key = ALIASES.get(key, key)
        if key not in O.OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(optimizer_names())} or an optimizer class, "
                f"got {optimizer!r}"
            )
        return O.OPTIMIZERS[key], DISPLAY[key], key
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        for key, cls in O.OPTIMIZERS.items():
            if cls is optimizer:
                return cls, DISPLAY[key], key
        return optimizer, optimizer.__name__, None
    raise ValueError(
        f"optimizer must be one of {', '.join(optimizer_names())} or a torch.optim.Optimizer "
        f"subclass, got {optimizer!r}"
    )


def accepted_keywords(cls: type) -> list[str]:
    """Keyword arguments of ``cls.__init__`` (following ``**kwargs`` up the MRO), minus ``params``."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        more = False
        for p in params.values():
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in ("self", "params") and p.name not in names:
                names.append(p.name)
        if not more:
            break
    return names


def build_optimizer(
    cls: type[torch.optim.Optimizer], display: str, params: list[torch.Tensor], hyper: dict[str, Any]
) -> torch.optim.Optimizer:
    """``cls(params, **hyper)`` with the lab's defaults: ``impl="eager"`` and ``nonfinite="ignore"``.

    The lab detects non-finite values itself (a run that produces them has
    diverged and stops), so the element-wise optimizers do not check their
    gradients. Newton keeps its own policy.
    """
    allowed = accepted_keywords(cls)
    unknown = [k for k in hyper if k not in allowed]
    if unknown:
        raise ValueError(
            f"unknown hyperparameter {unknown[0]!r} for {display}; it takes: {', '.join(allowed)}"
        )
    kwargs = dict(hyper)
    if "impl" in allowed:
        kwargs.setdefault("impl", "eager")
    if "nonfinite" in allowed and cls is not O.Newton:
        kwargs.setdefault("nonfinite", "ignore")
    return cls(params, **kwargs)


def vectorizable(cls: type) -> bool:
    """Whether ``cls`` updates every element on its own (rows of an (N, d) tensor stay independent).

    True for the element-wise descend optimizers; Newton couples all
    coordinates and other classes are not known to be element-wise.
    """
    return issubclass(cls, O.Optimizer) and getattr(cls, "_tensor_hypers", False)


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
