"""What the lab page can choose from, generated from the library itself.

* :func:`landscape_info` and :func:`landscape_grid`: the landscapes of
  :mod:`descend.landscapes` with their facts, and a grid of values with contour
  lines (matplotlib's contour generator, ``contourpy``) so that the page only
  draws;
* :func:`optimizer_catalog`: every optimizer of the registry
  (:func:`descend.optim.names`, :func:`descend.optim.display`) with its
  hyperparameters (:func:`descend.optim.registry.accepted_keywords`), their
  defaults and types from the constructor signature and their allowed range
  and choices from the class's validation specs, plus a range for the page's
  slider;
* :func:`schedule_catalog`: every schedule of :func:`descend.schedules.describe`
  with its options (kind, default, help, choices), as data.

Nothing here computes an optimizer step; the page builds its controls from
these tables and sends the user's choices back to the API.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from descend import landscapes
from descend import optim as O
from descend import schedules as S
from descend.optim._validate import Range
from descend.optim.registry import accepted_keywords
from descend.spec import SpecError

# Constructor arguments the page never offers: how to run, not what to run.
HIDDEN_HYPER = ("self", "params", "nonfinite", "impl", "state_dtype", "state_rounding")

# Slider ranges (lo, hi, log scale) for hyperparameters whose allowed range is
# open-ended or too wide to slide through. Hard caps keep a request bounded.
UI_RANGES: dict[str, tuple[float, float, bool]] = {
    "lr": (1e-5, 10.0, True),
    "eps": (1e-12, 1.0, True),
    "cg_tol": (1e-12, 1.0, True),
    "c1": (1e-6, 0.5, True),
    "lr_decay": (0.0, 1.0, False),
    "weight_decay": (0.0, 1.0, False),
    "l1": (0.0, 1.0, False),
    "damping": (0.0, 10.0, False),
    "initial_accumulator_value": (0.0, 1.0, False),
    "backtrack": (0.05, 0.95, False),
}
INTEGER_CAPS: dict[str, int] = {"max_backtracks": 100, "cg_max_iter": 1000, "exact_max": 1_000_000}

# Hyperparameters shown up front besides the positional ones; the rest sit
# behind "more options" on the page.
PRIMARY_EXTRA: dict[str, tuple[str, ...]] = {"newton": ("damping", "line_search")}

# Starting values for the lab page: the library's defaults suit large models
# (Adam's 1e-3 barely moves in a few hundred 2-D steps, SGD's 0.01 overshoots
# Rosenbrock's walls). These are presets for the controls, nothing more.
LAB_PRESETS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 2e-3},
    "momentum": {"lr": 5e-4, "beta": 0.9},
    "nesterov": {"lr": 5e-4, "beta": 0.9},
    "adagrad": {"lr": 1.0},
    "rmsprop": {"lr": 3e-3},
    "adam": {"lr": 5e-2},
    "adamw": {"lr": 5e-2, "weight_decay": 0.0},
    "newton": {"line_search": True},
}

# One line of help per hyperparameter, shown under its control on the page.
HYPER_HELP: dict[str, str] = {
    "lr": "learning rate: the step size",
    "momentum": "weight of the previous step (torch's SGD momentum)",
    "dampening": "scales the new gradient in the momentum sum by 1 - dampening",
    "nesterov": "look ahead: use the gradient after the momentum step",
    "weight_decay": "pull the weights toward 0 (L2)",
    "l1": "pull the weights toward 0 by a constant (L1, lasso)",
    "maximize": "climb instead of descend",
    "beta": "decay of the moving average (momentum or squared gradients)",
    "style": "how momentum is written: the note's or torch's form",
    "lr_inside": "multiply by lr inside the momentum sum rather than outside",
    "first_step": "how the first momentum step is taken",
    "lookahead": "how Nesterov's look-ahead is computed",
    "eps": "added to the denominator so it never divides by 0",
    "eps_mode": "where eps goes: outside or inside the square root",
    "initial_accumulator_value": "starting value of the squared-gradient sum",
    "lr_decay": "lr / (1 + (t - 1) lr_decay)",
    "centered": "divide by the variance of the gradient, not its mean square",
    "beta1": "decay of the gradient's moving average (momentum)",
    "beta2": "decay of the squared gradient's moving average",
    "amsgrad": "divide by the running maximum of the squared-gradient average",
    "bias_correction": "undo the moving averages' pull toward 0 in the first steps",
    "damping": "added to the Hessian's diagonal (Levenberg-Marquardt)",
    "line_search": "shrink the step until f falls enough (Armijo)",
    "hessian": "how the Newton system is solved: exactly or by conjugate gradients",
    "exact_max": "largest size solved exactly",
    "cg_tol": "conjugate gradients stop below this residual",
    "cg_max_iter": "most conjugate-gradient iterations",
    "c1": "Armijo's sufficient-decrease constant",
    "backtrack": "factor the step shrinks by in the line search",
    "max_backtracks": "most shrinkings per step",
}

# Where the page starts a landscape's race when it differs from the landscape's
# own suggestion: note 003's f = 3x²y is unbounded below, and from (1, 1)
# gradient descent slides onto the line x = 0 of critical points (f = 0, no
# minimum); from (1, 0.3) it runs off to y -> -inf as the note says.
PAGE_STARTS: dict[str, tuple[float, float]] = {"note003": (1.0, 0.3)}
# Contour grid points per side the page asks for: Rosenbrock's narrow valley
# needs a finer grid, or its floor breaks into loops.
PAGE_GRID: dict[str, int] = {"rosenbrock": 160}


# ---------------------------------------------------------------- landscapes


def _finite(v: float | None) -> float | None:
    """``v`` as a float, or None when it is None, NaN or infinite (JSON has neither)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _short(v: float) -> float | None:
    """``v`` to 6 significant digits (enough to colour a pixel), None when not finite."""
    return float(f"{v:.6g}") if math.isfinite(v) else None


