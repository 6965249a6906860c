"""``build_for(dataset, name, **options)``: one place that sizes a model for a data set.

Every entry point (``descend train``, ``descend lr-find``, the Python API, the
tour) builds its model here, so the same name on the same data is the same
model everywhere.

Output size:

=========================  ===============================================
regression                 the target's width (``y_train.shape[1]``)
``logistic``               1 logit (binary only)
``mlp``/``cnn``, 2 classes  1 logit, trained with binary cross-entropy
``softmax``                one logit per class (2 for binary: by its name)
other classification       one logit per class
=========================  ===============================================

Why one logit for a binary ``mlp``: with two classes only the difference of
two logits matters (``softmax([a, b]) = sigmoid(a - b)``), so a second logit
adds a redundant column to the head without changing what the model can
express; one logit with binary cross-entropy is the same model as logistic
regression on the last hidden layer, and it is what ``descend train`` has
always used (its reference runs keep their numbers).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .losses import LossFn, loss_for
from .nets import BUILDERS, build

CLASSIFIERS = ("logistic", "softmax", "cnn")


def _key(name: str) -> str:
    key = str(name).strip().lower()
    if key not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(BUILDERS)}")
    return key


def output_size(dataset: Any, name: str) -> int:
    """How many outputs model ``name`` has on ``dataset`` (see the module docstring)."""
    key = _key(name)
    label = getattr(dataset, "name", "this data set")
    if dataset.task == "regression":
        if key in CLASSIFIERS:
            raise ValueError(
                f"model {key!r} is a classifier and {label!r} is a regression data set; use linear or mlp"
            )
        y = dataset.y_train
        return int(y.shape[1]) if y.ndim == 2 else 1
    if key == "linear":
        raise ValueError(
            f"model 'linear' is linear regression and {label!r} is a classification data set; "
            f"use logistic (2 classes), softmax, mlp or cnn"
        )
    k = int(dataset.n_classes)
    if key == "logistic" and k != 2:
        raise ValueError(
            f"model 'logistic' has one logit for 2 classes and {label!r} has {k} classes; use softmax or mlp"
        )
    if key == "softmax":
        return k
    return 1 if k == 2 else k


def build_for(dataset: Any, name: str, *, seed: int | None = None, **options: Any) -> nn.Module:
    """Model ``name`` sized for ``dataset`` (a :class:`descend.data.Dataset`).

    Args:
        dataset: anything with ``task``, ``n_features``, ``n_classes`` and ``y_train``.
        name: ``linear``, ``logistic``, ``softmax``, ``mlp`` or ``cnn``.
        seed: when given, ``torch.manual_seed(seed)`` right before the weights are drawn.
        **options: the model's keywords (``mlp``: ``hidden``, ``activation``, ``batchnorm``, ``dropout``).

    >>> from descend import data, models
    >>> models.build_for(data.load("breast_cancer"), "mlp", hidden=(8,)).n_out
    1
    """
    key = _key(name)
    n_out = output_size(dataset, key)
    if seed is not None:
        torch.manual_seed(seed)
    return build(key, int(dataset.n_features), n_out, **options)


def loss_for_model(dataset: Any, model: nn.Module | str) -> LossFn:
    """The loss that fits ``model``'s outputs on ``dataset``: MSE for regression, binary
    cross-entropy for one logit, cross-entropy for one logit per class.

    ``model`` is a module (its outputs are counted on one training example) or a model name.
    """
    if dataset.task == "regression":
        return loss_for("regression")
    if isinstance(model, str):
        n_out = output_size(dataset, model)
    else:
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(dataset.X_train[:1])
        finally:
            model.train(was)
        n_out = int(out.shape[-1]) if out.ndim == 2 else 1
    return loss_for("classification", int(dataset.n_classes), n_outputs=n_out)
