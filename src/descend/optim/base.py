"""The contract every descend optimizer shares.

``Optimizer`` is a ``torch.optim.Optimizer``: param groups with per-group
hyperparameters, ``state``, ``state_dict``/``load_state_dict``, ``zero_grad``,
closures, step hooks and ``torch.optim.lr_scheduler`` all work as in torch.
On top of that it

* validates every hyperparameter when the optimizer is built and whenever a
  param group is added (``ValueError`` naming argument, value and range);
* accepts tensor hyperparameters that broadcast against the parameters;
* checks gradients before touching anything: ``nonfinite="raise"`` names the
  offending parameter and the step, ``"skip"`` skips the whole step (no
  parameter and no state changes), ``"ignore"`` does not check (torch's
  behaviour). A step is never half-applied;
* tags its ``state_dict`` with the optimizer class so that loading another
  optimizer's state, or state of another shape, fails clearly.

A subclass describes one rule with a few small pieces: ``_specs`` (what each
hyperparameter may be), ``_rule(group)`` (a function of
:mod:`descend.optim.rules` and the names of the state tensors it takes, in
order), ``_hypers(group, step)`` (its keyword arguments for this step) and,
where the state does not start at zero, ``_init_state``. The eager path
below and the fused path (:mod:`descend.optim.fused`) both call exactly
``rule(p, g, *state, **hypers)``.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.optim.optimizer as _torch_optimizer

from . import checks as _checks
from . import compat, engine, fused, hooks, launch, lowstate, rules, spellings, states
from ._validate import NONNEG, Spec, as_number, check, check_broadcast, check_choice

NONFINITE = ("raise", "skip", "ignore")
IMPLS = ("auto", "eager", "foreach", "fused")

# Hyperparameters every gradient-based rule accepts.
COMMON_SPECS: dict[str, Spec] = {
    "lr": NONNEG,
    "weight_decay": NONNEG,
    "l1": NONNEG,
    "maximize": bool,
}


_KEYWORDS: dict[Any, list[str]] = {}


_PRE_HOOKS = _torch_optimizer._global_optimizer_pre_hooks
_POST_HOOKS = _torch_optimizer._global_optimizer_post_hooks
_PROFILING = torch.autograd._profiler_enabled
_set_grad_enabled = torch._C._set_grad_enabled


def step_hooks(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` with torch's step wrapper (profiler label, pre- and post-hooks) when someone listens.

    torch wraps every optimizer's ``step`` in ``Optimizer.profile_hook_step``; its
    profiler label alone costs about 12 µs a step, more than a whole step of a small
    model. This wrapper calls torch's own when the profiler is on, any step hook is
    registered or the step is being compiled, and the bare ``step`` otherwise, so
    hooks and profiles behave exactly as with torch.optim.
    """
    hooked = torch.optim.Optimizer.profile_hook_step(step)

    @functools.wraps(step)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        # (is_compiling first: under torch.compile the profiler query is a graph break of its own)
        if self._in_step or not (_PRE_HOOKS or _POST_HOOKS or self._optimizer_step_pre_hooks
                                 or self._optimizer_step_post_hooks or torch.compiler.is_compiling()
                                 or _PROFILING()):
            return step(self, *args, **kwargs)
        self._in_step = True  # a subclass's step calling super().step runs the hooks once
        try:
            return hooked(self, *args, **kwargs)
        finally:
            self._in_step = False

    wrapper.hooked = True  # type: ignore[attr-defined]  # torch must not wrap it again
    return wrapper


def _known_keywords(cls: type, init: Callable[..., None]) -> Callable[..., None]:
    """``init`` that refuses an unknown keyword naming the optimizer and what it takes
    (the keywords pass through ``**common`` to the base class, whose own TypeError would
    name ``Optimizer.__init__``)."""
    own: list[str] = []
    theirs: list[str] = []
    signature = inspect.signature(init).parameters.values()
    positional = [p.name for p in signature if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]
    open_ended = any(p.kind is p.VAR_POSITIONAL for p in signature)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(positional) and not open_ended and type(self) is cls:
            twin = compat.twin_of(cls)
            order = (f"; torch.optim.{twin[1].torch} orders its arguments differently, so they are taken "
                     "by name only" if twin else "")
            raise TypeError(
                f"{cls.__name__}() takes {', '.join(positional)} by position and the rest by keyword, got "
                f"params and {len(args) - 1} more positional arguments ({', '.join(map(repr, args[1:]))}){order}: "
                f"write e.g. {cls.__name__}(params, lr, {_example(cls)})"
            )
        if kwargs and type(self) is cls:
            if not own:
                from .registry import accepted_keywords  # the registry imports this module

                own.extend(accepted_keywords(cls))
                theirs.extend(compat.torch_keywords(cls))
            unknown = [k for k in kwargs if k not in own and k not in theirs and k != "params"]
            if unknown:
                also = f" (and torch.optim's spellings {', '.join(theirs)})" if theirs else ""
                raise TypeError(
                    f"{cls.__name__}() got an unexpected keyword argument {unknown[0]!r}; "
                    f"it takes: {', '.join(own)}{also}"
                )
        init(self, *args, **kwargs)

    return __init__


