"""Gradient descent, momentum (heavy ball and EMA) and Nesterov.

Notes 001, 002 and 003. One rule, :func:`descend.optim.rules.momentum`,
serves all three classes; each class only fixes which convention is the
default. Each also takes the common keywords of :class:`~descend.optim.base.Optimizer`
(``weight_decay, l1, maximize, nonfinite, impl``, declared there once) as ``**common``;
Nesterov passes Momentum's keywords on as ``**kwargs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import rules
from ._validate import NONNEG, UNIT_CLOSED, UNIT_OPEN, optional
from .base import COMMON_SPECS, Optimizer

STYLES = ("heavy_ball", "ema")
FIRST_STEP = ("zero", "grad")


class SGD(Optimizer):
    r"""Gradient descent: ``p = p - lr * g`` (note 001: ``W := W - alpha dJ/dW``; note 003).

    Plain gradient descent when fed full-batch gradients, mini-batch SGD when
    fed mini-batch gradients, pure SGD with batches of one: the data decides.

    Note 003's worked example: f(x, y) = 3 x^2 y at (1, 1) has gradient
    (6, 3); one step with lr 0.01 lands on (0.94, 0.97).

    For drop-in use, ``momentum``, ``dampening`` and ``nesterov`` behave exactly
    as in ``torch.optim.SGD`` (buffer starts at the first gradient, lr outside
    the buffer). The notes' own momentum forms are :class:`Momentum` and
    :class:`Nesterov`.

    Differences from other libraries: none for torch.optim.SGD; Keras' SGD
    keeps lr inside the velocity (``Momentum(style="heavy_ball")``); optax's
    ``sgd`` equals this class.

    Args:
        params: tensors, ``named_parameters()`` or param-group dicts.
        lr: learning rate ``alpha`` (>= 0; float or broadcastable tensor).
        momentum, dampening, nesterov: torch.optim.SGD's momentum.
        weight_decay: L2 penalty, ``g += weight_decay * p``.
        l1: L1 penalty, ``g += l1 * sign(p)``.
        maximize: ascend instead of descend.
        nonfinite: ``"raise"`` (default), ``"skip"`` or ``"ignore"`` on NaN/inf gradients.
    """

    # momentum as torch.optim.SGD takes it: any value >= 0 (1 sums every gradient undamped)
    _specs = {**COMMON_SPECS, "momentum": NONNEG, "dampening": UNIT_CLOSED, "nesterov": bool}

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 0.01,
        momentum: float | torch.Tensor = 0.0,
        dampening: float | torch.Tensor = 0.0,
        *,
        nesterov: bool = False,
        **common: Any,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov)
        super().__init__(params, defaults, **common)

    @staticmethod
    def _uses_momentum(group: dict[str, Any]) -> bool:
        m = group["momentum"]
        return isinstance(m, torch.Tensor) or m != 0

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        if group["nesterov"] and (not self._uses_momentum(group) or group["dampening"] != 0):
            raise ValueError(
                f"nesterov=True needs momentum > 0 and dampening = 0 (as in torch.optim.SGD), got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _rule(self, group):
        return (rules.momentum, ("v",)) if self._uses_momentum(group) else (rules.sgd, ())

    def _all_state_keys(self, group):
        return ("v",)

    def _hypers(self, group, step):
        if not self._uses_momentum(group):
            return {"lr": group["lr"]}
        # torch's buffer starts at the first gradient: v = 0 and no dampening on its first step
        # (step 1, or the step after momentum was switched on from 0: states.conform)
        first = step == 1 or step in self._fresh.get(id(group), ())
        momentum, dampening = group["momentum"], 0.0 if first else group["dampening"]
        if isinstance(momentum, torch.Tensor) and not (isinstance(dampening, float) and dampening == 0):
            # a row of a tensor momentum at 0 is torch's momentum=0: no buffer, so no dampening
            dampening = torch.where(momentum == 0, torch.zeros_like(momentum), dampening)
        return {
            "lr": group["lr"], "beta": momentum,
            "dampening": dampening,
            "lr_inside": False, "nesterov": group["nesterov"],
        }


class Momentum(Optimizer):
    r"""Momentum, in the two forms of the notes.

    ``style="heavy_ball"`` (note 001, default)::

        v = beta * v + lr * g
        p = p - v

    ``style="ema"`` (note 002: momentum as an exponential moving average)::

        v = beta * v + (1 - beta) * g
        p = p - lr * v

    With a constant lr the EMA form equals the heavy ball with lr scaled by
    ``(1 - beta)`` (note 002). The buffer starts at zero and beta defaults to
    0.9 (notes 000, 002).

    Conventions as explicit keywords (``None`` = follow ``style``):

    * ``dampening``: the gradient's weight in the buffer is ``1 - dampening``
      (heavy_ball: 0; ema: beta);
    * ``lr_inside``: lr multiplies the gradient inside the buffer (heavy_ball)
      or the buffer when stepping (ema); matters when lr changes over time;
    * ``first_step``: ``"zero"`` (buffer starts at 0, the notes) or ``"grad"``
      (the buffer's first value is the gradient itself, torch.optim.SGD).

    Reproduce ``torch.optim.SGD(lr, momentum=m, dampening=d)`` with
    ``Momentum(lr=lr, beta=m, dampening=d, lr_inside=False, first_step="grad")``;
    Keras' ``SGD(momentum=m)`` with ``Momentum(lr=lr, beta=m)``; optax's
    ``sgd(lr, momentum=m)`` with ``Momentum(lr=lr, beta=m, lr_inside=False)``.
    """

    _specs = {
        **COMMON_SPECS,
        "beta": UNIT_OPEN,
        "style": STYLES,
        "dampening": optional(UNIT_CLOSED),
        "lr_inside": lambda name, v: None if v is None or isinstance(v, bool) else _bad_flag(name, v),
        "first_step": FIRST_STEP,
    }
    _nesterov = False

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 0.01,
        beta: float | torch.Tensor = 0.9,
        *,
        style: str = "heavy_ball",
        dampening: float | torch.Tensor | None = None,
        lr_inside: bool | None = None,
        first_step: str = "zero",
        **common: Any,
    ) -> None:
        defaults = dict(
            lr=lr, beta=beta, style=style, dampening=dampening, lr_inside=lr_inside,
            first_step=first_step, **self._more_defaults(),
        )
        super().__init__(params, defaults, **common)

    def _more_defaults(self) -> dict[str, Any]:
        """Hyperparameters a subclass adds (Nesterov's ``lookahead``)."""
        return {}

    @staticmethod
    def resolved(group: dict[str, Any]) -> tuple[Any, bool]:
        """(dampening, lr_inside) after applying the style's defaults."""
        ema = group["style"] == "ema"
        damp = group["dampening"]
        if damp is None:
            damp = group["beta"] if ema else 0.0
        inside = group["lr_inside"]
        if inside is None:
            inside = not ema
        return damp, inside

    def _rule(self, group):
        return rules.momentum, ("v",)

    def _hypers(self, group, step):
        damp, inside = self.resolved(group)
        if group["first_step"] == "grad" and step == 1:
            damp = 0.0  # v starts at 0, so v = x: the buffer's first value is the gradient
        return {
            "lr": group["lr"], "beta": group["beta"], "dampening": damp, "lr_inside": inside,
            "nesterov": self._nesterov,
        }


def _bad_flag(name: str, value: Any) -> None:
    raise ValueError(f"{name} must be True, False or None, got {value!r}")


class Nesterov(Momentum):
    r"""Nesterov accelerated gradient (note 001)::

        v = beta * v + lr * grad J(p - beta * v)
        p = p - v

    Two forms that evaluate the gradient at the same sequence of points:

    * ``lookahead=True`` is the formula as written: each step moves the
      parameters to ``p - beta * v``, calls the closure there (which must
      recompute the loss and its gradient), moves back and steps. It needs a
      closure; the returned loss is the one at the look-ahead point.
    * ``lookahead=False`` (default, no closure needed) stores the look-ahead
      point ``phi = p - beta * v`` as the parameter itself, as torch, Keras
      and optax do. Substituting gives::

          v   = beta * v + lr * grad J(phi)
          phi = phi - (beta * v + lr * grad J(phi))

      and with ``style="ema"``/``lr_inside=False`` the lr multiplies
      ``beta * v + (1 - dampening) * g`` instead.

    ``torch.optim.SGD(lr, momentum=m, nesterov=True)`` is
    ``Nesterov(lr=lr, beta=m, lr_inside=False)``; Keras' ``SGD(momentum=m,
    nesterov=True)`` is ``Nesterov(lr=lr, beta=m)``.
    """

    _specs = {**Momentum._specs, "lookahead": bool}
    _nesterov = True

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 0.01,
        beta: float | torch.Tensor = 0.9,
        *,
        style: str = "heavy_ball",
        lookahead: bool = False,
        **kwargs: Any,
    ) -> None:
        self._lookahead = lookahead
        super().__init__(params, lr, beta, style=style, **kwargs)

    def _more_defaults(self) -> dict[str, Any]:
        return {"lookahead": self._lookahead}

    def _fusable(self, group):
        if group.get("lookahead"):
            return "lookahead=True evaluates the gradient at a shifted point"
        return super()._fusable(group)

    def _displacement(self, p: torch.Tensor, group: dict[str, Any]) -> torch.Tensor | None:
        """``beta * d`` where d is the last step taken (v, or lr * v when lr is outside)."""
        state = self.state.get(p)
        if not state:
            return None
        _, inside = self.resolved(group)
        d = state["v"] if inside else group["lr"] * state["v"]
        return group["beta"] * d

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        look = [g for g in self.param_groups if g.get("lookahead")]
        if not look:
            return super().step(closure)
        if closure is None:
            raise ValueError(
                "Nesterov(lookahead=True) needs a closure: step(closure) evaluates the gradient at "
                "the look-ahead point p - beta * v. Pass a closure that zeroes the gradients, computes "
                "the loss and calls backward(), or use lookahead=False (no closure needed)"
            )
        shifts: list[tuple[torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for group in look:
                for p in group["params"]:
                    shift = self._displacement(p, group)
                    if shift is not None:
                        saved = p.detach().clone()
                        p.sub_(shift)
                        shifts.append((p, saved))
        try:
            with torch.enable_grad():
                loss = closure()
        finally:
            with torch.no_grad():
                for p, saved in shifts:
                    p.copy_(saved)
        self._update()
        return loss

    def _hypers(self, group, step):
        # the look-ahead form is plain momentum at the shifted point
        return {**super()._hypers(group, step), "nesterov": not group.get("lookahead")}

    def _point(self, p, state, group):
        shift = self._displacement(p, group) if group.get("lookahead") else None
        return p if shift is None else p - shift
