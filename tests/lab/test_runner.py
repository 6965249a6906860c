"""minimize and run_many: exact equality of vectorized rows and single runs, known minima,
divergence, masking, schedules, plain functions and argument errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from descend import landscapes
from descend.lab import Run, minimize, minimize_many, run_many
from descend.schedules import cosine

FIELDS = ("path", "losses", "grad_norms", "lrs", "record_steps")


def assert_same_run(a: Run, b: Run) -> None:
    """Bit-for-bit equality of everything but the wall time."""
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, (name, x.shape, y.shape)
        assert np.array_equal(x, y, equal_nan=True), (name, np.nanmax(np.abs(x - y)))
    assert (a.steps_to_tol, a.converged, a.diverged) == (b.steps_to_tol, b.converged, b.diverged)
    assert a.hyper == b.hyper and a.optimizer == b.optimizer and a.label == b.label
    assert (a.f_star, a.landscape, a.tol) == (b.f_star, b.landscape, b.tol)


# lrs from far too small to divergent: rows converge, diverge and run out of budget at
# different steps, so the freezing of finished rows is exercised while the others go on.
CASES = {
    "gd": ("bowl", np.logspace(-3, -0.5, 6), {}),
    "momentum": ("rosenbrock", np.logspace(-5, -2, 6), {"beta": 0.9}),
    "adam": ("beale", np.logspace(-3, 3, 7), {}),
    "rmsprop": ("bowl", np.logspace(-4, 3, 8), {}),
    "adagrad": ("himmelblau", np.logspace(-1, 3, 6), {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_many_rows_equal_separate_minimize_runs_exactly(name: str) -> None:
    land, lrs, kw = CASES[name]
    runs = run_many(land, None, name, lr=lrs, steps=800, tol=1e-6, **kw)
    outcomes = set()
    for i, lr in enumerate(lrs):
        single = minimize(land, None, name, lr=float(lr), steps=800, tol=1e-6, **kw)
        assert_same_run(runs.row(i), single)
        assert np.abs(runs.row(i).path - single.path).max(initial=0.0) == 0.0
        outcomes.add("converged" if single.converged else "diverged" if single.diverged else "budget")
    assert outcomes == {"converged", "diverged", "budget"}  # rows stopped at different steps


def test_masking_covers_all_three_endings_in_one_run() -> None:
    lrs = [1e-3, 0.05, 0.15, 0.25]  # bowl kappa 10: too slow, converges, converges fast, diverges (> 2/10)
    runs = run_many("bowl", None, "gd", lr=lrs, steps=400, tol=1e-10)
    assert runs.converged.tolist() == [False, True, True, False]
    assert runs.diverged.tolist() == [False, False, False, True]
    assert runs.stop_steps[0] == 400 and runs.stop_steps[1] > runs.stop_steps[2]
    for i in range(4):
        assert_same_run(runs.row(i), minimize("bowl", None, "gd", lr=lrs[i], steps=400, tol=1e-10))
    # a stopped row repeats its last point; the arrays stay finite where the run was finite
    s = int(runs.stop_steps[2])
    assert np.all(runs.paths[s:, 2] == runs.final_points[2])
    assert np.isfinite(runs.paths[:, :3]).all()
    d = int(runs.stop_steps[3])
    assert np.abs(runs.final_points[3]).max() > 300.0 >= np.abs(runs.paths[d - 1, 3]).max()


def test_per_row_starts_and_betas_and_record_every() -> None:
    starts = np.array([[-1.2, 1.0], [0.5, 2.5], [-1.8, -0.5], [1.5, 1.0]])
    betas = [0.0, 0.5, 0.9, 0.95]
    runs = run_many("rosenbrock", starts, "momentum", lr=2e-4, beta=betas, steps=700, tol=1e-7, record_every=9)
    for i in range(4):
        one = minimize("rosenbrock", starts[i], "momentum", lr=2e-4, beta=betas[i], steps=700, tol=1e-7,
                       record_every=9)
        assert_same_run(runs.row(i), one)
        steps = one.record_steps
        assert steps[0] == 0 and np.all(steps[1:-1] % 9 == 0) and steps[-1] == one.steps
    rms = run_many("beale", None, "rmsprop", lr=0.01, beta=[0.5, 0.9, 0.99, 0.999, 0.9999], steps=500)
    for i, b in enumerate([0.5, 0.9, 0.99, 0.999, 0.9999]):
        assert_same_run(rms.row(i), minimize("beale", None, "rmsprop", lr=0.01, beta=b, steps=500))


def test_per_row_adam_betas_match_bit_for_bit() -> None:
    pairs = [(0.5, 0.9), (0.8, 0.99), (0.9, 0.999), (0.99, 0.9999), (0.0, 0.5)]
    adam = run_many("bowl", None, "adam", lr=0.05, beta1=[p[0] for p in pairs], beta2=[p[1] for p in pairs],
                    steps=300, tol=None)
    for i, (b1, b2) in enumerate(pairs):
        one = minimize("bowl", None, "adam", lr=0.05, beta1=b1, beta2=b2, steps=300, tol=None)
        np.testing.assert_array_equal(adam.row(i).path, one.path)
    exact = run_many("bowl", None, "adam", lr=[0.01, 0.05, 0.2], beta1=0.8, beta2=0.99, steps=300)
    for i, lr in enumerate([0.01, 0.05, 0.2]):
        assert_same_run(exact.row(i), minimize("bowl", None, "adam", lr=lr, beta1=0.8, beta2=0.99, steps=300))


def test_schedule_drives_the_lr_of_every_step_and_rows_stay_exact() -> None:
    sched = cosine(0.1, 200)
    run = minimize("bowl", None, "gd", schedule=sched, steps=200, tol=None)
    assert run.lrs.tolist() == [sched(t) for t in range(200)]
    assert run.hyper["lr"] == 0.1
    lrs = [0.02, 0.1, 0.15]
    runs = run_many("bowl", None, "momentum", lr=lrs, beta=0.5, schedule=sched, steps=200, tol=1e-12)
    for i, lr in enumerate(lrs):
        one = minimize("bowl", None, "momentum", lr=lr, beta=0.5, schedule=sched, steps=200, tol=1e-12)
        assert_same_run(runs.row(i), one)
        assert one.lrs[5] == sched(5) * (lr / 0.1)


def test_nesterov_lookahead_and_adamw_vectorize_exactly() -> None:
    lrs = [1e-4, 5e-4, 1e-3]
    runs = run_many("rosenbrock", None, "nesterov", lr=lrs, lookahead=True, steps=300)
    for i, lr in enumerate(lrs):
        assert_same_run(runs.row(i), minimize("rosenbrock", None, "nesterov", lr=lr, lookahead=True, steps=300))
    runs = run_many("himmelblau", [[0.0, 0.0], [-1.0, 1.0]], "adamw", lr=[0.05, 0.2], steps=300)
    for i, (x0, lr) in enumerate([([0.0, 0.0], 0.05), ([-1.0, 1.0], 0.2)]):
        assert_same_run(runs.row(i), minimize("himmelblau", x0, "adamw", lr=lr, steps=300))


def test_gd_on_the_bowl_follows_the_closed_form() -> None:
    # f = (x^2 + 10 y^2) / 2: x_t = (1 - a)^t x_0, y_t = (1 - 10 a)^t y_0
    a, tol = 0.1, 1e-10
    run = minimize(landscapes.bowl(10.0), optimizer="gd", lr=a, steps=1000, tol=tol)
    t = np.arange(run.steps + 1)
    x = (1 - a) ** t * -2.5
    y = (1 - 10 * a) ** t * 1.0
    np.testing.assert_allclose(run.path, np.stack([x, y], 1), rtol=1e-12, atol=1e-300)
    f = 0.5 * (x**2 + 10 * y**2)
    assert run.steps_to_tol == int(np.argmax(f < tol)) == 115
    assert run.converged and not run.diverged and run.final_gap < tol
    assert run.grad_norms[-1] == pytest.approx(math.hypot(x[-1], 10 * y[-1]), rel=1e-12)


def test_known_minima_are_reached() -> None:
    adam = minimize("rosenbrock", optimizer="adam", lr=0.02, steps=5000, tol=1e-10)
    assert adam.converged and adam.steps_to_tol is not None
    np.testing.assert_allclose(adam.end, [1.0, 1.0], atol=1e-4)
    newton = minimize("bowl", optimizer="newton")  # a quadratic: one Newton step
    assert newton.steps_to_tol == 1 and np.abs(newton.end).max() < 1e-12
    newton = minimize("rosenbrock", optimizer="newton", line_search=True, steps=100)
    assert newton.converged and newton.steps_to_tol == 20
    assert newton.lrs.max() == 1.0 and newton.lrs.min() < 1.0  # accepted step lengths of the line search
    ends = {tuple(np.round(minimize("himmelblau", x0, "gd", lr=0.01, steps=2000).end, 4))
            for x0 in ([0.0, 0.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -2.0])}
    minima = {(round(m.x, 4), round(m.y, 4)) for m in landscapes.get("himmelblau").minima}
    assert ends == minima


def test_divergence_stops_early_and_serializes_without_nan() -> None:
    run = minimize("bowl", optimizer="gd", lr=0.5, steps=1000)  # lr > 2 / kappa
    assert run.diverged and not run.converged and run.steps_to_tol is None
    assert run.steps < 20 and np.abs(run.path[-1]).max() > 300.0 and np.abs(run.path[-2]).max() <= 300.0
    blow = minimize("rosenbrock", optimizer="gd", lr=0.1, steps=100, bound=math.inf)  # overflows to inf / NaN
    assert blow.diverged and not np.isfinite(blow.grad_norms[-1]) and np.isfinite(blow.grad_norms[:-1]).all()
    text = json.dumps(blow.to_dict(), allow_nan=False)
    assert json.loads(text)["grad_norms"][-1] is None
    unbounded = minimize("note003", optimizer="adam", lr=0.1, steps=5000)  # f -> -inf: escapes
    assert unbounded.diverged and unbounded.f_star is None


def test_a_start_far_outside_the_box_has_not_diverged_there() -> None:
    """The divergence bound (100x the box) widens to 100x a start beyond it: GD on the bowl from
    (2000, 0) converges; before, every such run was "diverged" at step 0 with no step taken."""
    far = minimize("bowl", [2000.0, 0.0], "gd", lr=0.01, steps=5000)
    assert far.converged and far.steps > 100
    race = minimize_many("bowl", [{"optimizer": "gd", "lr": 0.01, "x0": [2000.0, 0.0]},
                                  {"optimizer": "gd", "lr": 0.01, "x0": [1.0, 1.0]}], steps=5000)
    assert all(r.converged for r in race)
    blown = minimize("bowl", [2000.0, 2000.0], "gd", lr=0.5, steps=100)  # lr > 2 / kappa from there too
    assert blown.diverged and blown.steps > 0 and np.abs(blown.path[-1]).max() > 100 * 2000


def test_plain_torch_functions() -> None:
    target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    def f(x: torch.Tensor) -> torch.Tensor:
        return ((x - target) ** 2).sum() + 0.1 * (x**4).sum()

    run = minimize(f, [0.0, 0.0, 0.0], "adam", lr=0.05, steps=3000, tol=1e-9)
    assert run.converged and run.landscape is None and run.f_star is None
    assert run.grad_norms[-1] < 1e-9 and run.path.shape[1] == 3
    runs = run_many(f, [0.0, 0.0, 0.0], "gd", lr=[0.01, 0.1, 0.3], steps=300)
    for i, lr in enumerate([0.01, 0.1, 0.3]):
        assert_same_run(runs.row(i), minimize(f, [0.0, 0.0, 0.0], "gd", lr=lr, steps=300))
    w = torch.zeros(2, 2, dtype=torch.float64)  # any tensor shape; the path is flattened
    mat = minimize(lambda m: ((m - torch.eye(2, dtype=torch.float64)) ** 2).sum(), w, "gd", lr=0.25, steps=50)
    assert mat.converged and mat.path.shape[1] == 4
    np.testing.assert_allclose(mat.end, [1, 0, 0, 1], atol=1e-4)


def test_newton_rows_run_one_by_one_with_the_same_results() -> None:
    starts = [[-1.2, 1.0], [2.0, 2.0]]
    runs = run_many("rosenbrock", starts, "newton", line_search=True, steps=60)
    for i in range(2):
        assert_same_run(runs.row(i), minimize("rosenbrock", starts[i], "newton", line_search=True, steps=60))
    assert runs.converged.all()


def test_results_are_json_ready() -> None:
    runs = run_many("bowl", None, "gd", lr=[0.1, 0.3], steps=50)
    doc = json.loads(json.dumps(runs.to_dict(), allow_nan=False))
    assert doc["diverged"] == [False, True] and len(doc["paths"]) == 51
    row = json.loads(json.dumps(runs.row(0).to_dict(), allow_nan=False))
    assert row["label"] == "GD (lr=0.1)" and row["landscape"] == "bowl" and row["f_star"] == 0.0


def test_gd_alias_display_names_and_classes() -> None:
    from descend.optim import SGD, Adam

    assert minimize("bowl", None, "gd", lr=0.1, steps=5).optimizer == "GD"
    assert minimize("bowl", None, SGD, lr=0.1, steps=5).optimizer == "SGD"  # the registry: gd -> GD, sgd -> SGD
    assert minimize("bowl", None, Adam, steps=3).label == "Adam (lr=0.001)"
    a = minimize("bowl", None, torch.optim.SGD, lr=0.1, steps=30)
    b = minimize("bowl", None, "sgd", lr=0.1, steps=30)
    np.testing.assert_allclose(a.path, b.path, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: minimize("bowl", optimizer="adamax"), "unknown optimizer 'adamax'; choose one of gd, sgd, momentum, nesterov, adagrad"),
        (lambda: minimize("valley"), "unknown landscape 'valley'; valid names: note003, bowl, rosenbrock"),
        (lambda: minimize("bowl", optimizer="adam", beta=0.9), "unknown option 'beta' for Adam; it takes: lr, beta1"),
        (lambda: minimize("bowl", lr=[0.1, 0.2]), "lr must be a single value for minimize"),
        (lambda: minimize("bowl", steps=-1), "steps must be an integer >= 0, got -1"),
        (lambda: minimize("bowl", tol=-1.0), "tol must be None"),
        (lambda: minimize("bowl", [1.0, 2.0, 3.0]), "x0 must be a 2-D point"),
        (lambda: minimize(lambda x: (x**2).sum()), "x0 is required when f is a function"),
        (lambda: minimize(lambda x: x**2, [1.0, 2.0]), r"f must return a scalar tensor, got \(2,\)"),
        (lambda: minimize(42), "f must be a Landscape, a landscape name"),
        (lambda: minimize("bowl", lr=-0.1), r"lr must be in \[0, inf\), got -0.1"),
        (lambda: minimize("bowl", schedule="cosine"), "schedule must be None or a descend schedule"),
        (lambda: run_many("bowl", [[0, 0], [1, 1]], lr=[0.1, 0.2, 0.3]), "same length N, got lr: 3, starts: 2"),
        (lambda: run_many("bowl", None, lr=[]), "lr must hold at least one value"),
        (lambda: run_many("bowl", np.zeros((2, 2, 2))), r"starts must have shape \(N, d\) or \(d,\)"),
    ],
)
def test_clear_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_newton_that_meets_nan_is_a_diverged_run() -> None:
    """A Newton step into a NaN region ends the run as diverged, not as an error."""
    f = lambda x: torch.where(x[0] > 1.0, torch.tensor(float("nan"), dtype=x.dtype), (x**2).sum() - 3 * x[0])  # noqa: E731
    run = minimize(f, [0.0, 0.0], "newton", steps=10)
    assert run.diverged and not run.converged and run.steps_to_tol is None
    assert run.to_dict()["diverged"] is True


def test_jsonable_arrays_are_plain_lists_with_none_for_non_finite() -> None:
    from descend.lab._common import jsonable

    out = jsonable({"a": np.array([[1.5, np.nan], [np.inf, -2.0]]), "b": np.array([1.0], dtype=np.float32),
                    "i": np.arange(3), "m": np.array([True, False]), "s": np.array(["x"])})
    assert out == {"a": [[1.5, None], [None, -2.0]], "b": [1.0], "i": [0, 1, 2], "m": [True, False], "s": ["x"]}
    assert all(type(v) is float for v in out["a"][0][:1] + out["a"][1][1:] + out["b"])
    assert type(out["i"][0]) is int and type(out["m"][0]) is bool
