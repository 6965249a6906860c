r"""``Scheduler``: applies schedules to any ``torch.optim.Optimizer`` (descend's or torch's).

It drives the lr by default, and any other hyperparameter of the param groups
with ``key`` (``"beta1"``, ``"momentum"``, ``"beta"``, ``"weight_decay"``):
the same pure schedules give its value at each step. One Scheduler per
hyperparameter; Smith's one-cycle with momentum cycled inversely is::

    lr = one_cycle(0.1, 1000)
    Scheduler(opt, lr)                                            # the lr
    Scheduler(opt, cycle_momentum(lr, 0.85, 0.95), key="beta1")  # 0.95 -> 0.85 -> 0.95

``beta1``/``beta2`` also drive torch's ``betas`` tuple where a group has no
``beta1`` (torch.optim.Adam). With another key than ``lr`` the schedule's
values are set as they are (``relative=False`` is the default there).

``Scheduler(optimizer, schedule, unit="iteration")`` records each param
group's lr as its base lr, then sets, at construction (``t = 0``) and after
every ``step()`` (``t += 1``)::

    group_i["lr"] = schedule(t) * (base_lr_i / schedule.base_lr)   one schedule (relative=True)
    group_i["lr"] = schedule(t)                                     one schedule, relative=False
    group_i["lr"] = schedules[i](t)                                 a list, one per group

So one schedule keeps the ratios between groups (a group built with half
the lr of another gets half of the schedule, and half of its floor:
``cosine(0.1, T, 1e-3)`` ends a group built with lr 0.01 at 1e-4, where torch's
``eta_min`` is the same for every group; give a list with one schedule per
group for separate floors); when a group's lr equals ``schedule.base_lr`` it
gets ``schedule(t)`` exactly. For ``one_cycle`` and ``cyclic``, whose torch
twins set absolute lrs (``OneCycleLR(max_lr=...)``, ``CyclicLR``), the
Scheduler warns when no group's lr equals ``schedule.base_lr``: ported code
wants ``relative=False`` or the optimizer built with that lr. A
group added with ``add_param_group`` mid-run follows the one schedule from the
current step, scaled from its lr when added. ``unit`` ("iteration"
or "epoch") only says what ``t`` counts; it is saved in the state dict.

**Order.** Each iteration (or epoch)::

    loss.backward(); optimizer.step(); scheduler.step()      # scheduler.step(val_loss) for plateau

The k-th ``optimizer.step()`` (k = 0, 1, ...) uses ``schedule(k)``. Nothing
else depends on call order: the Scheduler never wraps ``optimizer.step`` and
never reads ``group["lr"]`` after construction (every lr is the closed form
``schedule(t)``, not a product of previous lrs), so an lr changed by other
code is replaced at the next ``step()`` instead of compounded. To resume,
build the optimizer and the Scheduler as for a fresh run and load both
state dicts, in any order (the optimizer's may even be loaded before the
Scheduler is built): the Scheduler's holds ``t``, the base lrs, ``unit``
and the plateau state, and re-applies ``schedule(t)`` when loaded. Loading
checks that the schedules are the ones saved: by repr (an address, `` at
0x...``, left out) and by :func:`~descend.schedules.base.identity`, which
tells apart two lambdas of the same repr (their code, defaults and closure).
Tensor lrs (``group["lr"]`` a tensor) are updated in place.

**Beside a torch scheduler.** Two ``torch.optim.lr_scheduler`` schedulers on one optimizer compose
(each multiplies the lr the other set); a Scheduler sets ``schedule(t)`` outright and cannot compose,
so with a torch scheduler driving the same key (the lr; the momentum, ``beta1`` or Momentum's ``beta``
where OneCycleLR or CyclicLR cycles it) the one stepped last would silently win. The Scheduler refuses
that with a ValueError, at construction or at its next step when the torch scheduler came later.
Other keys (``weight_decay``, or ``beta1`` under ``cycle_momentum=False``) are fine.

**Plateau.** ``step(metric)`` is ``observe(metric)`` then ``step()``; the
metric is what the step just finished measured. ``observe(metric)`` alone
feeds the plateau schedules without advancing ``t`` (e.g. an iteration-based
schedule with a metric measured once per epoch) and applies any reduction
at once. Passing a metric when no schedule is a plateau raises ValueError
(check ``scheduler.needs_metric``). A plateau shared by several param groups,
or by several Schedulers that are each fed the step's metric (two optimizers,
or the lr and another hyperparameter), counts one observation per step: each
Scheduler numbers the metrics it feeds, and a number the plateau has counted
already is skipped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, SupportsFloat

import torch

from ..optim import _validate as ranges
from ..optim.compat import twin_of
from . import _validate as check
from .base import Schedule, identity, without_addresses
from .cycles import Cyclic, OneCycle
from .on_plateau import Plateau

UNITS = ("iteration", "epoch")
_KEYS = ("t", "unit", "relative", "base_lrs", "schedules", "plateaus", "key")
_BETAS = {"beta1": 0, "beta2": 1}  # torch's Adam keeps them in one tuple, "betas"


def _copy(lr: Any) -> Any:
    return lr.detach().clone() if isinstance(lr, torch.Tensor) else float(lr)


def _read(group: dict[str, Any], key: str) -> Any:
    if key not in group and key in _BETAS and "betas" in group:
        return group["betas"][_BETAS[key]]
    return group[key]


def _write(group: dict[str, Any], key: str, value: Any) -> None:
    current = _read(group, key)
    if isinstance(current, torch.Tensor):
        with torch.no_grad():
            current.copy_(torch.as_tensor(value, dtype=current.dtype, device=current.device))
    elif key not in group:  # torch's betas tuple
        betas = list(group["betas"])
        betas[_BETAS[key]] = value
        group["betas"] = tuple(betas)
    else:
        group[key] = value


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        isinstance(value, torch.Tensor) and value.is_floating_point())


def _check_value(optimizer: Any, key: str, value: Any, i: int, t: int) -> None:
    """Refuse a value the optimizer's own constructor would refuse (descend's ranges: beta1 in
    [0, 1), ...), and a non-finite one for any optimizer, before it is written: a NaN lr would
    turn the parameters to NaN at the next step."""
    where = f"the schedule gives {key}={value!r} for param group {i} at step {t}"
    if isinstance(value, torch.Tensor):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{where}: {key} must be finite")
        return
    if not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be finite")
    specs = getattr(type(optimizer), "_specs", None)  # (descend's optimizers carry their own ranges)
    spec = specs.get(key) if specs is not None else _TORCH_RANGES.get(key)
    if spec is not None:
        try:
            ranges.check(key, value, spec)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


# what torch.optim's constructors allow
_TORCH_RANGES = {"lr": ranges.NONNEG, "beta1": ranges.UNIT_OPEN, "beta2": ranges.UNIT_OPEN,
                 "weight_decay": ranges.NONNEG, "eps": ranges.NONNEG, "momentum": ranges.NONNEG,
                 "dampening": ranges.NONNEG, "alpha": ranges.NONNEG}


def _torch_cycled(optimizer: Any) -> set[str]:
    """The param-group keys a torch.optim.lr_scheduler scheduler built on ``optimizer`` writes at its
    steps: the lr, and the momentum (torch's ``momentum`` or ``betas``, with descend's spellings of it)
    where OneCycleLR or CyclicLR cycles it. Empty when no torch scheduler was ever built on it (each one
    wraps ``optimizer.step`` and marks the wrapper ``_wrapped_by_lr_sched``)."""
    if not hasattr(getattr(optimizer, "step", None), "_wrapped_by_lr_sched"):
        return set()
    found = twin_of(type(optimizer))
    aliases = found[1].group_aliases if found else {}  # torch's key -> descend's (Momentum: momentum -> beta)
    keys = {"lr"}
    for group in optimizer.param_groups:
        if "max_momentum" in group and "base_momentum" in group:  # cycle_momentum=True
            # betas[0], which key="beta1" drives on torch's Adam too (beta2 is not cycled)
            keys |= {"betas", "beta1"} if "betas" in group else {"momentum", *aliases.get("momentum", ())}
    return keys


def _shown(bases: list[Any]) -> str:
    return ", ".join(f"{b:g}" for b in bases)


def _warn_if_overwritten(bases: list[Any], key: str) -> None:
    """Warn when one absolute schedule for a key other than the lr overwrites groups whose values
    differ: ``decay_groups``' no-decay group (weight_decay 0) would start decaying."""
    if len(bases) < 2 or any(isinstance(b, torch.Tensor) for b in bases) or len(set(bases)) == 1:
        return
    shown = _shown(bases)
    warnings.warn(
        f"Scheduler sets every param group's {key} to the schedule's values (relative=False, the default "
        f"for keys other than lr), but the groups' {key} differ now ({shown}): each would get the same "
        f"value. Pass relative=True to scale each group's own {key} (a group at 0 stays at 0), or one "
        f"schedule per group",
        UserWarning, stacklevel=3,
    )


