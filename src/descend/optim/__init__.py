"""Update rules of the seed notes as drop-in ``torch.optim`` optimizers.

=============  ==========================================================
``SGD``        ``p -= lr * g`` (GD, mini-batch SGD, pure SGD; torch-style momentum)
``Momentum``   heavy ball ``v = beta v + lr g; p -= v`` or EMA ``v = beta v + (1-beta) g; p -= lr v``
``Nesterov``   ``v = beta v + lr grad J(p - beta v); p -= v``
``Adagrad``    ``G += g^2; p -= lr g / sqrt(G + eps)``
``RMSprop``    ``S = beta S + (1-beta) g^2; p -= lr g / sqrt(S + eps)``
``Adam``       momentum + RMSprop + bias correction
``AdamW``      Adam with decoupled weight decay
``Newton``     ``p -= lr (H + damping I)^-1 g``, exact or Newton-CG, Armijo line search
=============  ==========================================================

The math of every rule lives once in :mod:`descend.optim.rules`.

Adding an optimizer
-------------------
A rule is a pure function of ``(p, g, *state)`` and keyword hyperparameters;
``rules.declare`` names its state tensors next to it (``"name?"`` marks an
optional one). The class names the rule and validates the new
hyperparameters; the common keywords (``weight_decay, l1, maximize,
nonfinite, impl``) come from :class:`Optimizer`, and ``decoupled = True``
makes ``weight_decay`` decoupled (AdamW-style, passed to the rule as
``decay``) instead of L2 on the gradient. Lion (Chen et al., 2023), complete::

    import torch
    from descend.optim import COMMON_SPECS, UNIT_OPEN, Optimizer, rules

    @rules.declare("m")
    def lion(p, g, m, *, lr, beta1, beta2, decay):
        c = m * beta1 + g * (1 - beta1)
        return p - lr * (torch.sign(c) + decay * p), m * beta2 + g * (1 - beta2)

    class Lion(Optimizer):
        rule = lion
        decoupled = True
        _specs = {**COMMON_SPECS, "beta1": UNIT_OPEN, "beta2": UNIT_OPEN}

        def __init__(self, params, lr=1e-4, beta1=0.9, beta2=0.99, **common):
            super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2), **common)

It validates its arguments, saves and loads its state, checks gradients for
NaN and infinity and runs on the eager, multi-tensor and compiled paths
(``tests/optim/test_new_optimizer.py`` builds exactly this example).
"""

from . import rules
from ._validate import NONNEG, UNIT_OPEN
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .base import COMMON_SPECS, NonFiniteGradientError, Optimizer
from .groups import decay_groups, decay_mask
from .newton import Newton
from .registry import ALIASES, DISPLAY, OPTIMIZERS, build, display, get, names, resolve
from .sgd import SGD, Momentum, Nesterov

__all__ = [
    "SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW", "Newton",
    "Optimizer", "NonFiniteGradientError", "OPTIMIZERS", "ALIASES", "DISPLAY", "get", "build",
    "display", "names", "resolve", "rules", "COMMON_SPECS", "NONNEG", "UNIT_OPEN", "decay_groups", "decay_mask",
]
