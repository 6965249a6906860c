"""descend race / sweep / lr-find through register(app), as the main CLI wires them."""

from __future__ import annotations

import re

import numpy as np
import typer

from descend.cli.lab import parse_entry, parse_numbers, register
from descend.lab import minimize, sweep
from descend.spec import parse_options
from tests.cli_app import app_with
from tests.cli_app import invoke as invoke_with

PNG = b"\x89PNG\r\n\x1a\n"


def make_app() -> typer.Typer:
    return app_with(register)


def invoke(*args: str):
    return invoke_with(register, *args)


def rows(output: str) -> dict[str, list[str]]:
    """First cell -> the other cells, from the Rich table printed."""
    out = {}
    for line in output.splitlines():
        if line.count("│") >= 3:
            cells = [c.strip() for c in line.split("│")[1:-1]]
            out[cells[0]] = cells[1:]
    return out


def test_race_prints_the_table_and_writes_the_figure(tmp_path) -> None:
    png = tmp_path / "race.png"
    res = invoke("race", "bowl", "-o", "gd:lr=0.1", "-o", "adam:lr=0.3", "-o", "gd:lr=0.5", "--steps", "300",
                 "--out", str(png))
    assert res.exit_code == 0, res.output
    table = rows(res.output)
    gd = minimize("bowl", None, "gd", lr=0.1, steps=300)
    assert table["GD (lr=0.1)"][:2] == ["converged", str(gd.steps_to_tol)] and gd.steps_to_tol == 93
    assert table["GD (lr=0.5)"][0] == "diverged"
    assert table["Adam (lr=0.3)"][0] != "diverged"
    assert "do not rank optimizers on real models" in res.output
    assert png.read_bytes().startswith(PNG)


def test_race_fair_uses_the_grid() -> None:
    res = invoke("race", "bowl", "-o", "gd", "-o", "momentum:beta=0.5", "--fair", "--lr-grid", "1e-4:1:9",
                 "--steps", "300")
    assert res.exit_code == 0, res.output
    assert "each optimizer's best lr of 9" in res.output
    assert rows(res.output)["GD (lr=0.1)"][:2] == ["converged", "93"]


def test_sweep_prints_regions_and_writes_both_figures(tmp_path) -> None:
    out = tmp_path / "sweep.png"
    res = invoke("sweep", "bowl", "--optimizer", "gd", "--num", "64", "--steps", "60", "--betas", "0,0.5,0.9",
                 "--out", str(out))
    assert res.exit_code == 0, res.output
    table = rows(res.output)
    assert list(table)[:4] == ["too small", "good", "too large", "divergent"]
    assert table["divergent"][0] == "0.215" and table["divergent"][1] == "1"  # first lr above 2 / kappa
    # the rule: fewest steps to tol (0.173 reaches it in 52 steps; 0.155 has a smaller gap but takes 59)
    assert re.search(r"best lr 0\.173 at momentum=0 \(its default\): 52 steps to tol, final f - f\* ",
                     " ".join(res.output.split()))
    assert out.read_bytes().startswith(PNG)
    assert (tmp_path / "sweep_heatmap.png").read_bytes().startswith(PNG)


def test_sweep_with_betas_reports_every_swept_value_not_only_the_default() -> None:
    """The report named only the optimizer's own beta (the plain sweep's), never the values swept."""
    res = invoke("sweep", "bowl", "-o", "momentum", "--betas", "0,0.5,0.9,0.99", "--num", "24", "--steps", "200")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "Momentum on bowl at beta=0.9 (its default): 24 lrs" in text  # the plain sweep, named as such
    assert "lr x beta: 4 values of beta x 24 lrs, 200 steps" in text
    table = rows(res.output)
    grid = sweep("bowl", "momentum", np.logspace(-3, 0, 24), steps=200, betas=[0.0, 0.5, 0.9, 0.99])
    for j, beta in enumerate(["0", "0.5", "0.9", "0.99"]):
        best = grid.grid_row_best[j]
        reached = grid.grid_runs.steps_to_tol[j * 24 + best]
        assert table[beta][:2] == [f"{grid.lrs[best]:.4g}", "-" if reached is None else str(reached)], beta
        assert table[beta][3:] == [str(grid.grid_labels[j].count("good")), str(grid.grid_labels[j].count("divergent"))]
    j, i = grid.grid_best
    assert grid.betas[j] != 0.9  # the best cell is not at the default: the report must say which beta it is
    assert f"best cell: beta={grid.betas[j]:g}, lr {grid.lrs[i]:.4g}: {grid.grid_runs.steps_to_tol[j * 24 + i]} steps" in text


def test_lr_find_prints_suggestions_and_writes_the_figure(tmp_path) -> None:
    out = tmp_path / "lr.png"
    res = invoke("lr-find", "--data", "digits", "--model", "mlp", "--hidden", "32", "--out", str(out))
    assert res.exit_code == 0, res.output
    table = rows(res.output)
    best = float(table["min_over_10 (best)"][0])
    assert 1e-3 < best < 0.1 and "valley" in table and "steepest" in table
    assert out.read_bytes().startswith(PNG)


