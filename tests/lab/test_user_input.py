"""The lab as users meet it: output folders, the step cap, your own functions, the best-lr rule,
"stationary point (f* unknown)", starts outside the view and honest figures (checked by their data)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from matplotlib.text import Annotation

import descend.plots.lab as plab
from descend import landscapes
from descend.cli.lab import register
from descend.lab import BEST_RULE, MAX_STEPS, best_index, minimize, minimize_many, race, sweep
from tests.cli_app import invoke as invoke_with

PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str):
    return invoke_with(register, *args)


def words(text: str) -> str:
    return " ".join(text.split())


def quartic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A user's function fn(x, y) for ``module:function``."""
    return (x - 1) ** 4 + (y + 0.5) ** 2


# ----------------------------------------------------------------------------- CLI


def test_out_creates_folders_for_every_figure(tmp_path) -> None:
    race_png = tmp_path / "a" / "b" / "race.png"
    res = invoke("race", "bowl", "-o", "gd:lr=0.1", "--steps", "50", "--out", str(race_png))
    assert res.exit_code == 0, res.output
    assert race_png.read_bytes().startswith(PNG)
    sweep_png = tmp_path / "c" / "sweep.png"
    res = invoke("sweep", "bowl", "--num", "8", "--steps", "30", "--out", str(sweep_png))
    assert res.exit_code == 0, res.output
    assert sweep_png.read_bytes().startswith(PNG)
    lr_png = tmp_path / "d" / "e" / "lr.png"
    res = invoke("lr-find", "--data", "iris", "--model", "softmax", "--num-iter", "20", "--out", str(lr_png))
    assert res.exit_code == 0, res.output
    assert lr_png.read_bytes().startswith(PNG)
    res = invoke("race", "bowl", "--steps", "5", "--out", str(tmp_path))  # a folder, not a file
    assert res.exit_code == 2 and "must be a file path" in words(res.output)


@pytest.mark.parametrize("args", [
    ("sweep", "bowl", "--steps", "1000000000", "--tol", "0"),
    ("race", "rosenbrock", "-o", "adam:lr=0.02", "--tol", "0", "--steps", "1000000000"),
])
def test_step_cap_is_a_clear_error(args) -> None:
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert f"--steps must be at most {MAX_STEPS:,}, got 1,000,000,000" in words(res.output)
    assert "Traceback" not in res.output


def test_lab_refuses_steps_over_the_cap_and_thins_long_records() -> None:
    with pytest.raises(ValueError, match=f"steps must be at most {MAX_STEPS:,}"):
        minimize("bowl", steps=MAX_STEPS + 1)
    r = race("bowl", [("gd", {"lr": 1e-6})], steps=30_000, tol=None, record_every=1000)
    assert r.runs[0].record_steps.tolist() == list(range(0, 30_001, 1000)) and len(r.runs[0].lrs) == 30_000


def test_race_and_sweep_take_an_expression_or_module_function() -> None:
    res = invoke("race", "x**2 + 10*y**2", "-o", "gd:lr=0.05", "--start", "2,1", "--steps", "400", "--tol", "1e-6")
    assert res.exit_code == 0, res.output
    out = words(res.output)
    assert "stationary point (f* unknown)" in out and "on the gradient norm (f* unknown)" in out
    run = minimize(landscapes.load("x**2 + 10*y**2"), [2.0, 1.0], "gd", lr=0.05, steps=400, tol=1e-6)
    cells = next([c.strip() for c in line.split("│")[1:-1]] for line in res.output.splitlines() if "GD (lr=0.05)" in line)
    assert run.outcome == "stationary point (f* unknown)" and cells[:3] == ["GD (lr=0.05)", run.outcome, str(run.steps)]
    res = invoke("sweep", "tests.lab.test_user_input:quartic", "--num", "6", "--steps", "50", "--start", "0,0")
    assert res.exit_code == 0, res.output
    res = invoke("race", "x**2 + __import__('os').getpid()", "--steps", "5")
    assert res.exit_code == 2 and "may only call sin, cos" in words(res.output)
    res = invoke("race", "bowl", "-o", "gd:lr=0.1", "-o", "adam:lr=-1", "--steps", "5")
    assert res.exit_code == 2 and "error: -o adam:lr=-1: lr must be in [0, inf), got -1" in words(res.output)
    res = invoke("race", "no_such_module:f", "--steps", "5")
    assert res.exit_code == 2 and "cannot load landscape 'no_such_module:f'" in words(res.output)


