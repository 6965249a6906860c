"""descend.data.load: splits, stratification, standardization, least squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import datasets as skd
from sklearn.linear_model import LinearRegression

from descend import data
from descend.data._split import split_sizes, stratified_counts

EXPECTED = {
    # name: (n, n_features, n_classes)
    "digits": (1797, 64, 10),
    "breast_cancer": (569, 30, 2),
    "wine": (178, 13, 3),
    "iris": (150, 4, 3),
    "diabetes": (442, 10, None),
    "moons": (1000, 2, 2),
    "circles": (1000, 2, 2),
    "blobs": (1000, 2, 3),
}


def raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The unsplit table straight from scikit-learn."""
    if name == "diabetes":
        b = skd.load_diabetes(scaled=False)
    else:
        b = getattr(skd, f"load_{name}")()
    return b.data, b.target


def test_names() -> None:
    assert data.names() == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shapes_dtypes_and_sizes(name: str) -> None:
    n, d, k = EXPECTED[name]
    ds = data.load(name)
    assert ds.name == name and ds.n_features == d and ds.n_classes == k
    assert ds.task == ("regression" if k is None else "classification")
    # largest remainder sizes of 0.6 / 0.2 / 0.2
    assert [ds.n_train, ds.n_val, ds.n_test] == split_sizes(n, (0.6, 0.2, 0.2))
    assert ds.n_train + ds.n_val + ds.n_test == n
    assert abs(ds.n_train - 0.6 * n) < 1 and abs(ds.n_test - 0.2 * n) < 1
    for X, y in (ds.train, ds.val, ds.test):
        assert X.dtype == torch.float32 and X.shape == (len(y), d)
        if k is None:
            assert y.dtype == torch.float32 and y.shape == (len(X), 1)
        else:
            assert y.dtype == torch.int64 and y.shape == (len(X),)
            assert set(y.unique().tolist()) <= set(range(k))
    assert ds.feature_names is not None and len(ds.feature_names) == d
    idx = np.concatenate([ds.indices[p] for p in ("train", "val", "test")])
    assert sorted(idx.tolist()) == list(range(n))  # disjoint and complete


def test_digits_sizes_by_hand() -> None:
    # 1797 * (0.6, 0.2, 0.2) = (1078.2, 359.4, 359.4): floors 1078+359+359 = 1796, one left
    # over goes to the largest remainder (val, the first of the tie)
    ds = data.load("digits")
    assert (ds.n_train, ds.n_val, ds.n_test) == (1078, 360, 359)


def test_float64_and_targets_unchanged() -> None:
    ds = data.load("diabetes", dtype=torch.float64)
    assert ds.X_train.dtype == torch.float64 and ds.y_train.dtype == torch.float64
    _, y = raw("diabetes")
    got = torch.cat([ds.y_train, ds.y_val, ds.y_test]).flatten().sort().values
    assert torch.equal(got, torch.as_tensor(np.sort(y), dtype=torch.float64))
    assert ds.y_train.min() >= 25 and ds.y_train.max() <= 346  # natural units, not scaled
    assert "25..346" in ds.note


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine", "diabetes"])
def test_standardization_uses_train_statistics_only(name: str) -> None:
    ds = data.load(name, dtype=torch.float64)
    X, _ = raw(name)
    train_raw = X[ds.indices["train"]]
    mean, std = train_raw.mean(axis=0), train_raw.std(axis=0)
    varying = std > 0
    np.testing.assert_allclose(ds.mean.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.std.numpy()[varying], std[varying], rtol=1e-12)
    assert (ds.std.numpy()[~varying] == 1.0).all()  # constant on train: only centered
    # train: mean 0, std 1 on every feature that varies on train
    assert ds.X_train.mean(0).abs().max().item() < 1e-10
    np.testing.assert_allclose(ds.X_train.std(0, unbiased=False).numpy()[varying], 1.0, rtol=1e-10)
    # test: transformed with the train numbers, hence not exactly standardized
    test_raw = X[ds.indices["test"]]
    np.testing.assert_allclose(ds.X_test.numpy(), (test_raw - ds.mean.numpy()) / ds.std.numpy(), atol=1e-12)
    assert ds.X_test.mean(0).abs().max().item() > 1e-3
    assert not np.allclose(ds.X_test.std(0, unbiased=False).numpy()[varying], 1.0, atol=1e-3)


