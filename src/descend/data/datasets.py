"""Data sets that ship inside scikit-learn, split, standardized and turned into tensors.

Nothing is downloaded: the bundled tables (``digits``, ``breast_cancer``,
``wine``, ``iris``, ``diabetes``) are files inside the scikit-learn package and
the generators (``moons``, ``circles``, ``blobs``) are seeded.

Standardization is fitted on the training split only::

    mean_j = 1/n_train sum_i X_train[i, j]
    std_j  = sqrt(1/n_train sum_i (X_train[i, j] - mean_j)^2)      (1 where that is 0)
    X      = (X - mean) / std                                       for train, val and test

so training features have mean 0 and standard deviation 1 and validation and
test features are transformed with the same numbers (they are not exactly
standardized themselves). Targets are never scaled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import files
from ._split import check_split, split_indices, split_sizes

Tensor = torch.Tensor

DIABETES_NOTE = (
    "diabetes target: a quantitative measure of disease progression one year after "
    "baseline, integers 25..346 (mean 152.1, std 77.0 over all 442 patients). It is left "
    "unscaled, so MSE values are in squared target units: predicting the mean costs about "
    "the variance, 5900, and ordinary least squares on the ten standardized features "
    "roughly halves that (about 2700 on the training split at seed 0)."
)


@dataclass(frozen=True)
class _Source:
    task: str
    bundled: bool
    description: str


SOURCES: dict[str, _Source] = {
    "digits": _Source("classification", True, "8x8 images of handwritten digits, 1797 x 64, 10 classes"),
    "breast_cancer": _Source("classification", True, "Wisconsin breast cancer, 569 x 30, 2 classes (0 malignant, 1 benign)"),
    "wine": _Source("classification", True, "wine recognition, 178 x 13, 3 cultivars"),
    "iris": _Source("classification", True, "Fisher's iris, 150 x 4, 3 species"),
    "diabetes": _Source("regression", True, "diabetes progression, 442 x 10, real target"),
    "moons": _Source("classification", False, "two interleaving half circles (make_moons, noise 0.2), 2 classes"),
    "circles": _Source("classification", False, "two concentric circles (make_circles, noise 0.1, factor 0.5), 2 classes"),
    "blobs": _Source("classification", False, "isotropic Gaussian blobs (make_blobs, 3 centers, 2-D), 3 classes"),
}

GENERATOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "moons": {"noise": 0.2},
    "circles": {"noise": 0.1, "factor": 0.5},
    "blobs": {"centers": 3, "n_features": 2, "cluster_std": 1.0},
}
DEFAULT_GENERATED_SAMPLES = 1000


def names() -> list[str]:
    """Valid data set names for :func:`load`."""
    return list(SOURCES)


@dataclass(eq=False)
class Dataset:
    """Train, validation and test tensors plus what is needed to use them.

    ``X_*`` have shape ``(n, n_features)`` and dtype ``dtype``; for
    classification ``y_*`` are int64 class indices of shape ``(n,)``, for
    regression they have shape ``(n, 1)`` and dtype ``dtype``. ``mean`` and
    ``std`` are the training statistics used to standardize (``None`` when
    ``standardize=False``).
    """

    name: str
    task: str
    X_train: Tensor
    y_train: Tensor
    X_val: Tensor
    y_val: Tensor
    X_test: Tensor
    y_test: Tensor
    n_features: int
    n_classes: int | None
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    mean: Tensor | None = None
    std: Tensor | None = None
    seed: int = 0
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    note: str = ""
    source: str | None = None
    indices: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.X_val.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    @property
    def train(self) -> tuple[Tensor, Tensor]:
        """``(X_train, y_train)``."""
        return self.X_train, self.y_train

    @property
    def val(self) -> tuple[Tensor, Tensor]:
        """``(X_val, y_val)``."""
        return self.X_val, self.y_val

    @property
    def test(self) -> tuple[Tensor, Tensor]:
        """``(X_test, y_test)``."""
        return self.X_test, self.y_test

    def part(self, which: str) -> tuple[Tensor, Tensor]:
        """``(X, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if which not in ("train", "val", "test"):
            raise ValueError(f"which must be one of 'train', 'val', 'test', got {which!r}")
        return getattr(self, which)

    def to(self, device: str | torch.device) -> Dataset:
        """A copy with every tensor moved to ``device``."""
        moved = {
            k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()
        }
        return Dataset(**moved)

    def __repr__(self) -> str:
        kind = self.task if self.n_classes is None else f"{self.task}, {self.n_classes} classes"
        return (
            f"Dataset({self.name!r}, {kind}, {self.n_features} features, "
            f"train/val/test = {self.n_train}/{self.n_val}/{self.n_test})"
        )


def _raw(
    name: str, seed: int, n_samples: int | None, options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[str] | None, list[str] | None]:
    """``(X, y, feature_names, class_names)`` as numpy arrays, before any splitting."""
    from sklearn import datasets as skd  # (here: importing scikit-learn takes about a second)

    src = SOURCES[name]
    if src.bundled:
        if options:
            raise ValueError(
                f"generator options {sorted(options)} only apply to the generated data sets "
                f"moons, circles, blobs, not to {name!r}"
            )
        loaders: dict[str, Callable[..., Any]] = {
            "digits": skd.load_digits,
            "breast_cancer": skd.load_breast_cancer,
            "wine": skd.load_wine,
            "iris": skd.load_iris,
        }
        bunch = skd.load_diabetes(scaled=False) if name == "diabetes" else loaders[name]()
        feats = [str(f) for f in bunch.feature_names]
        classes = (
            [str(t) for t in bunch.target_names] if src.task == "classification" else None
        )
        return np.asarray(bunch.data, np.float64), np.asarray(bunch.target), feats, classes

    n = DEFAULT_GENERATED_SAMPLES if n_samples is None else n_samples
    kw = {**GENERATOR_DEFAULTS[name], **options}
    try:
        if name == "moons":
            X, y = skd.make_moons(n_samples=n, random_state=seed, **kw)
        elif name == "circles":
            X, y = skd.make_circles(n_samples=n, random_state=seed, **kw)
        else:
            X, y = skd.make_blobs(n_samples=n, random_state=seed, **kw)
    except TypeError as err:
        raise ValueError(f"bad generator option for {name!r}: {err}") from None
    feats = [f"x{j}" for j in range(X.shape[1])]
    return np.asarray(X, np.float64), np.asarray(y), feats, [str(c) for c in np.unique(y)]


def load(
    name: str | Path,
    *,
    target: str | None = None,
    task: str | None = None,
    split: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    standardize: bool = True,
    dtype: torch.dtype = torch.float32,
    n_samples: int | None = None,
    **options: Any,
) -> Dataset:
    """Load, split (stratified for classification), standardize and convert a data set.

    Args:
        name: one of ``digits``, ``breast_cancer``, ``wine``, ``iris``, ``diabetes``
            (bundled with scikit-learn), ``moons``, ``circles``, ``blobs`` (generated),
            or the path of your own ``.csv`` or ``.npz`` file (see :mod:`descend.data.files`).
        target: a CSV file's target column (an ``.npz`` file's target array, default ``y``).
        task: ``"classification"`` or ``"regression"`` for a file, overriding the
            task inferred from its target (integers or text: classes; fractions: regression).
        split: fractions ``(train, val, test)``, each >= 0, summing to 1, train > 0.
            Sizes are ``n * fraction`` rounded by largest remainders; a
            classification split keeps every class within one example of its
            share ``n_c * size / n`` in every part.
        seed: seeds the generator (for generated sets), the subsample and the split.
        standardize: subtract the training mean and divide by the training
            standard deviation (population, ``ddof=0``; features constant on
            the training set are only centered). Targets are left as they are.
        dtype: floating dtype of the features (and of regression targets).
        n_samples: generated sets: how many points (default 1000); bundled
            sets: a seeded (stratified) subsample of this size, ``None`` for all.
        **options: generator keywords overriding the defaults, e.g.
            ``noise=0.3`` for moons, ``centers=4`` for blobs.

    Classification labels are int64 of shape ``(n,)``; regression targets have
    shape ``(n, 1)`` and ``dtype``. For ``diabetes`` the target is in its
    natural units (25..346, std about 77), see :data:`DIABETES_NOTE`.
    """
    fractions = check_split(split)
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch dtype such as torch.float32, got {dtype!r}")
    if n_samples is not None and (
        not isinstance(n_samples, int | np.integer) or isinstance(n_samples, bool) or n_samples < 3
    ):
        raise ValueError(f"n_samples must be None or an integer >= 3, got {n_samples!r}")
    rng = np.random.default_rng([int(seed), 0x5EED])
    key = str(name).strip().lower()
    if key not in SOURCES and files.is_path(name):
        if n_samples is not None or options:
            raise ValueError(f"n_samples and generator options apply to the named data sets, not to the file {name}")
        table = files.read(name, target, task)
        files.too_few_rows(name, len(table.X), fractions)
        files.check_range(name, table, float(torch.finfo(dtype).max), str(dtype).removeprefix("torch."))
        note = files.describe(Path(name).name, table)
        return _assemble(Path(name).stem, table.task, table.X, table.y, table.feature_names, table.class_names,
                         fractions, rng, seed, standardize, dtype, note, str(name))
    if key not in SOURCES:
        raise ValueError(
            f"unknown data set {name!r}; valid names: {', '.join(SOURCES)}, or the path of a .csv or .npz file"
        )
    if target is not None or task is not None:
        raise ValueError(f"target and task apply to your own .csv/.npz files, not to the bundled data set {key!r}")

    src = SOURCES[key]
    X, y, feature_names, class_names = _raw(key, seed, n_samples, options)
    classification = src.task == "classification"
    if src.bundled and n_samples is not None:
        if n_samples > len(X):
            raise ValueError(
                f"n_samples must be at most {len(X)} for {key!r} (its size), got {n_samples}"
            )
        keep, _ = split_indices(
            y if classification else None, [n_samples, len(X) - n_samples], rng,
            stratify=classification,
        )
        keep = np.sort(keep)
        X, y = X[keep], y[keep]
    if split_sizes(len(X), fractions)[0] < 1:
        raise ValueError(f"split={split!r} leaves no training example out of n={len(X)}")
    note = DIABETES_NOTE if key == "diabetes" else src.description
    return _assemble(key, src.task, X, y, feature_names, class_names, fractions, rng, seed, standardize, dtype,
                     note, None)


def _moments(train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature mean and std of ``train`` (std 1 where constant), and the scale to compute in: 1, or
    for values whose squares overflow float64 (beyond about 1e154) the column's largest magnitude."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = train.mean(axis=0), train.std(axis=0)
    scale = np.ones(train.shape[1])
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        big = np.abs(train).max(axis=0)
        scale = np.where(big > 0.0, big, 1.0)
        mean, std = (train / scale).mean(axis=0) * scale, (train / scale).std(axis=0) * scale
    return mean, np.where(std > 0.0, std, 1.0), scale


def _assemble(
    name: str, task: str, X: np.ndarray, y: np.ndarray, feature_names: list[str] | None,
    class_names: list[str] | None, fractions: tuple[float, float, float], rng: np.random.Generator,
    seed: int, standardize: bool, dtype: torch.dtype, note: str, source: str | None,
) -> Dataset:
    """Split (stratified for classification), standardize on train and convert to tensors."""
    classification = task == "classification"
    sizes = split_sizes(len(X), fractions)
    parts = split_indices(y if classification else None, sizes, rng, stratify=classification)

    mean = std = None
    Xs = [X[idx] for idx in parts]
    if standardize:
        mean, std, scale = _moments(Xs[0])
        Xs = [(x / scale - mean / scale) / (std / scale) for x in Xs]  # (scale 1: (x - mean) / std)

    def features(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=torch.float64).to(dtype)

    def targets(idx: np.ndarray) -> Tensor:
        if classification:
            return torch.as_tensor(y[idx], dtype=torch.int64)
        return torch.as_tensor(y[idx], dtype=torch.float64).to(dtype).reshape(len(idx), -1)

    n_classes = int(len(np.unique(y))) if classification else None
    if classification and class_names is not None and len(class_names) != n_classes:
        class_names = None
    return Dataset(
        name=name,
        task=task,
        X_train=features(Xs[0]),
        y_train=targets(parts[0]),
        X_val=features(Xs[1]),
        y_val=targets(parts[1]),
        X_test=features(Xs[2]),
        y_test=targets(parts[2]),
        n_features=int(X.shape[1]),
        n_classes=n_classes,
        feature_names=feature_names,
        class_names=class_names,
        mean=None if mean is None else features(mean),
        std=None if std is None else features(std),
        seed=int(seed),
        split=fractions,
        note=note,
        source=source,
        indices={"train": parts[0], "val": parts[1], "test": parts[2]},
    )


class LeastSquaresFit(NamedTuple):
    """Ordinary least squares on the training split: ``y ~ X weight + bias``."""

    weight: Tensor  # (n_features, n_targets), float64
    bias: Tensor  # (n_targets,), float64
    train_mse: float
    val_mse: float
    test_mse: float


def least_squares(dataset: Dataset) -> LeastSquaresFit:
    r"""Exact minimizer of the training mean squared error of a linear model with intercept.

    Solves ``min_{w, b} J(w, b) = 1/n sum_i (x_i . w + b - y_i)^2`` on the training
    split with ``torch.linalg.lstsq`` in float64 (on ``[X, 1]``), and reports
    ``1/m sum (x . w + b - y)^2`` on train, val and test (``nan`` for an empty
    part). An iterative solver minimizing the same loss (``descend.models.losses.mse``
    on ``descend.models.linear_regression``) must approach ``train_mse`` from above.
    """
    if dataset.task != "regression":
        raise ValueError(
            f"least squares needs a regression data set, got {dataset.task} data set {dataset.name!r}"
        )
    X = dataset.X_train.detach().cpu().double()
    y = dataset.y_train.detach().cpu().double()
    A = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], dim=1)
    sol = torch.linalg.lstsq(A, y, driver="gelsd").solution
    weight, bias = sol[:-1], sol[-1]

    def mse(part: str) -> float:
        Xp, yp = dataset.part(part)
        if len(Xp) == 0:
            return float("nan")
        pred = Xp.detach().cpu().double() @ weight + bias
        return float(((pred - yp.detach().cpu().double()) ** 2).mean())

    return LeastSquaresFit(weight, bias, mse("train"), mse("val"), mse("test"))


def least_squares_mse(dataset: Dataset, split: str = "train") -> float:
    """Reference MSE of ordinary least squares (see :func:`least_squares`) on ``split``.

    ``split="train"`` is the minimum of the training loss ``1/n sum (x.w + b - y)^2``,
    the value an iterative solver converges to; ``"val"`` and ``"test"`` are the
    generalization references.

    >>> least_squares_mse(load("diabetes"))          # doctest: +SKIP
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be one of 'train', 'val', 'test', got {split!r}")
    fit = least_squares(dataset)
    return {"train": fit.train_mse, "val": fit.val_mse, "test": fit.test_mse}[split]
