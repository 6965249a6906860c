"""Newton's method (note 000): exact on quadratics, fast near a minimum, CG agrees with exact."""

import pytest
import torch
from sklearn.datasets import load_breast_cancer

import descend.optim as O


def grad_norm(f, x):
    x = x.detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x)
    return g.norm().item()


def test_one_step_solves_a_quadratic():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    O.Newton([x]).step(lambda: 0.5 * x @ A @ x - b @ x)
    assert torch.allclose(x.detach(), torch.linalg.solve(A, b), atol=1e-12, rtol=0)


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def test_rosenbrock_with_line_search():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = O.Newton([x], line_search=True)
    for _ in range(30):
        opt.step(lambda: rosenbrock(x))
        if grad_norm(rosenbrock, x) < 1e-8:
            break
    assert grad_norm(rosenbrock, x) < 1e-8
    assert torch.allclose(x.detach(), torch.ones(2, dtype=torch.float64), atol=1e-8)


def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float64)
    X = (X - X.mean(0)) / X.std(0)
    return X, torch.tensor(y, dtype=torch.float64)


def test_l2_logistic_regression_on_breast_cancer():
    X, y = breast_cancer()
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    lam = 1e-2

    def loss_at(w, b):
        logits = X @ w + b
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + 0.5 * lam * (w @ w)

    opt = O.Newton([w, b], line_search=True)
    for _ in range(15):
        opt.step(lambda: loss_at(w, b))
        ww, bb = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
        gw, gb = torch.autograd.grad(loss_at(ww, bb), [ww, bb])
        gnorm = torch.cat([gw, gb]).norm().item()
        if gnorm < 1e-8:
            break
    assert gnorm < 1e-8
    acc = (((X @ w + b) > 0).double() == y).double().mean().item()
    assert acc > 0.97


def problem50():
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(200, 50, generator=gen, dtype=torch.float64)
    y = (X @ torch.randn(50, generator=gen, dtype=torch.float64) > 0).double()
    return lambda w: torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y) + 0.05 * (w @ w)


def test_newton_cg_agrees_with_exact_newton():
    f = problem50()
    xe = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    xc = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    exact = O.Newton([xe], hessian="exact")
    cg = O.Newton([xc], hessian="cg", cg_tol=1e-12, cg_max_iter=200)
    for _ in range(4):  # step by step, the same iterates
        exact.step(lambda: f(xe))
        cg.step(lambda: f(xc))
        assert cg.last["mode"] == "cg" and exact.last["mode"] == "exact"
        assert torch.allclose(xe, xc, atol=1e-9, rtol=0)
    # with the default inexact forcing sequence, the same minimizer
    xd = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    default_cg = O.Newton([xd], hessian="cg")
    for _ in range(12):
        default_cg.step(lambda: f(xd))
    assert grad_norm(f, xd) < 1e-8
    assert torch.allclose(xd, xe, atol=1e-6)


def test_auto_picks_cg_above_threshold():
    f = problem50()
    x = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    opt = O.Newton([x], exact_max=10)
    opt.step(lambda: f(x))
    assert opt.last["mode"] == "cg" and opt.last["cg_iterations"] > 0


def test_damping_and_indefinite_hessian_still_descend():
    """At a saddle-shaped point plain Newton would climb; the shifted Hessian descends."""
    x = torch.tensor([0.1, 0.1], dtype=torch.float64, requires_grad=True)
    f = lambda: x[0] ** 2 - x[1] ** 2 + 0.25 * x[1] ** 4  # noqa: E731
    opt = O.Newton([x], line_search=True)
    before = f().item()
    opt.step(f)
    assert f().item() < before
    assert opt.last["shift"] > 0
    y = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    O.Newton([y], damping=1.0).step(lambda: (y**2).sum())  # H = 2: y <- y - 2y/3
    assert y.item() == pytest.approx(1 / 3, abs=1e-15)


def test_newton_needs_a_closure_that_returns_the_loss():
    x = torch.zeros(2, requires_grad=True)
    opt = O.Newton([x])
    with pytest.raises(ValueError, match="closure"):
        opt.step()

    def calls_backward():
        loss = (x**2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="must not call backward"):
        opt.step(calls_backward)
    with pytest.raises(ValueError, match="single param group"):
        O.Newton([{"params": [x]}, {"params": [torch.zeros(1, requires_grad=True)]}])
    with pytest.raises(ValueError, match="Python number"):
        O.Newton([x], lr=torch.tensor(1.0))