def test_standardize_false_gives_raw_values() -> None:
    ds = data.load("wine", standardize=False, dtype=torch.float64)
    X, _ = raw("wine")
    assert ds.mean is None and ds.std is None
    assert torch.equal(ds.X_val, torch.as_tensor(X[ds.indices["val"]]))


def _check_stratified(ds: data.Dataset, y_all: np.ndarray) -> None:
    n = len(y_all)
    classes, counts = np.unique(y_all, return_counts=True)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        size = len(y)
        for c, n_c in zip(classes, counts):
            got = int((y == int(c)).sum())
            assert abs(got - n_c * size / n) < 1.0, (ds.name, c, got, n_c * size / n)


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine", "iris", "moons", "blobs"])
@pytest.mark.parametrize("split", [(0.6, 0.2, 0.2), (0.7, 0.1, 0.2), (0.5, 0.5, 0.0), (0.34, 0.33, 0.33)])
def test_stratification_keeps_class_proportions_within_one_example(name: str, split: tuple) -> None:
    ds = data.load(name, split=split, seed=3)
    y_all = torch.cat([ds.y_train, ds.y_val, ds.y_test]).numpy()
    _check_stratified(ds, y_all)


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 60), min_size=1, max_size=12).filter(lambda c: sum(c) > 0),
    weights=st.lists(st.integers(0, 20), min_size=1, max_size=4).filter(lambda w: sum(w) > 0),
)
def test_stratified_rounding_keeps_rows_columns_and_each_entry(counts: list[int], weights: list[int]) -> None:
    n = sum(counts)
    sizes = split_sizes(n, weights)
    k = stratified_counts(counts, sizes)
    assert k.sum(axis=1).tolist() == counts
    assert k.sum(axis=0).tolist() == sizes
    ideal = np.outer(counts, sizes) / n
    assert (np.abs(k - ideal) < 1).all()
    assert (k >= 0).all()


def test_split_sizes_are_floor_or_ceil() -> None:
    assert split_sizes(10, (0.6, 0.2, 0.2)) == [6, 2, 2]
    assert split_sizes(7, (1, 1, 1)) == [3, 2, 2]
    assert split_sizes(5, (0.5, 0.5, 0.0)) == [3, 2, 0]


def test_regression_split_is_not_stratified_but_seeded() -> None:
    a, b, c = data.load("diabetes", seed=1), data.load("diabetes", seed=1), data.load("diabetes", seed=2)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_test, c.y_test)


def test_seed_changes_split_and_generated_points() -> None:
    a, b = data.load("moons", seed=0), data.load("moons", seed=1)
    assert not torch.equal(a.X_train[:10], b.X_train[:10])
    again = data.load("moons", seed=0)
    assert torch.equal(a.X_train, again.X_train) and torch.equal(a.y_val, again.y_val)


def test_n_samples_and_generator_options() -> None:
    ds = data.load("moons", n_samples=200, noise=0.0, standardize=False)
    assert ds.n_train + ds.n_val + ds.n_test == 200
    X = torch.cat([ds.X_train, ds.X_val, ds.X_test]).double()
    # noise-free moons lie exactly on unit circles centred at (0, 0) and (1, 0.5)
    r0 = (X - torch.tensor([0.0, 0.0], dtype=torch.float64)).norm(dim=1)
    r1 = (X - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1)
    assert torch.minimum((r0 - 1).abs(), (r1 - 1).abs()).max().item() < 1e-6
    blobs = data.load("blobs", centers=4, n_features=3)
    assert blobs.n_classes == 4 and blobs.n_features == 3
    sub = data.load("digits", n_samples=500)
    assert sub.n_train + sub.n_val + sub.n_test == 500
    y_all = torch.cat([sub.y_train, sub.y_val, sub.y_test]).numpy()
    _check_stratified(sub, y_all)
    _, y_full = raw("digits")
    for c in range(10):  # the subsample itself is stratified
        assert abs((y_all == c).sum() - 500 * (y_full == c).mean()) < 1


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown data set 'mnist'; valid names: digits, breast_cancer"):
        data.load("mnist")


