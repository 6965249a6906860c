"""``descend train`` and ``descend lr-find`` on small files of the user's own, run as the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(sys.executable).with_name("descend")


def descend(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """The installed ``descend`` command (the entry point itself when the script is not beside python)."""
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-c", "from descend.cli import app; app()"]
    return subprocess.run([*cmd, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def flat(text: str) -> str:
    return " ".join(text.split())


def points(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3)).round(4)
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


def test_a_training_set_smaller_than_the_batch_is_one_batch_with_a_note(tmp_path: Path) -> None:
    """20 rows (12 for training) and the default batch of 64: train uses the whole training set per step
    and says so, as lr-find does, with the same words."""
    X, y = points()
    (tmp_path / "tiny.csv").write_text("a,b,c,label\n" + "".join(
        f"{r[0]},{r[1]},{r[2]},{t}\n" for r, t in zip(X, y)))
    note = ("note: batch size 64 is larger than the training set (12 examples): each step uses the whole "
            "training set (batch 12, full-batch gradient descent)")
    r = descend("train", "tiny.csv", "--target", "label", "--epochs", "3", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert note in flat(r.stdout)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["config"]["batch_size"] == 64 and s["data"]["batch_size"] == 12 and s["data"]["n_train"] == 12
    assert s["iterations_per_epoch"] == 1 and s["iterations"] == 3 and s["epochs"] == 3
    assert note.removeprefix("note: ") in s["hints"]
    r = descend("lr-find", "--data", "tiny.csv", "--target", "label", "--num-iter", "20", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert note in flat(r.stdout) and "batch 12 (the whole training set)" in flat(r.stdout)
