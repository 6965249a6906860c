"""descend train as users meet it: their own files, -o specs, resume alone, hints, SWATS, piped progress."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets as skd
from typer.testing import CliRunner

from descend.cli import app
from descend.plots.training import lr_figure
from descend.train import load_checkpoint, read_metrics, train


def invoke(*args: str):
    return CliRunner().invoke(app, ["train", *map(str, args)])


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "wine.csv"
    b = skd.load_wine()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*b.feature_names, "target"])
        w.writerows([*map(repr, map(float, x)), int(t)] for x, t in zip(b.data, b.target))
    return path


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_a_csv_trains_exactly_like_the_bundled_set(wine_csv: Path, tmp_path: Path) -> None:
    common = ("--model", "softmax", "--epochs", "20", "--no-progress")
    r = invoke(wine_csv, "--target", "target", *common, "--out", tmp_path / "csv")
    assert r.exit_code == 0, r.output
    r2 = invoke("wine", *common, "--out", tmp_path / "bundled")
    assert r2.exit_code == 0, r2.output
    mine, ref = summary(tmp_path / "csv"), summary(tmp_path / "bundled")
    for key in ("train_loss", "val_loss", "test_loss", "test_accuracy", "iterations"):
        assert mine[key] == ref[key], key
    assert mine["data"]["source"] == str(wine_csv) and mine["config"]["target"] == "target"
    assert {"loss.png", "lr.png", "accuracy.png"} <= {p.name for p in (tmp_path / "csv" / "figures").iterdir()}
    # resume alone finds the file and its target again
    r3 = invoke("--out", tmp_path / "csv", "--resume", "--epochs", "25", "--no-progress")
    assert r3.exit_code == 0, r3.output
    assert summary(tmp_path / "csv")["epochs"] == 25


def test_npz_regression_and_task_override(tmp_path: Path) -> None:
    b = skd.load_diabetes(scaled=False)
    np.savez(tmp_path / "d.npz", X=b.data, y=b.target.astype(np.int64))  # integer targets: classes by default
    r = invoke(tmp_path / "d.npz", "--task", "regression", "--model", "linear", "-o", "gd", "--lr", "0.2",
               "--batch-size", "full", "--iterations", "300", "--out", tmp_path / "run", "--no-progress")
    assert r.exit_code == 0, r.output
    s = summary(tmp_path / "run")
    assert s["data"]["task"] == "regression" and "test_accuracy" not in s and s["test_loss"] < 3500


@pytest.mark.parametrize(
    ("rows", "args", "needle"),
    [
        ([["a", "y"], [1, 0], [2, 1]], ("--target", "label"), "has no column 'label' (the target); columns: a, y"),
        ([["a", "y"], ["x", 0], [2, 1]], ("--target", "y"), "feature column 'a' is not numeric (line 2: 'x')"),
        ([["a", "y"], ["nan", 0], [2, 1]], ("--target", "y"), "feature column 'a' has 1 missing or NaN value(s)"),
        ([["a", "y"], [1, 0], [2, 1]], ("--target", "y"), "2 rows are too few for the split"),
        ([["a", "y"], *[[i, 4] for i in range(9)]], ("--target", "y"), "target 'y' has a single class"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, rows: list, args: tuple, needle: str) -> None:
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    r = invoke(path, *args, "--out", tmp_path / "run")
    assert r.exit_code == 2 and r.output.startswith(f"error: data file {path}") and needle in flat(r.output)
    assert r.output.count("\n") == 1 and not (tmp_path / "run").exists()


def test_optimizer_specs_and_gd(tmp_path: Path) -> None:
    r = invoke("iris", "--model", "softmax", "-o", "adam:lr=0.01,beta1=0.8", "--epochs", "2",
               "--out", tmp_path / "a", "--no-progress")
    assert r.exit_code == 0, r.output
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["optimizer"]
    assert state["param_groups"][0]["lr"] == 0.01 and state["param_groups"][0]["beta1"] == 0.8
    r = invoke("iris", "--model", "softmax", "--optimizer", "gd", "--batch-size", "full", "--epochs", "2",
               "--out", tmp_path / "b", "--no-progress")
    assert r.exit_code == 0, r.output
    assert summary(tmp_path / "b")["phases"][0]["optimizer"] == "SGD"


def test_resume_alone_continues_and_extends_bitwise(tmp_path: Path) -> None:
    args = ("iris", "--model", "mlp", "--hidden", "8", "-o", "momentum", "--lr", "0.05", "--batch-size", "16",
            "--dropout", "0.1", "--seed", "3", "--no-progress")
    assert invoke(*args, "--epochs", "6", "--out", tmp_path / "long").exit_code == 0
    assert invoke(*args, "--epochs", "3", "--out", tmp_path / "run").exit_code == 0
    r = invoke("--out", tmp_path / "run", "--resume")  # the saved settings: already complete
    assert r.exit_code == 0 and "already complete at iteration 18" in flat(r.output)
    r = invoke("--out", tmp_path / "run", "--resume", "--epochs", "6", "--no-progress")
    assert r.exit_code == 0, r.output
    long, run = summary(tmp_path / "long"), summary(tmp_path / "run")
    for key in ("iterations", "train_loss", "val_loss", "test_loss", "test_accuracy"):
        assert run[key] == long[key], key
    untimed = [{k: v for k, v in x.items() if k not in ("elapsed", "examples_per_s")}
               for x in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert untimed == [{k: v for k, v in x.items() if k not in ("elapsed", "examples_per_s")}
                       for x in read_metrics(tmp_path / "long" / "metrics.jsonl")]


def test_extending_a_run_whose_schedule_fits_the_budget_says_so(tmp_path: Path) -> None:
    """A cosine fitted to 3 epochs, extended to 6: from the checkpoint on it follows the cosine of
    6 epochs, so the run is not the unbroken one, and resume says so (a budget-free schedule does not)."""
    args = ("iris", "--model", "softmax", "-o", "adam", "--lr", "0.05", "--batch-size", "16", "--no-progress")
    for schedule, note in (("cosine", True), ("step:every=5", False)):
        out = tmp_path / schedule.split(":")[0]
        assert invoke(*args, "--schedule", schedule, "--epochs", "3", "--out", out).exit_code == 0
        r = invoke("--out", out, "--resume", "--epochs", "6", "--no-progress")
        assert r.exit_code == 0, r.output
        text = flat(r.output)
        assert ("hint: the schedule now fits the new budget: from iteration 18 it follows cosine(0.05, 36) where "
                "the run had cosine(0.05, 18)" in text) is note, text
        assert any("fits the new budget" in h for h in summary(out)["hints"]) is note  # (summary.json too)


def test_an_optimizer_given_with_phases_is_refused_not_ignored(tmp_path: Path) -> None:
    r = invoke("iris", "--phases", "adam:5,sgd:5", "-o", "rmsprop:lr=0.5", "--out", tmp_path / "run")
    assert r.exit_code == 2 and "--phases names each phase's optimizer" in flat(r.output)
    assert "--optimizer rmsprop:lr=0.5 would be ignored" in flat(r.output) and not (tmp_path / "run").exists()


def test_changed_settings_are_refused_with_the_differences_or_applied_and_recorded(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke("iris", "--model", "mlp", "--epochs", "2", "--checkpoint-every", "5", "--out", out,
                  "--no-progress").exit_code == 0
    before = (out / "checkpoint.pt").read_bytes()
    r = invoke("--out", out, "--resume", "--epochs", "4", "--lr", "0.5", "--weight-decay", "0.1", "--dropout", "0.2")
    text = flat(r.output)
    assert r.exit_code == 2 and "was written with other settings" in text
    for diff in ("lr: the default saved, 0.5 given", "weight_decay: 0.0 saved, 0.1 given", "'dropout': 0.2"):
        assert diff in text
    assert "--apply-changes" in text and (out / "checkpoint.pt").read_bytes() == before
    r = invoke("--out", out, "--resume", "--epochs", "4", "--lr", "0.5", "--weight-decay", "0.1", "--dropout", "0.2",
               "--apply-changes", "--no-progress")
    assert r.exit_code == 0, r.output
    change = json.loads((out / "changes.jsonl").read_text().splitlines()[-1])
    assert change["iteration"] == 4 and change["changes"]["lr"] == {"saved": None, "given": 0.5}
    assert change["changes"]["weight_decay"] == {"saved": 0.0, "given": 0.1}
    assert change["changes"]["model_options"]["given"]["dropout"] == 0.2
    s = summary(out)
    assert s["config"]["lr"] == 0.5 and s["changes"][-1] == change and s["iterations"] == 8
    group = load_checkpoint(out / "checkpoint.pt")["optimizer"]["param_groups"][0]
    assert group["lr"] == 0.5 and group["weight_decay"] == 0.1
    r = invoke("--out", out, "--resume", "--batch-size", "8", "--apply-changes")
    assert r.exit_code == 2 and "batch_size: 64 saved, 8 given cannot change on resume" in flat(r.output)


def test_piped_progress_is_plain_lines_and_hints_speak_up(tmp_path: Path) -> None:
    r = invoke("iris", "--model", "softmax", "--epochs", "10", "--out", tmp_path / "short")
    assert r.exit_code == 0, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("iteration ")]
    assert lines[0].startswith("iteration 10/20  epoch 5/10  train loss ") and lines[-1].startswith("iteration 20/20")
    assert "validation accuracy" in lines[-1] and "\x1b[" not in r.output
    assert "hint: the training loss was still falling fast at the end" in flat(r.output)
    assert "--epochs 40" in flat(r.output)
    assert summary(tmp_path / "short")["hints"]


def test_defaults_train_small_sets_long_enough_or_say_so() -> None:
    """10 epochs of 2 batches were 20 iterations (wine 40%, iris 53%); now at least 500, and a hint if short."""
    wine = train("wine", "softmax", progress=False)
    assert (wine.iterations, wine.epochs) == (500, 250) and wine.final["test_accuracy"] >= 0.95 and not wine.hints
    iris = train("iris", "mlp", progress=False)
    assert iris.iterations == 500 and iris.final["test_accuracy"] >= 0.9
    slow = train("iris", "softmax", progress=False)  # lr 1e-3 on a linear model: still far from done
    assert slow.final["test_accuracy"] >= 0.75 and "far from converged after 500 iterations" in slow.hints[0]


def test_swats_says_whether_and_when_it_switched(tmp_path: Path) -> None:
    r = invoke("breast_cancer", "--model", "logistic", "--swats", "--epochs", "2", "--out", tmp_path / "a",
               "--no-progress")
    assert r.exit_code == 0 and "SWATS: did not switch in 12 iterations (the criterion was never met)" in flat(r.output)
    from descend.cli.train import _phase_line, _swats_note

    events: list[dict] = []
    res = train("breast_cancer", "logistic", optimizer="adam", lr=0.01, swats=True, swats_eps=1e-3, batch_size=100,
                epochs=6, on_progress=events.append)
    switch = [e for e in events if e["type"] == "phase" and e["reason"] == "swats"][0]
    assert _phase_line(switch).startswith(f"SWATS switched from Adam to SGD with momentum at iteration {switch['iteration']}")
    assert _swats_note(res) == (f"SWATS: switched from Adam to SGD at iteration {switch['iteration']} of 24, "
                                f"lr {switch['lr']:.4g}")


@pytest.mark.parametrize("log_every", [10, 7])
def test_the_lr_figure_switches_at_the_recorded_iteration(tmp_path: Path, log_every: int) -> None:
    r = invoke("digits", "--model", "softmax", "--phases", "adam:10,sgd:10:0.05", "--log-every", log_every,
               "--out", tmp_path / "run", "--no-progress")
    assert r.exit_code == 0, r.output
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    switch = [x for x in records if x["type"] == "phase"][1]
    assert switch["iteration"] == 170
    ax = lr_figure(records).axes[0]
    assert [line.get_label() for line in ax.lines if not line.get_label().startswith("_")] == ["lr"]
    xs, ys = ax.lines[0].get_data()
    jumps = [(xs[i], ys[i], ys[i + 1]) for i in range(len(xs) - 1) if xs[i] == xs[i + 1] and ys[i] != ys[i + 1]]
    assert jumps == [(170.0, 0.001, 0.05)]
    assert xs[0] == 0 and xs[-1] == 340
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["lr"]


def test_an_out_that_is_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    taken = tmp_path / "existing-file.txt"
    taken.write_text("mine")
    r = invoke("iris", "--epochs", "1", "--out", taken)
    assert r.exit_code == 2 and r.output.startswith(f"error: run folder {taken} is an existing file")
    r = invoke("iris", "--epochs", "1", "--out", taken / "sub")
    assert r.exit_code == 2 and r.output.startswith("error: ") and "Traceback" not in r.output
    assert taken.read_text() == "mine"


def test_overwrite_starts_over_in_a_folder_that_holds_a_run(tmp_path) -> None:
    out = tmp_path / "run"
    first = invoke("iris", "--model", "softmax", "--epochs", "1", "--out", out, "--no-progress")
    assert first.exit_code == 0, first.output
    again = invoke("iris", "--model", "softmax", "--epochs", "2", "--out", out, "--no-progress")
    assert again.exit_code == 2 and "already holds a run" in flat(again.output)
    over = invoke("iris", "--model", "softmax", "--epochs", "2", "--out", out, "--no-progress", "--overwrite")
    assert over.exit_code == 0, over.output
    assert summary(out)["epochs"] == 2


def test_warmup_without_a_schedule_warms_up_to_the_constant_lr(tmp_path) -> None:
    out = tmp_path / "wu"
    r = invoke("iris", "--lr", "0.01", "--warmup", "10", "--log-every", "1", "--epochs", "8", "--out", out,
               "--no-progress")
    assert r.exit_code == 0, r.output
    lrs = {m["iteration"]: m["lr"] for m in read_metrics(out / "metrics.jsonl") if m["type"] == "iteration"}
    assert lrs[1] == 0.0 and abs(lrs[6] - 0.005) < 1e-12 and lrs[11] == lrs[16] == 0.01  # (the lr of step k - 1)


def test_hints_say_falling_only_when_the_loss_really_fell() -> None:
    from descend.train.run import hints

    falling = [{"loss": 2.0 - 0.01 * i} for i in range(50)]  # a straight descent: the last fifth brings 20%
    assert "still falling fast" in hints([], falling, 50, 0, False)[0]
    flat = [{"loss": 1.2124306 + 1e-9 * (i % 3)} for i in range(50)]  # lr=0: rounding noise only
    (hint,) = hints([], flat, 50, 0, False)
    assert "barely moved" in hint and "falling" not in hint
    converged = [{"loss": 1.0 / (i + 1) ** 3} for i in range(50)]
    assert hints([], converged, 50, 0, False) == []
    # a phased run's budget is its phases: lengthening them is the advice (--epochs would be refused)
    from descend.train import Phase

    phases = [Phase(3, "adam"), Phase(3, "sgd", lr=0.05)]
    assert "train longer (e.g. --phases adam:12,sgd:12:0.05)" in hints([], falling, 50, 6, False, phases)[0]


def test_lr_zero_run_gets_the_flat_hint_not_the_falling_one(tmp_path) -> None:
    r = invoke("iris", "--lr", "0", "--epochs", "5", "--out", tmp_path / "z", "--no-progress")
    assert r.exit_code == 0, r.output
    text = flat(r.output)
    assert "barely moved" in text and "still falling" not in text


def test_an_out_that_a_file_blocks_is_named_before_any_work(tmp_path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = invoke("iris", "--out", afile / "sub" / "deeper", "--no-progress")
    assert r.exit_code == 2 and "--out" in flat(r.output) and f"cannot be made: '{afile}' is a file" in flat(r.output)
    assert afile.read_text() == "x"
    r = CliRunner().invoke(app, ["schedule", "cosine", "--plot", str(afile / "x.png")])
    assert r.exit_code == 2 and "--plot: cannot create the folder" in flat(r.output)
    assert "step" not in r.output.lower().split("error")[0]  # refused before the table was printed


def test_resuming_on_another_data_set_says_so(tmp_path) -> None:
    out = tmp_path / "digits"
    assert invoke("digits", "--epochs", "1", "--out", out, "--no-progress").exit_code == 0
    r = invoke("iris", "--out", out, "--resume", "--no-progress")
    text = flat(r.output)
    assert r.exit_code == 2 and "dataset: 'digits' saved, 'iris' given cannot change on resume" in text
    assert "()" not in text


def test_a_resume_below_the_checkpoint_says_how_far_the_run_got(tmp_path: Path) -> None:
    """The first run took the default epochs (enough for 500 iterations: 3 per epoch on iris' 90 training
    examples at batch 30, so 167 epochs); resuming with --epochs 30 names the default, the epoch reached and both budgets."""
    out = tmp_path / "run"
    assert invoke("iris", "--model", "softmax", "--batch-size", "30", "--out", out, "--no-progress").exit_code == 0
    r = invoke("--out", out, "--resume", "--epochs", "30")
    assert r.exit_code == 2
    assert ("is at iteration 501 (epoch 167), past this run's budget 90 (epochs: the default saved, 30 given); "
            "give a budget of at least 501 iterations or 167 epochs") in flat(r.output)