def test_a_figure_that_cannot_be_written_names_its_option(tmp_path) -> None:
    """The figure is written after the runs: a failure there was a bare '[Errno 2] ...' with no option."""
    link = tmp_path / "race.png"
    link.symlink_to(tmp_path / "gone" / "race.png")  # (a link into a folder that does not exist)
    res = invoke("race", "bowl", "-o", "gd:lr=0.1", "--steps", "20", "--out", str(link))
    assert res.exit_code == 2
    assert f"--out: cannot write '{link}' (No such file or directory)" in " ".join(res.output.split())
    res = invoke("sweep", "bowl", "-o", "momentum", "--betas", "0,0.5", "--num", "4", "--steps", "5",
                 "--heatmap", str(link))
    assert res.exit_code == 2 and f"--heatmap: cannot write '{link}'" in " ".join(res.output.split())


def test_lr_find_says_when_the_loss_hardly_fell() -> None:
    """A linear model on circles cannot fit: its loss falls 6% across the range and the suggestions read
    noise (steepest at 4.6e-5 here), which the report passed on without a word."""
    res = invoke("lr-find", "--data", "circles", "--model", "logistic")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "note: the smoothed loss fell by only 5.9% across the range (0.7498 -> 0.7058)" in text
    res = invoke("lr-find", "--data", "digits", "--model", "softmax", "--num-iter", "40")
    assert res.exit_code == 0 and "fell by only" not in res.output


def test_lr_find_names_the_batch_it_really_used(tmp_path) -> None:
    data = tmp_path / "tiny.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{(i * 7) % 5},{0.3 * i + 0.1}\n" for i in range(20)))
    res = invoke("lr-find", "--data", str(data), "--target", "y", "--model", "linear", "--num-iter", "20")
    assert res.exit_code == 0, res.output
    title = " ".join(res.output.split())
    assert "batch 12 (the whole training set)" in title and "batch 64" not in title  # 20 rows: 12 train
    res = invoke("lr-find", "--data", "digits", "--model", "softmax", "--batch-size", "32", "--num-iter", "20")
    assert res.exit_code == 0 and "batch 32," in " ".join(res.output.split())


def test_help_has_examples_and_out() -> None:
    for cmd in ("race", "sweep", "lr-find"):
        res = invoke(cmd, "--help")
        assert res.exit_code == 0
        assert "Examples" in res.output and f"descend {cmd}" in res.output and "--out" in res.output


def test_bad_input_exits_2_with_the_reason() -> None:
    for args, message in [
        (["race", "valley"], "unknown landscape 'valley'; valid names: note003, bowl"),
        (["race", "bowl", "-o", "adam:lr"], "must be key=value pairs"),
        (["race", "bowl", "-o", "lion"], "unknown optimizer 'lion'; choose one of gd, sgd"),
        (["race", "bowl", "-o", "adam:beta=0.9"], "unknown option 'beta' for Adam"),
        (["sweep", "bowl", "--lr-min", "1", "--lr-max", "0.1"], "0 < lr-min < lr-max"),
        (["sweep", "bowl", "-o", "adagrad", "--betas", "0.5"], "Adagrad has no default beta"),
        (["sweep", "bowl", "-o", "momentum", "--betas", "0.5,1.5"],  # (named: the optimizer's message was all)
         "betas: Momentum refuses beta=1.5 (beta must be in [0, 1), got 1.5)"),
        (["sweep", "bowl", "--heatmap", "h.png"], "--heatmap needs --betas"),
        (["lr-find", "--data", "mnist"], "unknown data set 'mnist'"),
        (["lr-find", "--model", "softmax", "--batchnorm"], "apply to the mlp only"),
        (["race", "bowl", "--fair", "--lr-grid", "0:1:5"], "--lr-grid LOW:HIGH:COUNT is log-spaced: LOW and HIGH must"),
        (["lr-find", "--num-iter", "5"], "--num-iter must be an integer >= 10, got 5"),  # (was num_iter)
        (["lr-find", "--start-lr", "1", "--end-lr", "0.1"], "--end-lr must be larger than --start-lr"),
    ]:
        res = invoke(*args)
        assert res.exit_code == 2, (args, res.output)
        assert message in " ".join(res.output.split()), (args, res.output)


def test_option_parsers() -> None:
    assert parse_entry("newton:line_search=true,damping=0.1") == ("newton", {"line_search": True, "damping": 0.1})
    assert parse_entry("adam") == ("adam", {})
    assert parse_options("style=ema, lr=2", "--set") == {"style": "ema", "lr": 2}
    np.testing.assert_allclose(parse_numbers("1e-4:1:5", "x"), [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert parse_numbers("0,0.5,0.9", "x") == [0.0, 0.5, 0.9]
