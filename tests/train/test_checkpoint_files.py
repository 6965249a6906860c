"""Checkpoints that were damaged say "corrupt" in plain words; TensorBoard files read back equal the metrics."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from descend import data
from descend.train import (
    CheckpointError,
    TrainConfig,
    Trainer,
    build_model,
    load_checkpoint,
    read_metrics,
    train,
)
from descend.train import checkpoint as ckpt

IRIS = data.load("iris")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    model = build_model("mlp", IRIS, {"hidden": (16,)}, seed=0)
    Trainer(model, IRIS, TrainConfig(epochs=2, batch_size=16, out=out, progress=False, tensorboard=False)).fit()
    return out


def resume(path: Path) -> None:
    model = build_model("mlp", IRIS, {"hidden": (16,)}, seed=0)
    Trainer(model, IRIS, TrainConfig(epochs=2, batch_size=16, progress=False)).fit(resume=path)


def check_message(err: pytest.ExceptionInfo, path: Path) -> None:
    text = str(err.value)
    assert f"checkpoint {path} is corrupt" in text
    assert "weights_only" not in text and "pickle" not in text.lower()


def test_flipped_bytes_in_the_tensor_data_are_caught(run_dir: Path, tmp_path: Path) -> None:
    good = (run_dir / "checkpoint.pt").read_bytes()
    state = load_checkpoint(run_dir / "checkpoint.pt")
    weight = state["model"]["net.0.weight"].numpy().tobytes()
    at = good.find(weight[:32])  # the first layer's weights, inside the payload
    assert at > 0
    rng = random.Random(0)
    for trial in range(5):
        bad = bytearray(good)
        for i in rng.sample(range(at, at + len(weight)), 16):
            bad[i] ^= 0xFF
        path = tmp_path / f"flipped{trial}.pt"
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError) as err:
            resume(path)
        check_message(err, path)
        assert "checksum does not match" in str(err.value)


def test_bytes_flipped_anywhere_never_load_silently(run_dir: Path, tmp_path: Path) -> None:
    good = (run_dir / "checkpoint.pt").read_bytes()
    reference = load_checkpoint(run_dir / "checkpoint.pt")
    rng = random.Random(1)
    for _ in range(20):
        bad = bytearray(good)
        i = rng.randrange(len(bad))
        bad[i] ^= 1 << rng.randrange(8)
        path = tmp_path / "one.pt"
        path.write_bytes(bytes(bad))
        try:
            state = load_checkpoint(path)
        except CheckpointError as err:
            assert "corrupt" in str(err) or "not a descend training checkpoint" in str(err)
            assert "weights_only" not in str(err)
            continue
        # a flip in bytes that carry no data (zip padding, a comment) may load: then nothing changed
        assert all(torch.equal(state["model"][k], v) for k, v in reference["model"].items())


def test_missing_keys_and_random_bytes(run_dir: Path, tmp_path: Path) -> None:
    state = load_checkpoint(run_dir / "checkpoint.pt")
    for key in ("signature", "optimizer", "rng"):
        partial = {k: v for k, v in state.items() if k != key}
        path = tmp_path / f"no-{key}.pt"
        path.write_bytes(ckpt.serialize(partial))
        with pytest.raises(CheckpointError) as err:
            resume(path)
        check_message(err, path)
        assert f"it lacks {key}" in str(err.value)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(random.Random(2).randbytes(5000))
    with pytest.raises(CheckpointError) as err:
        resume(noise)
    check_message(err, noise)
    pickled = tmp_path / "objects.pt"
    torch.save({"format": ckpt.FORMAT, "payload": object()}, pickled)  # needs unpickling: refused, not run
    with pytest.raises(CheckpointError) as err:
        resume(pickled)
    check_message(err, pickled)


def test_tensorboard_event_files_read_back_equal_the_metrics(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = train("iris", "softmax", optimizer="sgd", lr=0.1, epochs=3, batch_size=30, log_every=2, out=tmp_path,
              progress=False)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"iteration/loss", "iteration/lr", "epoch/train_loss", "epoch/val_loss", "epoch/val_accuracy"} <= tags
    records = read_metrics(tmp_path / "metrics.jsonl")
    for kind, field in (("iteration", "loss"), ("iteration", "lr"), ("epoch", "train_loss"), ("epoch", "val_loss"),
                        ("epoch", "val_accuracy")):
        events = acc.Scalars(f"{kind}/{field}")
        expected = [(x["iteration"], x[field]) for x in records if x["type"] == kind]
        assert [e.step for e in events] == [i for i, _ in expected]
        for e, (_, v) in zip(events, expected):  # event files hold float32
            assert math.isclose(e.value, v, rel_tol=1e-6, abs_tol=1e-9)
    assert [e.value for e in acc.Scalars("epoch/val_accuracy")] == pytest.approx(
        [h["val_accuracy"] for h in r.history], rel=1e-6)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_checkpoint_from_another_run_or_an_edited_metrics_file_is_refused(tmp_path: Path) -> None:
    """--resume takes the run's settings from the checkpoint, so only the files can tell that
    checkpoint.pt came from another run (or that metrics.jsonl was re-saved by an editor): cutting
    metrics.jsonl at the checkpoint's offset then split a record. The checkpoint records the SHA-256
    of the metrics it had written; a mismatch is refused with nothing changed."""
    runs = {}
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}"
        train("iris", "softmax", lr=0.1, epochs=2, batch_size=16, seed=seed, out=out, progress=False,
              tensorboard=False)
        runs[seed] = out
    (runs[0] / "checkpoint.pt").write_bytes((runs[1] / "checkpoint.pt").read_bytes())
    edited = tmp_path / "edited"
    train("iris", "softmax", lr=0.1, epochs=2, batch_size=16, out=edited, progress=False, tensorboard=False)
    metrics = edited / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes().replace(b"\n", b"\r\n"))
    for folder, seed in ((runs[0], 1), (edited, 0)):  # (the settings of the checkpoint's run, as --resume takes them)
        before = _snapshot(folder)
        with pytest.raises(CheckpointError, match=r"does not match its metrics.jsonl.*another run, or "
                                                  r"metrics.jsonl was edited\. Nothing was changed"):
            train("iris", "softmax", lr=0.1, epochs=4, batch_size=16, seed=seed, out=folder, progress=False,
                  tensorboard=False, resume=True)
        assert _snapshot(folder) == before


def test_tensorboard_shows_each_step_once_after_a_resume(tmp_path: Path) -> None:
    """A run that logged past its last checkpoint before it stopped: the resumed run purges those
    events, so every step appears once and equals metrics.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    kw = dict(optimizer="sgd", lr=0.1, batch_size=30, log_every=1, out=tmp_path, progress=False, tensorboard=True)
    train("iris", "softmax", epochs=3, checkpoint_every=5, keep_checkpoints=3, **kw)
    kept = sorted(tmp_path.glob("checkpoint-*.pt"))
    (tmp_path / "checkpoint.pt").write_bytes(kept[0].read_bytes())  # back to an earlier one: as if it stopped there
    train("iris", "softmax", epochs=3, resume=True, **kw)
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("iteration/loss")]
    assert steps == sorted(set(steps))
    records = [x for x in read_metrics(tmp_path / "metrics.jsonl") if x["type"] == "iteration"]
    assert steps == [x["iteration"] for x in records]


