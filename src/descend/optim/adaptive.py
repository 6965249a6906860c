"""Adaptive learning rates: Adagrad, RMSprop, Adam and AdamW (notes 000, 001, 002).

Each class also takes the common keywords of :class:`~descend.optim.base.Optimizer`
(``weight_decay, l1, maximize, nonfinite, impl``, declared there once) as ``**common``.
"""

from __future__ import annotations

from typing import Any

import torch

from . import rules
from ._validate import NONNEG, UNIT_OPEN
from .base import COMMON_SPECS, Optimizer

EPS_MODES = ("inside", "outside")


class Adagrad(Optimizer):
    r"""Adagrad (note 001)::

        G = G + g^2
        p = p - lr * g / sqrt(G + eps)

    Parameters that have moved a lot get smaller steps; the step of every
    parameter shrinks as G grows (note 000: "aggressive learning-rate decay").

    Conventions as keywords: ``eps_mode`` (``"inside"``: ``sqrt(G + eps)``, the
    note; ``"outside"``: ``sqrt(G) + eps``, torch), ``initial_accumulator_value``
    (G's start: 0 in the note and torch, 0.1 in Keras and optax) and
    ``lr_decay`` (torch's ``lr / (1 + (t - 1) * lr_decay)``).

    ``torch.optim.Adagrad(lr, lr_decay, weight_decay, initial_accumulator_value, eps)``
    is ``Adagrad(lr, eps=eps, eps_mode="outside", lr_decay=lr_decay, ...)``.
    Keras' and optax's Adagrad are ``Adagrad(lr, eps=1e-7, initial_accumulator_value=0.1)``.
    """

    _specs = {
        **COMMON_SPECS, "eps": NONNEG, "eps_mode": EPS_MODES, "lr_decay": NONNEG,
        "initial_accumulator_value": NONNEG,
    }

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 0.01,
        *,
        eps: float | torch.Tensor = 1e-8,
        eps_mode: str = "inside",
        initial_accumulator_value: float | torch.Tensor = 0.0,
        lr_decay: float | torch.Tensor = 0.0,
        **common: Any,
    ) -> None:
        defaults = dict(
            lr=lr, eps=eps, eps_mode=eps_mode,
            initial_accumulator_value=initial_accumulator_value, lr_decay=lr_decay,
        )
        super().__init__(params, defaults, **common)

    def _rule(self, group):
        return rules.adagrad, ("G",)

    def _hypers(self, group, step):
        return {"lr": self.effective_lr(group, step), "eps": group["eps"], "eps_mode": group["eps_mode"]}

    def _init_state(self, p, group):
        state = super()._init_state(p, group)
        init = group["initial_accumulator_value"]
        if p.is_complex():  # both halves of a complex number start there (torch's view_as_real)
            init = init * (1 + 1j) if not isinstance(init, torch.Tensor) else torch.complex(init, init)
        state["G"] = state["G"] + init
        return state

    @staticmethod
    def effective_lr(group: dict[str, Any], step: int) -> Any:
        decay = group["lr_decay"]
        if isinstance(decay, (int, float)) and decay == 0:
            return group["lr"]
        return rules.div(group["lr"], 1 + (step - 1) * decay)


class RMSprop(Optimizer):
    r"""RMSprop (note 002; note 001 without eps)::

        S = beta * S + (1 - beta) * g^2
        p = p - lr * g / sqrt(S + eps)

    Adagrad with an exponential moving average in place of the running sum,
    so old gradients are forgotten and the step does not vanish. Defaults
    follow the notes: beta 0.9, eps 1e-8 inside the square root.

    Options: ``centered`` divides by an estimate of the variance
    ``S - mean^2`` (``mean`` = EMA of g); ``momentum`` > 0 accumulates
    ``buf = momentum * buf + g / denom`` and steps ``p -= lr * buf``.

    ``torch.optim.RMSprop(lr, alpha, eps, momentum, centered)`` is
    ``RMSprop(lr, beta=alpha, eps=eps, eps_mode="outside", momentum=..., centered=...)``
    (torch's defaults: alpha 0.99, eps 1e-8 outside). Keras' ``RMSprop(lr, rho)``
    is ``RMSprop(lr, beta=rho, eps=1e-7)``; optax's ``rmsprop(lr, decay, eps)``
    is ``RMSprop(lr, beta=decay, eps=eps)``.
    """

    _specs = {
        **COMMON_SPECS, "beta": UNIT_OPEN, "eps": NONNEG, "eps_mode": EPS_MODES,
        "momentum": NONNEG, "centered": bool,  # (as torch.optim.RMSprop: any momentum >= 0)
    }

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 0.01,
        beta: float | torch.Tensor = 0.9,
        eps: float | torch.Tensor = 1e-8,
        *,
        eps_mode: str = "inside",
        centered: bool = False,
        momentum: float | torch.Tensor = 0.0,
        **common: Any,
    ) -> None:
        defaults = dict(lr=lr, beta=beta, eps=eps, eps_mode=eps_mode, centered=centered, momentum=momentum)
        super().__init__(params, defaults, **common)

    @staticmethod
    def _uses_momentum(group: dict[str, Any]) -> bool:
        m = group["momentum"]
        return isinstance(m, torch.Tensor) or m != 0

    def _rule(self, group):
        return rules.rmsprop, ("S", "mean", "buf")

    def _uses(self, group, key):
        if key == "mean":
            return bool(group["centered"])
        return key != "buf" or self._uses_momentum(group)

    def _hypers(self, group, step):
        return {k: group[k] for k in ("lr", "beta", "eps", "eps_mode", "momentum")}