def _example(cls: type) -> str:
    """A keyword call for the error above: the first keyword-only hyperparameters of ``cls``."""
    names = [p.name for p in inspect.signature(cls.__init__).parameters.values()
             if p.kind is p.KEYWORD_ONLY][:2]
    return ", ".join(f"{n}=..." for n in names) or "..."


class NonFiniteGradientError(FloatingPointError):
    """A gradient (or loss) contained NaN or infinity; no parameter was changed."""


def _torch_call(opt: Any, name: str, *args: Any) -> Any:
    """torch.optim.Optimizer's method ``name`` on ``opt``. torch wraps ``add_param_group``,
    ``state_dict`` and ``load_state_dict`` (and ``zero_grad``) in ``torch._disable_dynamo``,
    which imports Dynamo at the first call (1.4 s here, and Inductor's package with it):
    outside ``torch.compile`` descend calls the function inside (the same code), so building,
    saving and loading an optimizer imports neither; under it, the wrapped one. (``zero_grad``
    stays torch's: Dynamo traces an Optimizer's attributes its own way, and a step written
    around it broke the graph twice where torch's breaks it once.)"""
    method = getattr(torch.optim.Optimizer, name)
    if torch.compiler.is_compiling():
        return method(opt, *args)
    return getattr(method, "__wrapped__", method)(opt, *args)


