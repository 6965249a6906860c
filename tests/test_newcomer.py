"""Errors a newcomer hits on the command line name the argument as they typed it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from descend.cli import app
from descend.schedules.registry import build
from descend.spec import SpecError

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["schedule", "cosine", "--steps", "0"], "error: --steps must be an integer >= 1, got 0"),
        (["schedule", "cosine", "--lr", "-1"], "error: --lr must be in [0, inf), got -1.0"),
        (["schedule", "cosine", "--warmup", "100"], "error: --warmup must be an integer in [1, steps - 1]"),
        (["schedule", "cosine:warmup=100"], "error: warmup must be an integer in [1, steps - 1]"),
        (["schedule", "linear:decay_steps=0"], "error: decay_steps must be an integer >= 1, got 0"),
        (
            ["schedule", "cyclic:max_lr=0.01,steps_up=10"],
            "at least the base lr 0.1",
        ),
        (["schedule", "step:every"], "got 'every' (write every=VALUE)"),
    ],
)
def test_schedule_errors_name_what_the_user_typed(args, message) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_race_option_without_value_says_how_to_write_it() -> None:
    result = runner.invoke(app, ["race", "bowl", "-o", "adam:lr", "--steps", "5"])
    assert result.exit_code == 2
    assert "got 'lr' (write lr=VALUE)" in " ".join(result.output.split())


def test_decay_steps_error_names_decay_steps() -> None:
    with pytest.raises(SpecError, match=r"^decay_steps must be an integer >= 1, got 0") as info:
        build("cosine:decay_steps=0", steps=100, lr=0.1)
    assert info.value.field == "decay_steps"
    with pytest.raises(SpecError, match=r"^steps must be an integer >= 1, got 0") as info:
        build("cosine", steps=0, lr=0.1)
    assert info.value.field == "steps"


def test_serve_rejects_an_unknown_log_level_without_a_traceback() -> None:
    result = runner.invoke(app, ["serve", "--log-level", "foo"])
    assert result.exit_code == 2
    assert "--log-level must be one of" in result.output
    assert "'foo'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_sweep_with_a_spec_says_the_name_goes_alone() -> None:
    result = runner.invoke(app, ["sweep", "bowl", "-o", "adam:lr=0.1", "--steps", "5"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "unknown optimizer 'adam:lr=0.1'" in text
    assert "takes the name alone, 'adam'" in text
    assert "--set" in text


@pytest.mark.parametrize("start", ["nan,1", "1e300,1", "a,b", "1,2,3"])
def test_race_start_must_be_two_finite_numbers(start):
    res = CliRunner().invoke(app, ["race", "bowl", "--start", start, "--steps", "5"])
    assert res.exit_code == 2
    assert "--start must be a point x,y of two finite numbers" in res.output
    assert "Traceback" not in res.output


def test_race_on_a_linear_expression_runs_newton_too():
    # Newton's Hessian of a linear function is zero; it used to end in an autograd traceback.
    res = CliRunner().invoke(app, ["race", "x + y", "--steps", "5"])
    assert res.exit_code == 0, res.output
    assert "Newton" in res.output


def test_race_with_a_function_of_the_wrong_arity_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "mylands_bad.py").write_text("def bad(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    res = CliRunner().invoke(app, ["race", "mylands_bad:bad", "--steps", "5"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())  # Rich wraps long lines
    assert "fn must be a torch function fn(x, y)" in text
    assert "takes 1 positional argument" in text


@pytest.mark.parametrize("args", [["race", "bowl", "--steps", "5", "--out", "r.txt"],
                                  ["sweep", "bowl", "--steps", "5", "--out", "s.txt"],
                                  ["race", "bowl", "--steps", "5", "--gif", "r.png"],
                                  ["schedule", "cosine", "--plot", "c.txt"]])
def test_an_unwritable_figure_suffix_is_refused_before_any_work(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert f"{args[-2]} must end in" in text and args[-1] in text
    assert "Rosenbrock" not in text and "steps to" not in text  # nothing ran: no result table
    assert not list(tmp_path.iterdir())
