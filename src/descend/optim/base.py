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

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch

from . import compat, fused, rules
from ._validate import NONNEG, Spec, check, check_broadcast, check_choice

NONFINITE = ("raise", "skip", "ignore")
IMPLS = ("auto", "eager", "fused")
# impl="auto" compiles a group when it is large enough for the one-time compile to pay off.
AUTO_MIN_NUMEL = 1_000_000
AUTO_MIN_TENSORS = 1_000

# Hyperparameters every gradient-based rule accepts.
COMMON_SPECS: dict[str, Spec] = {
    "lr": NONNEG,
    "weight_decay": NONNEG,
    "l1": NONNEG,
    "maximize": bool,
}


class NonFiniteGradientError(FloatingPointError):
    """A gradient (or loss) contained NaN or infinity; no parameter was changed."""


class Optimizer(torch.optim.Optimizer):
    """Base class of the descend optimizers (see the module docstring)."""

    _specs: ClassVar[dict[str, Spec]] = COMMON_SPECS
    _tensor_hypers: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # accept torch.optim's keyword spellings (descend.optim.compat)
            cls.__init__ = compat.wrap_init(cls, cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(
        self, params: Any, defaults: dict[str, Any], *, nonfinite: str = "raise", impl: str = "auto"
    ) -> None:
        check_choice("nonfinite", nonfinite, NONFINITE)
        check_choice("impl", impl, IMPLS)
        self.nonfinite = nonfinite
        self.impl = impl
        self._buckets: dict[int, list[fused.Bucket] | None] = {}
        self._outside: dict[int, list[int]] = {}  # per group: parameters in no bucket
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

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not isinstance(param_group, dict):
            raise ValueError(f"a param group must be a dict, got {type(param_group).__name__}")
        param_group = compat.translate_group(self, param_group)  # torch's "betas", "alpha", ...
        raw = param_group.get("params")
        items = [raw] if isinstance(raw, torch.Tensor) else list(raw or [])
        if not items:
            raise ValueError("params of a param group is empty; each group needs at least one tensor")
        for i, item in enumerate(items):
            tensor = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(
                    f"params[{i}] must be a torch.Tensor (or a (name, tensor) pair), "
                    f"got {type(tensor).__name__}"
                )
            if not (tensor.is_floating_point() or tensor.is_complex()):
                raise ValueError(f"params[{i}] must be a floating-point tensor, got dtype {tensor.dtype}")
        param_group["params"] = items
        for name, value in param_group.items():
            if name in self._specs:
                check(name, value, self._specs[name])
                self._check_tensor_allowed(name, value)
        super().add_param_group(param_group)
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
        raise NotImplementedError

    def _hypers(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        """Keyword arguments of the rule at ``step`` (1-based)."""
        raise NotImplementedError

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the per-parameter state tensors this group's options use."""
        return tuple(k for k in self._rule(group)[1] if self._uses(group, k))

    def _uses(self, group: dict[str, Any], key: str) -> bool:
        """Whether an optional state tensor of the rule is in use (default: all are)."""
        return True

    def _init_state(self, p: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state: dict[str, Any] = {"step": 0}
        for key in self._state_keys(group):
            state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def state_dict(self, format: str = "descend") -> dict[str, Any]:
        """The state; ``format="torch"`` gives it as this optimizer's torch.optim twin saves it."""
        check_choice("format", format, ("descend", "torch"))
        sd = super().state_dict()
        if format == "torch":
            return compat.to_torch(self, sd)
        sd["descend"] = {"optimizer": type(self).__name__, "format": 1}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any], *, strict: bool = True) -> None:
        """Load a descend or torch.optim state dict; parameters are matched by name when both have names.

        ``strict=False`` loads the parameters whose names match and warns about the others.
        """
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups', as returned by state_dict()")
        state_dict = compat.match_names(self, state_dict, strict)
        if "descend" not in state_dict:
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
            for i, (pid, p) in enumerate(zip(saved["params"], group["params"])):
                st = state_dict["state"].get(pid)
                if st is None:
                    continue
                if set(st) != expected:
                    raise ValueError(
                        f"state of {self._param_name(group, i)} has keys {sorted(st)}, expected "
                        f"{sorted(expected)} for descend.optim.{mine} with these options"
                    )
                for key, value in st.items():
                    if isinstance(value, torch.Tensor) and value.shape != p.shape:
                        raise ValueError(
                            f"state '{key}' of {self._param_name(group, i)} has shape "
                            f"{tuple(value.shape)}, the parameter has shape {tuple(p.shape)}"
                        )
        rest = {k: v for k, v in state_dict.items() if k != "descend"}
        super().load_state_dict(rest)
        self.param_groups[:] = [compat.sync_group(self, g) for g in self.param_groups]
        self._buckets.clear()  # the loaded state tensors replace the flat views; rebuilt lazily

    # ------------------------------------------------------------------ step
    @staticmethod
    def _param_name(group: dict[str, Any], i: int) -> str:
        names = group.get("param_names")
        if names:
            return f"parameter '{names[i]}'"
        p = group["params"][i]
        return f"parameter {i} (shape {tuple(p.shape)})"

    def _grads_finite(self, work: list, buckets: list | None = None) -> bool:
        """True when every gradient is finite: one reduction per device or flat buffer."""
        if self.nonfinite == "ignore":
            return True
        ok = all(bool(fused.kernel("finite")(b.G)) for _, b in buckets or [])
        by_device: dict[torch.device, list[torch.Tensor]] = {}
        for _, _, _, gs in work:
            for g in gs:
                by_device.setdefault(g.device, []).append(g)
        for grads in by_device.values():
            if not ok:
                break
            norms = torch._foreach_norm(grads, float("inf"))
            ok = bool(torch.stack([n.float() for n in norms]).isfinite().all())
        if ok:
            return True
        if self.nonfinite == "skip":
            return False
        everything = list(work) + [
            (group, [next(i for i, q in enumerate(group["params"]) if q is p) for p in b.params],
             b.params, [p.grad for p in b.params])
            for group, b in buckets or []
        ]
        for group, idx, _, gs in everything:
            for i, g in zip(idx, gs):
                if not bool(torch.isfinite(g).all()):
                    st = self.state.get(group["params"][i], {})
                    step = st.get("step", 0) + 1
                    what = "NaN" if bool(torch.isnan(g).any()) else "infinite"
                    raise NonFiniteGradientError(
                        f"{what} gradient in {self._param_name(group, i)} at step {step}; no parameter "
                        f"was changed. Lower the learning rate, check the loss, or pass "
                        f"nonfinite='skip' to skip such steps"
                    )
        return True

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Take one step; ``closure`` (optional) re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._update()
        return loss

    @torch.no_grad()
    def _update(self) -> None:
        """Check every gradient, then apply the whole step (fused buckets, then the eager rest)."""
        work, buckets = self._plan()
        if not self._grads_finite(work, buckets):
            return
        for group, bucket in buckets:
            self._step_bucket(group, bucket)
        for group, _, ps, gs in work:
            self._step_group(group, ps, gs)

    # ------------------------------------------------------------------ fused path
    def _fusable(self, group: dict[str, Any]) -> str | None:
        """None when the group can take the fused path, else the reason it cannot."""
        for name, value in group.items():
            if name != "params" and not fused.is_scalar(value):
                return f"{name} is a tensor of shape {tuple(value.shape)} (the fused path takes scalars)"
        if any(p.is_sparse for p in group["params"]):
            return "a parameter is sparse"
        return None

    def _wants_fused(self, group: dict[str, Any]) -> bool:
        if self.impl == "eager":
            return False
        reason = self._fusable(group)
        if reason is not None:
            if self.impl == "fused":
                fused.warn_once(self, "unfusable:" + reason, f"{type(self).__name__}: {reason}; "
                                "using the eager path for this param group")
            return False
        if self.impl == "fused":
            return True
        params = group["params"]
        return sum(p.numel() for p in params) >= AUTO_MIN_NUMEL or len(params) >= AUTO_MIN_TENSORS

    def _group_buckets(self, gi: int, group: dict[str, Any]) -> list[fused.Bucket] | None:
        if gi in self._buckets:
            return self._buckets[gi]
        buckets: list[fused.Bucket] | None = None
        if self._wants_fused(group):
            by_kind: dict[tuple, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.requires_grad:
                    by_kind.setdefault((p.device, p.dtype), []).append(p)
            built = [fused.build_bucket(self, group, ps) for ps in by_kind.values()]
            if all(b is not None for b in built):
                buckets = built  # type: ignore[assignment]
            else:
                fused.warn_once(self, "steps", f"{type(self).__name__}: parameters of a group have taken "
                                "different numbers of steps; using the eager path for that group")
        self._buckets[gi] = buckets
        inside = {id(p) for b in buckets or [] for p in b.params}
        self._outside[gi] = [i for i, p in enumerate(group["params"]) if id(p) not in inside]
        return buckets

    def _plan(self) -> tuple[list, list]:
        """Split this step's work into eager (group, idx, params, grads) and fused (group, bucket).

        A group whose buckets are all ready runs fused and leaves only its
        parameters outside the buckets to the eager path; otherwise the whole
        group runs eager this step.
        """
        work, fused_work = [], []
        for gi, group in enumerate(self.param_groups):
            params = group["params"]
            candidates: Iterable[int] = range(len(params))
            buckets = self._group_buckets(gi, group) if self.impl != "eager" else None
            if buckets and all([self._bucket_ready(gi, b) for b in buckets]):
                fused_work += [(group, b) for b in buckets]
                candidates = self._outside[gi]
            idx, ps, gs = [], [], []
            for i in candidates:
                p = params[i]
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError(
                        f"{self._param_name(group, i)} has a sparse gradient; "
                        f"descend.optim.{type(self).__name__} supports dense gradients only"
                    )
                idx.append(i)
                ps.append(p)
                gs.append(p.grad)
            if ps:
                work.append((group, idx, ps, gs))
        return work, fused_work

    def _bucket_ready(self, gi: int, b: fused.Bucket) -> bool:
        status = b.sync_grads()
        if status == "ok":
            if b.copied:
                b.copied = False
                fused.warn_once(self, "copied", f"{type(self).__name__}: a gradient was replaced (not "
                                "accumulated into the flat buffer), so the fused step copied it first: "
                                "one extra pass. Zero gradients with optimizer.zero_grad() to keep them "
                                "in place")
            return True
        self._buckets.pop(gi, None)  # eager now, rebuilt (if possible) next step
        fused.warn_once(self, status, f"{type(self).__name__}: " + (
            "a parameter has no gradient, so its bucket takes the eager path this step"
            if status == "missing" else "a parameter was moved out of its flat buffer; re-flattening"))
        return False

    def _step_bucket(self, group: dict[str, Any], b: fused.Bucket) -> None:
        step = b.states[0]["step"] + 1
        rule, _ = self._rule(group)
        prep = {
            "maximize": group["maximize"],
            "weight_decay": fused.regularizer(self._l2(group), b.P),
            "l1": fused.regularizer(group["l1"], b.P),
        }
        hypers = fused.scalar_hypers(self._hypers(group, step), b.P)
        states = b.state_args()
        key = fused.static_key(rule, states, prep, hypers)
        fused.kernel("update", key)(b.P, b.G, states, rule, prep, hypers)
        for st in b.states:
            st["step"] = step

    def zero_grad(self, set_to_none: bool | None = None) -> None:
        """Reset gradients.

        ``set_to_none=None`` (default): gradients of fused parameters are zeroed in
        place in their flat buffer (they stay views; torch's ``set_to_none=False``),
        all others are set to None (torch's default). True or False apply to all.
        """
        bucketed: set[int] = set()
        for buckets in self._buckets.values():
            for b in buckets or []:
                bucketed.update(id(p) for p in b.params)
                if set_to_none:
                    for p in b.params:
                        p.grad = None
                    continue
                b.G.zero_()
                for p, view in zip(b.params, b.grad_views):
                    if p.grad is not view:
                        p.grad = view
        for group in self.param_groups:
            for p in group["params"]:
                if id(p) in bucketed or p.grad is None:
                    continue
                if set_to_none is False:
                    p.grad.detach_()
                    p.grad.requires_grad_(False)
                    p.grad.zero_()
                else:
                    p.grad = None

    def _step_group(self, group: dict[str, Any], ps: list[torch.Tensor], gs: list[torch.Tensor]) -> None:
        """Eager path: the rule applied tensor by tensor."""
        for p, g in zip(ps, gs):
            state = self.state[p]
            if not state:
                state.update(self._init_state(p, group))
            state["step"] += 1
            g = rules.prepare_grad(
                p, g, maximize=group["maximize"], weight_decay=self._l2(group), l1=group["l1"]
            )
            self._apply(p, g, state, group)

    def _l2(self, group: dict[str, Any]) -> Any:
        """Weight decay added to the gradient (L2); AdamW overrides it with 0."""
        return group["weight_decay"]

    def _apply(self, p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        rule, keys = self._rule(group)
        new = rule(p, g, *(state.get(k) for k in keys), **self._hypers(group, state["step"]))
        self._write(p, state, keys, new)

    @staticmethod
    def _write(p: torch.Tensor, state: dict[str, Any], keys: Iterable[str], new: tuple) -> None:
        """Copy a rule's results back: ``new = (p, *state tensors in keys order)``."""
        p.copy_(new[0])
        for key, value in zip(keys, new[1:]):
            if value is not None:
                state[key].copy_(value)
