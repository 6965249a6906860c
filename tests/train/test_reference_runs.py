"""Done-when 1: the reference runs reach the stated accuracy / the least-squares optimum."""

from __future__ import annotations

import pytest

from descend import data
from descend.train import train


def test_digits_mlp_with_adam_reaches_95_percent_test_accuracy() -> None:
    r = train("digits", "mlp", optimizer="adam", lr=1e-3, epochs=20, batch_size=64, progress=False)
    assert r.status == "completed" and r.iterations == 20 * 17 and r.epochs == 20
    assert r.final["test_accuracy"] >= 0.95
    assert r.final["val_accuracy"] >= 0.95
    # the loss went down epoch after epoch on the whole
    assert r.history[-1]["train_loss"] < 0.1 * r.history[0]["train_loss"]


def test_breast_cancer_logistic_regression_reaches_95_percent() -> None:
    r = train("breast_cancer", "logistic", optimizer="sgd", lr=0.1, epochs=30, batch_size=32, progress=False)
    assert r.config["model"] == "logistic" and r.config["dataset"] == "breast_cancer"
    assert r.final["test_accuracy"] >= 0.95
    assert r.final["train_accuracy"] >= 0.97


def test_diabetes_full_batch_gd_reaches_the_least_squares_optimum_within_1_percent() -> None:
    ds = data.load("diabetes")
    optimum = data.least_squares_mse(ds)  # ~2737 in squared target units
    # largest Hessian eigenvalue of the training MSE is ~8.4, so lr 0.2 < 2 / 8.4 is stable
    r = train(ds, "linear", optimizer="sgd", lr=0.2, iterations=500, batch_size=None, progress=False,
              log_every=50)
    assert r.iterations == 500 and r.epochs == 500  # one iteration per epoch: full-batch GD
    assert optimum <= r.final["train_loss"] * (1 + 1e-6)
    assert r.final["train_loss"] <= 1.01 * optimum
    assert "train_accuracy" not in r.final and "test_accuracy" not in r.final


@pytest.mark.parametrize("optimizer,lr", [("newton", 1.0)])
def test_newton_solves_least_squares_in_one_step(optimizer: str, lr: float) -> None:
    ds = data.load("diabetes")
    r = train(ds, "linear", optimizer=optimizer, lr=lr, iterations=2, batch_size=None, progress=False)
    assert r.final["train_loss"] == pytest.approx(data.least_squares_mse(ds), rel=1e-4)
