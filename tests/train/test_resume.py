"""Done-when 3: checkpoints, resume and crashes.

A run stopped after iteration k and resumed from its last checkpoint ends
with bitwise the same parameters and the same metrics (all but the
wall-clock fields) as the run that was never interrupted: in this process
for many k and configurations, and in a subprocess killed with SIGKILL,
including once in the middle of writing a checkpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from descend import data, schedules
from descend.train import (
    CheckpointError,
    Phase,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    build_model,
    load_checkpoint,
    read_metrics,
)
from descend.train import checkpoint as ckpt
from descend.train.observe import TIMING_FIELDS
from tests.train import _killable as killable

ROOT = Path(__file__).resolve().parents[2]
DIGITS = data.load("digits")
BREAST = data.load("breast_cancer")


class Stop(Exception):
    """Stands for a crash at a chosen iteration."""


def untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


CONFIGS = {
    # dropout (RNG), per-iteration cosine, Adam -> momentum SGD at the end of epoch 2
    "phases-dropout": dict(
        dataset=DIGITS, model=("mlp", {"hidden": (32,), "dropout": 0.2}),
        cfg=lambda: TrainConfig(phases=[Phase(2, "adam", "cosine", lr=3e-3), Phase(2, "momentum", lr=0.02)],
                                batch_size=64, checkpoint_every=4, log_every=5),
    ),
    # accumulation over 3 batches, clipping, plateau on the validation loss per epoch, BatchNorm
    "accumulate-clip-plateau-batchnorm": dict(
        dataset=DIGITS, model=("mlp", {"hidden": (16,), "batchnorm": True}),
        cfg=lambda: TrainConfig(optimizer="nesterov", lr=0.05, batch_size=50, accumulate=3, clip_norm=0.5,
                                schedule=schedules.plateau(schedules.constant(0.05), patience=0, factor=0.5),
                                schedule_unit="epoch", epochs=5, checkpoint_every=3, log_every=4),
    ),
    # SWATS switches from Adam to SGD mid-run (a loose eps so that it happens early)
    "swats": dict(
        dataset=BREAST, model=("logistic", {}),
        cfg=lambda: TrainConfig(optimizer="adam", lr=0.01, swats=True, swats_eps=1e-3, batch_size=100,
                                epochs=6, checkpoint_every=2, log_every=3),
    ),
}
STOPS = {"phases-dropout": [1, 13, 34, 35, 50], "accumulate-clip-plateau-batchnorm": [2, 7, 16],
         "swats": [3, 9, 20]}


def run(name: str, out: Path, stop_at: int | None = None, resume: bool = False, overwrite: bool = False):
    spec = CONFIGS[name]
    model = build_model(spec["model"][0], spec["dataset"], spec["model"][1], seed=0)

    def callback(trainer: Trainer) -> None:
        if trainer.iteration == stop_at:
            raise Stop

    cfg = spec["cfg"]()
    cfg.out, cfg.progress, cfg.plots, cfg.overwrite = out, False, False, overwrite
    trainer = Trainer(model, spec["dataset"], cfg, callback=callback)
    return trainer, trainer.fit(resume=resume), model


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict:
    out = {}
    for name in CONFIGS:
        folder = tmp_path_factory.mktemp(name)
        trainer, result, model = run(name, folder)
        out[name] = (result, {k: v.clone() for k, v in model.state_dict().items()},
                     read_metrics(folder / "metrics.jsonl"))
    return out


@pytest.mark.parametrize("name,k", [(n, k) for n, ks in STOPS.items() for k in ks])
def test_resume_after_a_crash_at_iteration_k_is_bitwise_the_uninterrupted_run(name, k, references, tmp_path) -> None:
    ref, ref_params, ref_lines = references[name]
    with pytest.raises(Stop):
        run(name, tmp_path, stop_at=k)
    every = CONFIGS[name]["cfg"]().checkpoint_every
    if k <= every:  # crashed before the first checkpoint: nothing to resume, start over
        with pytest.raises(CheckpointError, match="no checkpoint at .*--overwrite"):
            run(name, tmp_path, resume=True)
        _, result, model = run(name, tmp_path, overwrite=True)
    else:
        # (the crash is in iteration k's callback, before that iteration's checkpoint)
        assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == (k - 1) // every * every
        _, result, model = run(name, tmp_path, resume=True)
    assert same_params(model.state_dict(), ref_params)
    assert result.final == ref.final
    assert untimed(result.history) == untimed(ref.history)
    assert untimed(result.log) == untimed(ref.log)
    assert result.phases == ref.phases
    assert untimed(read_metrics(tmp_path / "metrics.jsonl")) == untimed(ref_lines)


def test_the_swats_configuration_really_switches(references) -> None:
    result = references["swats"][0]
    assert [p["optimizer"] for p in result.phases] == ["Adam", "Momentum"]
    assert 0 < result.phases[1]["iteration"] < 18


# ---------------------------------------------------------------------------- SIGKILL


def _script(out: Path, *args: str, result: Path | None = None) -> list[str]:
    """The command that runs tests/train/_killable.py (with ``args``) in a fresh process."""
    cmd = [sys.executable, "-m", "tests.train._killable", "--out", str(out), *args]
    return cmd + (["--result", str(result)] if result else [])


def test_sigkill_after_iteration_k_and_during_a_checkpoint_write_then_resume_is_bitwise(tmp_path) -> None:
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    # 68 iterations (4 epochs of 17), Adam -> momentum at 34, checkpoints every 5 iterations
    for args, killed_at, last_checkpoint in [
        (["--kill-after", "7"], 7, 5),                     # mid-epoch, redo 6 and 7
        (["--resume", "--kill-after", "36"], 36, 35),      # just after the phase switch
        (["--resume", "--kill-in-write", "45"], 45, 40),   # half of checkpoint 45 written
    ]:
        proc = subprocess.run(_script(run_dir, *args), cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == -9, proc.stderr
        state = load_checkpoint(run_dir / "checkpoint.pt")  # the previous checkpoint is intact
        assert state["iteration"] == last_checkpoint
        lines = read_metrics(run_dir / "metrics.jsonl")
        assert max(r["iteration"] for r in lines) <= killed_at
    assert list(run_dir.glob(".checkpoint.pt.tmp-*"))  # the torn temporary file
    proc = subprocess.run(_script(run_dir, "--resume", result=tmp_path / "run.pt"), cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not list(run_dir.glob(".checkpoint.pt.tmp-*"))
    # the uninterrupted run, here in this process (one torch thread, as in the script)
    ref_model, trainer = killable.run(str(ref_dir))
    result = trainer.fit()
    ref = {"model": ref_model.state_dict(), "history": result.history, "log": result.log,
           "final": result.final, "phases": result.phases, "iterations": result.iterations}
    got = torch.load(tmp_path / "run.pt")
    assert got["iterations"] == ref["iterations"] == 68
    assert same_params(got["model"], ref["model"])
    assert got["final"] == ref["final"] and got["phases"] == ref["phases"]
    assert untimed(got["history"]) == untimed(ref["history"]) and untimed(got["log"]) == untimed(ref["log"])
    assert untimed(read_metrics(run_dir / "metrics.jsonl")) == untimed(read_metrics(ref_dir / "metrics.jsonl"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test_accuracy"] == ref["final"]["test_accuracy"] and summary["iterations"] == 68


# ---------------------------------------------------------------------------- bad checkpoints


def small_run(out: Path, hidden: int = 8, **kw) -> tuple[Trainer, nn.Module]:
    model = build_model("mlp", DIGITS, {"hidden": (hidden,)}, seed=0)
    cfg = TrainConfig(batch_size=128, epochs=1, checkpoint_every=3, out=out, progress=False, plots=False, **kw)
    return Trainer(model, DIGITS, cfg), model


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_missing_truncated_and_foreign_checkpoints_fail_clearly_and_overwrite_nothing(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint at {tmp_path / 'none'}"):
        small_run(tmp_path / "none")[0].fit(resume=True)
    assert not (tmp_path / "none").exists()

    small_run(tmp_path / "a")[0].fit()
    before = snapshot(tmp_path / "a")
    cases = [
        (dict(hidden=16), "saved from another model"),
        (dict(seed=1), r"seed: 0 saved, 1 given cannot change on resume .*resume with the saved settings"),
        (dict(optimizer="sgd"), r"other settings \(optimizer: 'adam' saved, 'sgd' given\)"),
        (dict(optimizer="sgd", apply_changes=True), "does not fit this run's optimizer"),
    ]
    for kw, message in cases:
        apply = kw.pop("apply_changes", False)
        with pytest.raises(CheckpointError, match=message):
            small_run(tmp_path / "a", **kw)[0].fit(resume=True, apply_changes=apply)
        assert snapshot(tmp_path / "a") == before

    payload = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    (tmp_path / "a" / "checkpoint.pt").write_bytes(payload[: len(payload) // 3])
    before = snapshot(tmp_path / "a")
    with pytest.raises(CheckpointError, match=r"checkpoint .*checkpoint.pt is corrupt: the file is truncated"):
        small_run(tmp_path / "a")[0].fit(resume=True)
    assert snapshot(tmp_path / "a") == before

    with pytest.raises(ValueError, match="already holds a run"):
        small_run(tmp_path / "a")[0].fit()
    assert snapshot(tmp_path / "a") == before


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    trainer, _ = small_run(tmp_path)
    writes = []

    def fail_on_second(f, payload):
        writes.append(len(payload))
        if len(writes) == 2:
            f.write(payload[:100])
            raise OSError("disk full")
        f.write(payload)

    monkeypatch.setattr(ckpt, "_write", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 3
    assert not list(tmp_path.glob(".checkpoint.pt.tmp-*"))


def test_keep_checkpoints_retains_the_last_n(tmp_path) -> None:
    small_run(tmp_path, keep_checkpoints=2)[0].fit()  # 9 iterations: checkpoints at 3, 6 and the end
    kept = sorted(p.name for p in tmp_path.glob("checkpoint-*.pt"))
    assert kept == ["checkpoint-00000006.pt", "checkpoint-00000009.pt"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 9


# ---------------------------------------------------------------------------- non-finite


class NanAt:
    """Cross-entropy that returns NaN at its n-th call in training (evaluations run without grad)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self, out, y):
        self.calls += torch.is_grad_enabled()
        loss = nn.functional.cross_entropy(out, y)
        return loss * float("nan") if self.calls == self.n else loss


