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

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import IterableDataset

from descend import schedules
from descend.train import CheckpointError, Phase, Trainer, load_checkpoint, read_metrics
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


# ---------------------------------------------------------------------------- 3. a torch scheduler, resumed


def scheduled_run(out: Path, stop_at: int | None = None, resume: bool = False, register: bool = True,
                  names: tuple[str, ...] = ("sched",), kill: bool = False):
    """Momentum SGD with a torch StepLR stepped from the callback after every iteration, dropout (RNG),
    14 iterations over 4-iteration epochs, a checkpoint every 4; ``stop_at``: a crash there."""
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)

    def callback(trainer: Trainer) -> None:
        sched.step()
        if trainer.iteration == stop_at:
            if kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise Stop

    trainer = Trainer(model, (X, Y), iterations=14, batch_size=16, optimizer=opt, callback=callback,
                      loss=F.cross_entropy, checkpoint_every=4, out=out, log_every=1, progress=False, plots=False,
                      extra_state={n: sched for n in names} if register else None)
    return trainer.fit(resume=resume), model, sched


@pytest.mark.parametrize("k", [6, 8], ids=["mid-way", "at a checkpoint's iteration"])
def test_a_torch_scheduler_given_as_extra_state_resumes_bitwise(k, tmp_path) -> None:
    ref, ref_model, ref_sched = scheduled_run(tmp_path / "ref")
    assert [x["lr"] for x in ref.log] == [0.5 * 0.5 ** (i // 3) for i in range(14)]
    with pytest.raises(Stop):
        scheduled_run(tmp_path / "run", stop_at=k)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["extra_state"]["sched"]["last_epoch"] == 4
    r, model, sched = scheduled_run(tmp_path / "run", resume=True)
    same(model, ref_model)
    assert sched.state_dict() == ref_sched.state_dict() and sched.last_epoch == 14
    assert untimed(r.log) == untimed(ref.log) and untimed(r.history) == untimed(ref.history)
    assert untimed(read_metrics(tmp_path / "run" / "metrics.jsonl")) == untimed(read_metrics(tmp_path / "ref" /
                                                                                             "metrics.jsonl"))


def test_an_optimizer_instance_whose_lr_a_schedule_moved_resumes(tmp_path) -> None:
    """Its repr (lr included) was recorded as the run's optimizer setting at each checkpoint, so a
    resume, given the same optimizer built afresh, was refused as changed settings."""

    def go(out: Path, stop_at: int | None = None, resume: bool = False):
        model = net()

        def callback(trainer: Trainer) -> None:
            if trainer.iteration == stop_at:
                raise Stop

        r = Trainer(model, (X, Y), iterations=12, batch_size=16, optimizer=sgd(model), schedule="cosine",
                    callback=callback, loss=F.cross_entropy, checkpoint_every=4, out=out, log_every=1,
                    progress=False, plots=False).fit(resume=resume)
        return r, model

    ref, ref_model = go(tmp_path / "ref")
    with pytest.raises(Stop):
        go(tmp_path / "run", stop_at=6)
    r, model = go(tmp_path / "run", resume=True)
    same(model, ref_model)
    assert untimed(r.log) == untimed(ref.log)
    assert {**r.config, "out": None} == {**ref.config, "out": None} and "lr: 0.5\n" in r.config["optimizer"]


def test_a_torch_scheduler_not_given_is_warned_of_and_its_resume_refused(tmp_path) -> None:
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with pytest.raises(ValueError, match=r"callback=lambda tr: sched.step\(\).*give it as extra_state=\{'sched': "
                                         r"sched\} so that checkpoints hold it"):  # (the way the refusal names)
        Trainer(model, (X, Y), optimizer=opt, schedule=torch.optim.lr_scheduler.StepLR(opt, 3), loss=F.cross_entropy)
    with pytest.warns(UserWarning, match=r"torch LR scheduler was built on the optimizer \(SGD\).*extra_state="):
        with pytest.raises(Stop):
            scheduled_run(tmp_path, stop_at=6, register=False)
    with pytest.raises(CheckpointError, match=r"cannot be resumed exactly: a torch LR scheduler.*its first step.*"
                                              r"extra_state=\{'sched': sched\}"), pytest.warns(UserWarning):
        scheduled_run(tmp_path, resume=True, register=False)
    with pytest.raises(CheckpointError, match=r"holds extra state for none, but this run's extra_state gives "
                                              r"'sched'.*start over"):
        scheduled_run(tmp_path, resume=True)


def test_extra_state_under_other_names_or_of_the_wrong_kind_is_refused(tmp_path) -> None:
    with pytest.raises(Stop):
        scheduled_run(tmp_path, stop_at=6)
    with pytest.raises(CheckpointError, match=r"holds extra state for 'sched', but this run's extra_state gives "
                                              r"'lr', 'sched'; give the objects of the run that wrote it"):
        scheduled_run(tmp_path, resume=True, names=("sched", "lr"))
    with pytest.raises(ValueError, match=r"extra_state\['ema'\] must have state_dict\(\) and load_state_dict\(\).* "
                                         r"got int"):
        Trainer(net(), (X, Y), extra_state={"ema": 3}, loss=F.cross_entropy)
    with pytest.raises(ValueError, match=r"extra_state must be a mapping.*got list"):
        Trainer(net(), (X, Y), extra_state=[3], loss=F.cross_entropy)

    class Opaque:  # a state torch.load(weights_only=True) refuses: the checkpoint would not read back
        def state_dict(self) -> dict:
            return {"thing": Stop()}

        def load_state_dict(self, state: dict) -> None:
            pass

    with pytest.raises(ValueError, match=r"extra_state\['opaque'\]\.state_dict\(\) holds something a checkpoint "
                                         r"cannot hold"):
        Trainer(net(), (X, Y), iterations=4, batch_size=16, checkpoint_every=2, out=tmp_path / "opaque",
                extra_state={"opaque": Opaque()}, loss=F.cross_entropy, progress=False, plots=False).fit()
    assert not (tmp_path / "opaque" / "checkpoint.pt").exists()


def test_sigkill_then_resume_with_a_torch_scheduler_is_bitwise(tmp_path) -> None:
    def script(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "tests.train.test_trainer_gaps", "--out", str(tmp_path / "run"), *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)

    proc = script("--kill-after", "10")
    assert proc.returncode == -9, proc.stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["iteration"] == 8
    proc = script("--resume", "--result", str(tmp_path / "run.pt"))
    assert proc.returncode == 0, proc.stderr
    ref, ref_model, ref_sched = scheduled_run(tmp_path / "ref")
    got = torch.load(tmp_path / "run.pt")
    assert got["sched"] == ref_sched.state_dict()
    assert all(torch.equal(got["model"][k], v) for k, v in ref_model.state_dict().items())
    assert untimed(got["log"]) == untimed(ref.log) and untimed(got["history"]) == untimed(ref.history)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--result")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--kill-after", type=int)
    args = ap.parse_args()
    torch.set_num_threads(1)  # (as tests/train/conftest.py has it for the reference run)
    r, model, sched = scheduled_run(Path(args.out), stop_at=args.kill_after, resume=args.resume, kill=True)
    torch.save({"model": model.state_dict(), "sched": sched.state_dict(), "log": r.log, "history": r.history},
               args.result)


if __name__ == "__main__":
    main()