FAILING_DISK = r"""
import json, os, shutil, sys
from pathlib import Path
from descend.train import read_metrics, train

def fill_disk(tr):  # every open TensorBoard event file now writes to /dev/full: ENOSPC, as on a full disk
    full = os.open("/dev/full", os.O_WRONLY)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "tfevents" in os.readlink(f"/proc/self/fd/{fd}"):
                os.dup2(full, int(fd))
        except OSError:
            pass

def remove_folder(tr):  # the log folder is replaced by a file
    shutil.rmtree(tr.out / "tensorboard")
    (tr.out / "tensorboard").write_text("not a folder")

for name, breaks in (("full", fill_disk), ("gone", remove_folder)):
    out = Path(sys.argv[1]) / name
    r = train("iris", "softmax", optimizer="sgd", lr=0.1, epochs=2, batch_size=16, log_every=1, out=out,
              progress=False, plots=False, tensorboard=True,
              callback=lambda tr: breaks(tr) if tr.iteration == 5 else None)
    print(json.dumps({"name": name, "status": r.status, "records": len(read_metrics(out / "metrics.jsonl"))}))
"""


def test_tensorboard_that_cannot_write_warns_once_and_the_run_goes_on(tmp_path: Path) -> None:
    """A full disk (writes to /dev/full) or a removed log folder mid-run: tensorboard's writer thread
    printed a traceback, and the next scalar raised it again and stopped the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", FAILING_DISK, str(tmp_path)], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root / "src")}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception in thread" not in proc.stderr, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    # 2 epochs of 6 iterations: 12 iteration lines, 2 epoch lines and the phase line, all in metrics.jsonl
    assert results == [{"name": "full", "status": "completed", "records": 15},
                       {"name": "gone", "status": "completed", "records": 15}]
    warned = " ".join(proc.stderr.split())
    assert warned.count("TensorBoardWarning") == 1, proc.stderr  # once, for the full disk
    assert re.search(r"TensorBoardWarning: TensorBoard logging stopped at iteration 6: \S+events.out.tfevents\S+ "
                     r"could not be written \(No space left on device\); TensorBoard is off for the rest of this "
                     r"run, training goes on and metrics.jsonl holds every record", warned), proc.stderr
    acc = EventAccumulator(str(tmp_path / "full" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("iteration/loss")] == [1, 2, 3, 4, 5]  # what was written before