@pytest.mark.parametrize(
    "split, match",
    [
        ((0.6, 0.2, 0.1), r"split fractions must sum to 1, got split=\(0.6, 0.2, 0.1\)"),
        ((1.2, -0.1, -0.1), "split fractions must be finite and >= 0"),
        ((0.8, 0.2), r"split must be three fractions .*\(2 values\)"),
        ((0.0, 0.5, 0.5), "training set a fraction > 0"),
        ("abc", "split must be three fractions"),
    ],
)
def test_bad_split(split: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        data.load("iris", split=split)


def test_other_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_samples must be at most 150 for 'iris'"):
        data.load("iris", n_samples=151)
    with pytest.raises(ValueError, match="n_samples must be None or an integer >= 3, got 0"):
        data.load("moons", n_samples=0)
    with pytest.raises(ValueError, match="only apply to the generated data sets"):
        data.load("iris", noise=0.1)
    with pytest.raises(ValueError, match="bad generator option for 'moons'"):
        data.load("moons", wobble=3)
    with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
        data.load("iris", dtype=torch.int64)
    with pytest.raises(ValueError, match="seed must be an integer"):
        data.load("iris", seed=-1)


def test_least_squares_matches_sklearn_and_is_stationary() -> None:
    ds = data.load("diabetes", dtype=torch.float64)
    fit = data.least_squares(ds)
    ref = LinearRegression().fit(ds.X_train.numpy(), ds.y_train.numpy())
    for part, value in (("train", fit.train_mse), ("val", fit.val_mse), ("test", fit.test_mse)):
        X, y = ds.part(part)
        expected = float(((ref.predict(X.numpy()) - y.numpy()) ** 2).mean())
        assert value == pytest.approx(expected, rel=1e-10)
        assert data.least_squares_mse(ds, part) == value
    # the gradient of J(w, b) = mean((Xw + b - y)^2) vanishes at the solution
    w = fit.weight.clone().requires_grad_(True)
    b = fit.bias.clone().requires_grad_(True)
    J = ((ds.X_train @ w + b - ds.y_train) ** 2).mean()
    gw, gb = torch.autograd.grad(J, (w, b))
    assert gw.abs().max().item() < 1e-8 and gb.abs().max().item() < 1e-8
    assert J.item() == pytest.approx(fit.train_mse, rel=1e-12)
    # least squares beats predicting the training mean, on train by construction
    baseline = float(((ds.y_train - ds.y_train.mean()) ** 2).mean())
    assert fit.train_mse < 0.6 * baseline
    # standardizing the features does not change the least-squares fit's predictions
    raw_ds = data.load("diabetes", dtype=torch.float64, standardize=False)
    assert data.least_squares_mse(raw_ds, "test") == pytest.approx(fit.test_mse, rel=1e-8)


def test_least_squares_rejects_classification_and_bad_split_name() -> None:
    with pytest.raises(ValueError, match="least squares needs a regression data set"):
        data.least_squares(data.load("iris"))
    with pytest.raises(ValueError, match="split must be one of 'train', 'val', 'test', got 'dev'"):
        data.least_squares_mse(data.load("diabetes"), "dev")


def test_to_and_repr() -> None:
    ds = data.load("iris")
    moved = ds.to("cpu")
    assert torch.equal(moved.X_train, ds.X_train) and moved.name == "iris"
    assert repr(ds) == "Dataset('iris', classification, 3 classes, 4 features, train/val/test = 90/30/30)"
