r"""Different optimizers for different parts of a model, as one optimizer.

The notes' advice for fine-tuning: a gentle optimizer (small lr, plain SGD)
for pretrained layers, a faster one for new layers, and frozen layers that
do not move at all. :class:`PartOptimizer` maps the model's parameters to
parts by module name or pattern and gives each part its own optimizer and
lr, behind the interface of one ``torch.optim.Optimizer``::

    opt = PartOptimizer(model, {
        "features": ("sgd", {"lr": 1e-4}),      # pretrained body: gentle
        "head": ("adam", {"lr": 1e-3}),         # new layer: faster
        "embed.*": None,                        # frozen: requires_grad = False
    })
    opt.zero_grad(); loss.backward(); opt.step()
    Scheduler(opt, cosine(1e-3, 1000))          # one schedule, ratios between parts kept

**Matching.** A pattern matches a parameter name ``n`` when it equals ``n``,
is a module prefix of it (``"features"`` matches ``"features.0.weight"``)
or matches it as an ``fnmatch`` glob (``"*.bias"``). Parts are tried in
order; a parameter goes to the first part that matches. Parameters that no
part matches go to ``rest`` (an optimizer spec) or, without ``rest``, are an
error; a part that matches nothing is an error too (a typo, most likely).

**Specs.** ``None`` or ``"frozen"`` (frozen: ``requires_grad_(False)``, never
stepped); a name or spec of :func:`descend.optim.build` (``"adam:lr=1e-3"``); ``(name, kwargs)``; an
optimizer class or ``(class, kwargs)``; a callable ``params -> optimizer``
taking the part's ``(name, tensor)`` pairs.

**One optimizer.** ``param_groups`` lists the parts' groups in part order (the
same dicts, so a :class:`~descend.schedules.Scheduler` drives every part);
``step()`` first checks every part's gradients when one of them raises on
non-finite gradients, so a step is applied to all parts or to none;
``zero_grad()`` zeroes every part (descend's fused buffers kept);
``state_dict()`` holds each part's state under its pattern and
``load_state_dict()`` checks the parts and their classes before loading.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .. import optim

FROZEN = "frozen"


def matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` (exact name, module prefix or glob) matches parameter ``name``."""
    return name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name, pattern)


def _build(spec: Any, params: list[tuple[str, torch.Tensor]], where: str) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        spec, kwargs = spec[0], dict(spec[1])
    if isinstance(spec, str) or (isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer)):
        try:
            return optim.build(spec, params, **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"part {where!r}: cannot build {spec!r} with {sorted(kwargs)}: {err}") from None
    if callable(spec):
        built = spec(params)
        if not isinstance(built, torch.optim.Optimizer):
            raise ValueError(f"part {where!r}: the factory returned {type(built).__name__}, not an optimizer")
        return built
    raise ValueError(
        f"part {where!r}: the optimizer must be None/'frozen', a name or spec ({', '.join(optim.names())}), "
        f"(name, kwargs), a class or a callable params -> optimizer; got {spec!r}"
    )


