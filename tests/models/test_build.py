"""models.build_for: one rule for a model's output size on a data set, and the matching loss."""

from __future__ import annotations

import pytest
import torch

from descend import data, models


@pytest.fixture(scope="module")
def sets() -> dict[str, data.Dataset]:
    return {n: data.load(n) for n in ("breast_cancer", "wine", "diabetes", "digits")}


@pytest.mark.parametrize(
    ("dataset", "name", "n_out"),
    [("breast_cancer", "mlp", 1), ("breast_cancer", "logistic", 1), ("breast_cancer", "softmax", 2),
     ("wine", "mlp", 3), ("wine", "softmax", 3), ("digits", "cnn", 10), ("diabetes", "linear", 1),
     ("diabetes", "mlp", 1)],
)
def test_output_size(sets: dict, dataset: str, name: str, n_out: int) -> None:
    ds = sets[dataset]
    assert models.output_size(ds, name) == n_out
    model = models.build_for(ds, name)
    out = model(ds.X_train[:5])
    assert out.shape == (5, n_out)


def test_loss_matches_outputs(sets: dict) -> None:
    bc = sets["breast_cancer"]
    assert models.loss_for_model(bc, "mlp") is models.binary_cross_entropy
    assert models.loss_for_model(bc, "softmax") is models.cross_entropy
    assert models.loss_for_model(bc, models.build_for(bc, "softmax")) is models.cross_entropy
    assert models.loss_for_model(sets["diabetes"], "mlp") is models.mse


def test_seed_and_options(sets: dict) -> None:
    ds = sets["wine"]
    a = models.build_for(ds, "mlp", seed=3, hidden=(8, 4), dropout=0.1)
    b = models.build_for(ds, "mlp", seed=3, hidden=(8, 4), dropout=0.1)
    assert a.hidden == (8, 4) and a.dropout == 0.1
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    torch.manual_seed(3)
    c = models.MLP(13, (8, 4), n_out=3, dropout=0.1)
    assert torch.equal(c.net[0].weight, a.net[0].weight)


@pytest.mark.parametrize(
    ("dataset", "name", "needle"),
    [("diabetes", "softmax", "classifier"), ("wine", "linear", "linear regression"),
     ("wine", "logistic", "3 classes"), ("wine", "resnet", "valid names")],
)
def test_refusals(sets: dict, dataset: str, name: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        models.build_for(sets[dataset], name)
