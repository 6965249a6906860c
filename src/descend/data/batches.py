r"""Epochs, batches and shards, reproducible from ``(seed, epoch)``.

Note 003's bookkeeping: with ``n`` examples and batch size ``b``, one epoch is
one pass over the data and takes ``n / b`` iterations (``ceil(n / b)`` when the
last, shorter batch is kept; ``floor(n / b)`` with ``drop_last``)::

    b = n      full-batch gradient descent      1 iteration per epoch
    b = 1      pure (online) SGD                n iterations per epoch
    1 < b < n  mini-batch SGD                   ceil(n / b) iterations per epoch

The order of epoch ``e`` is ``torch.randperm(n)`` drawn from a
``torch.Generator`` seeded with a hash of ``(seed, e)`` (numpy's
``SeedSequence``), so it depends on nothing else: a resumed run sets
``batches.epoch = e`` and sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

Tensor = torch.Tensor


def _check_batch_size(batch_size: object, n: int) -> int:
    """``batch_size`` as an int in ``[1, n]`` (``None`` means ``n``)."""
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(
            f"batch_size must be None (full batch) or an integer in [1, {n}], got {batch_size!r}"
        )
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size must be None (full batch) or an integer in [1, {n}] (n = {n} examples), "
            f"got {batch_size}"
        )
    return int(batch_size)


def fit_batch_size(batch_size: int | None, n: int) -> tuple[int | None, str | None]:
    """``batch_size`` clamped to the ``n`` training examples there are, and a note saying so.

    A batch larger than the training set is the whole set (full-batch gradient descent), as a
    ``torch.utils.data.DataLoader`` would make it; the note (None when nothing changed) says so.
    Anything else (None, a batch that fits, a bad value for :class:`Batches` to refuse) is
    returned as it is.

    >>> fit_batch_size(64, 12)[0], fit_batch_size(64, 100)
    (12, (64, None))
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size <= n:
        return batch_size, None
    return n, (f"batch size {batch_size} is larger than the training set ({n} examples): each step uses "
               f"the whole training set (batch {n}, full-batch gradient descent)")


def _check_count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def iterations_per_epoch(n: int, batch_size: int | None, drop_last: bool = False) -> int:
    """Iterations in one epoch: ``ceil(n / b)``, or ``floor(n / b)`` with ``drop_last`` (``b = n`` for ``None``).

    >>> iterations_per_epoch(1797, 64), iterations_per_epoch(1797, 64, drop_last=True)
    (29, 28)
    """
    n = _check_count("n", n, 1)
    b = _check_batch_size(batch_size, n)
    return n // b if drop_last else math.ceil(n / b)


