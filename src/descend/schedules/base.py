"""What every schedule is: a pure function ``step -> lr``.

A schedule is a small frozen dataclass. Calling it with a step ``n``
(counted from 0) returns the learning rate for that step as a Python float;
nothing else is read or written, so a schedule can be printed, pickled,
plotted and tested without an optimizer. :class:`~descend.schedules.Scheduler`
is what applies one to a ``torch.optim.Optimizer``.

Every schedule has a ``base_lr``: its reference learning rate (its first
argument, ``alpha0`` in the notes; for ``warmup`` and ``plateau`` the one of
the schedule they wrap, for ``join`` the largest of its parts', for
``factor * s`` ``factor * s.base_lr``). ``Scheduler`` uses it to apply one
schedule relative to each param group's own lr.

Scaling by a constant is multiplication::

    0.5 * cosine(0.1, 1000)        # lr(n) = 0.5 * cosine(0.1, 1000)(n), base_lr 0.05

``repr`` shows the call that builds the schedule, e.g.
``warmup(cosine(0.1, 900), 100)``.

**One exception: ``plateau``.** ``plateau(s)`` (reduce on plateau) is the
one schedule whose lr also depends on the metrics it has been shown:
``lr(n) = s(n) * scale``, where ``scale`` changes only in
``observe(metric)``. It is a Schedule anyway so that it composes with the
time-based ones in one object (``plateau(warmup(cosine(...), 100))``, which
torch's ``ReduceLROnPlateau`` cannot) and goes wherever a schedule goes (the
Trainer, the lab). Its state is kept out of everything else by three rules:

* it says so: ``stateful`` is True for it and False for every other schedule;
* it is always the outermost schedule: :func:`check_schedule` refuses it
  inside ``warmup``, ``join``, ``factor * s`` (so every schedule it wraps,
  and every other schedule, stays a pure function);
* only its owner feeds it: :class:`~descend.schedules.Scheduler` calls
  ``observe`` from ``step(metric)`` and saves ``scale`` and the counters in
  its state dict; a runner that shares one schedule between runs must give a
  stateful one a run of its own.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import numbers
import re
import types
from collections.abc import Callable
from typing import Any, ClassVar

from . import _validate as check


def set_field(obj: Schedule, name: str, value: object) -> None:
    """Store a checked value in a frozen dataclass field (from ``__post_init__``)."""
    object.__setattr__(obj, name, value)


# torch.optim.lr_scheduler's keyword -> descend's field of the same meaning, for the error below
TORCH_NAMES = {
    "eta_min": "final_lr", "T_max": "steps", "total_steps": "steps", "total_iters": "steps",
    "max_lr": "lr", "anneal_strategy": "anneal", "step_size": "every", "T_0": "period", "T_mult": "mult",
    "base_lr": "lr", "step_size_up": "steps_up", "step_size_down": "steps_down",
}


class _Made(type):
    """Makes schedules: an unknown keyword names what the schedule takes, and torch's equivalent."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except TypeError as e:
            if "unexpected keyword argument" not in str(e) or not dataclasses.is_dataclass(cls):
                raise
            fields = [f.name for f in dataclasses.fields(cls) if f.init]
            bad = next((k for k in kwargs if k not in fields), None)
            if bad is None:
                raise
            ours = TORCH_NAMES.get(bad)
            hint = f" (torch.optim.lr_scheduler's {bad} is {ours} here)" if ours in fields else ""
            raise TypeError(
                f"{getattr(cls, '_name', cls.__name__)}() got an unexpected keyword argument {bad!r}; "
                f"it takes {', '.join(fields)}{hint}"
            ) from None


class Schedule(metaclass=_Made):
    """Base class: subclasses are frozen dataclasses that implement ``_lr(n)``.

    ``schedule(step)`` validates the step (an integer >= 0) and returns
    ``float(self._lr(step))``. A subclass declares how each argument is
    checked in ``_checks`` (field -> ``check(name, value)`` returning the value
    to store, run in order when the schedule is built); one with checks that
    involve several fields adds them in its own ``__post_init__`` after
    ``super().__post_init__()``.
    """

    _name: ClassVar[str] = "schedule"
    _checks: ClassVar[dict[str, Callable[[str, Any], Any]]] = {}
    stateful: ClassVar[bool] = False
    """True only for ``plateau``: its lr also depends on the metrics it observed (see the module docstring)."""

    def __post_init__(self) -> None:
        for name, check_field in self._checks.items():
            set_field(self, name, check_field(name, getattr(self, name)))

    @property
    def base_lr(self) -> float:
        """The reference lr: the first argument (``alpha0``)."""
        return self.lr  # type: ignore[attr-defined]

    def _lr(self, n: int) -> float:
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        return float(self._lr(check.step(step)))

    def __mul__(self, factor: Any) -> Schedule:
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
            return NotImplemented
        return Scaled(self, factor)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        if not dataclasses.is_dataclass(self):  # a user's subclass written as a plain class
            shown = ", ".join(f"{k}={_show(v)}" for k, v in vars(self).items() if not k.startswith("_"))
            return f"{type(self).__name__}({shown})"
        parts = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if not f.init:
                continue
            value = getattr(self, f.name)
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                parts.append(_show(value))
            elif value != f.default:
                parts.append(f"{f.name}={_show(value)}")
        return f"{self._name}({', '.join(parts)})"