def landscape_info(name: str) -> dict[str, Any]:
    """The facts of landscape ``name`` as JSON-ready values."""
    land = landscapes.get(name)
    return {
        "name": land.name,
        "title": land.title,
        "note": land.note,
        "box": list(land.box),
        "start": list(land.start),
        "minima": [{"x": m.x, "y": m.y, "kind": m.kind} for m in land.minima],
        "saddles": [list(s) for s in land.saddles],
        "f_star": _finite(land.f_star),
        "log_levels": land.log_levels,
        "page_start": list(PAGE_STARTS.get(name, land.start)),
        "page_grid": PAGE_GRID.get(name, 90),
    }


def _resolved_floor(gen: Any, base: float, lo: float, top: float, land: Any) -> float:
    """The lowest level (above ``base``) whose contour the grid draws without false loops.

    A narrow valley is missed between grid samples, and a level below what the
    grid resolves breaks into a chain of small loops along its floor: more
    closed loops than the minima below that level. Levels start at the first
    candidate with no more loops than that.
    """
    candidates = base + np.logspace(np.log10(lo), np.log10(top), 48)[:24]  # the floor's half
    floor = lo
    for k, level in enumerate(candidates[:-1]):
        if _false_loops(gen, float(level), land):
            floor = float(candidates[k + 1] - base)
    return floor


def _false_loops(gen: Any, level: float, land: Any) -> bool:
    """Whether the contour at ``level`` has more closed loops than minima below it."""
    loops = sum(1 for line in gen.lines(level) if len(line) > 3 and np.allclose(line[0], line[-1]))
    return loops > max(1, sum(1 for m in land.minima if float(land.value([m.x, m.y])) < level))


