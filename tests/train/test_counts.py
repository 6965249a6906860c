"""Done-when 2: epochs, batches and iterations as note 003 counts them.

digits has n = 1078 training examples: full batch -> 1 iteration per epoch,
batch 1 -> 1078, batch 64 -> ceil(1078 / 64) = 17 (16 with drop_last).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from descend import data
from descend.train import TrainConfig, Trainer, build_model, read_metrics

DIGITS = data.load("digits")
N = DIGITS.n_train


class Recorder(nn.Module):
    """Wraps a model and records every training batch it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x)
        return self.inner(x)


def run(batch_size: int | None, **kw) -> tuple[Trainer, object, Recorder, list[int]]:
    model = Recorder(build_model("softmax", DIGITS, seed=0))
    steps: list[int] = []
    cfg = TrainConfig(batch_size=batch_size, optimizer="sgd", lr=0.01, progress=False, evaluate=False, **kw)
    trainer = Trainer(model, DIGITS, cfg)
    trainer.optimizer.register_step_post_hook(lambda *a: steps.append(1))
    return trainer, trainer.fit(), model, steps


@pytest.mark.parametrize(
    "batch_size,per_epoch,epochs",
    [(None, 1, 3), (1, N, 1), (64, math.ceil(N / 64), 3)],
    ids=["full-batch", "pure-sgd", "mini-batch-64"],
)
def test_iterations_per_epoch_match_note_003(batch_size, per_epoch, epochs, tmp_path) -> None:
    trainer, r, model, steps = run(batch_size, epochs=epochs, out=tmp_path, plots=False, log_every=7)
    assert trainer.iterations_per_epoch == trainer.batches_per_epoch == per_epoch
    assert r.iterations == len(steps) == epochs * per_epoch
    assert r.epochs == epochs == len(r.history)
    assert [h["iteration"] for h in r.history] == [per_epoch * (e + 1) for e in range(epochs)]
    # every batch is b examples except the last of an epoch: n - (ceil(n/b) - 1) b
    b = batch_size or N
    sizes = [len(x) for x in model.seen]
    assert sizes == ([b] * (per_epoch - 1) + [N - (per_epoch - 1) * b]) * epochs
    # shuffle, then split: the batches of epoch e are the rows of X in the order permutation(e)
    for e in range(epochs):
        epoch_rows = torch.cat(model.seen[e * per_epoch : (e + 1) * per_epoch])
        assert torch.equal(epoch_rows, DIGITS.X_train[trainer.feed.batches.permutation(e)])
    lines = read_metrics(tmp_path / "metrics.jsonl")
    assert sum(r["type"] == "epoch" for r in lines) == epochs
    assert [r["iteration"] for r in lines if r["type"] == "iteration"] == list(range(7, r.iterations + 1, 7))


def test_drop_last_and_accumulation_change_the_count_as_documented() -> None:
    _, r, model, steps = run(64, epochs=2, drop_last=True)
    assert r.iterations == len(steps) == 2 * (N // 64) and {len(x) for x in model.seen} == {64}
    # 4 batches per step: ceil(17 / 4) = 5 optimizer steps per epoch, all 17 batches consumed
    trainer, r, model, steps = run(64, epochs=2, accumulate=4)
    assert trainer.iterations_per_epoch == 5 and r.iterations == len(steps) == 10
    assert len(model.seen) == 34 and sum(len(x) for x in model.seen) == 2 * N


def test_an_iteration_budget_stops_mid_epoch() -> None:
    _, r, model, steps = run(64, iterations=40)
    assert r.iterations == len(steps) == 40
    assert r.epochs == 2 and len(r.history) == 2  # 34 iterations make two epochs, 6 more are partial
    assert len(model.seen) == 40


def test_streaming_runs_the_step_budget_from_an_endless_iterator() -> None:
    X, y = DIGITS.train
    model = Recorder(build_model("softmax", DIGITS, seed=0))
    cfg = TrainConfig(iterations=150, optimizer="sgd", lr=0.05, eval_interval=50, progress=False)
    r = Trainer(model, data.stream(X, y, batch_size=8, seed=3), cfg, eval_data=DIGITS).fit()
    assert r.iterations == 150 and r.epochs == 0
    assert [len(x) for x in model.seen] == [8] * 150  # 1200 examples: a batch straddles the epoch end
    assert [h["iteration"] for h in r.history] == [50, 100, 150] and all(h["type"] == "eval" for h in r.history)
    assert r.final["test_accuracy"] > 0.8  # online learning works: one pass and a bit over the data


def test_streaming_needs_an_iteration_budget() -> None:
    X, y = DIGITS.train
    with pytest.raises(ValueError, match="iteration budget"):
        Trainer(build_model("softmax", DIGITS), data.stream(X, y), TrainConfig(), eval_data=DIGITS)
