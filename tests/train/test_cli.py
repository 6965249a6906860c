"""``descend train``: the command, its run folder and its errors (one line, exit code 2, nothing overwritten)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from descend.cli import app
from descend.train import load_checkpoint, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    return CliRunner().invoke(app, ["train", *args])


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_help_shows_the_examples() -> None:
    r = invoke("--help")
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    for example in ("descend train digits --model mlp -o adam:lr=1e-3 --epochs 20 --batch-size 64",
                    "descend train digits --phases adam:10,sgd:10:0.05", "descend train --out runs/digits --resume",
                    "descend train wine.csv --target target", "step:every=2,gamma=0.5"):
        assert example in text


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("runs") / "iris"
    r = invoke("iris", "--model", "softmax", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "4",
               "--batch-size", "16", "--phases", "sgd:2,momentum:2:0.05", "--out", str(out),
               "--checkpoint-every", "5", "--log-every", "2", "--no-progress")
    return out, r


def test_a_run_writes_its_folder_and_prints_the_summary(iris_run) -> None:
    out, r = iris_run
    assert r.exit_code == 0, r.output
    assert {"checkpoint.pt", "metrics.jsonl", "summary.json", "figures/loss.png", "figures/accuracy.png",
            "figures/lr.png"} <= set(files(out))
    assert all((out / "figures" / f).read_bytes().startswith(PNG) for f in ("loss.png", "accuracy.png", "lr.png"))
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "completed" and s["iterations"] == 4 * 6 == s["budget"] and s["epochs"] == 4
    assert s["iterations_per_epoch"] == 6  # 90 training examples in batches of 16: ceil(90 / 16)
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        assert isinstance(s[key], float)
    assert s["test_accuracy"] > 0.7  # 3 classes, 24 steps
    assert s["config"]["optimizer"] == "sgd" and s["config"]["lr"] == 0.1 and s["config"]["batch_size"] == 16
    assert [p["lr"] for p in s["config"]["phases"]] == [None, 0.05]
    assert [(p["iteration"], p["optimizer"], p["lr"]) for p in s["phases"]] == [(0, "SGD", 0.1), (12, "Momentum", 0.05)]
    assert s["checkpoint"] == str(out / "checkpoint.pt") and load_checkpoint(out / "checkpoint.pt")["iteration"] == 24
    # the summary table: final figures as printed
    assert "test" in r.output and f"{100 * s['test_accuracy']:.2f}%" in r.output
    lines = read_metrics(out / "metrics.jsonl")
    assert [x["iteration"] for x in lines if x["type"] == "iteration"] == list(range(2, 25, 2))
    assert [x["epoch"] for x in lines if x["type"] == "epoch"] == [1, 2, 3, 4]


def test_resume_of_a_finished_run_gives_the_same_summary_and_a_second_run_is_refused(iris_run) -> None:
    out, _ = iris_run
    before = files(out)
    r = invoke("iris", "--model", "softmax", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "4",
               "--batch-size", "16", "--phases", "sgd:2,momentum:2:0.05", "--out", str(out), "--no-progress")
    assert r.exit_code == 2 and r.output.startswith("error: run folder") and "--resume" in r.output
    assert files(out) == before
    r = invoke("iris", "--model", "softmax", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "4",
               "--batch-size", "16", "--phases", "sgd:2,momentum:2:0.05", "--out", str(out), "--resume",
               "--no-progress")
    assert r.exit_code == 0, r.output
    old, new = json.loads(before["summary.json"]), json.loads((out / "summary.json").read_text())
    assert {k: new[k] for k in ("test_accuracy", "val_loss", "iterations")} == {
        k: old[k] for k in ("test_accuracy", "val_loss", "iterations")}


BAD = [
    (["nope"], "unknown data set 'nope'; valid names: digits, breast_cancer, wine, iris, diabetes"),
    (["nope.csv", "--target", "y"], "data file nope.csv: not found"),
    (["iris", "--target", "y"], "target and task apply to your own .csv/.npz files"),
    (["iris", "--task", "ranking"], "task must be 'classification', 'regression' or None"),
    (["iris", "--apply-changes"], "--apply-changes applies changed settings on --resume"),
    (["iris", "-o", "adam:betas2=0.9"], "unknown option 'betas2' for Adam"),
    (["iris", "--model", "resnet"], "unknown model 'resnet'; valid names: linear, logistic, softmax, mlp, cnn"),
    (["iris", "--optimizer", "adamax"], "unknown optimizer 'adamax'; choose one of gd, sgd, momentum, nesterov"),
    (["iris", "--schedule", "cosinus"], "unknown schedule 'cosinus'; choose one of"),
    (["iris", "--batch-size", "0"], "batch size must be an integer >= 1 or 'full'"),
    (["iris", "--batch-size", "ten"], "batch size must be an integer >= 1 or 'full', got 'ten'"),
    (["iris", "--phases", "adam-3"], "each phase must be optimizer:duration[:lr]"),
    (["iris", "--phases", "adam:3,sgd:3", "--epochs", "4"], "the phases add up to 6 epochs (12 iterations) but the budget is 4 epochs (8 iterations)"),
    (["iris", "--model", "linear"], "model 'linear' is linear regression and 'iris' is a classification data set"),
    (["iris", "--resume"], "--resume continues the run in --out"),
    (["iris", "--lr", "-1"], "lr must be a number >= 0, got -1.0"),
]


def test_a_typed_batch_larger_than_the_training_set_is_the_whole_set_with_a_note(tmp_path) -> None:
    r = invoke("iris", "--model", "softmax", "--batch-size", "1000", "--epochs", "2", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    assert ("note: batch size 1000 is larger than the training set (90 examples): each step uses the whole "
            "training set (batch 90, full-batch gradient descent)") in " ".join(r.output.split())
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (s["config"]["batch_size"], s["data"]["batch_size"], s["iterations"]) == (1000, 90, 2)


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path) -> None:
    out = tmp_path / "run"
    r = invoke(*args, "--out", str(out), "--no-progress") if "--resume" not in args else invoke(*args)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and message in " ".join(r.output.split())
    assert r.output.count("\n") == 1 and "Traceback" not in r.output
    assert not out.exists()


def test_bad_checkpoints_are_one_line_errors_and_overwrite_nothing(iris_run, tmp_path) -> None:
    out, _ = iris_run
    before = files(out)
    r = invoke("iris", "--model", "mlp", "--out", str(out), "--resume", "--no-progress")
    assert r.exit_code == 2 and r.output.startswith(f"error: checkpoint {out / 'checkpoint.pt'}: model: 'softmax' saved")
    assert "model: 'softmax' saved, 'mlp' given cannot change on resume" in " ".join(r.output.split())
    assert files(out) == before
    r = invoke("iris", "--out", str(tmp_path / "empty"), "--resume")
    assert r.exit_code == 2 and r.output.startswith(f"error: no checkpoint at {tmp_path / 'empty' / 'checkpoint.pt'}")
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes()[:5000])
    r = invoke("iris", "--model", "softmax", "--out", str(torn), "--resume")
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and f"checkpoint {torn / 'checkpoint.pt'} is corrupt" in text and "Traceback" not in text
    assert "weights_only" not in text
    assert files(torn) == {"checkpoint.pt": (out / "checkpoint.pt").read_bytes()[:5000]}


def test_a_diverging_run_says_where_and_what_to_do(tmp_path) -> None:
    r = invoke("diabetes", "--model", "linear", "--optimizer", "sgd", "--lr", "1e4", "--batch-size", "full",
               "--iterations", "50", "--checkpoint-every", "1", "--out", str(tmp_path / "d"), "--no-progress")
    assert r.exit_code == 3
    text = " ".join(r.output.split())
    assert text.startswith("error: training diverged at iteration ") and "with lr 10000" in text
    assert "last good checkpoint:" in text and "e.g. --lr 1000" in text and "Traceback" not in r.output
    s = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert s["status"] == "diverged" and s["error"].startswith("training diverged")
