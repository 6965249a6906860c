"""The hints at the end of ``descend train`` say what happened: a loss that blew up, a linear model at
its floor, a loss that never moved; never a small lr for a model that had nothing left to learn."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from descend.cli import app
from descend.train.hints import Fit, hints


def train_cli(*args: object) -> tuple[str, dict]:
    out = Path(str(args[args.index("--out") + 1]))
    r = CliRunner().invoke(app, ["train", *map(str, args), "--no-progress"])
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split()), json.loads((out / "summary.json").read_text())


def test_a_linear_model_on_circles_is_told_it_cannot_fit_not_to_change_the_lr(tmp_path) -> None:
    out = tmp_path / "circles"
    text, summary = train_cli("circles", "--model", "logistic", "-o", "adam:lr=0.1", "--epochs", "20", "--out", out)
    (hint,) = summary["hints"]
    assert "a linear model can do no better on this data" in hint and "--model mlp" in hint
    assert "against 0.6931 for predicting the class shares" in hint  # log 2: two balanced classes
    assert "lr may be far too small" not in hint and "larger lr" not in hint
    assert f"hint: {hint}" in text
    # extended, the plateau barely moves: that is the model's floor, not a too small lr
    r = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--epochs", "40", "--no-progress"])
    assert r.exit_code == 0, r.output
    (hint,) = json.loads((out / "summary.json").read_text())["hints"]
    assert "a linear model can do no better" in hint and "lr may be far too small" not in hint


def test_a_loss_that_blows_up_to_huge_values_gets_a_lower_lr_hint(tmp_path) -> None:
    text, summary = train_cli("digits", "--model", "mlp", "-o", "sgd", "--lr", "3", "--epochs", "3", "--out",
                              tmp_path / "big")
    assert summary["train_loss"] > 1e6  # (finite: the run completed, no divergence error)
    (hint,) = summary["hints"]
    assert hint.startswith("the training loss blew up to huge values: it ended at ")
    assert "2.302 for predicting the class shares" in hint  # about log 10: ten classes of nearly equal shares
    assert "try a lower lr, e.g. --lr 0.3" in hint and f"hint: {hint}" in text


def test_hints_from_the_curve_and_the_fit() -> None:
    flat = [{"loss": 0.40 + 1e-7 * (i % 3)} for i in range(50)]
    at_best = Fit(final=0.4, baseline=0.69, ignoring="predicting the class shares", best=lambda: 0.4)
    (hint,) = hints([], flat, 500, 0, False, fit=at_best)
    assert "already reached its best fit" in hint and "too small" not in hint
    below = Fit(final=0.4, baseline=0.69, ignoring="predicting the class shares", best=lambda: 0.1)
    assert "lr may be far too small" in hints([], flat, 500, 0, False, fit=below)[0]
    # a fast fall, then a plateau, moved: no lr hint (the first record counts, not only the first fifth's mean)
    plateau = [{"loss": 2.0}] + [{"loss": 0.5 + 1e-7 * (i % 2)} for i in range(99)]
    assert hints([], plateau, 1000, 0, False) == []
    rising = [{"loss": 1.0 + 0.1 * i, "lr": 0.5} for i in range(20)]
    (hint,) = hints([], rising, 200, 0, False)
    assert hint.startswith("the training loss rose instead of falling: it ended at 2.9, against 1 at the first")
    assert "--lr 0.05" in hint