class Optimizer(torch.optim.Optimizer):
    """Base class of the descend optimizers (see the module docstring)."""

    _specs: ClassVar[dict[str, Spec]] = COMMON_SPECS
    _tensor_hypers: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # accept torch.optim's keyword spellings (descend.optim.compat)
            cls.__init__ = _known_keywords(cls, compat.wrap_init(cls, cls.__dict__["__init__"]))  # type: ignore[method-assign]
        if "step" in cls.__dict__ and not getattr(cls.__dict__["step"], "hooked", False):
            cls.step = step_hooks(cls.__dict__["step"])  # type: ignore[method-assign]

    _in_step: bool = False

    rule: ClassVar[Callable[..., tuple] | None] = None  # a function of rules.py, marked with rules.declare
    decoupled: ClassVar[bool] = False  # weight decay: L2 on the gradient (False) or decoupled (AdamW)

    def __init__(
        self, params: Any, defaults: dict[str, Any], *, weight_decay: float | torch.Tensor = 0.0,
        l1: float | torch.Tensor = 0.0, maximize: bool = False, nonfinite: str = "raise", impl: str = "auto",
        state_dtype: torch.dtype | None = None, state_rounding: str = "stochastic",
    ) -> None:
        """``defaults``: the rule's own hyperparameters; the common keywords follow.

        ``state_dtype``: the dtype the state tensors are stored in (None: the
        parameter's); ``torch.bfloat16`` halves the state's memory and traffic, with
        the arithmetic in float32 and ``state_rounding`` ("stochastic" or "nearest")
        on the way back (:mod:`descend.optim.lowstate`).
        """
        defaults = {k: as_number(v) for k, v in
                    {"weight_decay": weight_decay, "l1": l1, "maximize": maximize, **defaults}.items()}
        check_choice("nonfinite", nonfinite, NONFINITE)
        check_choice("impl", impl, IMPLS)
        check_choice("state_rounding", state_rounding, lowstate.ROUNDINGS)
        self.nonfinite = nonfinite
        self.impl = impl
        self.state_dtype = lowstate.check_state_dtype(state_dtype)
        self.state_rounding = state_rounding
        self._plans: list[engine.Part] | None = None  # the step plan, rebuilt when groups change
        self._plain: list = []  # plain-dict groups put in from outside (spellings.plain_groups)
        self._fresh: dict[int, set[int]] = {}  # group id -> steps on which a state tensor starts (states.conform)
        self._planned_groups: list[dict[str, Any]] = []  # the groups the plan was built for
        self._staging = False  # some part of the plan takes launch.stage (a fused CPU part)
        self._plan_key: list[tuple[int, int, int]] = []
        self._plan_state: tuple[Any, int, list] = (None, 0, [])  # (opt.state, its changes, frozen params)
        for name, value in defaults.items():
            check(name, value, self._specs.get(name))
            self._check_tensor_allowed(name, value)
        if isinstance(params, torch.Tensor):
            raise ValueError(
                "params must be an iterable of tensors, (name, tensor) pairs or dicts, got a single "
                "tensor; wrap it in a list: [tensor]"
            )
        try:
            params = list(params)
        except TypeError:
            raise ValueError(
                f"params must be an iterable of tensors, (name, tensor) pairs or param-group dicts, "
                f"got {type(params).__name__}"
            ) from None
        if not params:
            raise ValueError(
                "params is an empty list; pass model.parameters(), model.named_parameters() "
                "or a list of tensors"
            )
        super().__init__(params, defaults)
        self.state = engine.state_of(self, self.state)  # (counts resets from outside: see engine.State)
        self._planned_groups = list(self.param_groups)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise ValueError(f"a param group must be a dict, got {type(param_group).__name__}")
        param_group = compat.translate_group(self, param_group)  # torch's "betas", "alpha", ...
        param_group = {k: as_number(v) for k, v in param_group.items()}
        raw = param_group.get("params")
        if raw is None:
            raise ValueError("a param group needs a 'params' entry: a list of tensors (it may be empty)")
        if isinstance(raw, (set, frozenset)):  # (torch.optim's TypeError)
            raise TypeError(
                f"a param group's 'params' is a set of {len(raw)} tensors, whose order changes between "
                "runs (saved state would meet other parameters); pass a list or tuple of tensors"
            )
        # (an empty group is allowed, as in torch.optim: nanoGPT-style code builds a no-decay group
        # that can be empty)
        items = [raw] if isinstance(raw, torch.Tensor) else list(raw)
        seen: dict[int, int] = {}
        for i, item in enumerate(items):
            tensor = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(
                    f"params[{i}] must be a torch.Tensor (or a (name, tensor) pair), "
                    f"got {type(tensor).__name__}"
                )
            if not (tensor.is_floating_point() or tensor.is_complex()):
                raise ValueError(f"params[{i}] must be a floating-point tensor, got dtype {tensor.dtype}")
            if id(tensor) in seen:  # torch.optim warns and steps it twice; its paths would disagree here
                raise ValueError(
                    f"params[{i}] is the same tensor as params[{seen[id(tensor)]}] (shape "
                    f"{tuple(tensor.shape)}); list each parameter once"
                )
            seen[id(tensor)] = i
        param_group["params"] = items
        if not items and self.param_groups and "param_names" in self.param_groups[0]:
            param_group["param_names"] = []  # (an empty group among named ones is named too)
        for name, value in param_group.items():
            if name in self._specs:
                check(name, value, self._specs[name])
                self._check_tensor_allowed(name, value)
        _torch_call(self, "add_param_group", param_group)
        group = self.param_groups[-1] = compat.sync_group(self, self.param_groups[-1])
        try:
            self._check_group(group)
        except ValueError:
            self.param_groups.pop()
            raise

    def _check_tensor_allowed(self, name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and not self._tensor_hypers:
            raise ValueError(
                f"{name} must be a Python number for {type(self).__name__}, got a tensor; "
                "tensor hyperparameters are for the element-wise rules"
            )

    def _check_group(self, group: dict[str, Any]) -> None:
        """Per-group consistency checks; subclasses extend it."""
        for name, value in group.items():
            if isinstance(value, torch.Tensor):
                for i, p in enumerate(group["params"]):
                    check_broadcast(name, value, p, self._param_name(group, i))

    # ------------------------------------------------------------------ state
    def _rule(self, group: dict[str, Any]) -> tuple[Callable[..., tuple], tuple[str, ...]]:
        """The rule for this group's options and the state keys it takes, in order."""
        rule = type(self).rule
        if rule is None:
            raise NotImplementedError(f"{type(self).__name__} sets neither rule nor _rule")
        return rule, rule.state  # type: ignore[attr-defined]

    def _hypers(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        """Keyword arguments of the rule at ``step`` (1-based): by default the group's values
        of the rule's keyword-only arguments, and ``decay`` for decoupled weight decay."""
        rule = self._rule(group)[0]
        names = _KEYWORDS.get(rule)
        if names is None:
            names = _KEYWORDS[rule] = [
                p.name for p in inspect.signature(rule).parameters.values() if p.kind is p.KEYWORD_ONLY]
        return {k: self._decay(group) if k == "decay" else group[k] for k in names}

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the per-parameter state tensors this group's options use."""
        return tuple(k for k in self._rule(group)[1] if self._uses(group, k))

    def _all_state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Every state tensor this optimizer may keep under some options (dropped when unused)."""
        return self._rule(group)[1]

    def _uses(self, group: dict[str, Any], key: str) -> bool:
        """Whether an optional state tensor of the rule is in use (default: the group's flag of that name)."""
        rule = self._rule(group)[0]
        return key not in getattr(rule, "optional", ()) or bool(group.get(key))

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0}
        dtype = self._state_dtype(p)
        for key in self._state_keys(group):
            state[key] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
        return state

    def _rounding(self, p: torch.Tensor) -> str:
        """How ``p``'s bf16 state is rounded: ``state_rounding`` where ``state_dtype`` stores it
        below the parameter's precision; to nearest for bf16 parameters, as torch.optim."""
        return "nearest" if p.dtype == torch.bfloat16 else self.state_rounding

    def _state_dtype(self, p: torch.Tensor) -> torch.dtype:
        """The dtype of ``p``'s state tensors (``state_dtype``, or the parameter's own)."""
        if self.state_dtype is None or self.state_dtype == p.dtype:
            return p.dtype
        if not p.is_floating_point():
            raise ValueError(
                f"state_dtype={self.state_dtype} needs real floating-point parameters, got a "
                f"{p.dtype} parameter of shape {tuple(p.shape)}; state_dtype applies to all of an "
                f"optimizer's parameters: give this one an optimizer of its own with state_dtype=None"
            )
        return self.state_dtype

    # the step plan and its caches: rebuilt at the next step, never copied or pickled
    _RUNTIME = ("_plans", "_staging", "_plan_key", "_plan_state", "_plain", "_planned_groups", "_fresh")

    def __getstate__(self) -> dict[str, Any]:
        """torch.optim's pickled state (defaults, state, param groups) and descend's own settings
        (``nonfinite``, ``impl``, ``state_dtype``, ...), so ``copy.deepcopy`` and pickling give an
        optimizer that steps as the original; hooks are dropped, as torch.optim drops them."""
        state = super().__getstate__()
        for key, value in self.__dict__.items():
            if key not in state and key not in self._RUNTIME and not key.startswith("_optimizer_"):
                state[key] = value
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._plans, self._staging, self._plan_key, self._plan_state = None, False, [], (None, 0, [])
        self._plain, self._planned_groups, self._fresh = [], list(self.param_groups), {}
        if type(self.state) is not engine.State:  # (torch's load_state_dict: fresh dicts of the loaded state)
            self.state = engine.state_of(self, self.state, fresh=True)

    def state_dict(self, format: str = "descend") -> dict[str, Any]:
        """The state; ``format="torch"`` gives it as this optimizer's torch.optim twin saves it."""
        check_choice("format", format, ("descend", "torch"))
        hooks.save_pre(self)  # (the hooks run around descend's work, as torch runs them around its own)
        with hooks.held(self, hooks.SAVE):
            sd = _torch_call(self, "state_dict")
        # no packed buffers; no entries for parameters that have not stepped yet (as torch.optim: the
        # compiled path lays out the state of every parameter it packs, at step 0, before its first step)
        sd["state"] = {k: engine.compact(v) for k, v in sd["state"].items() if v and v.get("step") != 0}
        if format == "torch":
            return hooks.save_post(self, compat.to_torch(self, sd))
        sd["descend"] = {"optimizer": type(self).__name__, "format": 1}
        return hooks.save_post(self, sd)

    def load_state_dict(self, state_dict: dict[str, Any], *, strict: bool = True, match: str = "name") -> None:
        """Load a descend or torch.optim state dict; parameters are matched by name when both have names.

        Names that differ only by a wrapper's prefix (``_orig_mod.`` of ``torch.compile``,
        ``module.`` of DDP) match. ``strict=False`` loads the parameters whose names match
        and warns about the others; ``match="position"`` pairs parameters by position, as
        torch.optim does.
        """
        check_choice("match", match, ("name", "position"))
        state_dict = hooks.load_pre(self, state_dict)  # (a pre-hook may repair the dict before it is read)
        states.check_layout(state_dict)
        state_dict = compat.match_names(self, state_dict, strict, match)
        if "descend" not in state_dict:
            if compat.written_by_descend(self, state_dict):  # with its marker dropped on the way
                state_dict = {**state_dict, "descend": {"optimizer": type(self).__name__, "format": 1}}
            else:
                state_dict = compat.from_torch(self, state_dict)
        info = state_dict.get("descend")
        mine = type(self).__name__
        if not isinstance(info, dict) or "optimizer" not in info:
            raise ValueError(
                f"state_dict was not saved by a descend optimizer (no 'descend' entry); "
                f"load a state saved by descend.optim.{mine}.state_dict()"
            )
        if info["optimizer"] != mine:
            raise ValueError(
                f"state_dict was saved by descend.optim.{info['optimizer']} and cannot be loaded "
                f"into descend.optim.{mine}"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict has {len(saved_groups)} param groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"param group {gi} of state_dict has {len(saved['params'])} parameters, "
                    f"this optimizer's has {len(group['params'])}"
                )
            merged = {**group, **{k: v for k, v in saved.items() if k != "params"}}
            expected = set(self._state_keys(merged)) | {"step"}
            # (keys of no option of this optimizer were put there by a wrapper, as timm's Lookahead
            # keeps its slow weights in the base optimizer's state: torch.optim loads them as they are)
            own = set(self._all_state_keys(merged)) | {"step"}
            for i, (pid, p) in enumerate(zip(saved["params"], group["params"])):
                st = state_dict["state"].get(pid)
                if not st:  # (None, or {}: a parameter that had not stepped)
                    continue
                if set(st) & own != expected:
                    raise ValueError(
                        f"state of {self._param_name(group, i)} in param group {gi} has keys {sorted(st)}, expected "
                        f"{sorted(expected)} for descend.optim.{mine} with these options"
                    )
                for key, value in st.items():
                    if key in own and isinstance(value, torch.Tensor) and value.shape != p.shape:
                        raise ValueError(
                            f"state '{key}' of {self._param_name(group, i)} in param group {gi} has shape "
                            f"{tuple(value.shape)}, the parameter has shape {tuple(p.shape)}"
                        )
        rest = {k: v for k, v in state_dict.items() if k != "descend"}
        with hooks.held(self, hooks.LOAD):
            _torch_call(self, "load_state_dict", rest)
        self.param_groups[:] = [compat.sync_group(self, g) for g in self.param_groups]
        self._plans = None  # the loaded state tensors replace the packed views; re-planned lazily
        hooks.load_post(self)

    # ------------------------------------------------------------------ step
    @staticmethod
    def _param_name(group: dict[str, Any], i: int) -> str:
        names = group.get("param_names")
        if names:
            return f"parameter '{names[i]}'"
        p = group["params"][i]
        return f"parameter {i} (shape {tuple(p.shape)})"

    @step_hooks
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Take one step; ``closure`` (optional) re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if torch.compiler.is_compiling():
            self._update()
            return loss
        enabled = torch.is_grad_enabled()
        _set_grad_enabled(False)  # (torch.set_grad_enabled builds a context object each call)
        try:
            self._update_no_grad()
        finally:
            _set_grad_enabled(enabled)
        return loss

    @torch._disable_dynamo  # (torch.compiler.disable, importing Dynamo at its first call, as torch.optim's)
    def _update(self) -> None:
        """The step under ``torch.compile``: it runs as it does eagerly (its own paths are
        already multi-tensor or compiled); the compiled model around it is unaffected."""
        with torch.no_grad():
            self._update_no_grad()

    def _update_no_grad(self) -> None:
        parts = self._plans
        if parts is None or not engine.valid(self, parts):
            parts = self._plans = engine.build(self)
            self._staging = any(launch.stages(part) for part in parts)
            self._plain = spellings.plain_groups(self, self._planned_groups)
            self._planned_groups = list(self.param_groups)
        elif self._plain:
            spellings.reconcile(self._plain)
        work = engine.collect(self, parts)
        # (staging changes nothing: a skipped step leaves all as it was)
        staged = launch.stage(self, work) if self._staging else itertools.repeat(None)
        ok = None
        if self.nonfinite != "ignore" and work:
            # one part replayed natively: the check runs in the same call, before it writes
            done = engine.folded(self, work[0]) if len(work) == 1 and not self._staging else None
            if done:
                return
            if done is None:
                checks = _checks.grad_checks(work)
                if self.nonfinite == "skip" and checks and checks[0].device.type != "cpu":
                    ok = _checks.finite_flag(checks)  # folded into the update: no host sync
                elif not _checks.all_finite(checks):
                    done = False
            if done is False:
                bad = _checks.exactly_finite(work)  # None: a norm overflowed from finite values
                if bad is not None:
                    if self.nonfinite == "skip":
                        return
                    self._raise_nonfinite(*bad)
        for w, run in zip(work, staged):
            if run is not None:
                run()
            else:
                engine.apply(self, w, ok)

    def _raise_nonfinite(self, w: Any, j: int) -> None:
        group, p, g = w.part.group, w.params[j], w.grads[j]
        i = next(i for i, q in enumerate(group["params"]) if q is p)
        step = self.state.get(p, {}).get("step", 0) + 1
        what = "NaN" if bool(torch.isnan(g).any()) else "infinite"
        raise NonFiniteGradientError(
            f"{what} gradient in {self._param_name(group, i)} at step {step}; no parameter "
            f"was changed. Lower the learning rate, check the loss, or pass "
            f"nonfinite='skip' to skip such steps"
        )

    def _fusable(self, group: dict[str, Any]) -> str | None:
        """None when the group can take the multi-tensor and compiled paths, else the reason it cannot."""
        for name, value in group.items():
            if name != "params" and not fused.is_scalar(value):
                return f"{name} is a tensor of shape {tuple(value.shape)} (the fast paths take scalars)"
        return None

    def _l2(self, group: dict[str, Any]) -> Any:
        """Weight decay added to the gradient (L2), unless the class says ``decoupled``."""
        return 0.0 if self.decoupled else group["weight_decay"]

    def _decay(self, group: dict[str, Any]) -> Any:
        """Decoupled weight decay, passed to rules that take ``decay`` (AdamW)."""
        return group["weight_decay"] if self.decoupled else 0.0

    def _point(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> torch.Tensor:
        """Where the regularizers' gradients are taken (the parameter; Nesterov's look-ahead shifts it)."""
        return p

    def _rule_step(
        self, x: torch.Tensor, g: torch.Tensor, states: list[torch.Tensor | None], group: dict[str, Any],
        step: int, point: torch.Tensor | None = None, pairs: bool = False,
    ) -> tuple:
        """One step of the rule, functionally: ``(new x, *new states)`` from ``x``, its gradient
        and its state tensors (in the order of ``_rule``; None where absent), at step ``step``.

        The eager path and the lab's lockstep engine both step through here. ``point``: where
        the regularizers' gradients are taken (default ``x``); ``pairs``: ``x`` holds complex
        numbers as real pairs, so tensor hyperparameters of shape (N, 1) gain an axis.
        """
        rule = self._rule(group)[0]
        hypers = self._hypers(group, step)
        # a tensor hyperparameter of shape (N, 1) is taken at x's precision, as a number is (a float64
        # lr would promote a float32 row's arithmetic to float64), and meets (N, 2, 2) real pairs with an axis more
        hypers = {k: (v.to(x.dtype).unsqueeze(-1) if pairs else v.to(x.dtype))
                  if isinstance(v, torch.Tensor) and v.dim() and v.is_floating_point() else v
                  for k, v in hypers.items()}
        g = rules.prepare_grad(x if point is None else point, g, maximize=group["maximize"],
                               weight_decay=self._l2(group), l1=group["l1"])
        return rule(x, g, *states, **hypers)

    def _apply(
        self, p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any],
        ok: torch.Tensor | None = None,
    ) -> None:
        """Eager path: the rule on one tensor (complex as real pairs, fp16/bf16 in float32)."""
        keys = self._rule(group)[1]
        x = engine.work_view(p)
        states = [engine.work_view(state[k]) if k in state else None for k in keys]
        new = self._rule_step(x, engine.work_view(g), states, group, state["step"],
                              point=engine.work_view(self._point(p, state, group)), pairs=p.is_complex())
        if ok is not None:
            new = tuple(None if n is None else torch.where(ok, n, o) for n, o in zip(new, [x, *states]))
        for key, value in zip(keys, new[1:]):  # (before p is written: x, the old p, salts the rounding)
            if value is not None:
                t = state[key]
                lowstate.store(torch.view_as_real(t) if t.is_complex() else t, value, self._rounding(p),
                               lowstate.seed(state["step"], key), x)
        (torch.view_as_real(p) if p.is_complex() else p).copy_(new[0])
