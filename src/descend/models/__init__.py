"""Small reference models and their losses.

=====================================  ===================================================
``linear_regression(d, m=1)``          ``x W^T + b``, trained with ``losses.mse``
``logistic_regression(d)``             one logit, trained with ``losses.binary_cross_entropy``
``softmax_regression(d, k)``           ``k`` logits, trained with ``losses.cross_entropy``
``MLP(d, hidden, n_out=k, ...)``       Linear -> [BatchNorm] -> activation -> [Dropout], repeated
``SmallCNN(k)``                        two 3x3 convs, max-pool, linear head, for 8x8 digits
``build(name, n_in, n_out, **kw)``     ``linear``, ``logistic``, ``softmax``, ``mlp``, ``cnn``
``build_for(dataset, name, **kw)``     the same, sized for a data set (one rule for every entry point)
=====================================  ===================================================

Seed with ``torch.manual_seed`` before building; the models keep no global state.
"""

from . import losses
from .build import build_for, loss_for_model, output_size
from .losses import (
    accuracy,
    binary_cross_entropy,
    cross_entropy,
    l1_penalty,
    l2_penalty,
    loss_for,
    mse,
)
from .nets import (
    BUILDERS,
    MLP,
    SmallCNN,
    build,
    linear_regression,
    logistic_regression,
    n_parameters,
    softmax_regression,
)


def names() -> list[str]:
    """Valid model names for :func:`build`."""
    return list(BUILDERS)


__all__ = [
    "linear_regression",
    "logistic_regression",
    "softmax_regression",
    "MLP",
    "SmallCNN",
    "build",
    "build_for",
    "output_size",
    "loss_for_model",
    "names",
    "n_parameters",
    "losses",
    "mse",
    "cross_entropy",
    "binary_cross_entropy",
    "l1_penalty",
    "l2_penalty",
    "loss_for",
    "accuracy",
]
