"""The run folder after a crash, and with two runs at once: a process killed while it wrote its first
checkpoint leaves a temporary file that a later run or resume removes (and never takes for a
checkpoint); a second run in a folder whose run is still going is refused before it changes anything."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from descend.train import CheckpointError, load_checkpoint, read_metrics, train
from descend.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(optimizer="sgd", lr=0.1, epochs=1, batch_size=30, progress=False, plots=False, tensorboard=False)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_kill_during_the_first_checkpoint_write_is_cleaned_up_and_explained(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "tests.train._killable", "--out", str(run), "--kill-in-write", "5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    torn = list(run.glob(".checkpoint.pt.tmp-*"))
    assert len(torn) == 1 and not (run / "checkpoint.pt").exists()  # half a checkpoint, never renamed
    # a fresh run is refused with advice that works (it said: resume it with --resume)
    with pytest.raises(ValueError, match=r"already holds a run \(metrics.jsonl\); it stopped before its first "
                                         r"checkpoint, so it cannot be resumed: start over with overwrite=True"):
        train("iris", "softmax", out=run, **TINY)
    # a resume says what happened and removes the torn file (its process is gone)
    with pytest.raises(CheckpointError, match=rf"no checkpoint at {run / 'checkpoint.pt'}: the run was stopped "
                                              rf"while it wrote its first checkpoint \(the unfinished "
                                              rf"{torn[0].name} is not one, and was removed\)"):
        load_checkpoint(run / "checkpoint.pt")
    assert not torn[0].exists()
    # a live process's temporary file is its own: left alone
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        theirs = run / f".checkpoint.pt.tmp-{alive.pid}"
        theirs.write_bytes(b"being written")
        assert ckpt.remove_temporaries(run) == [] and theirs.exists()
    finally:
        alive.kill()
        alive.wait()
    assert ckpt.remove_temporaries(run) == [theirs]
    r = train("iris", "softmax", out=run, overwrite=True, **TINY)
    assert r.status == "completed" and load_checkpoint(run / "checkpoint.pt")["iteration"] == 3
    assert not list(run.glob(".*.tmp-*"))


HOLD = r"""
import sys, time
from pathlib import Path
from descend.train import train
out, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

def wait_after_the_first_checkpoint(tr):  # (written after iteration 1's callback)
    if tr.iteration == 2:
        ready.write_text("ready")
        for _ in range(6000):  # until the test says go (at most 10 minutes)
            if go.exists():
                break
            time.sleep(0.1)

r = train("iris", "softmax", optimizer="sgd", lr=0.1, epochs=2, batch_size=30, out=out, progress=False,
          plots=False, tensorboard=False, checkpoint_every=1, overwrite=True, callback=wait_after_the_first_checkpoint)
print(r.status, r.iterations)
"""


def test_a_second_run_in_a_folder_whose_run_is_going_is_refused(tmp_path: Path) -> None:
    run, ready, go = tmp_path / "run", tmp_path / "ready", tmp_path / "go"
    train("iris", "softmax", out=run, **TINY)  # an earlier run: the second one is started over
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(run), str(ready), str(go)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not ready.exists():  # (its first checkpoint is written: it holds the folder)
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        before = files(run)
        for kw in (dict(overwrite=True), dict(resume=True, epochs=3)):
            with pytest.raises(ValueError, match=rf"run folder {run} is in use by another run that is still going"):
                train("iris", "softmax", out=run, **{**TINY, **kw})
            assert files(run) == before  # nothing cleared, truncated or written
    finally:
        go.write_text("go")
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert out.split() == ["completed", "6"]
    records = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]  # the first run's records, whole
    assert json.loads((run / "summary.json").read_text())["iterations"] == 6
    r = train("iris", "softmax", out=run, **{**TINY, "epochs": 3}, resume=True)  # once it ended: free again
    assert r.iterations == 9


def test_a_schedule_given_or_left_out_on_resume_applies_from_the_checkpoint(tmp_path: Path) -> None:
    """--resume --schedule cosine --apply-changes on a run without a schedule was first advised
    (apply the new settings with --apply-changes) and then refused (one of the runs has a schedule
    and the other has none)."""
    kw = dict(optimizer="sgd", lr=0.1, batch_size=30, out=tmp_path, progress=False, plots=False, tensorboard=False)
    train("iris", "softmax", epochs=2, **kw)  # 3 iterations per epoch, constant lr
    r = train("iris", "softmax", epochs=4, schedule="cosine", resume=True, apply_changes=True, **kw)
    # cosine(0.1, 12) from step 6: the lr an unbroken cosine run has there
    assert [h["lr"] for h in r.history] == pytest.approx([0.1, 0.1, 0.1 * (1 + math.cos(math.pi * 9 / 12)) / 2, 0.0])
    assert r.hints[0].startswith("the schedule cosine(0.1, 12) (per iteration) applies from iteration 6, at its "
                                 "step 6")
    r = train("iris", "softmax", epochs=5, resume=True, apply_changes=True, **kw)  # the schedule left out
    assert r.history[-1]["lr"] == 0.1 and "from iteration 12 it has none" in r.hints[0]
    changes = [json.loads(line)["changes"] for line in (tmp_path / "changes.jsonl").read_text().splitlines()]
    assert [c["schedule"] for c in changes] == [{"saved": None, "given": "cosine"}, {"saved": "cosine", "given": None}]
