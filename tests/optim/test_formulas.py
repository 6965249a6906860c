"""The notes' formulas, by hand: note 003's worked example, three hand-computed
steps per optimizer, and the convergence rates theory predicts."""

import math

import pytest
import torch

import descend.optim as O

GRADS = [0.5, -0.2, 0.1]  # three given gradients, applied at p0 = 1.0


def run_given(opt_cls, grads=GRADS, p0=1.0, **kw):
    p = torch.tensor([p0], dtype=torch.float64, requires_grad=True)
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        out.append(p.item())
    return out


def test_note003_worked_example():
    """f(x, y) = 3 x^2 y at (1, 1): gradient (6, 3); one step of lr 0.01 -> (0.94, 0.97)."""
    w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    loss = 3 * w[0] ** 2 * w[1]
    loss.backward()
    assert w.grad.tolist() == [6.0, 3.0]
    O.SGD([w], lr=0.01).step()
    assert w.tolist() == [0.94, 0.97]


def hand_sgd(lr=0.01):
    p, out = 1.0, []
    for g in GRADS:
        p -= lr * g
        out.append(p)
    return out


def hand_heavy_ball(lr=0.01, beta=0.9):  # note 001
    p, v, out = 1.0, 0.0, []
    for g in GRADS:
        v = beta * v + lr * g
        p -= v
        out.append(p)
    return out


def hand_ema(lr=0.01, beta=0.9):  # note 002
    p, v, out = 1.0, 0.0, []
    for g in GRADS:
        v = beta * v + (1 - beta) * g
        p -= lr * v
        out.append(p)
    return out


def hand_nesterov(lr=0.01, beta=0.9):
    """Closure-free form: the stored parameter is the look-ahead point."""
    p, v, out = 1.0, 0.0, []
    for g in GRADS:
        v = beta * v + lr * g
        p -= beta * v + lr * g
        out.append(p)
    return out


def hand_adagrad(lr=0.01, eps=1e-8):  # note 001
    p, G, out = 1.0, 0.0, []
    for g in GRADS:
        G += g * g
        p -= lr / math.sqrt(G + eps) * g
        out.append(p)
    return out


def hand_rmsprop(lr=0.01, beta=0.9, eps=1e-8):  # note 002
    p, S, out = 1.0, 0.0, []
    for g in GRADS:
        S = beta * S + (1 - beta) * g * g
        p -= lr * g / math.sqrt(S + eps)
        out.append(p)
    return out


def hand_adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):  # note 002
    p, V, S, out = 1.0, 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p -= lr * wd * p
        V = b1 * V + (1 - b1) * g
        S = b2 * S + (1 - b2) * g * g
        Vc, Sc = V / (1 - b1**t), S / (1 - b2**t)
        p -= lr * Vc / (math.sqrt(Sc) + eps)
        out.append(p)
    return out


@pytest.mark.parametrize(
    "cls,kw,hand",
    [
        (O.SGD, {}, hand_sgd()),
        (O.Momentum, {}, hand_heavy_ball()),
        (O.Momentum, {"style": "ema"}, hand_ema()),
        (O.Nesterov, {}, hand_nesterov()),
        (O.Adagrad, {}, hand_adagrad()),
        (O.RMSprop, {}, hand_rmsprop()),
        (O.Adam, {}, hand_adam()),
        (O.AdamW, {}, hand_adam(wd=0.01, decoupled=True)),
    ],
    ids=["sgd", "heavy_ball", "ema", "nesterov", "adagrad", "rmsprop", "adam", "adamw"],
)
def test_three_steps_match_the_notes_by_hand(cls, kw, hand):
    got = run_given(cls, **kw)
    assert got == pytest.approx(hand, rel=0, abs=1e-15)


def test_newton_three_steps_by_hand():
    """f(x) = x^4: Newton's x <- x - f'/f'' = x - 4x^3 / 12x^2 = 2x/3."""
    x = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    opt = O.Newton([x])
    got = []
    for _ in range(3):
        opt.step(lambda: (x**4).sum())
        got.append(x.item())
    assert got == pytest.approx([1.0, 2 / 3, 4 / 9], abs=1e-15)


def test_heavy_ball_equals_ema_with_rescaled_lr():
    """Note 002: dropping (1 - beta) rescales the lr by 1/(1 - beta)."""
    a = run_given(O.Momentum, lr=0.01 * (1 - 0.9), beta=0.9)
    b = run_given(O.Momentum, lr=0.01, beta=0.9, style="ema")
    assert a == pytest.approx(b, abs=1e-15)


# ----------------------------------------------------------------------------
# theory on f(w) = 1/2 sum lambda_i w_i^2 with condition number 100
# ----------------------------------------------------------------------------
LAMBDAS = torch.tensor([1.0, 3.0, 10.0, 30.0, 100.0], dtype=torch.float64)


def quad_rate(opt_factory, steps=600, burn=100):
    w = torch.ones(5, dtype=torch.float64, requires_grad=True)
    opt = opt_factory([w])
    norms = []
    for _ in range(steps):
        w.grad = LAMBDAS * w.detach()
        opt.step()
        norms.append(w.detach().norm().item())
    return (norms[-1] / norms[burn]) ** (1 / (steps - 1 - burn)), norms


def test_gd_contracts_at_kappa_rate():
    L, mu = 100.0, 1.0
    kappa = L / mu
    rate, _ = quad_rate(lambda p: O.SGD(p, lr=2 / (L + mu)))
    assert rate == pytest.approx((kappa - 1) / (kappa + 1), rel=0.01)


def test_heavy_ball_contracts_at_sqrt_kappa_rate():
    L, mu = 100.0, 1.0
    kappa = L / mu
    lr = (2 / (math.sqrt(L) + math.sqrt(mu))) ** 2
    beta = ((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2
    rate, _ = quad_rate(lambda p: O.Momentum(p, lr=lr, beta=beta), steps=800, burn=200)
    assert rate == pytest.approx((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1), rel=0.05)
    gd_rate, _ = quad_rate(lambda p: O.SGD(p, lr=2 / (L + mu)))
    assert rate < gd_rate  # momentum is faster: 0.818 vs 0.980


def test_gd_diverges_above_two_over_lambda_max():
    _, norms = quad_rate(lambda p: O.SGD(p, lr=2.02 / 100.0), steps=300, burn=0)
    assert norms[-1] > 10 * norms[0]
    _, norms = quad_rate(lambda p: O.SGD(p, lr=1.98 / 100.0), steps=300, burn=0)
    assert norms[-1] < norms[0]
