"""``descend train`` and ``descend lr-find`` on small files of the user's own, run as the real command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from descend import data
from descend.train import TrainingDiverged, train
from tests.cli_app import descend


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


def test_a_european_export_trains_on_its_numbers_and_says_how_it_was_read(tmp_path: Path) -> None:
    """';' between columns, decimal commas, Windows-1252 and CRLF (Excel's CSV in Western Europe): the run
    reads the 20 rows and 3 features, prints how, and trains exactly as on the plain CSV of the same table."""
    X, y = points()
    rows = [[*map(repr, map(float, r)), "oui" if t else "non"] for r, t in zip(X, y)]
    euro = "".join(";".join(c.replace(".", ",") for c in r) + "\r\n" for r in [["größe", "b", "c", "label"], *rows])
    (tmp_path / "euro.csv").write_bytes(euro.encode("cp1252"))
    (tmp_path / "plain.csv").write_text("".join(",".join(r) + "\n" for r in [["größe", "b", "c", "label"], *rows]))
    k = int(y.sum())
    r = descend("train", "euro.csv", "--target", "label", "--model", "softmax", "--epochs", "3", "--out", "euro",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = (f"data: euro.csv: 20 rows, 3 features, 2 classes (non: {20 - k}, oui: {k}); task classification "
            f"(inferred from the text labels in 'label'); not UTF-8: read as Windows-1252 (Western European) text; "
            f"columns separated by ';'; decimal commas read as decimal points (1,5 = 1.5)")
    assert line in r.stdout
    s = json.loads((tmp_path / "euro" / "summary.json").read_text())
    assert (s["data"]["n_train"] + s["data"]["n_val"] + s["data"]["n_test"], s["data"]["n_features"],
            s["data"]["n_classes"]) == (20, 3, 2)
    assert s["data"]["note"] == line.removeprefix("data: ")
    ref = train(  # the plain file's run, in-process: the same numbers to the last bit
        tmp_path / "plain.csv", "softmax", target="label", epochs=3, progress=False, plots=False)
    assert {k: s[k] for k in ref.final} == ref.final
    (tmp_path / "mixed.csv").write_text(euro.replace(",", ".", 5))  # some decimal points among the commas
    r = descend("train", "mixed.csv", "--target", "label", "--out", "mixed", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and not (tmp_path / "mixed").exists()
    assert r.stderr.startswith("error: data file mixed.csv holds numbers with a decimal comma (line ")


def test_a_loss_infinite_before_any_step_blames_the_data_not_the_lr(tmp_path: Path) -> None:
    """Targets of 1e20 (in float32's range) square past it: the first loss is inf before any step, and
    advising a lower lr (what a diverging run gets) would not help."""
    (tmp_path / "big.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{(i + 1) * 1e20}\n" for i in range(30)))
    with pytest.raises(TrainingDiverged) as err:
        train(tmp_path / "big.csv", "linear", target="y", epochs=2, progress=False, plots=False)
    message = str(err.value)
    assert message.startswith("training diverged at iteration 1 (epoch 1): the loss is not finite = inf")
    big = float(data.load(tmp_path / "big.csv", target="y").y_train.max())  # the training split's largest
    assert ("this is the initial model on the first batch, before any step, so no lr causes it: look at the data's "
            f"scale (the regression targets reach {big:.3g}: their squares pass float32's largest number, 3.4e+38; "
            "rescale them, e.g. divide by 1e+21) and the model") in message
    assert "lower learning rate" not in message


def test_a_warning_is_one_line_naming_what_failed(tmp_path: Path) -> None:
    """TensorBoard cannot write (a file where its folder belongs): the run goes on and the command says
    so in one 'warning:' line naming that file, without Python's file, line and source of the call."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tensorboard").write_text("not a folder")
    r = descend("train", "iris", "--epochs", "1", "--out", "run", "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(warned) == 1 and warned[0].startswith("warning: TensorBoard logging cannot start: "), r.stderr
    assert "(File exists: run/tensorboard)" in warned[0] and "metrics.jsonl holds every record" in warned[0]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) >= 2
