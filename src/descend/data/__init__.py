"""Real data sets bundled with scikit-learn, splits, standardization and batching.

::

    from descend import data
    ds = data.load("digits")                      # stratified 60/20/20, standardized on train
    for xb, yb in data.Batches(ds.X_train, ds.y_train, batch_size=64, seed=0):
        ...                                       # one epoch: ceil(n / 64) iterations
    data.least_squares_mse(data.load("diabetes")) # OLS reference for iterative solvers
    data.load("my.csv", target="label")           # your own file: the same split and scaling

============================  ==================================================
``load(name, ...)``           a :class:`Dataset` with train/val/test tensors
``load("f.csv", target=)``    your own CSV or ``.npz`` (see :mod:`descend.data.files`)
``Batches(X, y, b, ...)``     one epoch of batches per iteration, seeded by ``(seed, epoch)``
``iterations_per_epoch``      ``ceil(n / b)`` (``floor`` with ``drop_last``), note 003
``fit_batch_size(b, n)``      a batch larger than the training set clamped to it, with a note
``stream(X, y, b, seed)``     endless batches for online learning
``least_squares(_mse)``       exact linear least squares on the training split
============================  ==================================================
"""

from . import files
from .batches import (
    Batches,
    epoch_permutation,
    epoch_seed,
    fit_batch_size,
    iterations_per_epoch,
    shard_bounds,
    stream,
)
from .datasets import (
    DIABETES_NOTE,
    Dataset,
    LeastSquaresFit,
    least_squares,
    least_squares_mse,
    load,
    names,
)

__all__ = [
    "Dataset",
    "load",
    "files",
    "names",
    "DIABETES_NOTE",
    "Batches",
    "iterations_per_epoch",
    "fit_batch_size",
    "stream",
    "epoch_seed",
    "epoch_permutation",
    "shard_bounds",
    "least_squares",
    "least_squares_mse",
    "LeastSquaresFit",
]
