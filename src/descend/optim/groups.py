"""Weight-decay masks: param groups with and without decay, built from a model by a rule.

Practitioners exclude biases and normalization weights from weight decay.
Three common rules, each one line here::

    from descend import optim
    groups = optim.decay_groups(model, weight_decay=0.1)              # nanoGPT: decay tensors with ndim >= 2
    groups = optim.decay_groups(model, 0.1, rule="hf")                 # HF Trainer: no bias, no LayerNorm
    groups = optim.decay_groups(model, 0.1, rule="all", exclude_types=(nn.LayerNorm, nn.Embedding),
                                exclude_names=("bias",))               # minGPT
    opt = optim.AdamW(groups, lr=3e-4)

The groups hold ``(name, parameter)`` pairs, so the optimizer knows every
parameter's name (its state dict is then matched by name on load); pass
``named=False`` for plain tensors.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ._validate import NONNEG, check_number

Rule = str | Callable[[str, torch.Tensor], bool]
RULES = ("ndim>=2", "ndim>N (any comparison: >, >=, <, <=, ==, !=)", "hf", "all", "a callable (name, param) -> bool")
# HF Transformers' Trainer (get_decay_parameter_names): no decay in LayerNorm modules, nor for
# parameters whose lower-cased name contains one of these.
HF_NO_DECAY_NAMES = ("bias", "layernorm", "rmsnorm")
_COMPARE = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
            ">": operator.gt, "<": operator.lt}


def _rule_function(rule: Rule) -> Callable[[str, torch.Tensor], bool]:
    if callable(rule):
        return rule
    if isinstance(rule, str):
        text = rule.replace(" ", "").lower()
        if text in ("all", "hf"):
            return lambda name, p: True
        found = re.fullmatch(r"ndim(>=|<=|==|!=|>|<)(\d+)", text)
        if found:
            compare, n = _COMPARE[found.group(1)], int(found.group(2))
            return lambda name, p: compare(p.dim(), n)
    raise ValueError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")


def decay_mask(
    model: nn.Module,
    rule: Rule = "ndim>=2",
    *,
    exclude_types: Iterable[type[nn.Module]] = (),
    exclude_names: Iterable[str] = (),
    trainable_only: bool = True,
) -> dict[str, bool]:
    """``{parameter name: decays?}`` for ``model`` (the mask :func:`decay_groups` splits by).

    A parameter decays when ``rule`` says so, it belongs to no module of
    ``exclude_types`` and its name contains none of ``exclude_names``.
    ``rule="hf"`` adds HF Trainer's exclusions (``nn.LayerNorm`` modules, names
    containing ``bias``, ``layernorm`` or ``rmsnorm``, case-insensitive).
    Parameters that do not require gradients are left out when ``trainable_only``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    decides = _rule_function(rule)
    types = tuple(exclude_types)
    names = tuple(exclude_names)
    lower = False
    if isinstance(rule, str) and rule.strip().lower() == "hf":
        types, names, lower = (*types, nn.LayerNorm), (*names, *HF_NO_DECAY_NAMES), True
    for t in types:
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise ValueError(f"exclude_types must hold torch.nn.Module subclasses, got {t!r}")
    excluded = {id(p) for m in model.modules() if types and isinstance(m, types) for p in m.parameters()}
    mask: dict[str, bool] = {}
    for name, p in model.named_parameters():
        if trainable_only and not p.requires_grad:
            continue
        shown = name.lower() if lower else name
        mask[name] = bool(decides(name, p)) and id(p) not in excluded and not any(n in shown for n in names)
    return mask


def decay_groups(
    model: nn.Module,
    weight_decay: float,
    *,
    rule: Rule = "ndim>=2",
    exclude_types: Iterable[type[nn.Module]] = (),
    exclude_names: Iterable[str] = (),
    trainable_only: bool = True,
    named: bool = True,
    **options: Any,
) -> list[dict[str, Any]]:
    """Two param groups of ``model``: ``weight_decay`` for those that decay, 0 for the rest.

    Args:
        model: the module whose parameters are split.
        weight_decay: the decay of the first group (>= 0); the second gets 0.
        rule: ``"ndim>=2"`` (default, nanoGPT: matrices and embeddings decay,
            biases and norm gains do not), any ``"ndim<op>N"``, ``"hf"`` (HF
            Trainer: everything but biases and LayerNorm), ``"all"`` (only the
            exclusions below apply) or a callable ``(name, param) -> bool``.
        exclude_types: module types whose parameters never decay, e.g.
            ``(nn.LayerNorm, nn.Embedding)``.
        exclude_names: substrings; a parameter whose name contains one never
            decays (HF's classic ``no_decay = ["bias", "LayerNorm.weight"]``).
        trainable_only: leave out parameters with ``requires_grad=False``.
        named: groups hold ``(name, parameter)`` pairs (default) or plain tensors.
        options: further per-group options (``lr=...``) set on both groups.

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay, **options},
        {"params": the rest, "weight_decay": 0.0, **options}]``, without an
        empty group; pass it to any descend or torch.optim optimizer.
    """
    check_number("weight_decay", weight_decay, NONNEG, tensor_ok=False)
    mask = decay_mask(model, rule, exclude_types=exclude_types, exclude_names=exclude_names,
                      trainable_only=trainable_only)
    params = dict(model.named_parameters())
    split: dict[bool, list[Any]] = {True: [], False: []}
    for name, decays in mask.items():
        split[decays].append((name, params[name]) if named else params[name])
    groups = [
        {"params": split[True], "weight_decay": weight_decay, **options},
        {"params": split[False], "weight_decay": 0.0, **options},
    ]
    if not mask:
        raise ValueError("model has no trainable parameters to put in param groups")
    return [g for g in groups if g["params"]]