def test_lr_find_on_your_own_csv(tmp_path) -> None:
    from sklearn.datasets import load_wine

    wine = load_wine()
    path = tmp_path / "wine.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*wine.feature_names, "class"])
        for x, y in zip(wine.data, wine.target):
            w.writerow([*x.tolist(), ["barolo", "grignolino", "barbera"][y]])
    res = invoke("lr-find", "--data", str(path), "--target", "class", "--model", "softmax", "--num-iter", "30")
    assert res.exit_code == 0, res.output
    assert "min_over_10 (best)" in res.output
    res = invoke("lr-find", "--data", str(path), "--target", "colour", "--model", "softmax")
    assert res.exit_code == 2 and "colour" in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------------- the lab


def test_best_rule_fewest_steps_then_final_loss() -> None:
    # reached tol: 52 beats 59 although 59's final loss is lower; ties on steps go to the lower loss
    assert best_index([59, 52, None, 52], [1e-9, 8e-9, 1e-3, 5e-9], [False] * 4) == 3
    assert best_index([None, None, None], [0.3, 0.1, np.nan], [False, False, True]) == 1
    assert best_index([None, None], [1.0, 2.0], [True, True]) is None
    s = sweep("bowl", "gd", np.logspace(-3, 0, 64), steps=100)
    reached = [i for i, k in enumerate(s.runs.steps_to_tol) if k is not None]
    assert s.runs.steps_to_tol[s.best_index] == min(s.runs.steps_to_tol[i] for i in reached) == 52
    assert abs(s.best_lr - 0.173) < 5e-4 and BEST_RULE in s.rule


def test_heatmap_star_is_the_rule_s_best_cell() -> None:
    s = sweep("bowl", "momentum", np.logspace(-3, 0, 12), steps=150, betas=[0.0, 0.5, 0.9])
    grid = s.grid_runs
    flat = best_index(grid.steps_to_tol, grid.final_losses, grid.diverged | (grid.final_losses > s.initial_loss))
    assert s.grid_best == divmod(flat, len(s.lrs))
    fig = plab.heatmap_figure(s)
    ax = fig.axes[0]
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    j, i = s.grid_best
    assert len(stars) == 1 and stars[0].get_xdata()[0] == s.lrs[i] and stars[0].get_ydata()[0] == j
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"best: {grid.steps_to_tol[j * len(s.lrs) + i]} steps to tol (fewest; ties: lowest final loss)" in labels
    sfig = plab.sweep_figure(s)
    assert BEST_RULE in [t.get_text() for t in sfig.texts]


def test_from_function_knows_its_minimum() -> None:
    L = landscapes.from_function(lambda x, y: (x - 1) ** 2 + (y + 2) ** 2 + 3, minima=[(1, -2)])
    assert L.f_star == 3.0 and L.minima[0].kind == "global"
    run = minimize(L, [0.0, 0.0], "gd", lr=0.1, steps=500, tol=1e-8)
    assert run.outcome == "converged" and run.final_gap < 1e-8
    G = landscapes.from_function(lambda x, y: x**2 + y**2, f_star=0.0, minima=[(0, 0, "global"), (5, 5, "local")])
    assert G.f_star == 0.0 and [m.kind for m in G.minima] == ["global", "local"]
    with pytest.raises(ValueError, match="f_star must be a finite number or None"):
        landscapes.from_function(lambda x, y: x, f_star=float("nan"))
    with pytest.raises(ValueError, match=r"minima\[0\] must be \(x, y\) or \(x, y, kind\)"):
        landscapes.from_function(lambda x, y: x, minima=[(1,)])
    # Goldstein-Price's local minimum f = 840 is a stationary point, not "converged", without f*
    gp = landscapes.load("(1 + (x + y + 1)**2 * (19 - 14*x + 3*x**2 - 14*y + 6*x*y + 3*y**2)) * "
                         "(30 + (2*x - 3*y)**2 * (18 - 32*x + 12*x**2 + 48*y - 36*x*y + 27*y**2))")
    r = minimize(gp, [1.0, 1.0], "adam", lr=0.01, steps=3000, tol=1e-3)
    assert r.converged and r.outcome == "stationary point (f* unknown)" and r.to_dict()["outcome"] == r.outcome


def test_load_forms() -> None:
    assert landscapes.load("Rosenbrock").name == "rosenbrock"
    L = landscapes.load("tests.lab.test_user_input:quartic")
    assert float(L.value([1.0, -0.5])) == 0.0
    assert float(landscapes.load("sin(x) + y**2").value([0.0, 2.0])) == 4.0
    with pytest.raises(ValueError, match="unknown landscape 'valley'"):
        landscapes.load("valley")
    with pytest.raises(ValueError, match="may only call"):
        landscapes.load("x.sum() + y")