class PartOptimizer:
    """Per-part optimizers as one optimizer; see the module docstring.

    Args:
        model: the module whose ``named_parameters()`` are split.
        parts: ``{pattern: spec}`` or a sequence of ``(pattern, spec)`` pairs, in priority order.
        rest: the spec for parameters no part matches (default: they are an error).

    Attributes:
        optimizers: ``{pattern: optimizer}`` for the parts that train.
        names: ``{pattern: [parameter names]}`` for every part, frozen ones included.
        frozen: names of the frozen parameters.
    """

    def __init__(
        self,
        model: nn.Module,
        parts: Mapping[str, Any] | Sequence[tuple[str, Any]],
        *,
        rest: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        items = list(parts.items()) if isinstance(parts, Mapping) else list(parts)
        if not items:
            raise ValueError("parts is empty; map at least one name pattern to an optimizer")
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError(f"each part must be (pattern, optimizer spec), got {item!r}")
        patterns = [p for p, _ in items]
        if len(set(patterns)) != len(patterns):
            raise ValueError(f"part patterns must be distinct, got {patterns}")
        assigned: dict[str, list[tuple[str, torch.Tensor]]] = {p: [] for p in patterns}
        leftover: list[tuple[str, torch.Tensor]] = []
        for name, p in model.named_parameters():
            target = next((pat for pat in patterns if matches(pat, name)), None)
            (assigned[target] if target is not None else leftover).append((name, p))
        empty = [pat for pat in patterns if not assigned[pat]]
        if empty:
            names = [n for n, _ in model.named_parameters()]
            raise ValueError(
                f"part pattern(s) {empty} match no parameter; parameter names are: {', '.join(names)}"
            )
        if leftover:
            if rest is None:
                raise ValueError(
                    f"parameters {', '.join(n for n, _ in leftover)} match no part; add a part for "
                    f"them, freeze them with None, or pass rest=<optimizer>"
                )
            if "rest" in assigned:
                raise ValueError("'rest' is reserved for the parameters no part matches; rename that part")
            items.append(("rest", rest))
            assigned["rest"] = leftover
        self.names: dict[str, list[str]] = {k: [n for n, _ in v] for k, v in assigned.items()}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.frozen: list[str] = []
        for pattern, spec in items:
            params = assigned[pattern]
            if spec is None or spec == FROZEN:
                for name, p in params:
                    p.requires_grad_(False)
                    self.frozen.append(name)
                continue
            self.optimizers[pattern] = _build(spec, params, pattern)
        if not self.optimizers:
            raise ValueError("every part is frozen; at least one part must train")
        self.defaults: dict[str, Any] = {}

    # ---------------------------------------------------------------- the optimizer interface
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Every part's param groups, in part order (the parts' own dicts)."""
        return [g for opt in self.optimizers.values() for g in opt.param_groups]

    @property
    def state(self) -> dict[torch.Tensor, Any]:
        """Every part's per-parameter state in one mapping."""
        merged: dict[torch.Tensor, Any] = {}
        for opt in self.optimizers.values():
            merged.update(opt.state)
        return merged

    def __iter__(self) -> Iterator[tuple[str, torch.optim.Optimizer]]:
        return iter(self.optimizers.items())

    def _check_finite(self) -> None:
        raising = [k for k, o in self.optimizers.items() if getattr(o, "nonfinite", "ignore") == "raise"]
        if not raising or len(self.optimizers) == 1:
            return  # a single part checks its own gradients before changing anything
        for pattern, opt in self.optimizers.items():
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            if not grads:
                continue
            norms = torch._foreach_norm(grads, float("inf"))
            if not bool(torch.stack([n.float() for n in norms]).isfinite().all()):
                raise optim.NonFiniteGradientError(
                    f"non-finite gradient in part {pattern!r}; no part was changed. Lower the "
                    f"learning rate or clip gradients"
                )

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Check the gradients of all parts, then step every part; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_finite()
        for opt in self.optimizers.values():
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool | None = None) -> None:
        """Zero every part's gradients (each optimizer's own ``zero_grad``)."""
        for opt in self.optimizers.values():
            if set_to_none is None:
                opt.zero_grad()
            else:
                opt.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise NotImplementedError(
            "PartOptimizer's groups come from its parts; add the group to one part: "
            "opt.optimizers[pattern].add_param_group(...)"
        )

    def state_dict(self) -> dict[str, Any]:
        """``{"parts": {pattern: state_dict}, "descend": {...}}``."""
        return {
            "parts": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "descend": {
                "optimizer": "PartOptimizer",
                "classes": {k: type(o).__name__ for k, o in self.optimizers.items()},
                "frozen": list(self.frozen),
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a :meth:`state_dict`; ValueError if its parts or their classes differ."""
        info = state_dict.get("descend") if isinstance(state_dict, dict) else None
        if not isinstance(info, dict) or info.get("optimizer") != "PartOptimizer":
            raise ValueError("state_dict was not saved by a PartOptimizer")
        mine = {k: type(o).__name__ for k, o in self.optimizers.items()}
        if info["classes"] != mine:
            raise ValueError(f"state_dict has parts {info['classes']}, this PartOptimizer has {mine}")
        if sorted(info["frozen"]) != sorted(self.frozen):
            raise ValueError(f"state_dict froze {info['frozen']}, this PartOptimizer freezes {self.frozen}")
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state_dict["parts"][k])

    def __repr__(self) -> str:
        parts = [f"{k!r}: {type(o).__name__}(lr={o.param_groups[0]['lr']})" for k, o in self.optimizers.items()]
        if self.frozen:
            parts.append(f"frozen: {len(self.frozen)} parameters")
        return "PartOptimizer({" + ", ".join(parts) + "})"


# ``MultiOptimizer`` is the same object under the name other libraries use.
MultiOptimizer = PartOptimizer
