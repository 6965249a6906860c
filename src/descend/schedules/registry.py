"""Every time-based schedule by name, built from one spec: :func:`build`.

The CLI (``descend schedule``, ``descend train --schedule``), the web API and
Python all build a schedule from the one spec syntax of :mod:`descend.spec`::

    build("multi-step:milestones=30/60/90,gamma=0.1", steps=100, lr=0.1)
    build("cosine", steps=1000, lr=0.1, warmup=100)    # warmup(cosine(0.1, 900), 100)
    build(cosine(0.1, 500), steps=1000, lr=0.1)        # a Schedule is returned as is

Options are the Python schedule's argument names (``every``, ``gamma``,
``milestones``, ...), plus ``warmup``, ``warmup_start`` and ``warmup_shape``
for a warmup in front. Schedules with a horizon (linear, polynomial, cosine,
one-cycle) span the ``steps`` left after the warmup; ``decay_steps`` (or
``steps`` in a spec, the Python name) sets the horizon explicitly.

Errors are :class:`~descend.spec.SpecError` (a ``ValueError``) whose
``field`` names the offending option in spec words (``milestones``, ``name``,
``steps``, ``lr``), so callers point at it without reading the message.

:func:`describe` is the same table as data (names, options with kind,
default, help and choices, which need a horizon), for help texts and the web
catalog. ``plateau`` is not here: it observes a metric, so it is built in
Python around a time-based schedule (see :mod:`descend.schedules.on_plateau`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..spec import SpecError, norm, parse, shown
from .base import Schedule
from .combine import WARMUP_SHAPES, Warmup
from .cycles import ANNEAL, CYCLIC_MODES, CosineRestarts, Cyclic, OneCycle
from .decay import (
    Constant,
    Cosine,
    Exponential,
    InverseSqrt,
    InverseTime,
    Linear,
    MultiStep,
    Piecewise,
    Polynomial,
    Step,
)

# name -> (schedule, options it takes, options it needs); "decay_steps" is the schedule's `steps`.
SCHEDULES: dict[str, tuple[type[Schedule], tuple[str, ...], tuple[str, ...]]] = {
    "constant": (Constant, (), ()),
    "step": (Step, ("every", "gamma"), ("every",)),
    "multi_step": (MultiStep, ("milestones", "gamma"), ("milestones",)),
    "exponential": (Exponential, ("gamma",), ("gamma",)),
    "inverse_time": (InverseTime, ("rate", "every", "staircase"), ("rate",)),
    "inverse_sqrt": (InverseSqrt, ("k",), ("k",)),
    "linear": (Linear, ("decay_steps", "final_lr"), ()),
    "polynomial": (Polynomial, ("decay_steps", "power", "final_lr"), ()),
    "cosine": (Cosine, ("decay_steps", "final_lr"), ()),
    "cosine_restarts": (CosineRestarts, ("period", "mult", "final_lr"), ("period",)),
    "one_cycle": (
        OneCycle,
        ("decay_steps", "pct_start", "anneal", "div_factor", "final_div_factor", "three_phase"),
        (),
    ),
    "cyclic": (Cyclic, ("max_lr", "steps_up", "steps_down", "mode", "gamma"), ("max_lr", "steps_up")),
    "piecewise": (Piecewise, ("boundaries", "values"), ("boundaries", "values")),
}
HORIZON = ("linear", "polynomial", "cosine", "one_cycle")
WARMUP_OPTIONS = ("warmup", "warmup_start", "warmup_shape")
LIST_OPTIONS = {"milestones": int, "boundaries": int, "values": float}

# option -> (kind, help); kind is number, integer, bool, choice or list.
OPTIONS: dict[str, tuple[str, str]] = {
    "gamma": ("number", "decay factor in (0, 1]: step, multi-step, exponential, cyclic exp_range"),
    "every": ("integer", "step: decay every N steps; inverse-time: time scale"),
    "milestones": ("list", "multi-step: increasing steps, e.g. 30/60/90"),
    "rate": ("number", "inverse-time: r in lr / (1 + r n / every)"),
    "staircase": ("bool", "inverse-time: change only every `every` steps"),
    "k": ("number", "inverse-sqrt: k in min(1, k / sqrt(n)) lr"),
    "final_lr": ("number", "the floor reached at the end (of each cycle)"),
    "power": ("number", "polynomial: the exponent"),
    "decay_steps": ("integer", "horizon (default: the run's steps minus warmup)"),
    "period": ("integer", "cosine-restarts: first cycle length"),
    "mult": ("integer", "cosine-restarts: cycle length multiplier"),
    "max_lr": ("number", "cyclic: upper lr"),
    "steps_up": ("integer", "cyclic: steps going up"),
    "steps_down": ("integer", "cyclic: steps going down (default steps_up)"),
    "mode": ("choice", "cyclic: triangular, triangular2 or exp_range"),
    "pct_start": ("number", "one-cycle: fraction of steps going up"),
    "anneal": ("choice", "one-cycle: cos or linear"),
    "div_factor": ("number", "one-cycle: start at lr / div_factor"),
    "final_div_factor": ("number", "one-cycle: end at lr / div_factor / final_div_factor"),
    "three_phase": ("bool", "one-cycle: the paper's three phases"),
    "boundaries": ("list", "piecewise: increasing steps, e.g. 100/200"),
    "values": ("list", "piecewise: lr from each boundary, e.g. 0.05/0.01"),
    "warmup": ("integer", "warmup steps in front of the schedule (< steps)"),
    "warmup_start": ("number", "warmup's first lr (default 0)"),
    "warmup_shape": ("choice", "warmup shape: linear, cosine or constant"),
}
CHOICES: dict[str, tuple[str, ...]] = {"mode": CYCLIC_MODES, "anneal": ANNEAL, "warmup_shape": WARMUP_SHAPES}
EXAMPLES: dict[str, str] = {
    "constant": "constant",
    "step": "step:every=30,gamma=0.1",
    "multi_step": "multi-step:milestones=30/60/90,gamma=0.1",
    "exponential": "exponential:gamma=0.9",
    "inverse_time": "inverse-time:rate=0.5",
    "inverse_sqrt": "inverse-sqrt:k=10",
    "linear": "linear:final_lr=0.001",
    "polynomial": "polynomial:power=2",
    "cosine": "cosine:final_lr=0.001,warmup=10",
    "cosine_restarts": "cosine-restarts:period=20,mult=2",
    "one_cycle": "one-cycle:pct_start=0.3",
    "cyclic": "cyclic:max_lr=0.1,steps_up=20",
    "piecewise": "piecewise:boundaries=30/60,values=0.05/0.01",
}


@dataclass(frozen=True)
class Option:
    """One option of a schedule: its spec name, kind, Python default, help and choices."""

    name: str
    kind: str
    default: Any
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()
    warmup: bool = False


@dataclass(frozen=True)
class Info:
    """One schedule as data: name (``multi_step``), shown name (``multi-step``), options, horizon."""

    name: str
    shown: str
    summary: str
    options: tuple[Option, ...]
    required: tuple[str, ...]
    horizon: bool
    example: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) for JSON."""
        out = dataclasses.asdict(self)
        out["options"] = [{**o, "choices": list(o["choices"])} for o in out["options"]]
        out["required"] = list(self.required)
        return out


