r"""Losses, penalties and accuracy, with their formulas.

For ``n`` examples (means over the batch)::

    mse(p, y)                    = 1/n sum_i ||p_i - y_i||^2 / n_outputs     (mean over all entries)
    cross_entropy(z, y)          = -1/n sum_i log softmax(z_i)[y_i]
    binary_cross_entropy(z, y)   = -1/n sum_i [y_i log s(z_i) + (1 - y_i) log(1 - s(z_i))]
                                 =  1/n sum_i [softplus(z_i) - y_i z_i],     s = sigmoid
    l1_penalty(w, lam)           = lam * sum_j |w_j|
    l2_penalty(w, lam)           = lam / 2 * sum_j w_j^2          gradient lam * w_j

``l2_penalty`` added to a loss gives the same gradient as ``weight_decay=lam``
in ``torch.optim.SGD``. Given a module, the penalties cover its weights only:
biases and the parameters of normalization layers (BatchNorm, LayerNorm,
GroupNorm, InstanceNorm) are left out unless ``include_bias=True``. Given
tensors, every tensor passed is penalized.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
Params = nn.Module | Tensor | Iterable[Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error ``mean((pred - target)^2)`` over all entries.

    The shapes must be equal: ``(n, 1)`` against ``(n,)`` would broadcast to
    ``(n, n)`` and silently compute something else.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"mse needs pred and target of the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    return ((pred - target) ** 2).mean()


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Multi-class cross-entropy from logits ``(n, k)`` and int64 classes ``(n,)``:
    ``-1/n sum_i log softmax(z_i)[y_i]`` (``torch.nn.functional.cross_entropy``)."""
    if logits.ndim != 2 or y.shape != logits.shape[:1]:
        raise ValueError(
            f"cross_entropy needs logits (n, k) and classes (n,), got {tuple(logits.shape)} "
            f"and {tuple(y.shape)}"
        )
    return F.cross_entropy(logits, y.long())


def binary_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy from one logit per example: ``1/n sum_i softplus(z_i) - y_i z_i``.

    ``logits`` has shape ``(n,)`` or ``(n, 1)``; ``y`` holds ``n`` labels in
    ``{0, 1}`` (or probabilities), any integer or float dtype, shape ``(n,)`` or ``(n, 1)``.
    """
    if logits.numel() != y.numel() or (logits.ndim == 2 and logits.shape[1] != 1) or logits.ndim > 2:
        raise ValueError(
            f"binary_cross_entropy needs one logit per example, (n,) or (n, 1), and n labels, got "
            f"logits {tuple(logits.shape)} and labels {tuple(y.shape)}; use cross_entropy for "
            "k logits"
        )
    z = logits.reshape(-1)
    return F.binary_cross_entropy_with_logits(z, y.reshape(-1).to(z.dtype))


def penalized_parameters(params: Params, include_bias: bool = False) -> list[Tensor]:
    """The tensors a penalty covers.

    A module contributes its weights: parameters named ``bias`` and every
    parameter of a normalization layer are skipped unless ``include_bias``. A
    tensor or an iterable of tensors is taken as given (all included). Shared
    parameters count once.
    """
    if isinstance(params, nn.Module):
        chosen: list[Tensor] = []
        seen: set[int] = set()
        for module in params.modules():
            is_norm = isinstance(module, NORM_LAYERS)
            for name, p in module.named_parameters(recurse=False):
                if not include_bias and (is_norm or name == "bias"):
                    continue
                if id(p) not in seen:
                    seen.add(id(p))
                    chosen.append(p)
        return chosen
    if isinstance(params, Tensor):
        return [params]
    chosen = list(params)
    for p in chosen:
        if not isinstance(p, Tensor):
            raise ValueError(
                f"params must be a module, a tensor or an iterable of tensors, got an item {p!r}"
            )
    return chosen


def _check_strength(strength: float) -> float:
    s = float(strength)
    if not (math.isfinite(s) and s >= 0.0):
        raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
    return s


def l1_penalty(params: Params, strength: float, *, include_bias: bool = False) -> Tensor:
    """``strength * sum |w|`` over :func:`penalized_parameters` (gradient ``strength * sign(w)``)."""
    s = _check_strength(strength)
    ps = penalized_parameters(params, include_bias)
    if not ps:
        return torch.zeros(())
    return s * torch.stack([p.abs().sum() for p in ps]).sum()


def l2_penalty(params: Params, strength: float, *, include_bias: bool = False) -> Tensor:
    """``strength / 2 * sum w^2`` over :func:`penalized_parameters` (gradient ``strength * w``).

    Biases and normalization-layer parameters of a module are excluded by
    default (``include_bias=True`` penalizes them too).
    """
    s = _check_strength(strength)
    ps = penalized_parameters(params, include_bias)
    if not ps:
        return torch.zeros(())
    return 0.5 * s * torch.stack([(p * p).sum() for p in ps]).sum()


TASKS = ("classification", "regression")


def loss_for(task: str, n_classes: int | None = None, *, n_outputs: int | None = None) -> LossFn:
    """The loss for a task: :func:`mse` for regression, :func:`binary_cross_entropy` for a
    binary problem with one logit, :func:`cross_entropy` otherwise.

    ``n_outputs`` is the model's number of logits; it defaults to 1 for two
    classes (logistic regression) and to ``n_classes`` otherwise, so a two-class
    model with two logits passes ``n_outputs=2``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "regression":
        return mse
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2 for classification, got {n_classes!r}")
    outputs = (1 if n_classes == 2 else n_classes) if n_outputs is None else n_outputs
    if outputs == 1 and n_classes == 2:
        return binary_cross_entropy
    if outputs != n_classes:
        raise ValueError(
            f"n_outputs must be {n_classes} (one logit per class)"
            + (" or 1 (binary, one logit)" if n_classes == 2 else "")
            + f" for n_classes={n_classes}, got {n_outputs!r}"
        )
    return cross_entropy


def predictions(logits: Tensor) -> Tensor:
    """Predicted classes: ``z > 0`` for one logit per example, ``argmax`` over ``k`` logits."""
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        return (logits.reshape(-1) > 0).long()
    return logits.argmax(dim=-1)


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Fraction of correct predictions (see :func:`predictions`) for binary or multi-class logits."""
    pred = predictions(logits)
    target = y.reshape(-1)
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(
            f"accuracy needs n > 0 predictions and n labels, got logits {tuple(logits.shape)} "
            f"and labels {tuple(y.shape)}"
        )
    return float((pred == target.long()).double().mean())
