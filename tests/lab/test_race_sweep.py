"""race and sweep: results equal minimize runs, the fair-tuning rule, region labels against
the theory of gradient descent on a quadratic, and the lr x beta grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from descend import landscapes
from descend.lab import RACE_NOTE, classify, minimize, race, run_many, sweep
from descend.lab.race import best_row

from .test_runner import assert_same_run

ENTRIES = [("gd", {"lr": 1e-3}), ("momentum", {"lr": 1e-4, "beta": 0.9}), ("adam", {"lr": 0.02}),
           ("newton", {"line_search": True})]


def test_race_runs_equal_minimize_runs() -> None:
    result = race("rosenbrock", ENTRIES, steps=800, tol=1e-8)
    assert [r.label for r in result.runs] == [
        "GD (lr=0.001)", "Momentum (lr=0.0001, beta=0.9)", "Adam (lr=0.02)", "Newton (lr=1, line_search=True)"]
    for run, (name, hyper) in zip(result.runs, ENTRIES):
        assert_same_run(run, minimize("rosenbrock", None, name, steps=800, tol=1e-8, **hyper))
    rows = result.table()
    assert rows[3]["steps_to_tol"] == 20 and rows[3]["converged"] and rows[3]["final_gap"] < 1e-8
    assert all(r["steps_to_tol"] is None and r["steps"] == 800 for r in rows[:3])
    assert result.note == RACE_NOTE
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["table"][2]["label"] == "Adam (lr=0.02)" and doc["landscape"] == "rosenbrock"


def test_fair_race_tunes_every_optimizer_on_one_grid_and_keeps_exact_runs() -> None:
    grid = np.logspace(-4, 0, 9)
    result = race("bowl", ["gd", ("momentum", {"beta": 0.5}), "rmsprop", "adam"], steps=300, tol=1e-8,
                  fair=True, lr_grid=grid)
    assert np.array_equal(result.lr_grid, grid)
    assert len(result.tuning) == 4 and len(result.best_index) == 4
    for many, i, run in zip(result.tuning, result.best_index, result.runs):
        assert many.steps == 300 and np.array_equal(many.lrs[0], grid)  # same grid, same horizon
        assert run.hyper["lr"] == grid[i]
        conv = np.flatnonzero(many.converged)
        if conv.size:  # the kept lr reached tol in the fewest steps
            assert run.converged and run.steps == many.stop_steps[conv].min()
        else:
            assert run.final_loss == np.nanmin(np.where(many.diverged, np.nan, many.final_losses))
        hyper = {k: v for k, v in run.hyper.items()}
        assert_same_run(run, minimize("bowl", None, run.optimizer.lower(), steps=300,
                                      tol=1e-8, **hyper))
    gd = result.runs[0]
    assert gd.hyper["lr"] == 0.1 and gd.steps_to_tol == 93  # the grid lr closest to 2 / (1 + kappa)


def test_best_row_rule() -> None:
    runs = run_many("bowl", None, "gd", lr=[0.01, 0.1, 0.15, 0.3], steps=100)  # slow, fast, faster, diverges
    assert best_row(runs) == 2
    none = run_many("bowl", None, "gd", lr=[1e-4, 1e-3, 0.5], steps=10)
    assert best_row(none) == 1  # no row converged: the lowest final loss among the finite ones
    allbad = run_many("bowl", None, "gd", lr=[0.5, 0.7], steps=50)
    assert allbad.diverged.all() and best_row(allbad) == 0


def test_race_errors() -> None:
    with pytest.raises(ValueError, match="entries must be a non-empty list"):
        race("bowl", [])
    with pytest.raises(ValueError, match=r"entries\[1\] must be an optimizer name"):
        race("bowl", ["gd", 3])
    with pytest.raises(ValueError, match="unknown optimizer '[a-z]*'; choose one of gd, sgd"):
        race("bowl", ["lion"])
    with pytest.raises(ValueError, match="lr_grid is only used with fair=True"):
        race("bowl", ["gd"], lr_grid=[0.1])
    with pytest.raises(ValueError, match="lr_grid must hold finite learning rates > 0"):
        race("bowl", ["gd"], fair=True, lr_grid=[0.1, -1.0])


def gd_bowl_theory(lrs: np.ndarray, steps: int, kappa: float = 10.0) -> np.ndarray:
    """f after `steps` GD steps on 0.5 (x^2 + kappa y^2) from the bowl's start (-2.5, 1)."""
    x = (1 - lrs) ** steps * -2.5
    y = (1 - kappa * lrs) ** steps * 1.0
    return 0.5 * (x**2 + kappa * y**2)