def names() -> list[str]:
    """The schedules :func:`build` knows, as errors and help spell them (``multi-step``)."""
    return [shown(n) for n in SCHEDULES]


def _defaults(factory: type[Schedule]) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(factory):  # type: ignore[arg-type]
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return out


def describe() -> dict[str, Info]:
    """Every schedule of :data:`SCHEDULES` as :class:`Info`, keyed by its name (``multi_step``)."""
    out = {}
    warmup_defaults = {"warmup": None, "warmup_start": 0.0, "warmup_shape": "linear"}
    for name, (factory, takes, needs) in SCHEDULES.items():
        defaults = {**_defaults(factory), **warmup_defaults}
        options = tuple(
            Option(
                name=opt, kind=OPTIONS[opt][0], default=defaults.get(opt), help=OPTIONS[opt][1],
                required=opt in needs, choices=CHOICES.get(opt, ()), warmup=opt in WARMUP_OPTIONS,
            )
            for opt in (*takes, *WARMUP_OPTIONS)
        )
        doc = (factory.__doc__ or "").strip().split("\n\n")[0]
        out[name] = Info(
            name=name, shown=shown(name), summary=" ".join(doc.split()), options=options,
            required=needs, horizon=name in HORIZON, example=EXAMPLES[name],
        )
    return out


def _as_list(name: str, value: Any) -> list:
    convert = LIST_OPTIONS[name]
    items = re.split(r"[,/]", value.replace(" ", "")) if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        items = [items]
    try:
        out = [convert(v) if convert is float else _whole(v) for v in items if v != ""]
    except (TypeError, ValueError):
        what = "whole numbers" if convert is int else "numbers"
        raise SpecError(
            f"{name} must be {what} separated by /, e.g. {name}=30/60/90; got {value!r}", field=name
        ) from None
    return out


def _whole(v: Any) -> int:
    """``v`` as an int: ``30`` or ``30.0``, not ``30.7`` (which int() would cut to 30 silently)."""
    number = float(v)
    if not number.is_integer():
        raise ValueError(v)
    return int(number)