def _show(value: Any) -> str:
    if isinstance(value, Schedule):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if callable(value):
        module = getattr(value, "__module__", None) or "?"
        return f"{module}.{getattr(value, '__qualname__', type(value).__name__)}"
    return repr(value)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def without_addresses(text: str) -> str:
    """``text`` with the `` at 0x7f...`` of default reprs removed: an address differs from process
    to process, so it never tells two schedules apart."""
    return _ADDRESS.sub("", text)


def identity(schedule: Schedule) -> str:
    """A digest of what ``schedule`` computes, for telling a resumed schedule from another one.

    ``repr`` cannot: two different lambdas both show as ``module.<lambda>``, and an object without
    a repr of its own shows its address, which differs in every process. The identity is built from
    the schedule's class and its arguments (a user's plain subclass: its attributes), where a
    function named by ``module.qualname`` stands for itself and a lambda or a nested function
    (whose name does not identify it) contributes its code, constants, defaults and closure;
    objects without a repr of their own contribute their attributes instead of their address.
    """
    return hashlib.sha256(_described(schedule, 0).encode()).hexdigest()[:16]


def _code(code: types.CodeType) -> str:
    consts = ", ".join(_code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return f"code({code.co_code.hex()}; {consts}; {code.co_names})"


def _cell(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # (a variable not yet bound)
        return None


def _described(value: Any, depth: int) -> str:
    if depth > 8:  # (a structure that refers to itself)
        return "..."
    d = depth + 1
    if isinstance(value, Schedule):
        if dataclasses.is_dataclass(value):
            items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value) if f.init]
        else:
            items = [(k, v) for k, v in vars(value).items() if not k.startswith("_")]
        shown = ", ".join(f"{k}={_described(v, d)}" for k, v in items)
        return f"{type(value).__module__}.{type(value).__qualname__}({shown})"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_described(v, d) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_described(k, d)}: {_described(v, d)}" for k, v in value.items()) + "}"
    if isinstance(value, functools.partial):
        return f"partial({_described(value.func, d)}, {_described(value.args, d)}, {_described(value.keywords, d)})"
    if isinstance(value, types.MethodType):
        return f"{_described(value.__self__, d)}.{value.__func__.__name__}"
    if isinstance(value, types.FunctionType):
        name = f"{value.__module__}.{value.__qualname__}"
        if "<" not in value.__qualname__:  # a named function of a module: its name says which
            return name
        cells = [_cell(c) for c in value.__closure__ or ()]
        return (f"{name}[{_code(value.__code__)}; defaults {_described(value.__defaults__, d)}; "
                f"{_described(value.__kwdefaults__, d)}; closure {_described(cells, d)}]")
    if isinstance(value, type | types.BuiltinFunctionType | types.ModuleType):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', getattr(value, '__name__', '?'))}"
    if type(value).__repr__ is object.__repr__ and hasattr(value, "__dict__"):  # no repr but its address
        shown = ", ".join(f"{k}={_described(v, d)}" for k, v in vars(value).items())
        return f"{type(value).__module__}.{type(value).__qualname__}({shown})"
    return without_addresses(repr(value))


def check_schedule(name: str, value: Any, *, plateau_ok: bool = False) -> Schedule:
    """Raise unless ``value`` is a Schedule (and, unless allowed, not a plateau)."""
    if not isinstance(value, Schedule):
        raise ValueError(
            f"{name} must be a descend schedule (e.g. cosine(0.1, 1000)), got {value!r}"
        )
    if not plateau_ok and value.stateful:
        raise ValueError(
            f"{name} must be a time-based schedule; plateau(...) must be the outermost "
            f"schedule (write plateau(warmup(...)), not warmup(plateau(...))), got {value!r}"
        )
    return value


@dataclasses.dataclass(frozen=True, repr=False)
class Scaled(Schedule):
    """``factor * schedule``: ``lr(n) = factor * schedule(n)``; built by ``factor * schedule``."""

    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        check_schedule("schedule", self.schedule)
        object.__setattr__(self, "factor", check.real("factor", self.factor))

    @property
    def base_lr(self) -> float:
        return self.factor * self.schedule.base_lr

    def _lr(self, n: int) -> float:
        return self.factor * self.schedule(n)

    def __repr__(self) -> str:
        return f"{self.factor!r} * {self.schedule!r}"
