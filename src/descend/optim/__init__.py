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
"""

from . import rules
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .base import NonFiniteGradientError, Optimizer
from .groups import decay_groups, decay_mask
from .newton import Newton
from .registry import ALIASES, DISPLAY, OPTIMIZERS, build, display, get, names, resolve
from .sgd import SGD, Momentum, Nesterov

__all__ = [
    "SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam", "AdamW", "Newton",
    "Optimizer", "NonFiniteGradientError", "OPTIMIZERS", "ALIASES", "DISPLAY", "get", "build",
    "display", "names", "resolve", "rules", "decay_groups", "decay_mask",
]
