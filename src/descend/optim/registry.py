"""The optimizer registry: one place that turns a name or a spec into an optimizer.

Every entry point (``descend train -o``, ``race``/``sweep``/``lr-find``, the
web API, the tour and Python code) calls :func:`build` or :func:`resolve`::

    from descend import optim
    opt = optim.build("adam:lr=0.02,beta1=0.8", model.parameters())
    opt = optim.build("gd", [x], lr=0.1)          # "gd" is SGD on full-batch gradients

Names accept ``-``/``_`` and any case; ``gd`` is an alias of ``sgd``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ..spec import SpecError, norm, parse
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .base import Optimizer
from .compat import torch_keywords
from .newton import Newton
from .sgd import SGD, Momentum, Nesterov

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "newton": Newton,
}
# "gd" is gradient descent: SGD fed full-batch gradients.
ALIASES = {"gd": "sgd"}
DISPLAY = {
    "sgd": "SGD",
    "gd": "GD",
    "momentum": "Momentum",
    "nesterov": "Nesterov",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adam": "Adam",
    "adamw": "AdamW",
    "newton": "Newton",
}


def names() -> list[str]:
    """Every accepted optimizer name: the aliases first, then the registry's keys."""
    return [*ALIASES, *OPTIMIZERS]


def key_of(name: str) -> str:
    """The registry key for a name or alias (``"GD"`` -> ``"sgd"``); SpecError if unknown."""
    key = norm(name)
    key = ALIASES.get(key, key)
    if key not in OPTIMIZERS:
        message = f"unknown optimizer {name!r}; choose one of {', '.join(names())}"
        head = str(name).partition(":")[0]
        if ":" in str(name) and ALIASES.get(norm(head), norm(head)) in OPTIMIZERS:
            message += (
                f" (this argument takes the name alone, {head!r}; give its options separately, "
                "e.g. --set in descend sweep)"
            )
        raise SpecError(message, field="name")
    return key


def get(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class for a name such as ``"adam"`` or ``"gd"`` (case-insensitive)."""
    return OPTIMIZERS[key_of(name)]


def display(name: str) -> str:
    """A name for tables and legends: ``"gd"`` -> ``"GD"``, ``"adamw"`` -> ``"AdamW"``."""
    key = norm(name)
    return DISPLAY.get(key) or DISPLAY[key_of(key)]


def resolve(optimizer: Any) -> tuple[type[torch.optim.Optimizer], str, str | None]:
    """``(class, display name, registry key or None)`` for a name or an optimizer class."""
    if isinstance(optimizer, str):
        return get(optimizer), display(optimizer), key_of(optimizer)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        for key, cls in OPTIMIZERS.items():
            if cls is optimizer:
                return cls, DISPLAY[key], key
        return optimizer, optimizer.__name__, None
    raise SpecError(
        f"optimizer must be one of {', '.join(names())} or a torch.optim.Optimizer subclass, "
        f"got {optimizer!r}",
        field="name",
    )


def accepted_keywords(cls: type) -> list[str]:
    """Keyword arguments of ``cls.__init__`` (following ``**kwargs`` up the MRO), minus ``params``.

    The ``defaults`` dict of the base classes' ``__init__`` (what a subclass passes on, not
    a keyword of its own) is left out, so a class that passes ``**common`` on to
    :class:`~descend.optim.base.Optimizer` lists its own keywords and the common ones.
    """
    found: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        more = False
        base = klass in (Optimizer, torch.optim.Optimizer)
        skip = ("self", "params", "defaults") if base else ("self", "params")
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in skip and p.name not in found:
                found.append(p.name)
        if not more:
            break
    return found


def parse_spec(spec: Any) -> tuple[type[torch.optim.Optimizer], str, dict[str, Any]]:
    """``(class, display name, options)`` for a spec string, a name, a class or ``(spec, options)``."""
    options: dict[str, Any] = {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        spec, options = spec[0], dict(spec[1])
    if isinstance(spec, str):
        name, parsed = parse(spec, "optimizer")
        cls, shown_name, _ = resolve(name)
        return cls, shown_name, {**parsed, **options}
    cls, shown_name, _ = resolve(spec)
    return cls, shown_name, options


def check_options(cls: type, options: Mapping[str, Any], shown_name: str | None = None) -> None:
    """SpecError naming the first option ``cls`` does not take, and listing those it does."""
    allowed = accepted_keywords(cls)
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()) and not allowed:
        return
    spellings = torch_keywords(cls)  # torch.optim's names, translated by the class (descend.optim.compat)
    for key in options:
        if key not in allowed and key not in spellings:
            also = f" (and torch.optim's spellings {', '.join(spellings)})" if spellings else ""
            raise SpecError(
                f"unknown option {key!r} for {shown_name or cls.__name__}; it takes: {', '.join(allowed)}{also}",
                field=key,
            )


def build(spec: Any, params: Iterable[Any], **overrides: Any) -> torch.optim.Optimizer:
    """Build an optimizer from a spec (``"adam:lr=0.02"``, ``"gd"``, a class, ``(name, options)``).

    ``overrides`` are applied on top of the spec's options. Unknown options
    raise :class:`descend.spec.SpecError` (a ValueError) naming the option;
    the optimizer's own validation names bad values.
    """
    cls, shown_name, options = parse_spec(spec)
    options.update(overrides)
    check_options(cls, options, shown_name)
    params = list(params)
    if params and isinstance(params[0], tuple) and not _is_descend(cls):
        params = [p for _, p in params]  # torch's own classes take plain tensors, not (name, tensor)
    return cls(params, **options)


def _is_descend(cls: type) -> bool:
    from .base import Optimizer

    return issubclass(cls, Optimizer)
