"""What a training run is made of: :class:`TrainConfig`, :class:`Phase` and the builders.

Everything that decides a run lives in one dataclass, saved resolved (every
default filled in) in ``summary.json``. Optimizers and schedules may be given
by name (``"adam"``, ``"cosine"``) or as objects:

* an optimizer *spec* is a name or spec string of :func:`descend.optim.build`
  (``"adam"``, ``"gd"``, ``"adam:lr=0.01,beta1=0.8"``), an optimizer class (``descend.optim.Adam``, ``torch.optim.SGD``), a callable
  ``model -> optimizer`` (for instance a :class:`~descend.train.PartOptimizer`
  factory), a mapping ``{part pattern: spec}`` (per-part optimizers, see
  :class:`~descend.train.PartOptimizer`) or an optimizer instance built on
  the model's parameters;
* a schedule is a :class:`descend.schedules.Schedule` or a spec of
  :func:`descend.schedules.build` (``"cosine"``, ``"step:every=2,gamma=0.5"``),
  stretched over its phase.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import optim, schedules
from ..optim.registry import check_options, parse_spec
from ..schedules import Schedule

OptimizerSpec = Any  # str | type[torch.optim.Optimizer] | Callable[[nn.Module], Any] | Mapping | Optimizer
UNITS = ("epoch", "iteration")


@dataclass(frozen=True)
class Phase:
    """One stretch of training with its own optimizer and schedule.

    Args:
        duration: length in ``unit``\\ s; ``None`` for the last phase means "until
            the end of the budget".
        optimizer: an optimizer spec (see the module docstring), e.g. ``"sgd"``.
        schedule: a :class:`~descend.schedules.Schedule` (its step counted from the
            start of this phase) or a schedule name stretched over the phase; None
            keeps the lr constant.
        lr: the lr this phase starts from (default: ``TrainConfig.lr``, else the
            schedule's ``base_lr`` when it is an object, else the optimizer's default);
            ignored for callables, mappings and instances, which carry their own lrs.
        unit: ``"epoch"`` or ``"iteration"``.
        options: extra keyword arguments of the optimizer class (``beta1``, ...).
    """

    duration: int | None
    optimizer: OptimizerSpec = "sgd"
    schedule: str | Schedule | None = None
    lr: float | None = None
    unit: str = "epoch"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.duration is not None and (
            isinstance(self.duration, bool) or not isinstance(self.duration, int) or self.duration < 1
        ):
            raise ValueError(f"a phase's duration must be an integer >= 1 or None, got {self.duration!r}")
        if self.unit not in UNITS:
            raise ValueError(f"a phase's unit must be 'epoch' or 'iteration', got {self.unit!r}")
        if self.lr is not None:
            _check_lr("a phase's lr", self.lr)
        check_optimizer(self.optimizer)  # unknown names and options fail here, listing the valid ones


def parse_phases(text: str, unit: str = "epoch") -> list[Phase]:
    """``"adam:10,sgd:10"`` or ``"adam:10:1e-3,sgd:10:0.05"`` -> a list of :class:`Phase`.

    Each item is ``optimizer:duration[:lr]``; the durations are in ``unit``.
    """
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"phases must look like adam:10,sgd:10 (optimizer:duration[:lr]), got {text!r}")
    phases = []
    for item in items:
        parts = item.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(
                f"each phase must be optimizer:duration[:lr], e.g. adam:10 or sgd:10:0.05; got {item!r}"
            )
        name, dur = parts[0], parts[1]
        try:
            duration = int(dur)
        except ValueError:
            raise ValueError(f"the duration of phase {item!r} must be an integer, got {dur!r}") from None
        try:
            lr = float(parts[2]) if len(parts) == 3 else None
        except ValueError:
            raise ValueError(f"the lr of phase {item!r} must be a number, got {parts[2]!r}") from None
        phases.append(Phase(duration, name, lr=lr, unit=unit))
    return phases


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved resolved in ``summary.json``).

    Optimization:
        optimizer, lr, optimizer_options: the optimizer spec, its lr and extra
            keywords (``{"beta1": 0.8}``); ``weight_decay`` (L2) and ``l1`` are
            passed to descend optimizers built by name or class (beside only a function,
            mapping or instance, which carries its own, these options are a ValueError). A phase's lr is
            ``Phase.lr``, else ``lr``, else the ``base_lr`` of a schedule given as
            an object, else the optimizer's default (Adam 1e-3, SGD 0.01, ...).
        schedule, schedule_unit, warmup: a schedule (object or name) applied per
            ``"iteration"`` or per ``"epoch"``; ``warmup`` (in schedule units)
            prepends a linear warmup to a schedule given by name (to a constant lr
            when there is no schedule). A ``plateau`` schedule is fed the validation loss at
            each evaluation (``eval_every``; ``eval_interval`` for a stream), or the epoch's
            training loss in a run that does not evaluate on validation data during training
            (a stream: the mean training loss of each ``eval_interval`` iterations; a stream
            with a plateau and no ``eval_interval`` is refused, as its lr would never move).
        phases: a sequence of :class:`Phase` (or ``"adam:10,sgd:10"``); replaces
            ``optimizer``/``lr``/``schedule``. ``carry_lr``: each phase starts from
            the lr the previous phase's last step used instead of its own lr.
        swats: start with the optimizer (Adam or AdamW) and switch to SGD by
            the SWATS criterion (see :mod:`descend.train.phases`); ``swats_eps``
            is its tolerance.
        clip_norm, clip_value: gradient clipping by global L2 norm / by value, over every
            parameter the optimizer steps (its param groups: the model's, and any it holds beside
            them such as a learnable loss temperature), as a hand-written loop's
            ``clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip_norm)``.
        accumulate: micro-batches per optimizer step (gradient accumulation).

    Budget and data:
        dataset, target, task: the data set's name or file, a file's target column
        and its task (recorded; read by :func:`~descend.train.train`).
        epochs or iterations (optimizer steps); with neither, the phases' total
        or max(10 epochs, 500 iterations) in whole epochs. batch_size: None for full-batch gradient descent, 1 for
        pure SGD. shuffle, drop_last, seed (data order, dropout, model init in
        :func:`~descend.train.train`), data_seed (the train/val/test split).
        batch_size, shuffle and drop_last apply to a Dataset or an (X, y) pair; a
        DataLoader's own make its batches (``summary.json``'s ``data`` records them).

    Evaluation and observability:
        eval_every (epochs; 0: only at the end), eval_interval (iterations; for
        streams), evaluate (False: no evaluation at all), eval_batch_size,
        log_every (iterations between metric lines), progress (False: no
        ``on_progress`` calls), tensorboard (None: when installed and there is a
        run folder), plots (whether ``descend train`` draws the PNG curves at the end).

    Run folder:
        out (None: nothing written), checkpoint_every (iterations; a checkpoint is
        always written at the end), keep_checkpoints (also keep the last N as
        ``checkpoint-<iteration>.pt``), overwrite (start over in a folder that
        holds a run).

    Placement: device ("cpu", "cuda", ...), distributed ("auto": use
        DistributedDataParallel when launched by torchrun or when a process
        group is initialized; "off").
    """

    # what (names, recorded; used by train() and the CLI)
    dataset: str | None = None
    target: str | None = None
    task: str | None = None
    model: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    # optimization
    optimizer: OptimizerSpec = "adam"
    lr: float | None = None
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    weight_decay: float = 0.0
    l1: float = 0.0
    schedule: str | Schedule | None = None
    schedule_unit: str = "iteration"
    warmup: int = 0
    phases: Sequence[Phase] | str | None = None
    carry_lr: bool = False
    swats: bool = False
    swats_eps: float = 1e-9
    clip_norm: float | None = None
    clip_value: float | None = None
    accumulate: int = 1
    # budget and data
    epochs: int | None = None
    iterations: int | None = None
    batch_size: int | None = 64
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0
    data_seed: int = 0
    # evaluation and observability
    eval_every: int = 1
    eval_interval: int | None = None
    evaluate: bool = True
    eval_batch_size: int = 4096
    log_every: int = 10
    progress: bool | None = None
    tensorboard: bool | None = None
    plots: bool = True
    # run folder
    out: str | Path | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int = 0
    overwrite: bool = False
    # placement
    device: str = "cpu"
    distributed: str = "auto"

    def __post_init__(self) -> None:
        if self.lr is not None:
            _check_lr("lr", self.lr)
        for name in ("weight_decay", "l1", "swats_eps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        for name in ("clip_norm", "clip_value"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not v > 0):
                raise ValueError(f"{name} must be None or a number > 0, got {v!r}")
        _count("accumulate", self.accumulate, 1)
        _count("log_every", self.log_every, 1)
        _count("eval_every", self.eval_every, 0)
        _count("eval_batch_size", self.eval_batch_size, 1)
        _count("warmup", self.warmup, 0)
        _count("keep_checkpoints", self.keep_checkpoints, 0)
        _count("seed", self.seed, 0)
        _count("data_seed", self.data_seed, 0)
        for name in ("epochs", "iterations", "checkpoint_every", "eval_interval"):
            if getattr(self, name) is not None:
                _count(name, getattr(self, name), 1)
        if self.batch_size is not None:
            _count("batch size", self.batch_size, 1)
        if self.schedule_unit not in UNITS:
            raise ValueError(f"schedule_unit must be 'iteration' or 'epoch', got {self.schedule_unit!r}")
        if isinstance(self.task, str):  # (as optimizer and model names: any case)
            self.task = self.task.strip().lower()
        if self.task is not None and self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification', 'regression' or None (inferred), got {self.task!r}")
        if self.distributed not in ("auto", "off"):
            raise ValueError(f"distributed must be 'auto' or 'off', got {self.distributed!r}")
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("give epochs or iterations, not both")
        check_optimizer(self.optimizer)
        if isinstance(self.phases, str):
            self.phases = parse_phases(self.phases, "iteration" if self.iterations else "epoch")
        if self.phases is not None:
            self.phases = list(self.phases)
            if not self.phases or not all(isinstance(p, Phase) for p in self.phases):
                raise ValueError("phases must be a non-empty sequence of Phase(duration, optimizer, schedule)")
            if any(p.duration is None for p in self.phases[:-1]):
                raise ValueError("only the last phase may have duration None (the rest of the budget)")
            if self.swats:
                raise ValueError("swats switches phases by itself; give phases or swats, not both")

    @classmethod
    def from_resolved(cls, saved: Mapping[str, Any], **given: Any) -> TrainConfig:
        """The config :meth:`resolved` describes (phases rebuilt), with ``given`` fields on top."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in saved.items() if k in names}
        if values.get("phases"):
            values["phases"] = [Phase(**{**p, "options": dict(p.get("options") or {})}) for p in values["phases"]]
        if values.get("model_options", {}).get("hidden") is not None:
            values["model_options"] = {**values["model_options"], "hidden": tuple(values["model_options"]["hidden"])}
        values.update(given)
        return cls(**values)

    def resolved(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (objects by their repr)."""
        out = {}
        for f in dataclasses.fields(self):
            out[f.name] = jsonable(getattr(self, f.name))
        return out


def with_options(cfg: TrainConfig, options: Mapping[str, Any]) -> TrainConfig:
    """``cfg`` with the fields ``options`` names replaced; a name that is no field is a ValueError
    naming it, the closest field and the list."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in options:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown training option {key!r}; {hint}the options (TrainConfig fields) are "
                             f"{', '.join(names)}")
    return dataclasses.replace(cfg, **options) if options else cfg


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold replaced by its repr (phases as dicts)."""
    if isinstance(value, Phase):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def check_optimizer(spec: Any) -> None:
    """SpecError (a ValueError) for an unknown optimizer name or option in a spec string."""
    if isinstance(spec, str):
        cls, shown_name, options = parse_spec(spec)
        check_options(cls, options, shown_name)


def _check_lr(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def _count(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# ---------------------------------------------------------------------------- builders


def trainable(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(name, parameter)`` for every parameter that requires a gradient."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def make_optimizer(
    spec: OptimizerSpec, model: nn.Module, lr: float | None, options: Mapping[str, Any]
) -> Any:
    """Build the optimizer ``spec`` describes for ``model`` (see the module docstring).

    Names, spec strings and classes go through :func:`descend.optim.build`; ``lr``
    (when given) and ``options`` override the spec's own options.
    """
    from .parts import PartOptimizer

    if isinstance(spec, torch.optim.Optimizer | PartOptimizer):
        return _owned(spec, model)
    if isinstance(spec, Mapping):
        return PartOptimizer(model, spec)
    if by_name(spec):
        params = trainable(model)
        if not params:
            raise ValueError("the model has no trainable parameters (every parameter is frozen)")
        kw = dict(options)
        if lr is not None:
            kw["lr"] = lr
        try:
            return optim.build(spec, params, **kw)
        except TypeError as err:
            raise ValueError(f"cannot build {spec!r} with {sorted(kw)}: {err}") from None
    if callable(spec):
        built = spec(model)
        if not hasattr(built, "param_groups") or not hasattr(built, "step"):
            raise ValueError(
                f"an optimizer factory must return an optimizer (with param_groups and step), "
                f"got {type(built).__name__}"
            )
        return _owned(built, model)
    raise ValueError(
        f"optimizer must be a name ({', '.join(optim.names())}), an optimizer class, a callable "
        f"model -> optimizer, a mapping of parts or an optimizer, got {spec!r}"
    )


def by_name(spec: OptimizerSpec) -> bool:
    """Whether ``spec`` is a name or an optimizer class: the kinds the run's lr and options are given to."""
    return isinstance(spec, str) or (isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer))


def check_options_reach(specs: Sequence[Any], cfg: TrainConfig) -> None:
    """A ValueError for options no optimizer of the run would receive: ``optimizer_options`` (or a
    phase's ``options``) beside a function, mapping or instance, which carries its own, and
    ``weight_decay``/``l1`` when no phase builds its optimizer by name or class. They were ignored
    while ``summary.json`` recorded them as the run's settings."""
    for i, spec in enumerate(specs):
        if spec.options and not by_name(spec.optimizer):
            where = f"phase {i + 1}'s options" if cfg.phases else "optimizer_options"
            raise ValueError(
                f"{where} {dict(spec.options)} are passed only to an optimizer given by name or class, but this one is "
                f"{_kind(spec.optimizer)}, which is built with options of its own: give them where it is built "
                f"(e.g. optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9))"
            )
    given = {name: getattr(cfg, name) for name in ("weight_decay", "l1") if getattr(cfg, name)}
    if given and not any(by_name(spec.optimizer) for spec in specs):
        shown = ", ".join(f"{k}={v}" for k, v in given.items())
        raise ValueError(
            f"{shown} {'is' if len(given) == 1 else 'are'} passed only to an optimizer given by name or class "
            f"(optimizer='sgd', torch.optim.SGD), but "
            f"the optimizer is {_kind(specs[0].optimizer)}, which is built with options of its own: give "
            f"{', '.join(given)} where it is built (e.g. torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=0.01); "
            f"descend.optim.decay_groups for a mask), or name the optimizer"
        )


def _kind(spec: Any) -> str:
    if isinstance(spec, Mapping):
        return "a mapping of parts"
    return "a function" if callable(spec) else f"an optimizer instance ({type(spec).__name__})"


def _owned(opt: Any, model: nn.Module) -> Any:
    """``opt``, or a ValueError when it holds none of ``model``'s parameters (built on another model or
    a copy): it would step those and leave the model as it was, while the run reports a training that
    did not happen. Parameters of its own beside the model's (a learnable loss weight) are the user's."""
    mine = {id(p) for p in model.parameters()}
    held = [p for g in opt.param_groups for p in g["params"]]
    if mine and held and not any(id(p) in mine for p in held):
        raise ValueError(
            f"the optimizer ({type(opt).__name__}) holds none of the model's parameters (its {len(held)} "
            f"are another model's, or a copy's), so training would not change the model; build it on this "
            f"model's parameters, or pass a factory: optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)"
        )
    return opt


def optimizer_name(opt: Any) -> str:
    """A short name for logs: the class name, or the parts of a PartOptimizer."""
    from .parts import PartOptimizer

    if isinstance(opt, PartOptimizer):
        return "PartOptimizer(" + ", ".join(
            f"{k}: {type(o).__name__}" for k, o in opt.optimizers.items()
        ) + ")"
    return type(opt).__name__


def make_schedule(
    spec: str | Schedule | None, steps: int, lr: float, warmup: int
) -> Schedule | None:
    """A schedule from a spec (over ``steps`` units, starting at ``lr``; :func:`descend.schedules.build`).

    ``warmup`` without a schedule warms up to a constant lr.
    """
    if isinstance(spec, Schedule):
        if warmup:
            raise ValueError(
                f"warmup={warmup} applies to a schedule given by name (e.g. 'cosine'); wrap a schedule object "
                "yourself: descend.schedules.warmup(schedule, steps)"
            )
        return spec
    if spec is None:
        if not warmup:
            return None
        spec = "constant"
    if isinstance(spec, torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise ValueError(
            f"schedule must be a descend schedule or a spec such as 'cosine', got torch's "
            f"{type(spec).__name__}, which is built on an optimizer: pass that optimizer (optimizer=opt) and "
            f"step the scheduler from the callback, callback=lambda tr: sched.step() after every iteration, or "
            f"once an epoch: if tr.batch_in_epoch == 0 (the epoch just ended), and give it as "
            f"extra_state={{'sched': sched}} so that checkpoints hold it and a resume restores it; or use the "
            f"descend schedule of the same name (descend.schedules)"
        )
    if not isinstance(spec, str):
        raise ValueError(f"schedule must be a descend schedule or a spec such as 'cosine', got {spec!r}")
    if warmup and warmup >= steps:
        raise ValueError(f"warmup must be shorter than its phase ({steps} schedule steps), got {warmup}")
    if lr <= 0:
        raise ValueError(f"a schedule needs an lr > 0 to scale, got {lr}")
    return schedules.build(spec, steps=steps, lr=lr, warmup=warmup or None)


def lr_of(opt: Any) -> float | None:
    """The lr of the first param group as a float (None if there is none)."""
    groups = getattr(opt, "param_groups", None)
    if not groups:
        return None
    return float(groups[0]["lr"])


Factory = Callable[[nn.Module], Any]
