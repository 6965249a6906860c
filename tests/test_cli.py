"""The main ``descend`` command line: every command registered, the demo's numbers."""

from typer.testing import CliRunner

from descend.cli import app, run_demo

runner = CliRunner()


def test_every_command_is_registered():
    out = runner.invoke(app, ["--help"], terminal_width=200).output
    for cmd in ("tour", "demo", "schedule", "train", "race", "sweep", "lr-find", "serve", "version"):
        assert f" {cmd} " in out, cmd


def test_demo_rows_are_measured():
    rows = {r["optimizer"]: r for r in run_demo(steps=3000, tol=1e-6)}
    newton = rows["Newton + line search"]
    assert newton["reached"] is not None and newton["reached"] <= 30  # issue 2's bound
    assert abs(newton["end"][0] - 1) < 5e-3 and abs(newton["end"][1] - 1) < 5e-3  # f - f* < 1e-6
    adam = rows["Adam"]
    assert adam["final_gap"] < rows["GD (SGD)"]["final_gap"]  # on Rosenbrock, in this budget
    assert all(r["final_gap"] >= 0 for r in rows.values())


def test_demo_command_prints_the_table():
    res = runner.invoke(app, ["demo", "--steps", "200"], terminal_width=200)
    assert res.exit_code == 0
    assert "Newton" in res.output and "Adam" in res.output and "do not rank optimizers" in res.output


def test_demo_caps_its_step_budget_like_the_lab():
    res = runner.invoke(app, ["demo", "--steps", "2000000"], terminal_width=200)
    assert res.exit_code == 2
    text = " ".join(res.output.replace("│", " ").split())
    assert "--steps" in text and "at most 1,000,000 steps per optimizer, got 2,000,000" in text
