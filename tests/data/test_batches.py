"""descend.data.Batches, iterations_per_epoch, stream and sharding."""

from __future__ import annotations

import math

import pytest
import torch

from descend import data
from descend.data import Batches, iterations_per_epoch, shard_bounds


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


def indexed(n: int, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Features whose first column is the example's index, labels equal to it."""
    X = torch.arange(n, dtype=torch.float64).unsqueeze(1).repeat(1, d)
    return X, torch.arange(n)


@pytest.mark.parametrize("batch_size, expected", [(None, 1), (1, 1078), (64, 17), (1078, 1), (1077, 2)])
def test_iterations_per_epoch_on_digits(digits: data.Dataset, batch_size: int | None, expected: int) -> None:
    n = digits.n_train
    assert n == 1078
    b = Batches(digits.X_train, digits.y_train, batch_size)
    assert len(b) == expected == math.ceil(n / (batch_size or n))
    batches = list(b)
    assert len(batches) == expected
    sizes = [len(xb) for xb, _ in batches]
    assert sum(sizes) == n
    if batch_size == 64:
        assert sizes == [64] * 16 + [1078 - 16 * 64]


def test_iterations_per_epoch_function() -> None:
    assert iterations_per_epoch(1797, None) == 1
    assert iterations_per_epoch(1797, 1) == 1797
    assert iterations_per_epoch(1797, 64) == 29  # 28 * 64 = 1792, 5 left over
    assert iterations_per_epoch(1797, 64, drop_last=True) == 28
    assert iterations_per_epoch(128, 64, drop_last=True) == 2 == iterations_per_epoch(128, 64)


def test_drop_last(digits: data.Dataset) -> None:
    b = Batches(digits.X_train, digits.y_train, 64, drop_last=True)
    assert len(b) == 16
    assert [len(x) for x, _ in b] == [64] * 16


def test_every_example_once_per_epoch_and_pairs_stay_aligned() -> None:
    X, y = indexed(103)
    b = Batches(X, y, 10, seed=5)
    for _ in range(3):
        seen = []
        for xb, yb in b:
            assert torch.equal(xb[:, 0].long(), yb)  # rows of X and y move together
            seen.append(yb)
        assert torch.equal(torch.cat(seen).sort().values, torch.arange(103))


def test_reshuffled_every_epoch_and_reproducible() -> None:
    X, y = indexed(50)
    b = Batches(X, y, 7, seed=11)
    orders = [torch.cat([yb for _, yb in b]) for _ in range(4)]
    assert b.epoch == 4
    for e in range(4):
        assert torch.equal(orders[e], b.permutation(e))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    # a fresh object resumed at epoch 2 replays epoch 2 exactly
    resumed = Batches(X, y, 7, seed=11)
    resumed.epoch = 2
    assert torch.equal(torch.cat([yb for _, yb in resumed]), orders[2])
    assert resumed.epoch == 3
    # iter_epoch does not move the counter
    assert torch.equal(torch.cat([yb for _, yb in resumed.iter_epoch(0)]), orders[0])
    assert resumed.epoch == 3
    # another seed, another order
    assert not torch.equal(Batches(X, y, 7, seed=12).permutation(0), orders[0])
    # the order is a pure function of (seed, epoch)
    assert torch.equal(data.epoch_permutation(50, 11, 3), orders[3])


def test_interrupted_epoch_still_advances() -> None:
    X, y = indexed(20)
    b = Batches(X, y, 4)
    it = iter(b)
    next(it)
    assert b.epoch == 1
    assert torch.equal(torch.cat([yb for _, yb in b]), b.permutation(1))


def test_no_shuffle_and_full_batch_keep_stored_order() -> None:
    X, y = indexed(30)
    assert torch.equal(torch.cat([yb for _, yb in Batches(X, y, 8, shuffle=False)]), torch.arange(30))
    ((xb, yb),) = list(Batches(X, y))  # full batch: the tensors themselves
    assert xb is X and yb is y


@pytest.mark.parametrize("bad", [0, -1, 1079, 2.5, True, "64"])
def test_bad_batch_size_names_argument_value_and_range(digits: data.Dataset, bad: object) -> None:
    with pytest.raises(ValueError, match=rf"batch_size must be None \(full batch\) or an integer in \[1, 1078\].*got {bad!r}"):
        Batches(digits.X_train, digits.y_train, bad)
    with pytest.raises(ValueError, match="batch_size"):
        iterations_per_epoch(1078, bad)


def test_other_bad_arguments() -> None:
    X, y = indexed(10)
    with pytest.raises(ValueError, match="same first dimension"):
        Batches(X, y[:9], 2)
    with pytest.raises(ValueError, match=r"rank must be an integer in \[0, 1\] \(world_size = 2\), got 2"):
        Batches(X, y, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size must be an integer >= 1, got 0"):
        Batches(X, y, 2, world_size=0)
    b = Batches(X, y, 2)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got -1"):
        b.epoch = -1


def test_shard_bounds_split_like_array_split() -> None:
    assert [shard_bounds(10, r, 3) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [shard_bounds(2, r, 4) for r in range(4)] == [(0, 1), (1, 2), (2, 2), (2, 2)]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("batch_size", [None, 1, 5, 16])
def test_shards_of_all_ranks_concatenate_to_the_global_batch(world_size: int, batch_size: int | None) -> None:
    X, y = indexed(37)
    single = Batches(X, y, batch_size, seed=3)
    ranks = [Batches(X, y, batch_size, seed=3, rank=r, world_size=world_size) for r in range(world_size)]
    for _ in range(2):  # two epochs: the shards follow the reshuffle
        global_batches = list(single)
        shards = [list(r) for r in ranks]
        assert all(len(s) == len(global_batches) == len(single) for s in shards)
        for i, (xb, yb) in enumerate(global_batches):
            parts = [shards[r][i] for r in range(world_size)]
            assert torch.equal(torch.cat([p[0] for p in parts]), xb)
            assert torch.equal(torch.cat([p[1] for p in parts]), yb)
            sizes = [len(p[1]) for p in parts]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert single.global_sizes() == [len(yb) for _, yb in single]


def test_stream_is_endless_constant_size_and_follows_epoch_permutations() -> None:
    X, y = indexed(10)
    s = data.stream(X, y, 4, seed=9)
    draws = [next(s) for _ in range(10)]  # 40 examples = 4 epochs
    assert all(len(yb) == 4 for _, yb in draws)
    assert all(torch.equal(xb[:, 0].long(), yb) for xb, yb in draws)
    seq = torch.cat([yb for _, yb in draws])
    for e in range(4):
        assert torch.equal(seq[10 * e : 10 * (e + 1)], data.epoch_permutation(10, 9, e))
    ordered = data.stream(X, y, 3, shuffle=False)
    assert torch.cat([next(ordered)[1] for _ in range(4)]).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    with pytest.raises(ValueError, match="batch_size"):
        data.stream(X, y, 11)  # checked at the call, before the first draw


def test_repr() -> None:
    X, y = indexed(10)
    assert repr(Batches(X, y, 3, rank=1, world_size=2)) == (
        "Batches(n=10, batch_size=3, iterations=4, shuffle=True, seed=0, epoch=0, rank=1/2)"
    )
