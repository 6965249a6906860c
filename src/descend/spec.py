"""The one spec syntax of descend: ``NAME:key=value,...``.

Every entry point (the CLI's ``-o``/``--optimizer``/``--schedule``, the web
API, the tour, Python) spells an optimizer or a schedule with options the
same way::

    adam:lr=0.02,beta1=0.8
    multi-step:milestones=30/60/90,gamma=0.1
    newton:line_search=true

* names and keys accept ``-`` or ``_`` (``multi-step`` == ``multi_step``);
  they are normalised to ``_`` and lower case;
* values are parsed as ``true``/``false``, ``none``, integers, floats, or
  lists of those separated by ``/``; anything else stays a string.

:func:`parse` is the only parser; errors are :class:`SpecError`, a
``ValueError`` that carries the offending ``field`` so that callers (the web
API) can point at it without reading the message.
"""

from __future__ import annotations

from typing import Any


class SpecError(ValueError):
    """A bad spec or option; ``field`` names the offending part (``"name"``, an option key, ...)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def norm(name: str) -> str:
    """``"Multi-Step"`` -> ``"multi_step"``: the key every registry looks names up by."""
    return str(name).strip().lower().replace("-", "_")


def shown(name: str) -> str:
    """The spelling errors and help use: ``"multi_step"`` -> ``"multi-step"``."""
    return norm(name).replace("_", "-")


def value(text: str) -> Any:
    """One option value: bool, None, int, float, a ``/``-separated list of those, or the string."""
    text = text.strip()
    if "/" in text:
        return [value(part) for part in text.split("/") if part.strip()]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_options(text: str, what: str = "options") -> dict[str, Any]:
    """``"lr=0.1,beta=0.9"`` -> ``{"lr": 0.1, "beta": 0.9}`` (keys normalised with :func:`norm`)."""
    out: dict[str, Any] = {}
    last = None
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        if "=" not in part:
            # a bare number after an option is a list written with commas: milestones=30,60,90
            fix = (f"join a list with /: {last[0]}={last[1]}/{part}" if last is not None and _numeric(part)
                   else f"write {part}=VALUE")
            raise SpecError(
                f"{what} must be key=value pairs separated by commas (lists joined by /), "
                f"e.g. lr=0.01,milestones=30/60; got {part!r} ({fix})",
                field=what,
            )
        last = part.split("=", 1)
        key, raw = part.split("=", 1)
        key = norm(key)
        if not key:
            raise SpecError(f"{what}: empty option name in {part!r}", field=what)
        if key in out:
            raise SpecError(f"{what}: option {key!r} given twice", field=key)
        if not raw.strip():
            raise SpecError(f"{what}: option {key!r} has no value; write {key}=VALUE", field=key)
        out[key] = value(raw)
    return out


def parse(text: str, what: str = "spec") -> tuple[str, dict[str, Any]]:
    """``"adam:lr=0.02,beta1=0.8"`` -> ``("adam", {"lr": 0.02, "beta1": 0.8})``.

    The name is normalised with :func:`norm`; ``what`` names the argument in errors.
    """
    if not isinstance(text, str):
        raise SpecError(f"{what} must be a string NAME or NAME:key=value,..., got {text!r}", field="name")
    name, _, rest = text.partition(":")
    if not name.strip():
        raise SpecError(
            f"{what} must look like NAME or NAME:key=value,... (e.g. adam:lr=0.02); got {text!r}",
            field="name",
        )
    return norm(name), parse_options(rest, what)


def unparse(name: str, options: dict[str, Any]) -> str:
    """The inverse of :func:`parse`: ``("adam", {"lr": 0.02})`` -> ``"adam:lr=0.02"``."""

    def one(v: Any) -> str:
        if isinstance(v, list | tuple):
            return "/".join(one(x) for x in v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return "none" if v is None else str(v)

    if not options:
        return shown(name)
    return shown(name) + ":" + ",".join(f"{k}={one(v)}" for k, v in options.items())