@pytest.mark.parametrize("optimizer", ["adam", torch.optim.SGD])
def test_a_non_finite_loss_stops_with_iteration_lr_and_last_good_checkpoint(optimizer, tmp_path) -> None:
    model = build_model("softmax", DIGITS, seed=0)
    cfg = TrainConfig(optimizer=optimizer, lr=0.01, schedule="cosine", batch_size=64, epochs=2,
                      checkpoint_every=5, out=tmp_path, progress=False)
    trainer = Trainer(model, DIGITS, cfg, loss=NanAt(23))
    lr_at_23 = trainer.scheduler.lr_at(22)[0]
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit()
    err = info.value
    assert (err.iteration, err.epoch, err.checkpoint, err.checkpoint_iteration) == (23, 1, tmp_path / "checkpoint.pt", 20)
    assert err.lr == pytest.approx(lr_at_23, rel=1e-12)
    assert isinstance(err, RuntimeError)
    text = str(err)
    assert "iteration 23 (epoch 2)" in text and f"lr {lr_at_23:g}" in text and "lower learning rate" in text
    assert str(tmp_path / "checkpoint.pt") in text
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["iteration"] == 20 and ckpt.finite(state["model"], state["optimizer"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and "iteration 23" in summary["error"]


def test_a_non_finite_state_is_never_checkpointed(tmp_path) -> None:
    model = build_model("softmax", DIGITS, seed=0)
    model.register_buffer("scale", torch.ones(3))  # not used by the loss

    def poison(trainer: Trainer) -> None:
        if trainer.iteration == 7:
            model.scale[1] = float("inf")

    cfg = TrainConfig(batch_size=64, epochs=1, checkpoint_every=5, out=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged, match="iteration 10 .*a parameter or optimizer state is not finite"):
        Trainer(model, DIGITS, cfg, callback=poison).fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 5


def test_a_replayable_stream_resumes_bitwise(tmp_path) -> None:
    def go(out, stop_at=None, resume=False):
        model = build_model("softmax", DIGITS, seed=0)

        def callback(trainer: Trainer) -> None:
            if trainer.iteration == stop_at:
                raise Stop

        stream = data.stream(DIGITS.X_train, DIGITS.y_train, batch_size=16, seed=5)
        cfg = TrainConfig(optimizer="adam", lr=0.01, iterations=90, accumulate=2, eval_interval=30,
                          checkpoint_every=20, out=out, progress=False, plots=False)
        r = Trainer(model, stream, cfg, eval_data=DIGITS, callback=callback).fit(resume=resume)
        return r, model

    ref, ref_model = go(tmp_path / "ref")
    with pytest.raises(Stop):
        go(tmp_path / "run", stop_at=47)
    r, model = go(tmp_path / "run", resume=True)  # skips the 80 batches the checkpoint had consumed
    assert same_params(model.state_dict(), ref_model.state_dict())
    assert r.final == ref.final and untimed(r.history) == untimed(ref.history) and len(r.history) == 3
