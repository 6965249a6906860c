"""Three gaps the hand-loop audit (test_against_hand_loop.py) left, each against the hand loop or the
uninterrupted run:

* a stream with a plateau schedule and no validation data never fed the plateau (its lr never moved);
* clip_norm / clip_value left out parameters the optimizer holds beside the model's;
* a torch LR scheduler stepped from the callback was not in the checkpoints, so a resumed run
  differed from the uninterrupted one (and an optimizer instance whose lr a schedule had moved
  was refused on resume as "other settings").

Run as ``python -m tests.train.test_trainer_gaps --out DIR [--resume] [--kill-after K] [--result F]``
it is the scheduler run of the SIGKILL test.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import IterableDataset

from descend import schedules
from descend.train import Phase, Trainer
from descend.train.observe import TIMING_FIELDS
from tests.train.test_against_hand_loop import (
    XV,
    YV,
    Holding,
    X,
    Y,
    descend_order,
    hand_loop,
    net,
    same,
)

ROOT = Path(__file__).resolve().parents[2]


class Stop(Exception):
    """Stands for a crash at a chosen iteration."""


def untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


# ---------------------------------------------------------------------------- 1. a stream and a plateau


class Batches(IterableDataset):
    """Training data as an IterableDataset: the batches of ``epochs`` epochs in descend's order."""

    def __init__(self, epochs: int = 3) -> None:
        self.batches = [b for e in range(epochs) for b in descend_order(16)(e)]

    def __iter__(self):
        return iter(self.batches)


def plateau() -> schedules.Schedule:
    return schedules.plateau(schedules.constant(0.5), factor=0.5, patience=0)


def sgd(m: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(m.parameters(), lr=0.5)


@pytest.mark.parametrize("kw", [
    dict(schedule=plateau()),
    dict(schedule=plateau(), eval_data=(XV, YV)),  # validation data, but no interval to evaluate at
    dict(phases=[Phase(6, sgd, unit="iteration"), Phase(6, sgd, plateau(), unit="iteration")]),
], ids=["no validation", "validation without eval_interval", "a phase's plateau"])
def test_a_stream_with_a_plateau_and_nothing_to_feed_it_is_refused(kw) -> None:
    """Built without a word, the run then kept the plateau's lr from the first to the last step."""
    where = "phase 2's schedule" if "phases" in kw else "schedule"
    with pytest.raises(ValueError, match=rf"^{where} plateau\(constant\(0\.5\), factor=0\.5, patience=0\) is a "
                                         r"plateau.*stream.*no eval_interval.*Give eval_interval=N"):
        Trainer(net(), iter(Batches()), iterations=12, loss=F.cross_entropy, progress=False,
                **({"optimizer": sgd} if "phases" not in kw else {}), **kw)


def test_a_stream_without_validation_feeds_a_plateau_the_training_loss_of_each_interval() -> None:
    """As a run with epochs feeds the epoch's training loss when it does not validate: here the mean
    training loss (over the examples) of each eval_interval=3 iterations, against ReduceLROnPlateau."""
    stream = Batches(epochs=4)
    model = net()
    trainer = Trainer(model, iter(stream), iterations=15, eval_interval=3, loss=F.cross_entropy, optimizer=sgd,
                      schedule=plateau(), log_every=1, progress=False)
    r = trainer.fit()
    hand = net()
    opt = sgd(hand)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    torch.manual_seed(0)
    lrs, fed, total, n = [], [], 0.0, 0
    for i, (xb, yb) in enumerate(stream.batches[:15], 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        loss = F.cross_entropy(hand(xb), yb)
        loss.backward()
        opt.step()
        total, n = total + loss.item() * len(yb), n + len(yb)
        if i % 3 == 0:
            fed.append(total / n)
            sched.step(fed[-1])
            total, n = 0.0, 0
    same(model, hand)
    assert [x["lr"] for x in r.log] == lrs
    assert lrs == [0.5] * 12 + [0.25] * 3 and fed[3] > fed[2]  # one interval's loss rose: the lr halved
    assert trainer.optimizer.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


# ---------------------------------------------------------------------------- 2. clipping


@pytest.mark.parametrize("clip", [{"clip_norm": 0.05}, {"clip_value": 0.01}], ids=["clip_norm", "clip_value"])
def test_clipping_covers_a_loss_temperature_the_optimizer_holds_beside_the_model(clip) -> None:
    """The temperature's gradient was neither clipped nor counted in the norm: the Trainer clipped the
    model's parameters only, where the hand loop clips everything its optimizer steps."""

    def run_with(model: nn.Module, temp: nn.Parameter):
        return torch.optim.SGD([*model.parameters(), temp], lr=0.5, momentum=0.9), \
            (lambda out, y: F.cross_entropy(out / temp, y))

    model, temp = net(), nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    opt, loss = run_with(model, temp)
    Trainer(model, (X, Y), epochs=3, batch_size=16, optimizer=opt, loss=loss, progress=False, **clip).fit()
    hand, htemp = net(), nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
    hopt, hloss = run_with(hand, htemp)

    class Clipped(Holding):
        def step(self) -> None:
            params = [p for g in self.param_groups for p in g["params"]]
            if "clip_norm" in clip:
                torch.nn.utils.clip_grad_norm_(params, clip["clip_norm"])
            else:
                torch.nn.utils.clip_grad_value_(params, clip["clip_value"])
            super().step()

    hand_loop(hand, Clipped(hopt), 3, descend_order(16), loss_fn=hloss)
    same(model, hand)
    assert temp.item() == htemp.item() != 2.0