def _warn_if_scaled(schedule: Schedule, bases: list[Any], key: str) -> None:
    """Warn when a one-cycle or cyclic schedule, whose torch twins (OneCycleLR's max_lr, CyclicLR's
    base_lr and max_lr) set absolute lrs, would be scaled to another lr in every group: ported torch
    code would silently run at another scale. (A schedule of another shape scaled to the optimizer's
    lr, ``cosine(1.0, T)`` on lr 0.1, is the usual relative use and is not warned about.)"""
    base = schedule.base_lr
    if not isinstance(schedule, OneCycle | Cyclic) or isinstance(base, torch.Tensor) or \
            any(isinstance(b, torch.Tensor) for b in bases) or not bases:
        return
    if any(abs(b - base) <= 1e-12 * max(abs(base), abs(b)) for b in bases):
        return
    shown = _shown(bases)
    warnings.warn(
        f"Scheduler scales the schedule to each param group's {key} (relative=True): the schedule starts at "
        f"{base:g} and no group's {key} is that ({shown}), so group 0 gets {bases[0] / base:g}x the schedule's "
        f"values. Build the optimizer with {key}={base:g}, or pass relative=False to set the schedule's values "
        f"as they are (as torch's OneCycleLR and CyclicLR do)",
        UserWarning, stacklevel=3,
    )


