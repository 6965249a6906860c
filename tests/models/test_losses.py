"""descend.models.losses against hand computations, and two reference fits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descend import data, models
from descend.models import losses
from descend.models.losses import (
    accuracy,
    binary_cross_entropy,
    cross_entropy,
    l1_penalty,
    l2_penalty,
    loss_for,
    mse,
)


def test_mse_by_hand() -> None:
    # ((1 - 0)^2 + (2 - 4)^2) / 2
    assert mse(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).item() == 2.5
    # mean over all entries of a (2, 2) output: (1 + 0 + 4 + 9) / 4
    p = torch.tensor([[1.0, 0.0], [2.0, 3.0]])
    assert mse(p, torch.zeros(2, 2)).item() == 3.5
    with pytest.raises(ValueError, match=r"same shape, got \(3, 1\) and \(3,\)"):
        mse(torch.zeros(3, 1), torch.zeros(3))


def test_cross_entropy_by_hand() -> None:
    # logits (0, ln 3): softmax = (1/4, 3/4)
    z = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    expected = (-math.log(0.75) + math.log(2.0)) / 2
    assert cross_entropy(z, y).item() == pytest.approx(expected, rel=1e-14)
    with pytest.raises(ValueError, match="cross_entropy needs logits"):
        cross_entropy(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_binary_cross_entropy_by_hand() -> None:
    # z = 0, y = 1: -log(1/2);  z = ln 3, y = 0: -log(1 - 3/4) = log 4;  z = -ln 3, y = 1: log 4
    z = torch.tensor([[0.0], [math.log(3.0)], [-math.log(3.0)]], dtype=torch.float64)
    y = torch.tensor([1, 0, 1])
    expected = (math.log(2.0) + 2 * math.log(4.0)) / 3
    assert binary_cross_entropy(z, y).item() == pytest.approx(expected, rel=1e-14)
    assert binary_cross_entropy(z.flatten(), y.double()).item() == pytest.approx(expected, rel=1e-14)
    with pytest.raises(ValueError, match="one logit per example"):
        binary_cross_entropy(torch.zeros(3, 2), torch.zeros(3))


def test_accuracy_binary_and_multiclass() -> None:
    assert accuracy(torch.tensor([[2.0], [-1.0], [0.5], [-3.0]]), torch.tensor([1, 0, 0, 0])) == 0.75
    assert accuracy(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])) == 0.5
    z = torch.tensor([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    assert accuracy(z, torch.tensor([1, 1, 2])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="accuracy needs"):
        accuracy(z, torch.tensor([1, 1]))


def _linear_with(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    lin = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
        lin.bias.copy_(torch.tensor(bias))
    return lin


def test_l2_penalty_by_hand_and_its_gradient() -> None:
    lin = _linear_with([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], [10.0, -20.0])
    # 0.1 / 2 * (1 + 4 + 9 + 0.25 + 0 + 1); the biases are excluded by default
    pen = l2_penalty(lin, 0.1)
    assert pen.item() == pytest.approx(0.05 * 15.25, rel=1e-6)
    pen.backward()
    torch.testing.assert_close(lin.weight.grad, 0.1 * lin.weight.detach())
    assert lin.bias.grad is None
    with_bias = l2_penalty(lin, 0.1, include_bias=True)
    assert with_bias.item() == pytest.approx(0.05 * (15.25 + 100 + 400), rel=1e-6)
    # explicit tensors are all penalized
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    pen = l2_penalty([w], 2.0)
    assert pen.item() == 25.0
    pen.backward()
    assert w.grad.tolist() == [6.0, 8.0]
    assert l2_penalty(w, 0.0).item() == 0.0


def test_l2_penalty_equals_sgd_weight_decay() -> None:
    torch.manual_seed(0)
    a = nn.Linear(4, 1, bias=False)
    b = nn.Linear(4, 1, bias=False)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=0.3)
    for _ in range(3):
        opt_a.zero_grad()
        (mse(a(x), y) + l2_penalty(a, 0.3)).backward()
        opt_a.step()
        opt_b.zero_grad()
        mse(b(x), y).backward()
        opt_b.step()
    torch.testing.assert_close(a.weight, b.weight)


def test_penalties_skip_batchnorm_and_biases() -> None:
    torch.manual_seed(0)
    m = models.MLP(3, (4,), n_out=2, batchnorm=True)
    chosen = losses.penalized_parameters(m)
    assert [tuple(p.shape) for p in chosen] == [(4, 3), (2, 4)]
    everything = losses.penalized_parameters(m, include_bias=True)
    assert len(everything) == len(list(m.parameters())) == 5
    hand = 0.5 * 0.2 * sum((p.detach() ** 2).sum().item() for p in chosen)
    assert l2_penalty(m, 0.2).item() == pytest.approx(hand, rel=1e-6)


def test_l1_penalty_by_hand_and_its_gradient() -> None:
    lin = _linear_with([[1.0, -2.0], [0.5, -0.25]], [7.0, 7.0])
    pen = l1_penalty(lin, 0.5)
    assert pen.item() == 0.5 * 3.75
    pen.backward()
    torch.testing.assert_close(lin.weight.grad, 0.5 * torch.sign(lin.weight.detach()))
    assert l1_penalty(lin, 0.5, include_bias=True).item() == 0.5 * (3.75 + 14)
    with pytest.raises(ValueError, match="strength must be a finite number >= 0, got -1"):
        l1_penalty(lin, -1)


def test_loss_for() -> None:
    assert loss_for("regression") is mse
    assert loss_for("classification", 2) is binary_cross_entropy
    assert loss_for("classification", 2, n_outputs=2) is cross_entropy
    assert loss_for("classification", 10) is cross_entropy
    with pytest.raises(ValueError, match="task must be one of classification, regression, got 'ranking'"):
        loss_for("ranking")
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        loss_for("classification")
    with pytest.raises(ValueError, match="n_outputs must be 10 .* got 3"):
        loss_for("classification", 10, n_outputs=3)


def test_logistic_regression_by_gradient_descent_on_breast_cancer() -> None:
    ds = data.load("breast_cancer")
    torch.manual_seed(0)
    model = models.build("logistic", ds.n_features, ds.n_classes)
    loss_fn = loss_for(ds.task, ds.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses_seen = []
    for _ in range(300):  # full-batch gradient descent
        opt.zero_grad()
        loss = loss_fn(model(ds.X_train), ds.y_train)
        loss.backward()
        opt.step()
        losses_seen.append(loss.item())
    assert losses_seen[-1] < 0.1 < losses_seen[0]
    with torch.no_grad():
        assert accuracy(model(ds.X_test), ds.y_test) >= 0.95


def test_linear_regression_gradient_descent_reaches_least_squares_on_diabetes() -> None:
    ds = data.load("diabetes", dtype=torch.float64)
    ref = data.least_squares_mse(ds)
    # step 1.9 / L with L the largest eigenvalue of the MSE's Hessian 2/n [X 1]^T [X 1]
    A = torch.cat([ds.X_train, torch.ones(ds.n_train, 1, dtype=torch.float64)], dim=1)
    L = torch.linalg.eigvalsh(2.0 * A.T @ A / ds.n_train).max().item()
    torch.manual_seed(0)
    model = models.linear_regression(ds.n_features).double()
    opt = torch.optim.SGD(model.parameters(), lr=1.9 / L)
    for _ in range(5000):
        opt.zero_grad()
        loss = mse(model(ds.X_train), ds.y_train)
        loss.backward()
        opt.step()
    final = mse(model(ds.X_train), ds.y_train).item()
    assert final >= ref - 1e-9  # least squares is the minimum
    assert final == pytest.approx(ref, rel=1e-8)
    fit = data.least_squares(ds)
    torch.testing.assert_close(model.weight.detach().T, fit.weight, rtol=1e-4, atol=1e-3)