def test_sweep_regions_follow_the_theory_of_gd_on_a_quadratic() -> None:
    lrs = np.logspace(-3, 0, 64)
    result = sweep("bowl", "gd", lrs, steps=60, tol=None)
    # divergent exactly where |1 - 10 lr| > 1, i.e. lr > 2 / kappa = 0.2
    assert [lab == "divergent" for lab in result.labels] == list(lrs > 0.2)
    ok = lrs <= 0.2
    np.testing.assert_allclose(result.final_losses[ok], gd_bowl_theory(lrs[ok], 60), rtol=1e-9, atol=1e-300)
    # the best lr minimizes the contraction factor max(|1 - lr|, |1 - 10 lr|): 2 / 11
    best = result.best_lr
    assert abs(np.log(best / (2 / 11))) < np.log(lrs[1] / lrs[0])
    order = {"too small": 0, "good": 1, "too large": 2, "divergent": 3}
    ranks = [order[lab] for lab in result.labels]
    assert ranks == sorted(ranks) and set(result.labels) == set(order)
    gap = result.final_losses
    good = np.array([lab == "good" for lab in result.labels])
    assert np.all(gap[good] <= 10 * gap[result.best_index])
    assert [r[0] for r in result.regions()] == ["too small", "good", "too large", "divergent"]
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["labels"] == result.labels and doc["best_lr"] == best


def test_sweep_rows_equal_minimize_and_stop_at_tol() -> None:
    lrs = [0.01, 0.05, 0.15, 0.3]
    result = sweep("bowl", "momentum", lrs, steps=200, beta=0.5)
    for i, lr in enumerate(lrs):
        assert_same_run(result.runs.row(i), minimize("bowl", None, "momentum", lr=lr, beta=0.5, steps=200))
    assert result.labels[-1] == "divergent" and result.runs.converged[1:3].all()
    assert result.final_losses[2] < 1e-8


def test_heatmap_grid_equals_one_sweep_per_beta() -> None:
    lrs = np.logspace(-3, 0, 12)
    betas = [0.0, 0.5, 0.9, 0.99]
    result = sweep("bowl", "momentum", lrs, steps=150, betas=betas)
    assert result.beta_name == "beta" and result.grid_final_losses.shape == (4, 12)
    assert len(result.grid_runs) == 48  # one vectorized run over the product grid
    for j, b in enumerate(betas):
        one = sweep("bowl", "momentum", lrs, steps=150, beta=b)
        assert np.array_equal(result.grid_final_losses[j], one.final_losses, equal_nan=True)
        assert result.grid_labels[j] == one.labels
    heavy = sweep("bowl", "gd", lrs, steps=100, betas=[0.0, 0.9])  # gd's beta is torch-style momentum
    assert heavy.beta_name == "momentum"
    assert np.array_equal(heavy.grid_final_losses[0], sweep("bowl", "gd", lrs, steps=100).final_losses)


def test_classify_rule_by_hand() -> None:
    lrs = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0])
    final = np.array([5.0, 0.1, 2e-9, 9e-9, 1e-3, np.nan, 50.0])
    labels, best = classify(lrs, final, initial_loss=10.0, diverged=np.zeros(7, bool), f_star=0.0, tol=1e-8)
    assert best == 2
    assert labels == ["too small", "too small", "good", "good", "too large", "divergent", "divergent"]
    labels, best = classify(lrs[:2], np.array([11.0, np.inf]), 10.0, np.array([False, True]), 0.0)
    assert labels == ["divergent", "divergent"] and best is None
    # unknown f*: gaps are measured from the lowest final loss
    labels, _ = classify(lrs[:3], np.array([-1.0, -3.0, -2.99999]), 0.0, np.zeros(3, bool), None, tol=1e-4)
    assert labels == ["too small", "good", "good"]


def test_sweep_errors() -> None:
    with pytest.raises(ValueError, match="lr is what a sweep varies"):
        sweep("bowl", "gd", [0.1], lr=0.1)
    with pytest.raises(ValueError, match=r"lrs must be finite numbers > 0, got -0.1"):
        sweep("bowl", "gd", [0.1, -0.1])
    with pytest.raises(ValueError, match="Adagrad has no default beta; pass beta_name"):
        sweep("bowl", "adagrad", [0.1], betas=[0.5])
    with pytest.raises(ValueError, match="beta_name must be a hyperparameter of Adam"):
        sweep("bowl", "adam", [0.1], betas=[0.5], beta_name="rho")
    with pytest.raises(ValueError, match="good_factor must be a finite number >= 1"):
        sweep("bowl", "gd", [0.1], good_factor=0.5)
    assert landscapes.get("bowl").f_star == 0.0
