"""Your own function as a landscape: ``module:function`` or an expression in ``x`` and ``y``.

:func:`load` is what ``descend race`` and ``descend sweep`` call with their
landscape argument::

    load("rosenbrock")                      # a built-in name
    load("x**2 + 10*y**2")                  # an expression in x and y (torch functions by name)
    load("mypkg.funcs:styblinski_tang")     # a function fn(x, y) -> tensor, or one returning a Landscape

An expression may use ``+ - * / **``, numbers, ``pi``, ``e`` and the torch
functions in :data:`FUNCTIONS` (``sin``, ``exp``, ``log``, ``sqrt``, ...).
"""

from __future__ import annotations

import ast
import importlib
import math
from typing import Any

import torch

from .base import Landscape, from_function

FUNCTIONS = ("sin", "cos", "tan", "tanh", "exp", "log", "log1p", "sqrt", "abs", "sinh", "cosh", "atan",
             "sigmoid", "relu")
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd, ast.Mod)


def from_expression(text: str, **kwargs: Any) -> Landscape:
    """A landscape from an expression in ``x`` and ``y``, e.g. ``"(1-x)**2 + 100*(y-x**2)**2"``.

    ``kwargs`` go to :func:`~descend.landscapes.from_function` (``box``, ``start``, ``f_star``,
    ``minima``, ...). Only arithmetic, numbers, ``x``, ``y``, ``pi``, ``e`` and :data:`FUNCTIONS`
    are allowed.
    """
    try:
        tree = ast.parse(str(text).strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"expression {text!r} is not valid: {err.msg}") from None
    names = {"x", "y", "pi", "e", *FUNCTIONS}
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"expression {text!r} may only use arithmetic, numbers, x, y, pi, e and "
                             f"{', '.join(FUNCTIONS)}; found {type(node).__name__}")
        if isinstance(node, ast.Name) and node.id not in names:
            raise ValueError(f"expression {text!r} uses unknown name {node.id!r}; allowed: x, y, pi, e, "
                             f"{', '.join(FUNCTIONS)}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise ValueError(f"expression {text!r} may only call {', '.join(FUNCTIONS)}")
        if isinstance(node, ast.Call) and (len(node.args) != 1 or node.keywords):
            fname = node.func.id  # type: ignore[attr-defined]
            raise ValueError(f"expression {text!r}: {fname} takes exactly one argument, as in {fname}(x); "
                             f"got {len(node.args)} positional and {len(node.keywords)} keyword")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ValueError(f"expression {text!r} may only use real numbers, found {node.value!r}")
            # a float, so that 9**9**9 overflows at once instead of computing an integer for ever
            node.value = float(node.value)
    code = compile(tree, "<expression>", "eval")
    env: dict[str, Any] = {name: getattr(torch, name) for name in FUNCTIONS}
    env.update(pi=math.pi, e=math.e, __builtins__={})

    def fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = eval(code, env, {"x": x, "y": y})  # noqa: S307 (a checked tree of arithmetic and torch calls)
        return out if isinstance(out, torch.Tensor) else torch.full_like(x, float(out))

    try:
        fn(torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    except Exception as err:  # e.g. 9**9**9 overflows: say so for the expression, not deep in a run
        raise ValueError(f"expression {text!r} cannot be evaluated: {type(err).__name__}: {err}") from None
    kwargs.setdefault("name", str(text).strip())
    return from_function(fn, **kwargs)


def load(spec: str) -> Landscape:
    """A landscape from a built-in name, ``module:function`` or an expression in ``x`` and ``y``."""
    from . import get, names

    text = str(spec).strip()
    if text.lower() in names():
        return get(text)
    module, sep, attr = text.partition(":")
    if sep and module.replace(".", "").replace("_", "").isalnum() and attr.isidentifier():
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"cannot load landscape {text!r}: {err}") from None
        if isinstance(obj, Landscape):
            return obj
        if callable(obj):
            made = obj() if _takes_no_arguments(obj) else None
            if isinstance(made, Landscape):
                return made
            return from_function(obj, name=text)
        raise ValueError(f"{text!r} is neither a Landscape nor a function fn(x, y)")
    if any(c.isalpha() for c in text) and ("x" in text or "y" in text) and not text.isidentifier():
        return from_expression(text)
    if text in ("x", "y"):
        return from_expression(text)
    raise ValueError(f"unknown landscape {spec!r}; valid names: {', '.join(names())}, or module:function, "
                     "or an expression in x and y such as 'x**2 + 10*y**2'")


def _takes_no_arguments(fn: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


__all__ = ["from_expression", "load", "FUNCTIONS"]