# ----------------------------------------------------------------------------- figures


def test_start_far_outside_the_view_is_marked_on_the_edge_and_said() -> None:
    r = race("rosenbrock", [("gd", {"lr": 1e-3}), ("adam", {"lr": 0.02})], steps=50, x0=[100.0, 100.0])
    fig = plab.race_figure(r)
    ax = fig.axes[0]
    notes = [a for a in ax.texts if isinstance(a, Annotation) and a.get_text() == "start (100, 100)"]
    assert len(notes) == 1
    x, y = notes[0].xy  # the arrow's head sits on the view's edge, towards the start
    assert ax.get_xlim() == (-2.0, 2.0) and ax.get_ylim() == (-1.0, 3.0) and (x == 2.0 or y == 3.0)
    assert any("marked on the view's edge" in n for n in fig.descend_notes)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "start" not in legend and "end" not in legend  # nothing of the kind is drawn in the panel
    runs = [t.get_text() for t in fig.legends[0].get_texts()]
    assert all(t.endswith("(path outside the view)") for t in runs)


def test_start_near_the_box_widens_the_view() -> None:
    r = race("bowl", [("gd", {"lr": 1e-3})], steps=5, x0=[20.0, -10.0])  # gd barely moves
    fig = plab.race_figure(r)
    ax = fig.axes[0]
    assert ax.get_xlim()[1] > 20.0 and ax.get_ylim()[0] < -10.0
    assert any("the view was widened" in n for n in fig.descend_notes)


def test_negative_f_without_f_star_gets_a_linear_loss_axis() -> None:
    st = landscapes.load("0.5*(x**4 - 16*x**2 + 5*x + y**4 - 16*y**2 + 5*y)")
    r = race(st, [("adam", {"lr": 0.1}), ("gd", {"lr": 0.01})], steps=300, tol=1e-6, x0=[0.5, 0.5])
    fig = plab.race_figure(r)
    bx = fig.axes[1]
    assert bx.get_yscale() == "linear" and bx.get_ylabel() == "f"
    lo, hi = bx.get_ylim()
    assert lo < min(run.final_loss for run in r.runs) and hi > max(run.losses[0] for run in r.runs)
    runs = [t.get_text() for t in fig.legends[0].get_texts()]
    assert all("stationary point (f* unknown)" in t for t in runs)


def test_a_start_given_by_another_name_points_to_x0() -> None:
    from descend import lab

    with pytest.raises(ValueError, match=r"start=\(1, 1\): the start point is x0 \(minimize's second argument\)"):
        lab.minimize("x**2+y**2", optimizer="gd", start=(1, 1))


def test_a_start_where_f_is_not_finite_is_refused_not_reported_diverged() -> None:
    # 1/x from (0, 1) used to be "diverged" at step 0 (no step taken), and a sweep called every lr divergent
    one_over_x = landscapes.from_expression("1/x + y**2")
    with pytest.raises(ValueError) as err:
        minimize(one_over_x, [0.0, 1.0], "gd", lr=0.1, steps=10)
    assert str(err.value) == "f at x0 = (0, 1) is inf with gradient norm inf: start where f and its gradient are finite"
    with pytest.raises(ValueError, match=r"f at x0 = \(-1, 1\) is nan with gradient norm nan"):
        race(landscapes.from_expression("sqrt(x) + y**2"), ["gd", "adam"], x0=[-1.0, 1.0], steps=10)
    with pytest.raises(ValueError, match=r"runs\[1\]: f at x0 = \(0, 0\) is -inf"):
        minimize_many("log(x**2 + y**2)", [{"optimizer": "gd", "x0": [1.0, 1.0]}, {"optimizer": "adam", "x0": [0, 0]}])
    with pytest.raises(ValueError, match=r"x0 must be a finite point, got \(nan, 0\)"):
        minimize("bowl", [float("nan"), 0.0])
    res = invoke("sweep", "1/x + y**2", "--start", "0,1", "--num", "4", "--steps", "20")
    assert res.exit_code == 2 and "f at x0 = (0, 1) is inf" in words(res.output) and "divergent" not in res.output
    # a finite start is run as before: one GD step on x**2 + 10 y**2 is x - lr * (2x, 20y)
    run = minimize(landscapes.from_expression("x**2 + 10*y**2"), [1.0, 1.0], "gd", lr=0.01, steps=1, tol=None)
    assert run.path[1].tolist() == pytest.approx([0.98, 0.8], abs=1e-15) and not run.diverged
