"""A DataLoader or a list of batches trains for epochs and iteration budgets exactly like a bundled set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from descend import data, optim
from descend.train import Trainer, build_model

DIGITS = data.load("digits")
X, Y = DIGITS.train


def loader(batch_size: int = 108, **kw) -> DataLoader:
    return DataLoader(TensorDataset(X, Y), batch_size=batch_size, **kw)  # 1078 rows: 10 batches of 108 (last 106)


def by_hand(epochs: int) -> dict[str, torch.Tensor]:
    """The plain PyTorch loop over the same loader."""
    model = build_model("softmax", DIGITS, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    for _ in range(epochs):
        for xb, yb in loader():
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.state_dict()


def test_an_iteration_budget_reiterates_the_loader() -> None:
    model = build_model("softmax", DIGITS, seed=0)
    r = Trainer(model, loader(), loss=F.cross_entropy, iterations=100, optimizer="sgd", lr=0.1).fit()
    assert (r.status, r.iterations, r.epochs) == ("completed", 100, 10)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), by_hand(10).values()))


@pytest.mark.parametrize("as_list", [False, True], ids=["DataLoader", "list of batches"])
def test_epochs_with_a_loader_equal_the_hand_written_loop(as_list: bool) -> None:
    model = build_model("softmax", DIGITS, seed=0)
    source = list(loader()) if as_list else loader()
    trainer = Trainer(model, source, loss=F.cross_entropy, epochs=3, optimizer="sgd", lr=0.1, log_every=5)
    r = trainer.fit()
    assert (trainer.iterations_per_epoch, r.iterations, r.epochs, len(r.history)) == (10, 30, 3, 3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), by_hand(3).values()))
    # the final train metrics are one more pass over the loader in eval mode
    with torch.no_grad():
        loss = sum(F.cross_entropy(model(xb), yb).item() * len(yb) for xb, yb in loader()) / len(X)
    assert r.final["train_loss"] == pytest.approx(loss, rel=1e-6)


def test_eval_data_takes_loaders_and_the_task_comes_from_the_labels() -> None:
    model = build_model("softmax", DIGITS, seed=0)
    val = DataLoader(TensorDataset(*DIGITS.val), batch_size=50)
    r = Trainer(model, loader(), eval_data={"val": val, "test": DIGITS.test}, epochs=2, optimizer="adam",
                lr=0.01).fit()
    with torch.no_grad():
        pred = model(DIGITS.X_val).argmax(1)
        loss = F.cross_entropy(model(DIGITS.X_val), DIGITS.y_val).item()
    assert r.final["val_accuracy"] == pytest.approx(float((pred == DIGITS.y_val).double().mean()), abs=1e-12)
    assert r.final["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert "test_accuracy" in r.final and [h["epoch"] for h in r.history] == [1, 2]
    assert "val_accuracy" in r.history[0]


def test_distributed_sampler_gets_the_epoch() -> None:
    seen: list[int] = []

    class Recording(DistributedSampler):
        def set_epoch(self, epoch: int) -> None:
            seen.append(epoch)
            super().set_epoch(epoch)

    sampler = Recording(TensorDataset(X, Y), num_replicas=1, rank=0, shuffle=True, seed=7)
    batches: list[torch.Tensor] = []

    def record(out, yb):
        if torch.is_grad_enabled():
            batches.append(yb)
        return F.cross_entropy(out, yb)

    model = build_model("softmax", DIGITS, seed=0)
    Trainer(model, DataLoader(TensorDataset(X, Y), batch_size=108, sampler=sampler), loss=record, epochs=3,
            evaluate=False).fit()
    assert seen == [0, 1, 2]
    for epoch in range(3):  # each epoch's order is the sampler's permutation for seed + epoch
        g = torch.Generator().manual_seed(7 + epoch)
        order = torch.randperm(len(X), generator=g)
        assert torch.equal(torch.cat(batches[10 * epoch : 10 * epoch + 10]), Y[order])


def test_a_generator_stays_a_stream() -> None:
    model = build_model("softmax", DIGITS, seed=0)
    with pytest.raises(ValueError, match="a stream has no epochs"):
        Trainer(model, iter(loader()), loss=F.cross_entropy, epochs=2)
    r = Trainer(model, iter(loader()), loss=F.cross_entropy, iterations=25).fit()
    assert r.iterations == 10  # one pass: the stream ended before the budget, and the result says so
    assert r.hints[0] == "the data stream ended after 10 of the 25 iterations of the budget"


class _Rows(torch.utils.data.IterableDataset):
    """An IterableDataset without len(): its DataLoader cannot be asked for its length."""

    def __iter__(self):
        return iter(zip(X[:200], Y[:200]))


def test_the_iterator_of_an_iterable_dataset_loader_trains_as_a_stream_like_the_hand_loop() -> None:
    with pytest.raises(ValueError, match=r"no len\(\).*iter\(data\)"):  # the advice given for the loader...
        Trainer(build_model("softmax", DIGITS, seed=0), DataLoader(_Rows(), batch_size=20), iterations=5)
    model = build_model("softmax", DIGITS, seed=0)  # ...which then works (bool() of the iterator asks len())
    r = Trainer(model, iter(DataLoader(_Rows(), batch_size=20)), loss=F.cross_entropy, iterations=5,
                optimizer="sgd", lr=0.1, log_every=1).fit()
    hand = build_model("softmax", DIGITS, seed=0)
    opt = optim.SGD(hand.parameters(), lr=0.1)
    losses = []
    for _, (xb, yb) in zip(range(5), DataLoader(_Rows(), batch_size=20)):
        opt.zero_grad()
        loss = F.cross_entropy(hand(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert (r.status, r.iterations) == ("completed", 5)
    assert [rec["loss"] for rec in r.log] == pytest.approx(losses, rel=1e-6)


@pytest.mark.parametrize("where", ["loader", "sampler"])
def test_a_seeded_shuffling_loader_gives_the_hand_loops_order(where: str) -> None:
    """Building the Trainer peeks at the first batch (task, default loss); that must not advance
    the loader's generator, or every epoch's order differs from the hand loop's with the same seed."""

    def seeded() -> DataLoader:
        g = torch.Generator().manual_seed(3)
        if where == "loader":
            return DataLoader(TensorDataset(X, Y), batch_size=108, shuffle=True, generator=g)
        sampler = torch.utils.data.RandomSampler(TensorDataset(X, Y), generator=g)
        return DataLoader(TensorDataset(X, Y), batch_size=108, sampler=sampler)

    hand = build_model("softmax", DIGITS, seed=0)
    opt = optim.SGD(hand.parameters(), lr=0.1)
    losses = []
    hand_loader = seeded()
    for _ in range(2):
        for xb, yb in hand_loader:
            opt.zero_grad()
            loss = F.cross_entropy(hand(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    model = build_model("softmax", DIGITS, seed=0)
    r = Trainer(model, seeded(), epochs=2, optimizer="sgd", lr=0.1, log_every=1).fit()  # default loss: peeks
    assert len(r.log) == 20 and [rec["loss"] for rec in r.log] == pytest.approx(losses, rel=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), hand.state_dict().values()))


def test_building_the_trainer_reads_one_batch_of_the_loader_once() -> None:
    """Task, default loss and dtype check share one peek: a loader with workers starts them once."""

    class Counting(DataLoader):
        passes = 0

        def __iter__(self):
            Counting.passes += 1
            return super().__iter__()

    Trainer(build_model("softmax", DIGITS, seed=0), Counting(TensorDataset(X, Y), batch_size=108), epochs=1)
    assert Counting.passes == 1
