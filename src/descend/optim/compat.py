"""torch.optim compatibility: torch's keywords, param-group keys and state dicts.

descend's names and defaults come from the seed notes (``beta1``, ``beta``,
``impl``); torch.optim spells some of them differently. So that swapping
``torch.optim.X`` for ``descend.optim.X`` just works, every optimizer with a
torch twin also accepts torch's spellings:

=============  ======================  =======================================
descend        torch twin              torch's keywords accepted
=============  ======================  =======================================
``SGD``        ``torch.optim.SGD``     (all of torch's names are already ours)
``Momentum``   ``SGD(momentum=m)``     ``momentum`` -> ``beta``; ``nesterov=False``
``Nesterov``   ``SGD(nesterov=True)``  ``momentum`` -> ``beta``; ``nesterov=True``
``Adagrad``    ``torch.optim.Adagrad`` (all of torch's names are already ours)
``RMSprop``    ``torch.optim.RMSprop`` ``alpha`` -> ``beta``
``Adam``       ``torch.optim.Adam``    ``betas`` -> ``(beta1, beta2)``; ``decoupled_weight_decay=False``
``AdamW``      ``torch.optim.AdamW``   ``betas`` -> ``(beta1, beta2)``
=============  ======================  =======================================

and, on all of them, torch's implementation switches mapped to ``impl``:
``fused=True`` -> ``impl="fused"`` (descend's compiled one-pass step),
``foreach=True`` or ``fused=False`` -> ``impl="foreach"`` (multi-tensor ops),
``foreach=False`` -> the per-tensor ``impl="eager"`` path (torch's for-loop).
``capturable=False`` and ``differentiable=False`` are accepted (that is what
descend does); ``True`` is refused with a message: descend's step counter is a
host integer (no CUDA-graph capture) and its step runs under ``no_grad``.

Giving both spellings of one value (``betas`` and ``beta1``, ``fused`` and
``impl``) is an error. Defaults stay the notes' (RMSprop's ``beta`` is 0.9
unless ``alpha`` says otherwise; eps stays where the notes put it).

Param groups carry torch's keys too, kept in sync with descend's: Adam's
groups have ``betas == (beta1, beta2)``, Momentum's and Nesterov's have
``momentum == beta``, RMSprop's have ``alpha == beta``. torch's momentum-cycling schedulers (``OneCycleLR``,
``CyclicLR``) write those keys, and descend steps with the values they wrote.

State dicts: :func:`from_torch` turns a ``torch.optim`` state dict into
descend's (``exp_avg`` -> ``V`` and so on; called by ``load_state_dict``) and
:func:`to_torch` does the reverse (``state_dict(format="torch")``). When the
optimizer was built from ``named_parameters()``, :func:`match_names` pairs the
saved state with parameters by name instead of by position. The export is
torch's own dict, as many bytes (Adagrad's holds a step-0 entry for every parameter,
as torch's does); a loaded group with ``capturable``/``differentiable`` True is refused.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ._validate import as_number, check
from .states import at_init, step_count
from .torchnames import torch_state_keys

IMPL_FLAGS = ("foreach", "fused", "capturable", "differentiable")


@dataclass(frozen=True)
class Twin:
    """How one descend optimizer maps onto its torch.optim twin."""

    torch: str  # torch.optim class name
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)  # torch keyword -> ours
    fixed: dict[str, Any] = field(default_factory=dict)  # torch keyword -> the one value we compute
    state: dict[str, str] = field(default_factory=dict)  # our state key -> torch's
    conventions: dict[str, Any] = field(default_factory=dict)  # our keyword -> what torch always does
    step: bool = True  # torch keeps a step count in the state
    marker: str = "lr"  # a param-group key every state dict of the twin has
    at_init: tuple[str, str, str] | None = None  # state torch gives every parameter: ours, theirs, group key

    @property
    def group_aliases(self) -> dict[str, tuple[str, ...]]:
        """Torch's param-group keys kept in sync with ours (read and written by torch's schedulers)."""
        return {k: v for k, v in self.keywords.items() if k in ("betas", "momentum", "alpha")}


_SGD_STATE = {"v": "momentum_buffer"}
_ADAM = dict(
    keywords={"betas": ("beta1", "beta2")},
    state={"V": "exp_avg", "S": "exp_avg_sq", "S_max": "max_exp_avg_sq"},
    conventions={"eps_mode": "outside", "bias_correction": True, "l1": 0.0},
    marker="betas",
)
TWINS: dict[str, Twin] = {
    "SGD": Twin("SGD", state=_SGD_STATE, conventions={"l1": 0.0}, step=False, marker="nesterov"),
    "Momentum": Twin("SGD", {"momentum": ("beta",)}, {"nesterov": False}, _SGD_STATE,
                     {"l1": 0.0}, step=False, marker="nesterov"),
    "Nesterov": Twin("SGD", {"momentum": ("beta",)}, {"nesterov": True}, _SGD_STATE,
                     {"l1": 0.0, "lookahead": False}, step=False, marker="nesterov"),
    "Adagrad": Twin("Adagrad", state={"G": "sum"}, conventions={"eps_mode": "outside", "l1": 0.0},
                    marker="lr_decay", at_init=("G", "sum", "initial_accumulator_value")),
    "RMSprop": Twin("RMSprop", {"alpha": ("beta",)},
                    state={"S": "square_avg", "mean": "grad_avg", "buf": "momentum_buffer"},
                    conventions={"eps_mode": "outside", "l1": 0.0}, marker="alpha"),
    "Adam": Twin("Adam", fixed={"decoupled_weight_decay": False}, **_ADAM),
    "AdamW": Twin("AdamW", fixed={"decoupled_weight_decay": True}, **_ADAM),
}
_ADVICE = {
    ("Momentum", "nesterov"): "for nesterov=True use descend.optim.Nesterov",
    ("Nesterov", "nesterov"): "for nesterov=False use descend.optim.Momentum",
    ("Adam", "decoupled_weight_decay"): "for decoupled weight decay use descend.optim.AdamW",
    ("AdamW", "decoupled_weight_decay"): "AdamW's weight decay is always decoupled; "
                                         "for L2 weight decay use descend.optim.Adam",
}


def twin_of(cls: type) -> tuple[str, Twin] | None:
    """``(descend class name, Twin)`` for ``cls`` or its nearest descend ancestor with a torch twin."""
    for klass in cls.__mro__:
        if klass.__name__ in TWINS and klass.__module__.startswith("descend.optim"):
            return klass.__name__, TWINS[klass.__name__]
    return None


def torch_keywords(cls: type) -> list[str]:
    """The torch spellings ``cls`` accepts on top of its own keywords (empty without a twin)."""
    found = twin_of(cls)
    if found is None:
        return []
    twin = found[1]
    return [*twin.keywords, *twin.fixed, *IMPL_FLAGS]


# ---------------------------------------------------------------------- keywords
def _split(cls: type, cls_name: str, theirs: str, value: Any, ours: tuple[str, ...]) -> dict[str, Any]:
    """torch's ``theirs=value`` as descend's keywords, each checked under the name the user wrote."""
    if len(ours) == 1:
        out = {ours[0]: value}
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != len(ours):
        raise ValueError(
            f"{cls_name}: {theirs} must be a pair ({', '.join(ours)}) as in torch.optim, got {value!r}"
        )
    else:
        out = dict(zip(ours, value))
    out = {k: as_number(v) for k, v in out.items()}
    specs = getattr(cls, "_specs", {})
    for i, (key, v) in enumerate(out.items()):
        if specs.get(key) is not None:
            check(theirs if len(ours) == 1 else f"{theirs}[{i}] ({key})", v, specs[key])
    return out


# torch's switches that descend cannot honour when True, and why
REFUSED = {"capturable": "descend's step counter is a host integer, so the step cannot be captured in a "
                         "CUDA graph",
           "differentiable": "descend's step runs under torch.no_grad"}


def _impl(cls_name: str, flags: dict[str, Any], impl_given: bool) -> str | None:
    """The ``impl`` that torch's foreach/fused/capturable/differentiable ask for (None: no change)."""
    foreach, fused = flags.get("foreach"), flags.get("fused")
    for name, why in REFUSED.items():
        if flags.get(name, False):
            raise ValueError(f"{cls_name}: {name}=True is not supported ({why}); leave {name}=False")
    if foreach is None and fused is None:
        return None
    if foreach and fused:
        raise ValueError(f"{cls_name}: foreach=True and fused=True cannot both be set (as in torch.optim)")
    if impl_given:
        raise ValueError(
            f"{cls_name}: got impl and torch's foreach={foreach!r}/fused={fused!r}, two spellings of one "
            "choice; give only impl ('auto', 'eager' or 'fused')"
        )
    if fused:
        return "fused"
    from .base import IMPLS  # (base imports this module)

    multi = "foreach" if "foreach" in IMPLS else "auto"  # descend's multi-tensor path
    if foreach or (foreach is None and fused is False):
        return multi
    return "eager"