@lru_cache(maxsize=64)
def landscape_grid(name: str, n: int = 80, levels: int = 18) -> dict[str, Any]:
    """Values of landscape ``name`` on an ``n`` by ``n`` grid over its box, with contour lines.

    ``z[j][i]`` is ``f(x[i], y[j])`` (None where not finite). Contour levels
    are log-spaced in ``f - f_min`` when the landscape says so (``f_min`` is
    ``f_star`` or the smallest grid value), evenly spaced otherwise; each
    level's lines come from matplotlib's contour generator as lists of
    ``[x, y]`` points.
    """
    import contourpy

    land = landscapes.get(name)
    xmin, xmax, ymin, ymax = land.box
    xs = torch.linspace(xmin, xmax, n, dtype=torch.float64)
    ys = torch.linspace(ymin, ymax, n, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    with torch.no_grad():
        z = land.value(torch.stack((gx, gy), dim=-1)).numpy()
    finite = np.isfinite(z)
    zmin = float(z[finite].min())
    zmax = float(z[finite].max())
    gen = contourpy.contour_generator(
        xs.numpy(), ys.numpy(), np.where(finite, z, np.nan), line_type="Separate"
    )
    if land.log_levels:
        base = min(zmin, land.f_star) if land.f_star is not None else zmin
        top = max(zmax - base, 1e-12)
        lo = max(top * 1e-6, 1e-12)
        # the lowest level sits just above the grid's minimum so the basin shows
        lo = max(lo, (zmin - base) * 1.5) if zmin - base > 0 else lo
        lo = _resolved_floor(gen, base, lo, top, land)
        values = base + np.logspace(np.log10(lo), np.log10(top), levels)
    else:
        base = zmin
        values = np.linspace(zmin, zmax, levels + 2)[1:-1]
    if land.log_levels:  # a level the grid cannot resolve anywhere along a valley is left out
        values = np.array([v for v in values if not _false_loops(gen, float(v), land)])
    contours = []
    for level in values:
        lines = gen.lines(float(level))
        paths = [np.round(line, 5).tolist() for line in lines if len(line) >= 2]
        contours.append({"level": float(level), "paths": paths})
    return {
        "name": land.name,
        "n": n,
        "box": list(land.box),
        "x": xs.tolist(),
        "y": ys.tolist(),
        "z": [[_short(v) for v in row] for row in z.tolist()],
        "z_min": zmin,
        "z_max": zmax,
        "base": float(base),
        "log_levels": land.log_levels,
        "levels": [float(v) for v in values],
        "contours": contours,
    }


# ---------------------------------------------------------------- optimizers


def _range_of(spec: Any) -> Range | None:
    """The :class:`Range` a spec checks against, also inside ``optional(range)``."""
    if isinstance(spec, Range):
        return spec
    for cell in getattr(spec, "__closure__", None) or ():
        if isinstance(cell.cell_contents, Range):
            return cell.cell_contents
    return None


def _types_of(annotation: Any) -> set[type]:
    """The plain types in an annotation such as ``float | torch.Tensor | None``."""
    if annotation is inspect.Parameter.empty:
        return set()
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: set[type] = set()
        for arg in typing.get_args(annotation):
            out |= _types_of(arg)
        return out
    return {annotation} if isinstance(annotation, type) else set()


def _hyper_spec(opt_name: str, cls: type, p: inspect.Parameter) -> dict[str, Any]:
    spec = cls._specs.get(p.name)
    found = _types_of(p.annotation)
    default = p.default
    nullable = type(None) in found or default is None
    entry: dict[str, Any] = {
        "name": p.name,
        "default": default,
        "nullable": nullable,
        "primary": p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        or p.name in PRIMARY_EXTRA.get(opt_name, ()),
        "help": HYPER_HELP.get(p.name, ""),
    }
    if isinstance(spec, tuple):
        entry.update(kind="choice", choices=list(spec))
        return entry
    if spec is bool or bool in found:
        entry.update(kind="bool")
        return entry
    kind = "integer" if int in found and float not in found else "number"
    rng = _range_of(spec)
    lo = rng.lo if rng else (0.0 if kind == "integer" else -math.inf)
    hi = rng.hi if rng else math.inf
    entry.update(
        kind=kind,
        min=lo if math.isfinite(lo) else None,
        max=hi if math.isfinite(hi) else None,
        min_open=bool(rng.lo_open) if rng else False,
        max_open=bool(rng.hi_open) if rng else False,
    )
    if kind == "integer":
        cap = INTEGER_CAPS.get(p.name, 1_000_000)
        entry["max"] = cap
        entry["max_open"] = False
        entry["ui"] = {"min": max(lo, 0), "max": cap, "log": False}
    elif p.name in UI_RANGES:
        ulo, uhi, log = UI_RANGES[p.name]
        entry["ui"] = {"min": max(ulo, lo), "max": min(uhi, hi), "log": log}
    elif rng is not None and rng.hi == 1.0:
        entry["ui"] = {"min": rng.lo, "max": 0.999 if rng.hi_open else 1.0, "log": False}
    else:
        top = max(abs(default) * 10 if isinstance(default, (int, float)) else 1.0, 1.0)
        entry["ui"] = {"min": max(lo, 0.0), "max": min(hi, top), "log": False}
    return entry


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    """The registry's keywords of ``cls`` (:func:`accepted_keywords`) as signature parameters.

    Each parameter (default, annotation) is the one of the first class up the
    MRO whose ``__init__`` names it, so a subclass's default wins.
    """
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init, eval_str=True)
        except (NameError, TypeError):  # pragma: no cover - annotations that do not resolve
            sig = inspect.signature(init)
        for p in sig.parameters.values():
            found.setdefault(p.name, p)
    return [found[k] for k in accepted_keywords(cls) if k not in HIDDEN_HYPER and k in found]