class Scheduler:
    """Drives ``optimizer``'s learning rates from ``schedule``; see the module docstring.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (``descend.optim`` or ``torch.optim``).
        schedule: one schedule for every param group, or a list with one per group.
        unit: ``"iteration"`` or ``"epoch"``: what one ``step()`` means.
        relative: with one schedule, scale it to each group's base lr (the
            default for the lr); False gives every group ``schedule(t)`` itself
            (the default for any other ``key``).
        key: the param-group hyperparameter to drive: ``"lr"`` (default),
            ``"beta1"``, ``"momentum"``, ``"weight_decay"``, ...

    Every value is checked before any group is written: a value the optimizer's constructor
    would refuse (descend's ranges, e.g. beta1 in [0, 1); torch's for a torch optimizer) or a
    non-finite one raises ValueError naming the key, the value, the group and the step.

    Attributes:
        t: the number of ``step()`` calls so far; the value now set is ``schedule(t)``.
        base_lrs: each group's value of ``key`` (its lr) when the Scheduler was built.
        last_lr: the values now set, one per group (also ``get_last_lr()``).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule | Sequence[Schedule],
        unit: str = "iteration",
        *,
        relative: bool | None = None,
        key: str = "lr",
    ) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list) or not groups:
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer with param_groups, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.unit = check.choice("unit", unit, UNITS)
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be the name of a param-group hyperparameter such as 'lr', got {key!r}")
        if key == "betas":
            raise ValueError("key='betas' is torch's (beta1, beta2) tuple; drive one of them: key='beta1' or "
                             "key='beta2' (one Scheduler each)")
        for i, group in enumerate(groups):
            if key not in group and not (key in _BETAS and "betas" in group):
                have = ", ".join(sorted(k for k in group if k != "params"))
                raise ValueError(f"key {key!r} is not a hyperparameter of param group {i}; it has {have}")
            if not _is_number(_read(group, key)):
                raise ValueError(
                    f"key {key!r} of param group {i} holds {_read(group, key)!r}, not a number; a schedule "
                    f"drives a numeric hyperparameter (lr, beta1, beta2, momentum, weight_decay, eps, ...)"
                )
        self.key = key
        if relative is None:
            relative = key == "lr"
        self.relative = check.flag("relative", relative)
        if isinstance(schedule, Schedule):
            self.shared = True
            self.schedules: list[Schedule] = [schedule] * len(groups)
        elif isinstance(schedule, Sequence) and all(isinstance(s, Schedule) for s in schedule):
            if len(schedule) != len(groups):
                raise ValueError(
                    f"schedule must be one schedule or a list with one per param group "
                    f"({len(groups)}), got a list of {len(schedule)}"
                )
            self.shared = False
            self.schedules = list(schedule)
        else:
            raise ValueError(
                f"schedule must be a descend schedule or a list of them (one per param group), got {schedule!r}"
            )
        if self.shared and relative and self.schedules[0].base_lr == 0:
            raise ValueError(
                f"schedule.base_lr must be > 0 to scale it to each group's {key}, got {self.schedules[0]!r}; "
                f"pass relative=False to set schedule(t) as is"
            )
        self.base_lrs: list[Any] = [_copy(_read(g, key)) for g in groups]
        if self.shared and self.relative and not getattr(optimizer, "state", None):
            # (an optimizer that has stepped, e.g. loaded from a checkpoint, holds a scheduled lr)
            _warn_if_scaled(self.schedules[0], self.base_lrs, key)
        elif self.shared and not self.relative and key != "lr":
            _warn_if_overwritten(self.base_lrs, key)
        self.t = 0
        self._rounds = {id(p): p.round for p in self.plateaus}  # metrics fed to each plateau, from its round then
        self._apply()

    # -- what the optimizer sees ------------------------------------------------

    @property
    def plateaus(self) -> list[Plateau]:
        """The distinct plateau schedules, in group order."""
        out: list[Plateau] = []
        for s in self.schedules:
            if isinstance(s, Plateau) and all(s is not p for p in out):
                out.append(s)
        return out

    @property
    def needs_metric(self) -> bool:
        """Whether some schedule is a plateau, fed by ``step(metric)`` or ``observe(metric)``."""
        return bool(self.plateaus)

    def lr_at(self, t: int) -> list[Any]:
        """The lr of each group at step ``t`` with the current plateau state (nothing is set)."""
        out = []
        for s, base in zip(self.schedules, self.base_lrs):
            value = s(t)
            if self.shared and self.relative:
                value = value * (base / s.base_lr)
            out.append(value)
        return out

    def _refuse_torch_scheduler(self) -> None:
        """Two torch schedulers on one optimizer compose (each multiplies the lr the other set); this
        Scheduler sets ``schedule(t)`` outright, so beside a torch scheduler driving the same key the one
        stepped last would silently win. Refused instead, whichever was built first."""
        if self.key not in _torch_cycled(self.optimizer):
            return
        raise ValueError(
            f"a torch.optim.lr_scheduler scheduler was built on this {type(self.optimizer).__name__} and sets its "
            f"{self.key!r} at each of its steps (it wrapped optimizer.step); this Scheduler sets {self.key!r} "
            f"too, and the one stepped last would silently undo the other (torch composes two of its own "
            f"schedulers; descend's Scheduler sets schedule(t) outright and does not compose). Drive "
            f"{self.key!r} with one of them: the torch scheduler alone, or this Scheduler on an optimizer no "
            f"torch scheduler was built on"
        )

    def _apply(self) -> None:
        self._refuse_torch_scheduler()
        groups = self.optimizer.param_groups
        if len(groups) > len(self.schedules) and self.shared:
            # a group added mid-run (progressive unfreezing): its value when added is its base, and it
            # follows the one schedule from the step the others are at
            for group in groups[len(self.schedules):]:
                self.base_lrs.append(_copy(_read(group, self.key)))
                self.schedules.append(self.schedules[0])
        if len(groups) != len(self.schedules):
            raise ValueError(
                f"the optimizer has {len(groups)} param groups but the Scheduler was built for "
                f"{len(self.schedules)}" + ("" if self.shared else
                                            " with one schedule each; build a new Scheduler after add_param_group "
                                            "(groups added later follow a single shared schedule)")
            )
        values = self.lr_at(self.t)
        for i, value in enumerate(values):  # (all checked before any is written)
            _check_value(self.optimizer, self.key, value, i, self.t)
        for group, value in zip(groups, values):
            _write(group, self.key, value)
        self.last_lr = [_copy(_read(g, self.key)) for g in groups]

    def get_last_lr(self) -> list[Any]:
        """The lrs now set, one per param group (as torch's ``get_last_lr``)."""
        return list(self.last_lr)

    # -- time and metrics -------------------------------------------------------

    def step(self, metric: SupportsFloat | None = None) -> None:
        """Advance ``t`` by one and set ``schedule(t)``; with a metric, observe it first."""
        self._refuse_torch_scheduler()  # (before t or a plateau moves)
        if metric is not None:
            self._observe(metric)
        self.t += 1
        self._apply()

    def observe(self, metric: SupportsFloat) -> None:
        """Feed ``metric`` to the plateau schedules without advancing ``t``; apply any reduction now."""
        self._refuse_torch_scheduler()
        self._observe(metric)
        self._apply()

    def _observe(self, metric: SupportsFloat) -> None:
        plateaus = self.plateaus
        if not plateaus:
            raise ValueError(
                "a metric was given but no schedule is a plateau(...); call step() without "
                "a metric, or wrap the schedule: plateau(schedule, ...)"
            )
        for p in plateaus:  # (a plateau shared with another Scheduler counts each round once)
            self._rounds[id(p)] = self._rounds.get(id(p), p.round) + 1
            p.observe(metric, round=self._rounds[id(p)])

    # -- checkpoints ------------------------------------------------------------

    def _shown(self) -> list[Schedule]:
        return [self.schedules[0]] if self.shared else self.schedules

    def state_dict(self) -> dict[str, Any]:
        """``t``, ``unit``, ``relative``, ``key``, the base values, the schedules (as repr, and as
        :func:`~descend.schedules.base.identity` digests, which tell apart what a repr cannot:
        two lambdas) and the plateau states."""
        return {
            "t": self.t,
            "unit": self.unit,
            "relative": self.relative,
            "base_lrs": [_copy(b) for b in self.base_lrs],
            "schedules": [repr(s) for s in self._shown()],
            "identities": [identity(s) for s in self._shown()],
            "plateaus": [p.state_dict() for p in self.plateaus],
            "key": self.key,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and set ``schedule(t)``; everything is checked before anything changes.

        Raises ValueError if the state does not belong to a Scheduler built like
        this one (keys, unit, relative, number of groups, schedules: the same functions,
        not only the same repr).
        """
        if isinstance(state, dict) and "key" not in state:
            state = {**state, "key": "lr"}  # saved before schedulers drove other hyperparameters
        if not isinstance(state, dict) or not set(_KEYS) <= set(state) <= {*_KEYS, "identities"}:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"Scheduler state must have keys {sorted(_KEYS)}, got {got}")
        for name, kind in (("base_lrs", "numbers"), ("schedules", "reprs"), ("plateaus", "plateau states")):
            if not isinstance(state[name], list):
                raise ValueError(f"Scheduler state's {name} must be a list of {kind}, got {state[name]!r}")
        if not all(_is_number(b) for b in state["base_lrs"]):
            raise ValueError(f"Scheduler state's base_lrs must be numbers, got {state['base_lrs']!r}")
        if state["key"] != self.key:
            raise ValueError(f"state drives key={state['key']!r}, this Scheduler drives key={self.key!r}")
        if state["unit"] != self.unit:
            raise ValueError(f"state has unit={state['unit']!r}, this Scheduler has unit={self.unit!r}")
        if state["relative"] != self.relative:
            raise ValueError(
                f"state has relative={state['relative']!r}, this Scheduler has relative={self.relative!r}"
            )
        if len(state["base_lrs"]) != len(self.schedules):
            raise ValueError(
                f"state has {len(state['base_lrs'])} param groups, the optimizer has {len(self.schedules)}"
            )
        shown = [repr(s) for s in self._shown()]
        if [without_addresses(str(r)) for r in state["schedules"]] != [without_addresses(r) for r in shown]:
            raise ValueError(f"state was saved for schedules {state['schedules']}, this Scheduler has {shown}")
        plateaus = self.plateaus
        if len(state["plateaus"]) != len(plateaus):
            raise ValueError(
                f"state has {len(state['plateaus'])} plateau states, this Scheduler has {len(plateaus)}"
            )
        if state.get("identities") is not None and list(state["identities"]) != [identity(s) for s in self._shown()]:
            raise ValueError(
                f"state was saved for schedules {state['schedules']}, and this Scheduler's have the same repr but "
                f"compute something else (a lambda or a nested function with other code, defaults or closure, "
                f"or other attributes); build the Scheduler with the schedule that was saved"
            )
        t = check.integer("t", state["t"], minimum=0)
        backup = [p.state_dict() for p in plateaus]
        try:
            for p, s in zip(plateaus, state["plateaus"]):
                p.load_state_dict(s)
            before = self.base_lrs, self.t
            self.base_lrs, self.t = [_copy(b) for b in state["base_lrs"]], t
            try:
                self._apply()  # (checks every value before writing any)
            except ValueError:
                self.base_lrs, self.t = before
                raise
        except ValueError:
            for p, s in zip(plateaus, backup):
                p.load_state_dict(s)
            raise
        self._rounds = {id(p): p.round for p in plateaus}

    def __repr__(self) -> str:
        shown = self.schedules[0] if self.shared else self.schedules
        return (
            f"Scheduler({type(self.optimizer).__name__}, {shown!r}, unit={self.unit!r}, "
            f"relative={self.relative!r}, {'' if self.key == 'lr' else f'key={self.key!r}, '}t={self.t})"
        )