class Adam(Optimizer):
    r"""Adam (note 002): momentum + RMSprop + bias correction::

        V = beta1 * V + (1 - beta1) * g          # momentum (EMA form)
        S = beta2 * S + (1 - beta2) * g^2        # RMSprop
        V_hat = V / (1 - beta1^t)
        S_hat = S / (1 - beta2^t)
        p = p - lr * V_hat / (sqrt(S_hat) + eps)

    Defaults from the note: beta1 0.9, beta2 0.999, eps 1e-8 (outside the
    root); lr 1e-3. ``weight_decay`` is L2 added to the gradient (torch's Adam);
    :class:`AdamW` decouples it.

    Options: ``amsgrad`` (divide by the running maximum of S);
    ``bias_correction=False`` (the plain "momentum + RMSprop" of note 001, to
    see what the correction buys); ``eps_mode``: ``"outside"`` (the note,
    torch, optax with eps_root=0), ``"inside"`` (``sqrt(S_hat + eps)``) or
    ``"hat"`` (Keras and the Adam paper's efficient form:
    ``p -= lr * sqrt(1-beta2^t)/(1-beta1^t) * V / (sqrt(S) + eps)``).

    ``torch.optim.Adam(lr, betas=(b1, b2), eps, weight_decay, amsgrad)`` is
    ``Adam(lr, b1, b2, eps, weight_decay=..., amsgrad=...)``; Keras'
    ``Adam(lr, b1, b2, epsilon=1e-7)`` is ``Adam(lr, b1, b2, 1e-7, eps_mode="hat")``;
    optax's ``adam(lr, b1, b2, eps)`` is ``Adam(lr, b1, b2, eps)``.
    """

    _specs = {
        **COMMON_SPECS, "beta1": UNIT_OPEN, "beta2": UNIT_OPEN, "eps": NONNEG,
        "eps_mode": ("outside", "inside", "hat"), "amsgrad": bool, "bias_correction": bool,
    }

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        *,
        beta1: float | torch.Tensor = 0.9,
        beta2: float | torch.Tensor = 0.999,
        eps: float | torch.Tensor = 1e-8,
        eps_mode: str = "outside",
        amsgrad: bool = False,
        bias_correction: bool = True,
        **common: Any,
    ) -> None:
        defaults = dict(
            lr=lr, beta1=beta1, beta2=beta2, eps=eps, eps_mode=eps_mode, amsgrad=amsgrad,
            bias_correction=bias_correction,
        )
        super().__init__(params, defaults, **common)

    def _rule(self, group):
        return rules.adam, ("V", "S", "S_max")

    def _uses(self, group, key):
        return key != "S_max" or group["amsgrad"]

    def _hypers(self, group, step):
        step_size, root = rules.adam_scalars(
            group["lr"], group["beta1"], group["beta2"], step,
            bias_correction=group["bias_correction"], eps_mode=group["eps_mode"],
        )
        return {
            **{k: group[k] for k in ("lr", "beta1", "beta2", "eps", "eps_mode")},
            "step_size": step_size, "root": root, "decay": self._decay(group),
        }


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter)::

        p = p - lr * weight_decay * p
        ... then the Adam step of note 002 on the unregularized gradient.

    Default ``weight_decay`` 0.01, as in torch.optim.AdamW. Equals
    ``torch.optim.AdamW``, Keras' ``AdamW`` (with ``eps_mode="hat"``) and
    optax's ``adamw``.
    """

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-3,
        *,
        beta1: float | torch.Tensor = 0.9,
        beta2: float | torch.Tensor = 0.999,
        eps: float | torch.Tensor = 1e-8,
        weight_decay: float | torch.Tensor = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, **kwargs)

    decoupled = True