def optimizer_names() -> list[str]:
    """Every name the API accepts: the registry's aliases (``gd``) and keys."""
    return O.names()


@lru_cache(maxsize=1)
def optimizer_catalog() -> dict[str, dict[str, Any]]:
    """Every optimizer: ``{name: {"class", "display", "doc", "hyper": [...], "preset": {...}}}``.

    Each hyperparameter entry has ``name``, ``kind`` (``number``, ``integer``,
    ``bool`` or ``choice``), ``default``, ``nullable``, ``primary`` and, by
    kind, ``min``/``max`` with ``min_open``/``max_open`` (the allowed range as
    the optimizer validates it), ``choices``, and ``ui`` (a slider range).
    """
    out: dict[str, dict[str, Any]] = {}
    for name, cls in O.OPTIMIZERS.items():
        hyper = [_hyper_spec(name, cls, p) for p in _init_parameters(cls)]
        doc = inspect.getdoc(cls) or ""
        out[name] = {
            "name": name,
            "class": cls.__name__,
            "display": O.display(name),
            "aliases": [a for a, key in O.ALIASES.items() if key == name],
            "summary": doc.split("\n\n")[0].replace("\n", " "),
            "hyper": hyper,
            "preset": dict(LAB_PRESETS.get(name, {})),
            "needs_closure": name == "newton",
        }
    return out


def optimizer_hyper_default(optimizer: str, name: str) -> Any:
    """The constructor default of hyperparameter ``name`` of ``optimizer``."""
    for h in optimizer_catalog()[resolve_optimizer(optimizer)]["hyper"]:
        if h["name"] == name:
            return h["default"]
    raise KeyError(f"{optimizer} has no hyperparameter {name!r}")


def resolve_optimizer(name: str) -> str:
    """The registry key for ``name`` (``"gd"`` is ``"sgd"``)."""
    from descend.optim.registry import key_of

    return key_of(name)


def check_hyper(optimizer: str, hyper: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the hyperparameter unless ``hyper`` suits ``optimizer``.

    Unknown names (:class:`descend.spec.SpecError` with ``field``) and
    integers above the web caps are refused; every value is then checked by
    building the optimizer through the registry on a throw-away parameter, so
    the message is the library's own.
    """
    key = resolve_optimizer(optimizer)
    known = [h["name"] for h in optimizer_catalog()[key]["hyper"]]
    for name, value in hyper.items():
        if name not in known:
            raise SpecError(f"{O.display(key)} has no option {name!r} in the lab; it takes {', '.join(known)}",
                            field=name)
        cap = INTEGER_CAPS.get(name)
        if cap is not None and isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise SpecError(f"{name} must be at most {cap} in the lab, got {value!r}", field=name)
    O.build(optimizer, [torch.zeros(2, dtype=torch.float64, requires_grad=True)], **hyper)


# ---------------------------------------------------------------- schedules

# Starting values the page fills in for options a schedule needs.
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "every": 100,
    "gamma": 0.5,
    "milestones": "100/200",
    "rate": 0.01,
    "k": 10.0,
    "period": 100,
    "max_lr": 0.1,
    "steps_up": 50,
    "boundaries": "100/200",
    "values": "0.01/0.001",
}


@lru_cache(maxsize=1)
def schedule_catalog() -> dict[str, dict[str, Any]]:
    """Every schedule of :func:`descend.schedules.describe`: ``{name: {"options": [...], ...}}``.

    Options keep the registry's ``kind``, ``help``, ``choices`` and
    ``default``; a required option's ``default`` is a starting value for the
    page's control (``SCHEDULE_DEFAULTS``).
    """
    out: dict[str, dict[str, Any]] = {}
    for name, info in S.describe().items():
        entry = info.to_dict()
        for opt in entry["options"]:
            if opt["required"]:
                opt["default"] = SCHEDULE_DEFAULTS.get(opt["name"])
            if not opt["choices"]:
                del opt["choices"]
        out[name] = entry
    return out