def epoch_seed(seed: int, epoch: int) -> int:
    """The 64-bit generator seed of epoch ``epoch``: a hash of ``(seed, epoch)`` only."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)
    return int(state[0])


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """``torch.randperm(n)`` from a CPU generator seeded with ``epoch_seed(seed, epoch)``."""
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=gen)


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous slice of a global batch of ``size`` examples.

    Each rank gets ``size // world_size`` examples and the first ``size % world_size``
    ranks one more (as ``numpy.array_split``), so the slices of ranks ``0..w-1``
    concatenated are the global batch.
    """
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class Batches:
    """One epoch of ``(xb, yb)`` batches every time it is iterated.

    Args:
        X, y: tensors with the same first dimension ``n``.
        batch_size: ``None`` for full-batch gradient descent, ``1`` for pure SGD,
            ``k`` for mini-batches of ``k`` (an integer in ``[1, n]``). With sharding
            this is the *global* batch size.
        shuffle: draw a new order every epoch (``permutation(epoch)``); with
            ``False`` the stored order is used. A full batch is never reordered
            (the order does not change its gradient) and is yielded without a copy.
        seed: with the epoch, the only input of the order.
        drop_last: skip the last batch when it is shorter than ``batch_size``.
        rank, world_size: yield only rank ``rank``'s contiguous slice of every
            global batch (sizes as :func:`shard_bounds`: ``B // w``, the first
            ``B % w`` ranks one more), so ``world_size`` ranks iterating with the
            same arguments together see exactly the global batches of one process.
            Every rank runs ``len(batches)`` iterations; a rank's slice may be empty
            when a global batch has fewer than ``world_size`` examples.

    When shards differ in size, averaging the ranks' mean-loss gradients is not
    the global mean gradient: scale rank ``r``'s mean loss by ``len(xb) / B_i``
    (``B_i = global_sizes()[i]``) and sum over ranks instead.

    ``epoch`` is the epoch the next iteration will produce; iterating advances
    it by one (when the iteration starts), and it may be set to resume.
    """

    def __init__(
        self,
        X: Tensor,
        y: Tensor,
        batch_size: int | None = None,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(X, Tensor) or not isinstance(y, Tensor):
            raise ValueError(
                f"X and y must be tensors, got {type(X).__name__} and {type(y).__name__}"
            )
        if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
            raise ValueError(
                f"X and y must have the same first dimension, got shapes {tuple(X.shape)} "
                f"and {tuple(y.shape)}"
            )
        n = int(X.shape[0])
        if n < 1:
            raise ValueError("X and y must hold at least one example, got 0")
        self.X = X
        self.y = y
        self.n = n
        self.batch_size = _check_batch_size(batch_size, n)
        self.shuffle = bool(shuffle)
        self.seed = _check_count("seed", seed, 0)
        self.drop_last = bool(drop_last)
        self.world_size = _check_count("world_size", world_size, 1)
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or not (
            0 <= rank < self.world_size
        ):
            raise ValueError(
                f"rank must be an integer in [0, {self.world_size - 1}] (world_size = "
                f"{self.world_size}), got {rank!r}"
            )
        self.rank = int(rank)
        self._epoch = 0

    @property
    def full_batch(self) -> bool:
        """Whether every iteration uses all ``n`` examples (gradient descent proper)."""
        return self.batch_size == self.n

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter(self)`` produces."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = _check_count("epoch", value, 0)

    def __len__(self) -> int:
        return iterations_per_epoch(self.n, self.batch_size, self.drop_last)

    def global_sizes(self) -> list[int]:
        """Sizes of the global batches of every epoch (the same each epoch)."""
        b, n = self.batch_size, self.n
        return [min(b, n - i * b) for i in range(len(self))]

    def permutation(self, epoch: int | None = None) -> Tensor:
        """The order of the examples in ``epoch`` (default: the next one), int64 of shape ``(n,)``.

        ``torch.randperm(n)`` from a generator seeded with ``epoch_seed(seed, epoch)``;
        ``arange(n)`` when not shuffling or for a full batch.
        """
        e = self._epoch if epoch is None else _check_count("epoch", epoch, 0)
        if not self.shuffle or self.full_batch:
            return torch.arange(self.n)
        return epoch_permutation(self.n, self.seed, e)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        e = self._epoch
        self._epoch = e + 1
        return self.iter_epoch(e)

    def iter_epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches of ``epoch`` without touching ``self.epoch``."""
        epoch = _check_count("epoch", epoch, 0)
        ordered = not self.shuffle or self.full_batch
        perm = None if ordered else self.permutation(epoch).to(self.X.device)
        y_perm = None if ordered else perm.to(self.y.device)

        def gen() -> Iterator[tuple[Tensor, Tensor]]:
            for i, size in enumerate(self.global_sizes()):
                lo, hi = shard_bounds(size, self.rank, self.world_size)
                start = i * self.batch_size
                if ordered and hi - lo == self.n:  # the whole set, as stored
                    yield self.X, self.y
                elif ordered:  # slices are views: no copy
                    yield self.X[start + lo : start + hi], self.y[start + lo : start + hi]
                else:
                    idx = perm[start + lo : start + hi]
                    yield self.X[idx], self.y[y_perm[start + lo : start + hi]]

        return gen()

    def __repr__(self) -> str:
        shard = f", rank={self.rank}/{self.world_size}" if self.world_size > 1 else ""
        return (
            f"Batches(n={self.n}, batch_size={self.batch_size}, iterations={len(self)}, "
            f"shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch}{shard})"
        )


def stream(
    X: Tensor, y: Tensor, batch_size: int | None = 1, seed: int = 0, *, shuffle: bool = True
) -> Iterator[tuple[Tensor, Tensor]]:
    """An endless generator of ``(xb, yb)`` for online learning.

    The examples are visited in the order ``epoch_permutation(n, seed, e)`` for
    ``e = 0, 1, 2, ...`` back to back (the permutations of
    ``Batches(X, y, b, seed=seed)`` for ``b < n``; the stored order with
    ``shuffle=False``), and each batch holds the next ``batch_size`` of them: every
    batch has exactly ``batch_size`` examples, a batch may straddle two epochs,
    and each example appears once in every ``n`` consecutive draws.
    ``batch_size=None`` draws all ``n`` examples each time. Arguments are checked
    when ``stream`` is called, not at the first ``next``.
    """
    n = Batches(X, y, None, shuffle=shuffle, seed=seed).n  # validates X, y and seed
    size = _check_batch_size(batch_size, n)

    def order(epoch: int) -> Tensor:
        return epoch_permutation(n, seed, epoch) if shuffle else torch.arange(n)

    def gen() -> Iterator[tuple[Tensor, Tensor]]:
        epoch, pos = 0, 0
        current = order(0)
        while True:
            pieces = []
            need = size
            while need:
                if pos == n:
                    epoch, pos = epoch + 1, 0
                    current = order(epoch)
                k = min(need, n - pos)
                pieces.append(current[pos : pos + k])
                pos, need = pos + k, need - k
            idx = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            yield X[idx.to(X.device)], y[idx.to(y.device)]

    return gen()
