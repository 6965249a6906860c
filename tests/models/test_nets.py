"""descend.models: shapes, parameter counts, the registry, BatchNorm and dropout modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from descend import models
from descend.models import MLP, SmallCNN, n_parameters


def test_linear_models_shapes_and_counts() -> None:
    torch.manual_seed(0)
    lin = models.linear_regression(10)
    assert n_parameters(lin) == 11 and lin(torch.randn(5, 10)).shape == (5, 1)
    assert n_parameters(models.linear_regression(10, n_outputs=3)) == 33
    log = models.logistic_regression(30)
    assert n_parameters(log) == 31 and log(torch.randn(4, 30)).shape == (4, 1)
    soft = models.softmax_regression(64, 10)
    assert n_parameters(soft) == 650 and soft(torch.randn(2, 64)).shape == (2, 10)


def test_mlp_counts_by_hand() -> None:
    m = MLP(64, (32, 16), n_out=10)
    # 64*32 + 32 + 32*16 + 16 + 16*10 + 10
    assert n_parameters(m) == 2080 + 528 + 170
    assert m(torch.randn(7, 64)).shape == (7, 10)
    bn = MLP(64, (32, 16), n_out=10, batchnorm=True)
    # hidden Linear without bias, BatchNorm weight and bias per unit
    assert n_parameters(bn) == 64 * 32 + 2 * 32 + 32 * 16 + 2 * 16 + 170
    assert sum(isinstance(layer, nn.BatchNorm1d) for layer in bn.modules()) == 2
    assert n_parameters(MLP(3, 5, n_out=2)) == 3 * 5 + 5 + 5 * 2 + 2
    assert n_parameters(MLP(3, (), n_out=2)) == 8  # no hidden layer: a linear model
    assert MLP(64, n_out=10)(torch.randn(2, 1, 8, 8)).shape == (2, 10)  # images are flattened


@pytest.mark.parametrize("name, cls", [("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU)])
def test_mlp_activation(name: str, cls: type) -> None:
    m = MLP(4, (3, 3), n_out=1, activation=name)
    assert sum(isinstance(layer, cls) for layer in m.modules()) == 2
    # one hidden unit, weights set by hand: output = act(2 x + 1) * 3 - 1
    one = MLP(1, (1,), n_out=1, activation=name)
    with torch.no_grad():
        one.net[0].weight.fill_(2.0)
        one.net[0].bias.fill_(1.0)
        one.net[2].weight.fill_(3.0)
        one.net[2].bias.fill_(-1.0)
    x = torch.tensor([[0.25]])
    expected = cls()(torch.tensor([[1.5]])) * 3.0 - 1.0
    torch.testing.assert_close(one(x), expected)


def test_mlp_validation() -> None:
    with pytest.raises(ValueError, match="activation must be one of relu, tanh, sigmoid, gelu, got 'swish'"):
        MLP(4, n_out=2, activation="swish")
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.0"):
        MLP(4, n_out=2, dropout=1.0)
    with pytest.raises(ValueError, match="every hidden width must be an integer >= 1, got 0"):
        MLP(4, (8, 0), n_out=2)
    with pytest.raises(ValueError, match="n_out must be an integer >= 1, got 0"):
        MLP(4, n_out=0)


def test_small_cnn() -> None:
    torch.manual_seed(0)
    cnn = SmallCNN()
    assert n_parameters(cnn) == 160 + 4640 + 513 * 10 == 9930 < 20_000
    x = torch.randn(6, 64)
    out = cnn(x)
    assert out.shape == (6, 10)
    torch.testing.assert_close(cnn(x.reshape(6, 1, 8, 8)), out)
    torch.testing.assert_close(cnn(x.reshape(6, 8, 8)), out)
    assert n_parameters(SmallCNN(3)) == 160 + 4640 + 513 * 3
    with pytest.raises(ValueError, match=r"SmallCNN expects .* got \(6, 63\)"):
        cnn(torch.randn(6, 63))


def test_seeding_is_the_callers() -> None:
    torch.manual_seed(123)
    a = MLP(5, (4,), n_out=2)
    torch.manual_seed(123)
    b = MLP(5, (4,), n_out=2)
    c = MLP(5, (4,), n_out=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_build_registry() -> None:
    assert models.names() == ["linear", "logistic", "softmax", "mlp", "cnn"]
    assert isinstance(models.build("linear", 10, 1), nn.Linear)
    assert models.build("logistic", 30, 2).out_features == 1  # two classes, one logit
    assert models.build("softmax", 64, 10).out_features == 10
    mlp = models.build("mlp", 8, 3, hidden=(5,), activation="tanh", dropout=0.1)
    assert isinstance(mlp, MLP) and mlp.hidden == (5,) and mlp.activation == "tanh" and mlp.n_out == 3
    assert isinstance(models.build("cnn", 64, 10), SmallCNN)
    with pytest.raises(ValueError, match="unknown model 'resnet'; valid names: linear, logistic, softmax, mlp, cnn"):
        models.build("resnet", 4, 2)
    with pytest.raises(ValueError, match="n_out must be 1 or 2, got 3"):
        models.build("logistic", 4, 3)
    with pytest.raises(ValueError, match="n_in must be 64, got 30"):
        models.build("cnn", 30, 2)
    with pytest.raises(ValueError, match="takes no keyword options"):
        models.build("linear", 4, 1, hidden=(3,))


def test_batchnorm_eval_uses_running_statistics() -> None:
    torch.manual_seed(0)
    m = MLP(6, (8,), n_out=3, batchnorm=True)
    bn = m.net[1]
    assert isinstance(bn, nn.BatchNorm1d)
    m.train()
    for _ in range(5):
        m(torch.randn(32, 6) * 2.0 + 1.0)
    assert bn.num_batches_tracked.item() == 5
    assert not torch.allclose(bn.running_mean, torch.zeros(8))
    x = torch.randn(1, 6)
    others_a, others_b = torch.randn(9, 6), torch.randn(9, 6) * 5.0
    m.eval()
    with torch.no_grad():
        alone = m(x)
        in_a = m(torch.cat([x, others_a]))[:1]
        in_b = m(torch.cat([others_b, x]))[-1:]
    torch.testing.assert_close(in_a, alone, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(in_b, alone, rtol=1e-6, atol=1e-6)
    # by hand: eval BatchNorm is (h - running_mean) / sqrt(running_var + eps) * gamma + beta
    h = m.net[0](x)
    hand = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(bn(h), hand)
    # in training mode the batch statistics make the output depend on the batch
    m.train()
    with torch.no_grad():
        t_a = m(torch.cat([x, others_a]))[:1]
        t_b = m(torch.cat([others_b, x]))[-1:]
    assert not torch.allclose(t_a, t_b, atol=1e-3)


def test_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    m = MLP(10, (64,), n_out=2, dropout=0.5)
    x = torch.randn(4, 10)
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))