def translate_kwargs(cls: type, init: Callable[..., None], args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with torch's spellings replaced by descend's (ValueError when both are given)."""
    found = twin_of(cls)
    if found is None:
        return kwargs
    name, twin = found
    positional = [
        p.name for p in inspect.signature(init).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ][1:]
    given = set(kwargs) | set(positional[: len(args)])
    out = dict(kwargs)
    for theirs, ours in twin.keywords.items():
        if theirs not in out:
            continue
        value = out.pop(theirs)
        split = _split(cls, name, theirs, value, ours)
        for o in ours:  # both spellings of one value: fine where they agree (type(opt)(ps, **opt.defaults))
            if o in given:
                mine = kwargs[o] if o in kwargs else args[positional.index(o)]
                if not _same(mine, split[o]):
                    raise ValueError(
                        f"{name}: got both {theirs}={value!r} (torch.optim's spelling) and {o}={mine!r} "
                        f"(descend's), which disagree; give only one of them"
                    )
                if o not in kwargs:  # (given by position: it stays there)
                    del split[o]
        out.update(split)
    for theirs, only in twin.fixed.items():
        if theirs in out:
            value = out.pop(theirs)
            if value != only:
                raise ValueError(
                    f"{name}: {theirs}={value!r} is not what descend.optim.{name} computes "
                    f"({theirs}={only!r}); {_ADVICE[(name, theirs)]}"
                )
    flags = {k: out.pop(k) for k in IMPL_FLAGS if k in out}
    impl = _impl(name, flags, "impl" in given)
    if impl is not None:
        out["impl"] = impl
    return out


def wrap_init(cls: type, init: Callable[..., None]) -> Callable[..., None]:
    """``cls.__init__`` that first translates torch's keywords, then adds torch's group keys."""
    found = twin_of(cls)
    if found is None:
        return init
    known = set(torch_keywords(cls))

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if known.intersection(kwargs):
            kwargs = translate_kwargs(cls, init, args, kwargs)
        init(self, *args, **kwargs)
        for alias, names in found[1].group_aliases.items():
            if all(n in self.defaults for n in names):
                self.defaults[alias] = _joined(self.defaults, names)

    return __init__


def translate_group(opt: Any, group: dict[str, Any]) -> dict[str, Any]:
    """A param-group dict with torch's keys (``betas``, ``alpha``) turned into descend's."""
    found = twin_of(type(opt))
    if found is None:
        return group
    name, twin = found
    out = dict(group)
    for theirs, ours in twin.keywords.items():
        if theirs not in out:
            continue
        value = out.pop(theirs)
        for key, part in _split(type(opt), name, theirs, value, ours).items():
            if key in out and not _same(out[key], part):
                raise ValueError(
                    f"{name}: a param group gives {theirs}={value!r} and {key}={out[key]!r}, which "
                    f"disagree; give only one of them"
                )
            out[key] = part
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    return a == b


def _joined(group: dict[str, Any], names: tuple[str, ...]) -> Any:
    return tuple(group[n] for n in names) if len(names) > 1 else group[names[0]]


# ---------------------------------------------------------------------- param groups
class ParamGroup(dict):
    """A param group whose torch keys mirror descend's: writing either one writes both."""

    aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        for alias, names in self.aliases.items():
            if key == alias:
                if len(names) > 1 and (not hasattr(value, "__len__") or len(value) != len(names)):
                    raise ValueError(f"{alias} must be a tuple ({', '.join(names)}), got {value!r}")
                for n, v in zip(names, value if len(names) > 1 else (value,)):
                    super().__setitem__(n, v)
            elif key in names and alias in self and all(n in self for n in names):
                super().__setitem__(alias, _joined(self, names))

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> ParamGroup:  # (dict's |= would skip __setitem__)
        self.update(other)
        return self


class BetasGroup(ParamGroup):
    """Adam's groups: ``betas`` is ``(beta1, beta2)``."""

    aliases = {"betas": ("beta1", "beta2")}


class MomentumGroup(ParamGroup):
    """Momentum's and Nesterov's groups: ``momentum`` is ``beta``."""

    aliases = {"momentum": ("beta",)}


class AlphaGroup(ParamGroup):
    """RMSprop's groups: ``alpha`` is ``beta``."""

    aliases = {"alpha": ("beta",)}


_GROUP_TYPES = {"betas": BetasGroup, "momentum": MomentumGroup, "alpha": AlphaGroup}


def sync_group(opt: Any, group: dict[str, Any]) -> dict[str, Any]:
    """``group`` as a :class:`ParamGroup` whose torch keys are set from descend's (descend's win)."""
    found = twin_of(type(opt))
    aliases = found[1].group_aliases if found else {}
    if not aliases:
        return group
    out = _GROUP_TYPES[next(iter(aliases))]()
    for key, value in group.items():
        if key not in aliases:
            dict.__setitem__(out, key, value)
    for alias, names in aliases.items():
        dict.__setitem__(out, alias, _joined(out, names))
    return out


# ---------------------------------------------------------------------- names
# the name components that wrappers add in front of a module's own names: torch.compile's
# OptimizedModule, DistributedDataParallel and DataParallel, FSDP1 and activation checkpointing
WRAPPERS = ("_orig_mod", "module", "_fsdp_wrapped_module", "_checkpoint_wrapped_module")


def unwrapped(name: str) -> str:
    """A parameter's name without the wrappers' components (``_orig_mod.0.weight`` -> ``0.weight``)."""
    return ".".join(part for part in name.split(".") if part not in WRAPPERS)


def match_names(opt: Any, state_dict: dict[str, Any], strict: bool = True, match: str = "name") -> dict[str, Any]:
    """``state_dict`` with each group's saved parameters re-ordered to match ``opt``'s by name.

    Only when both sides know their parameters' names (built from
    ``named_parameters()``) and ``match="name"``; otherwise parameters are matched by
    position, as in torch. Names that differ only by wrappers (``_orig_mod.`` of
    ``torch.compile``, ``module.`` of DDP) match. Names on one side only are
    reported: ValueError when ``strict``, else a warning (missing ones start from fresh state).
    """
    saved_groups, groups = state_dict["param_groups"], opt.param_groups
    if match == "position" or len(saved_groups) != len(groups) or not all(
        "param_names" in g for g in [*saved_groups, *groups]
    ):
        return state_dict
    saved = {n: pid for g in saved_groups for n, pid in zip(g["param_names"], g["params"])}
    current = [n for g in groups for n in g["param_names"]]
    key = str
    if set(current) != set(saved):  # the same model under another wrapper?
        bare = {unwrapped(n): pid for n, pid in saved.items()}
        if len(bare) == len(saved) and len({unwrapped(n) for n in current}) == len(current) and \
                {unwrapped(n) for n in current} == set(bare):
            saved, key = bare, unwrapped
    missing = [n for n in current if key(n) not in saved]
    unexpected = [n for n in saved if n not in {key(c) for c in current}]
    if missing or unexpected:
        message = (
            f"the state_dict's parameter names do not match this optimizer's: missing from the "
            f"state_dict: {missing} (they would start from fresh state); unexpected in the state_dict: "
            f"{unexpected} (their state would be dropped)"
        )
        if strict:
            raise ValueError(message + "; pass strict=False to load the parameters whose names match, or "
                             "match='position' to pair them by position as torch.optim does")
        warnings.warn(message, stacklevel=3)
    fresh = iter(range(-1, -1 - len(current) - 1, -1))  # ids no saved state uses
    new_groups = [
        {**sg, "params": [saved[key(n)] if key(n) in saved else next(fresh) for n in g["param_names"]],
         "param_names": list(g["param_names"])}
        for sg, g in zip(saved_groups, groups)
    ]
    used = {pid for g in new_groups for pid in g["params"]}
    state = {pid: st for pid, st in state_dict["state"].items() if pid in used}
    return {**state_dict, "param_groups": new_groups, "state": state}


# ---------------------------------------------------------------------- state dicts
def _scale(opt: Any, group: dict[str, Any], key: str) -> Any:
    """Factor from torch's value of a state tensor to ours: Momentum with lr inside stores lr * buf."""
    if key == "v" and hasattr(opt, "resolved") and opt.resolved(group)[1]:
        return group["lr"]
    return 1.0


def _gaps(opt: Any, group: dict[str, Any], twin: Twin, name: str, when: str) -> None:
    for key, theirs in twin.conventions.items():
        if key in group and not _same(group[key], theirs):
            warnings.warn(
                f"descend.optim.{name} uses {key}={group[key]!r}, torch.optim.{twin.torch} always "
                f"computes {key}={theirs!r}: {when} follows a different rule than torch's",
                stacklevel=4,
            )


def _need_twin(opt: Any, what: str) -> tuple[str, Twin]:
    found = twin_of(type(opt))
    if found is None:
        have = ", ".join(TWINS)
        raise ValueError(f"descend.optim.{type(opt).__name__} has no torch.optim twin, so {what}; "
                         f"optimizers with one: {have}")
    return found


def written_by_descend(opt: Any, state_dict: dict[str, Any]) -> bool:
    """Whether a state dict without descend's marker holds descend's own groups: every group has
    every key of ``opt.defaults`` (``l1``, ``eps_mode``, ... which torch.optim never writes).
    Tools that rebuild a state dict from its ``state`` and ``param_groups`` alone drop the marker:
    ``torch.distributed.checkpoint``'s ``get_optimizer_state_dict`` and its setter."""
    keys = set(opt.defaults)
    groups = state_dict["param_groups"]
    return bool(groups) and all(isinstance(g, dict) and keys <= g.keys() for g in groups)


def from_torch(opt: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """A ``torch.optim`` state dict of ``opt``'s twin, converted to descend's format.

    Keys are mapped (``exp_avg`` -> ``V``, ``square_avg`` -> ``S``,
    ``momentum_buffer`` -> ``v``, ...), torch's hyperparameters take descend's
    names, and descend's own conventions (``eps_mode``, ...) keep ``opt``'s
    values (a warning says when they differ from torch's).
    """
    name, twin = _need_twin(opt, "a state_dict that was not saved by a descend optimizer (no 'descend' "
                                 "entry) cannot be read as torch's")
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(opt.param_groups):
        raise ValueError(f"state_dict has {len(saved_groups)} param groups, this optimizer has "
                         f"{len(opt.param_groups)}")
    back = {theirs: ours for ours, theirs in twin.state.items()}
    groups, group_of = [], {}
    for gi, (saved, current) in enumerate(zip(saved_groups, opt.param_groups)):
        if twin.marker not in saved:
            raise ValueError(
                f"state_dict was not saved by a descend optimizer (no 'descend' entry) nor by torch.optim.{twin.torch} "
                f"(its param groups have no {twin.marker!r}); load a state saved by descend.optim.{name} "
                f"or torch.optim.{twin.torch}"
            )
        for key, only in twin.fixed.items():
            if key in saved and saved[key] != only:
                raise ValueError(
                    f"state_dict was saved with {key}={saved[key]!r}, descend.optim.{name} computes "
                    f"{key}={only!r}; {_ADVICE[(name, key)]}"
                )
        for key, why in REFUSED.items():
            if saved.get(key):
                raise ValueError(
                    f"param group {gi} of the state_dict has {key}={saved[key]!r}, which descend.optim.{name} "
                    f"cannot honour ({why}); save it from torch.optim.{twin.torch} with {key}=False, or set "
                    f"state_dict['param_groups'][{gi}][{key!r}] = False to continue without it"
                )
        group = {k: v for k, v in current.items() if k != "params"}
        for key, value in saved.items():
            if key in twin.keywords:
                group.update(_split(type(opt), name, key, value, twin.keywords[key]))
            elif key not in twin.fixed and key not in IMPL_FLAGS:
                group[key] = value
        _gaps(opt, group, twin, name, "the loaded run")
        groups.append(group)
        group_of.update({pid: group for pid in saved["params"]})
    state, written = {}, torch_state_keys()
    for pid, st in state_dict["state"].items():
        # (a key no torch.optim optimizer writes was put there by a wrapper: it passes through)
        unknown = [k for k in st if k != "step" and k not in back and k in written]
        if unknown:
            raise ValueError(
                f"state of parameter {pid} has key {unknown[0]!r}, which torch.optim.{twin.torch} does not "
                f"write (another torch.optim optimizer does); expected some of {sorted(['step', *back])}"
            )
        converted = _entry(opt, group_of.get(pid), twin, st, pid)
        if converted is not None:
            state[pid] = converted
    return {"state": state, "param_groups": groups,
            "descend": {"optimizer": name, "format": 1, "from": f"torch.optim.{twin.torch}"}}


def _entry(opt: Any, group: dict[str, Any] | None, twin: Twin, st: dict[str, Any],
           pid: Any = "") -> dict[str, Any] | None:
    """One parameter's torch.optim state (its twin's keys, a tensor ``step``) in descend's names;
    None for a state with nothing to carry over."""
    back = {theirs: ours for ours, theirs in twin.state.items()}
    converted: dict[str, Any] = {}
    for key, value in st.items():
        if key == "step":
            converted["step"] = step_count(pid, value)
        elif key in back and value is not None:
            ours = back[key]
            scale = _scale(opt, group, ours) if group is not None else 1.0
            converted[ours] = value * scale if not _is_one(scale) else value
        elif key not in twin.state.values():  # a wrapper's (timm's Lookahead: lookahead_slow_buff)
            converted[key] = value
    if not converted or converted.keys() == {"step"} and not twin.step:
        return None
    if not twin.step:
        converted["step"] = 1  # torch.optim.SGD does not count steps; any count >= 1 continues alike
    return converted


def adopt_torch_state(opt: Any, group: dict[str, Any], st: dict[str, Any]) -> None:
    """Convert in place a parameter's state that holds torch.optim's keys (``exp_avg``, a tensor
    ``step``): written into ``opt.state`` directly, as ``ZeroRedundancyOptimizer.load_state_dict``
    does with a consolidated torch.optim state, it would otherwise sit next to fresh zero moments."""
    found = twin_of(type(opt))
    if found is None or not any(k in found[1].state.values() for k in st):
        return
    converted = _entry(opt, group, found[1], st) or {}
    st.clear()
    st.update(converted)


def _is_one(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == 1


def to_torch(opt: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """descend's ``state_dict()`` in the format of ``opt``'s torch.optim twin.

    ``torch.optim.<Twin>(params, ...).load_state_dict(...)`` then resumes the
    run with torch's rule. A warning names every convention of ``opt`` that
    torch cannot express (``eps_mode="inside"``, ``l1``, ...).
    """
    name, twin = _need_twin(opt, "it cannot export a torch.optim state_dict")
    signature = inspect.signature(getattr(torch.optim, twin.torch).__init__).parameters
    torch_keys = [k for k in signature if k not in ("self", "params")]
    ours_of = {theirs: ours for theirs, ours in twin.keywords.items()}
    from .registry import accepted_keywords  # (the registry imports this module)

    # descend's keys (not all of opt.defaults: timm's Lookahead adds its counters there, kept as torch's)
    own = {*accepted_keywords(type(opt)), "params", "param_names", *(n for ns in twin.keywords.values() for n in ns)}
    groups, group_of, seen = [], {}, {}
    for saved, live in zip(state_dict["param_groups"], opt.param_groups):
        _gaps(opt, saved, twin, name, "the run resumed under torch")
        group: dict[str, Any] = {}
        for key in torch_keys:
            if key in ours_of:
                group[key] = _joined(saved, ours_of[key])
            elif key == "dampening" and hasattr(opt, "resolved"):
                group[key] = opt.resolved(saved)[0]
            elif key in saved:
                group[key] = saved[key]
            else:
                group[key] = signature[key].default
            group[key] = _as_written(group[key], signature[key].default, seen)
        group.update({k: v for k, v in twin.fixed.items()})
        group.update({k: v for k, v in saved.items() if k not in own and k not in group})
        group["params"] = list(saved["params"])
        if "param_names" in saved:
            group["param_names"] = list(saved["param_names"])
        groups.append(group)
        group_of.update({pid: live for pid in saved["params"]})
    state = {}
    for pid, st in state_dict["state"].items():
        out: dict[str, Any] = {}
        if twin.step:
            out["step"] = torch.tensor(float(st.get("step", 0)))
        for key, value in st.items():
            if key == "step" or value is None:
                continue
            if key not in twin.state:  # a wrapper's, as it was written
                out[key] = value
                continue
            scale = _scale(opt, group_of[pid], key) if pid in group_of else 1.0
            if isinstance(scale, (int, float)) and scale == 0:
                raise ValueError(f"cannot export state '{key}' while lr=0: torch's momentum_buffer is v / lr "
                                 "for a Momentum with lr inside the buffer")
            out[twin.state[key]] = value if _is_one(scale) else value / scale
        if out.keys() - {"step"}:
            state[pid] = out
    if twin.at_init is not None:
        state = at_init(twin.at_init, state, groups, opt)
    return {"state": state, "param_groups": groups}


def _as_written(value: Any, default: Any, seen: dict[Any, Any]) -> Any:
    """``value`` as torch writes it, so that the exported dict pickles as torch's own does: its
    default where the two are equal (``0``, not ``0.0``), one tuple for equal ``betas``."""
    if type(value) in (int, float) and type(default) in (int, float) and value == default:
        return default
    if type(value) is tuple and all(type(v) in (int, float) for v in value):
        return seen.setdefault(value, value)  # (torch's groups share the tuple of its defaults)
    return value