def resolve(spec: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a spec, checked: a known name, options it takes, options it needs.

    ``overrides`` (None means not given) replace the spec's options. Raises
    :class:`SpecError` naming the field.
    """
    name, options = parse(spec, "schedule")
    for key, val in overrides.items():
        if val is not None:
            options[norm(key)] = val
    if name == "plateau":
        raise SpecError(
            "plateau observes a metric, so it is not built from a name; in Python wrap a schedule: "
            "plateau(cosine(0.1, 1000), patience=10)",
            field="name",
        )
    if name not in SCHEDULES:
        raise SpecError(f"unknown schedule {shown(name)!r}; choose one of {', '.join(names())}", field="name")
    if "steps" in options:  # the Python name of the horizon
        if "decay_steps" in options:
            raise SpecError("give the horizon once: steps or decay_steps", field="steps")
        options["decay_steps"] = options.pop("steps")
    if "lr" in options:
        raise SpecError(
            f"lr is not an option of {shown(name)}: the schedule starts from the lr given beside it "
            "(the optimizer's lr)",
            field="lr",
        )
    _, takes, needs = SCHEDULES[name]
    unknown = [k for k in options if k not in takes and k not in WARMUP_OPTIONS]
    if unknown:
        allowed = ", ".join((*takes, *WARMUP_OPTIONS))
        raise SpecError(
            f"{', '.join(unknown)} does not apply to {shown(name)}; it takes {allowed}", field=unknown[0]
        )
    missing = [n for n in needs if n not in options]
    if missing:
        raise SpecError(
            f"{shown(name)} needs {', '.join(missing)}, e.g. {EXAMPLES[name]}", field=missing[0]
        )
    for list_name in LIST_OPTIONS:
        if list_name in options:
            options[list_name] = _as_list(list_name, options[list_name])
    return name, options


def _field(message: str, candidates: tuple[str, ...]) -> str | None:
    """The argument a library error starts with (``"gamma must be ..."`` -> ``"gamma"``)."""
    first = message.split(" ", 1)[0]
    return first if first in candidates else None


def build(
    spec: str | Schedule, *, steps: int, lr: float, warmup: int | None = None, **overrides: Any
) -> Schedule:
    """The schedule ``spec`` names, over a run of ``steps`` steps starting from ``lr``.

    ``spec`` is ``"NAME"``, ``"NAME:key=value,..."`` or a :class:`Schedule`
    (returned as is). ``warmup`` and ``overrides`` (option names, None meaning
    not given) replace the spec's options. Raises :class:`SpecError` (a
    ``ValueError``) with ``field`` set to the offending option.
    """
    if isinstance(spec, Schedule):
        return spec
    name, given = resolve(spec, warmup=warmup, **overrides)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SpecError(f"steps must be an integer >= 1, got {steps!r}", field="steps")
    n_warmup = given.pop("warmup", None)
    start = given.pop("warmup_start", None)
    shape = given.pop("warmup_shape", None)
    if n_warmup is None and (start is not None or shape is not None):
        raise SpecError("warmup_start and warmup_shape need warmup", field="warmup")
    if n_warmup is not None and (
        isinstance(n_warmup, bool) or not isinstance(n_warmup, int) or not 1 <= n_warmup < steps
    ):
        raise SpecError(
            f"warmup must be an integer in [1, steps - 1] = [1, {steps - 1}], got {n_warmup!r}", field="warmup"
        )
    factory, takes, _ = SCHEDULES[name]
    horizon_given = "decay_steps" in given
    if name in HORIZON:
        given["steps"] = given.pop("decay_steps", steps - (n_warmup or 0))
    try:
        schedule = factory(lr, **given)
    except (TypeError, ValueError) as e:
        field = _field(str(e), ("lr", "steps", *takes))
        message = str(e)
        if field == "steps" and horizon_given:  # the spec's horizon, not the run length
            field = "decay_steps"
            message = re.sub(r"^steps\b", "decay_steps", message)
        raise SpecError(message, field=field) from None
    if n_warmup is None:
        return schedule
    try:
        return Warmup(schedule, n_warmup, start=0.0 if start is None else start, shape=shape or "linear")
    except (TypeError, ValueError) as e:
        field = {"start": "warmup_start", "shape": "warmup_shape"}.get(_field(str(e), ("start", "shape")) or "")
        message = re.sub(r"^(start|shape)\b", lambda m: f"warmup_{m.group(1)}", str(e))
        raise SpecError(message, field=field or "warmup") from None


def build_schedule(spec: str | Schedule, steps: int, *, lr: float = 0.1, **options: Any) -> Schedule:
    """``build(spec, steps=steps, lr=lr, **options)``: the positional form older callers use."""
    return build(spec, steps=steps, lr=lr, **options)
