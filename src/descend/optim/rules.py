"""The update rules of the seed notes, once, as plain tensor functions.

Every function here is pure: it takes the parameter, its (already
regularized) gradient, the optimizer state and the hyperparameters, and
returns the new parameter and the new state. Nothing is modified in place.
The eager optimizers call these per tensor; the fused path compiles the very
same functions over flat buffers, so both compute one math.

Hyperparameters may be Python numbers or tensors that broadcast against the
parameter (a learning rate of shape (N, 1) against a parameter of shape
(N, 2) runs N trajectories with N learning rates).

The building blocks follow the notes' story:

* ``ema``            -- exponential moving average, ``a = beta*a + (1-beta)*x`` (note 002)
* ``accumulate``     -- running sum of squares, ``G = G + g^2`` (Adagrad, note 001)
* ``denominator``    -- ``sqrt(s + eps)`` (eps inside) or ``sqrt(s) + eps`` (eps outside)
* bias correction    -- ``a / (1 - beta^t)`` (Adam, note 002), applied as a scalar factor

and the named rules are short compositions of them: RMSprop is Adagrad with
an ``ema`` in place of ``accumulate``; Adam is momentum's ``ema`` of g plus
RMSprop's ``ema`` of g^2 plus bias correction.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor
Number = float | Tensor


def declare(*state: str):
    """Declare, next to a rule, the state tensors it takes after ``(p, g)``, in order.

    A name ending in ``?`` is optional: the optimizer passes None when its
    options do not use it (``Optimizer._uses``), and the rule skips it.
    """

    def mark(fn):
        fn.state = tuple(k.rstrip("?") for k in state)
        fn.optional = frozenset(k.rstrip("?") for k in state if k.endswith("?"))
        return fn

    return mark


def _is_zero(x: object) -> bool:
    return isinstance(x, (int, float)) and x == 0


# --------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------


def prepare_grad(p: Tensor, g: Tensor, *, maximize: bool, weight_decay: Number, l1: Number) -> Tensor:
    """Gradient of the regularized objective.

    ``g <- -g`` when maximizing, then L2: ``g <- g + weight_decay * p`` (the
    gradient of ``weight_decay/2 * ||p||^2``) and L1: ``g <- g + l1 * sign(p)``
    (a subgradient of ``l1 * ||p||_1``). The order matches torch.optim.
    """
    if maximize:
        g = -g
    if not _is_zero(weight_decay):
        g = g + weight_decay * p
    if not _is_zero(l1):
        g = g + l1 * torch.sign(p)
    return g


def ema(avg: Tensor, x: Tensor, beta: Number) -> Tensor:
    """Exponential moving average (note 002): ``beta * avg + (1 - beta) * x``."""
    return avg * beta + x * (1 - beta)


def accumulate(total: Tensor, x: Tensor) -> Tensor:
    """Running sum (Adagrad's ``G_t = G_{t-1} + g^2``, note 001)."""
    return total + x


def denominator(s: Tensor, eps: Number, eps_mode: str) -> Tensor:
    """``sqrt(s + eps)`` for ``eps_mode="inside"``, ``sqrt(s) + eps`` for ``"outside"``."""
    if eps_mode == "inside":
        return torch.sqrt(s + eps)
    return torch.sqrt(s) + eps


# --------------------------------------------------------------------------
# named rules
# --------------------------------------------------------------------------


@declare()
def sgd(p: Tensor, g: Tensor, *, lr: Number) -> tuple[Tensor]:
    """Gradient descent (notes 001, 003): ``p = p - lr * g``."""
    return (p - lr * g,)


@declare("v")
def momentum(
    p: Tensor,
    g: Tensor,
    v: Tensor,
    *,
    lr: Number,
    beta: Number,
    dampening: Number,
    lr_inside: bool,
    nesterov: bool,
) -> tuple[Tensor, Tensor]:
    """Momentum in all its conventions.

    With ``x = lr * g`` when ``lr_inside`` else ``x = g``::

        v = beta * v + (1 - dampening) * x
        d = v                               (heavy ball)
        d = beta * v + (1 - dampening) * x  (Nesterov, closure-free form)
        p = p - d        if lr_inside else   p = p - lr * d

    note 001 heavy ball: lr_inside, dampening 0 -> ``v = beta v + lr g; p -= v``.
    note 002 EMA:        dampening = beta       -> ``v = beta v + (1-beta) g; p -= lr v``.
    A buffer whose first value is the gradient itself (torch) is v = 0 with
    dampening 0 on the first step.
    """
    x = g * lr if lr_inside else g
    c = 1 - dampening
    v = v * beta + x * c
    d = v * beta + x * c if nesterov else v
    return (p - d if lr_inside else p - lr * d), v


@declare("G")
def adagrad(
    p: Tensor,
    g: Tensor,
    G: Tensor,
    *,
    lr: Number,
    eps: Number,
    eps_mode: str,
) -> tuple[Tensor, Tensor]:
    """Adagrad (note 001): ``G = G + g^2; p = p - lr * g / sqrt(G + eps)``.

    ``lr`` here is the effective rate (torch's ``lr_decay`` is applied by the
    caller: ``lr / (1 + (t - 1) * lr_decay)``).
    """
    G = accumulate(G, g * g)
    return p - lr * g / denominator(G, eps, eps_mode), G


@declare("S", "mean?", "buf?")
def rmsprop(
    p: Tensor,
    g: Tensor,
    S: Tensor,
    mean: Tensor | None,
    buf: Tensor | None,
    *,
    lr: Number,
    beta: Number,
    eps: Number,
    eps_mode: str,
    momentum: Number,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """RMSprop (note 002): ``S = beta S + (1-beta) g^2; p = p - lr * g / sqrt(S + eps)``.

    Adagrad with an ``ema`` in place of the running sum. ``centered`` (when
    ``mean`` is given) divides by the variance estimate ``S - mean^2`` with
    ``mean = ema(mean, g, beta)``; ``momentum`` (when ``buf`` is given)
    accumulates ``buf = momentum * buf + g / denom`` and steps ``p -= lr * buf``.
    """
    S = ema(S, g * g, beta)
    if mean is not None:
        mean = ema(mean, g, beta)
        denom = denominator(S - mean * mean, eps, eps_mode)
    else:
        denom = denominator(S, eps, eps_mode)
    if buf is not None:
        buf = buf * momentum + g / denom
        return p - lr * buf, S, mean, buf
    return p - lr * g / denom, S, mean, buf


def adam_scalars(
    lr: Number, beta1: Number, beta2: Number, step: Number, *, bias_correction: bool, eps_mode: str
) -> tuple[Number, Number]:
    """The scalar part of Adam's step, computed once per step rather than per element.

    With ``bc1 = 1 - beta1^t`` and ``bc2 = 1 - beta2^t``::

        lr * V_hat / (sqrt(S_hat) + eps) = step_size * V / (sqrt(S) * root + eps)
        step_size = lr / bc1,   root = 1 / sqrt(bc2)

    (``"inside"``: ``sqrt(S * root^2 + eps)``; ``"hat"``: ``step_size = lr sqrt(bc2) / bc1``
    and ``root = 1``; no bias correction: ``step_size = lr``, ``root = 1``.)
    """
    if not bias_correction:
        return lr, 1.0
    bc1 = 1 - _pow(beta1, step)
    bc2 = 1 - _pow(beta2, step)
    if eps_mode == "hat":
        return div(lr * _pow(bc2, 0.5), bc1), 1.0
    return div(lr, bc1), _pow(bc2, -0.5)


def div(a: Number, b: Number) -> Number:
    """``a / b``, a true division also when only ``b`` is a tensor (torch computes
    ``number / tensor`` as ``number * (1 / tensor)``, which can differ in the last bit);
    in float64 for a tensor of hyperparameters (:func:`_wide`)."""
    like = _wide(a, b)
    if like is not None:
        return torch.as_tensor(a, dtype=torch.float64, device=like) / torch.as_tensor(b, dtype=torch.float64, device=like)
    if isinstance(b, Tensor) and not isinstance(a, Tensor):
        return torch.div(torch.as_tensor(a, dtype=b.dtype, device=b.device), b)
    return a / b


def mul(a: Number, b: Number) -> Number:
    """``a * b`` of two hyperparameters inside a rule, rounded once to the tensor's dtype
    (:func:`_wide`)."""
    like = _wide(a, b)
    if like is None:
        return a * b
    dtype = (a if isinstance(a, Tensor) else b).dtype  # type: ignore[union-attr]
    wide = torch.as_tensor(a, dtype=torch.float64, device=like) * torch.as_tensor(b, dtype=torch.float64, device=like)
    return wide.to(dtype)


def _wide(*xs: Number) -> torch.device | None:
    """Where a tensor of hyperparameters (shape (N, 1)) is among ``xs``, its device: the scalar
    arithmetic on it is then done in float64 and rounded once, where it meets the parameter, as
    each value's own run does in Python floats (float32 steps rounded the product of a float32
    lr and a number, or a quotient, twice, so AdamW's and Adam's rows drifted in the last bit)."""
    for x in xs:
        if isinstance(x, Tensor) and x.dim() and x.is_floating_point() and x.device.type != "mps":
            return x.device
    return None


def _pow(x: Number, k: float) -> Number:
    """``x ** k``; for a tensor, element by element in Python floats, so that a tensor of
    hyperparameters gives exactly what each value gives as a float (torch's pow takes
    other routes, e.g. rsqrt for -0.5, that differ in the last bit)."""
    if isinstance(x, Tensor):
        out = x.detach().to("cpu", torch.float64, copy=True).apply_(lambda b: b**k)
        return out.to(device=x.device, dtype=torch.float64 if _wide(x) else x.dtype)
    return x**k


@declare("V", "S", "S_max?")
def adam(
    p: Tensor,
    g: Tensor,
    V: Tensor,
    S: Tensor,
    S_max: Tensor | None,
    *,
    lr: Number,
    beta1: Number,
    beta2: Number,
    eps: Number,
    eps_mode: str,
    step_size: Number,
    root: Number,
    decay: Number,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Adam (note 002) = momentum (``ema`` of g) + RMSprop (``ema`` of g^2) + bias correction::

        V = beta1 V + (1 - beta1) g
        S = beta2 S + (1 - beta2) g^2
        V_hat = V / (1 - beta1^t),  S_hat = S / (1 - beta2^t)
        p = p - lr * V_hat / (sqrt(S_hat) + eps)

    computed as ``p - step_size * V / (sqrt(S) * root + eps)`` with the scalars of
    :func:`adam_scalars`. ``S_max`` (amsgrad) replaces S by its running maximum.
    ``eps_mode="inside"`` uses ``sqrt(S_hat + eps)``; ``"hat"`` is Keras' form
    ``p -= lr * sqrt(1-beta2^t)/(1-beta1^t) * V / (sqrt(S) + eps)``.
    ``decay`` is AdamW's decoupled weight decay: ``p = p - lr * decay * p`` first.
    """
    if not _is_zero(decay):
        p = p - mul(lr, decay) * p
    V = ema(V, g, beta1)
    S = ema(S, g * g, beta2)
    if S_max is not None:
        S_max = torch.maximum(S_max, S)
    s = S_max if S_max is not None else S
    if eps_mode == "inside":
        return p - step_size * V / torch.sqrt(s * (root * root) + eps), V, S, S_max
    return p - step_size * V / (torch.sqrt(s) * root + eps), V, S, S_max
