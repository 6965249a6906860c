"""The rows engine: minimize equals a plain one-trajectory loop, and minimize_many equals minimize,
bit for bit, for every kind of run (shared optimizers with per-run numbers, Newton, lookahead,
schedules, plateau, torch classes, plain functions); cancelling between chunks; caps and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descend import lab
from descend.lab import Cancelled, RunError, minimize, minimize_many, run_many
from descend.lab.engine import CHUNK, MAX_STEPS, Row, Stats, run_rows
from descend.lab.objective import Objective
from descend.schedules import constant, cosine, plateau, step

from .reference import reference_minimize
from .test_runner import assert_same_run

# One list of runs that exercises every path of the engine: two Adam runs with different lr and
# beta1 share one optimizer (tensor hyperparameters), three GD runs converge, diverge and run out
# of budget at different steps, Newton steps alone, Nesterov looks ahead, schedules scale the lr.
RUNS = [
    {"optimizer": "adam", "lr": 0.02},
    {"optimizer": "adam", "lr": 0.05},
    {"optimizer": "gd", "lr": 1e-3},
    {"optimizer": "gd", "lr": 2e-3},
    {"optimizer": "gd", "lr": 0.01},  # diverges on Rosenbrock
    {"optimizer": "momentum", "lr": 1e-4, "beta": 0.9},
    {"optimizer": "nesterov", "lr": 1e-4, "beta": 0.8, "lookahead": True},
    {"optimizer": "newton", "line_search": True},
    {"optimizer": "rmsprop", "lr": 1e-3, "schedule": cosine(1e-3, 400)},
    {"optimizer": "adam", "schedule": step(0.05, every=100, gamma=0.5)},
    {"optimizer": "adagrad", "lr": 0.5},
    {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"optimizer": torch.optim.SGD, "lr": 1e-3},
]


@pytest.mark.parametrize("i", range(len(RUNS)))
def test_minimize_equals_the_plain_loop(i: int) -> None:
    run = dict(RUNS[i])
    opt = run.pop("optimizer")
    got = minimize("rosenbrock", None, opt, steps=400, tol=1e-6, record_every=7, **run)
    assert_same_run(got, reference_minimize("rosenbrock", None, opt, steps=400, tol=1e-6, record_every=7, **run))


def test_minimize_many_equals_minimize_for_every_run() -> None:
    common = {"steps": 400, "tol": 1e-6}
    many = minimize_many("rosenbrock", RUNS, **common)
    singles = [minimize("rosenbrock", **common, **run) for run in RUNS]
    assert len(many) == len(RUNS)
    endings = set()
    for a, b in zip(many, singles):
        assert_same_run(a, b)
        endings.add("converged" if b.converged else "diverged" if b.diverged else "budget")
    assert endings == {"converged", "diverged", "budget"}
    assert many[0].hyper == {"lr": 0.02} and many[9].hyper["lr"] == 0.05  # the schedule's first lr


def test_shared_optimizer_rows_differ_in_every_number() -> None:
    """Adam rows with different lr, beta1, beta2 and eps share one optimizer; each equals its own run."""
    runs = [{"optimizer": "adam", "lr": lr, "beta1": b1, "beta2": b2, "eps": eps}
            for lr, b1, b2, eps in [(0.1, 0.9, 0.999, 1e-8), (0.05, 0.5, 0.99, 1e-6), (0.3, 0.0, 0.9, 1e-3)]]
    stats = Stats()
    obj = Objective("beale")
    from descend.lab.runner import _row

    rows = [_row(obj.start(None), r["optimizer"], None, {k: v for k, v in r.items() if k != "optimizer"})
            for r in runs]
    done = run_rows(obj, rows, steps=300, tol=1e-9, stats=stats)
    assert stats.groups == 1 and stats.steps == 300
    for r, got in zip(runs, done):
        assert_same_run(got, reference_minimize("beale", steps=300, tol=1e-9, **r))


def test_starts_per_run_plateau_and_plain_functions() -> None:
    def runs() -> list[dict]:  # a plateau schedule carries state: a fresh one for each computation
        return [
            {"optimizer": "gd", "lr": 0.1, "x0": [2.0, -1.0]},
            {"optimizer": "gd", "lr": 0.1, "x0": [-1.0, 0.5]},
            {"optimizer": "gd", "lr": 0.05, "schedule": plateau(constant(0.05), patience=3, factor=0.5)},
        ]

    many = minimize_many("two_minima", runs(), steps=200, tol=1e-10)
    for a, r in zip(many, runs()):
        assert_same_run(a, reference_minimize("two_minima", steps=200, tol=1e-10, **r))
    assert many[2].lrs[0] == 0.05 and many[2].lrs[-1] < 0.05  # the plateau cut the lr
    assert many[0].path[0].tolist() == [2.0, -1.0] and many[1].path[0].tolist() == [-1.0, 0.5]

    def f(x: torch.Tensor) -> torch.Tensor:
        return (x**2 * torch.arange(1.0, 4.0, dtype=x.dtype)).sum() + torch.cos(x).sum()

    fruns = [{"optimizer": "adam", "lr": 0.1}, {"optimizer": "gd", "lr": 0.05}, {"optimizer": "newton"}]
    x0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    for a, r in zip(minimize_many(f, fruns, x0=x0, steps=150, tol=1e-10), fruns):
        assert_same_run(a, minimize(f, **r, x0=x0, steps=150, tol=1e-10))


def test_run_many_rows_equal_the_plain_loop() -> None:
    lrs = np.logspace(-4, -2, 5)
    runs = run_many("rosenbrock", None, "momentum", lr=lrs, beta=0.9, steps=300, tol=1e-6, record_every=5)
    for i, lr in enumerate(lrs):
        assert_same_run(runs.row(i), reference_minimize("rosenbrock", None, "momentum", lr=float(lr), beta=0.9,
                                                        steps=300, tol=1e-6, record_every=5))


def test_cancel_is_checked_between_chunks_and_raises() -> None:
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled, match=f"after {2 * CHUNK} of"):
        minimize_many("rosenbrock", [{"optimizer": "gd", "lr": 1e-4}], steps=10 * CHUNK, tol=None, cancel=cancel)
    assert len(calls) == 2
    seen: list[int] = []
    minimize_many("rosenbrock", [{"optimizer": "gd", "lr": 1e-4}], steps=3 * CHUNK + 5, tol=None,
                  cancel=lambda: seen.append(1) or False)
    assert len(seen) == 3  # after steps CHUNK, 2 CHUNK and 3 CHUNK
    assert issubclass(lab.Cancelled, Exception)


def test_progress_reports_steps() -> None:
    seen: list[tuple[int, int]] = []
    run = minimize("bowl", optimizer="gd", lr=1e-3, steps=2 * CHUNK + 10, tol=None,
                   progress=lambda t, n: seen.append((t, n)))
    assert run.steps == 2 * CHUNK + 10
    assert seen == [(CHUNK, 2 * CHUNK + 10), (2 * CHUNK, 2 * CHUNK + 10), (2 * CHUNK + 10, 2 * CHUNK + 10)]


def test_errors_name_the_run_and_the_caps() -> None:
    with pytest.raises(RunError, match=r"runs\[1\]: lr must be in \[0, inf\), got -1") as info:
        minimize_many("bowl", [{"optimizer": "gd", "lr": 0.1}, {"optimizer": "gd", "lr": -1.0}])
    assert info.value.index == 1
    with pytest.raises(RunError, match=r"runs\[0\]: unknown optimizer 'lion'"):
        minimize_many("bowl", [{"optimizer": "lion"}])
    with pytest.raises(RunError, match=r"runs\[0\]: 'steps' is given both in the run and as a common argument"):
        minimize_many("bowl", [{"steps": 10}], steps=20)
    with pytest.raises(ValueError, match="runs must be a list of mappings"):
        minimize_many("bowl", {"optimizer": "gd"})
    with pytest.raises(ValueError, match=f"steps must be at most {MAX_STEPS:,}"):
        minimize("bowl", steps=MAX_STEPS + 1)
    with pytest.raises(ValueError, match="pass record_every >= 6"):
        minimize("bowl", steps=MAX_STEPS, tol=None)
    with pytest.raises(ValueError, match="schedule must be None or a descend schedule"):
        run_rows(Objective("bowl"), [Row("gd", {}, "cosine", torch.zeros(2))], steps=1, tol=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("block", [1, 5, 25, 250])
def test_any_block_length_gives_the_same_runs(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are measured a block of steps at a time: rows stopping inside a block, at its edges or at
    step 0, records cut between blocks, all equal the plain loop whatever the block's length."""
    from descend.lab import engine

    monkeypatch.setattr(engine, "_block", lambda n, d: block)
    runs = [
        {"optimizer": "gd", "lr": lr} for lr in (0.02, 0.05, 0.1, 0.15, 0.19, 0.25)  # bowl: slow .. diverging
    ] + [
        {"optimizer": "adam", "lr": 0.3}, {"optimizer": "adam", "lr": 0.05, "beta1": 0.5},
        {"optimizer": "momentum", "lr": 0.01, "x0": [0.0, 0.0]},  # starts at the minimum: stops at step 0
        {"optimizer": "rmsprop", "lr": 0.01, "schedule": cosine(0.01, 200)},
    ]
    for steps, every in [(517, 7), (60, 1), (250, 250)]:
        many = minimize_many("bowl", runs, steps=steps, tol=1e-9, record_every=every)
        for got, r in zip(many, runs):
            assert_same_run(got, reference_minimize("bowl", steps=steps, tol=1e-9, record_every=every, **r))
        assert {r.steps for r in many} != {steps}  # some rows stopped early
        assert many[8].steps == 0 and many[8].converged


def test_newton_at_its_fixed_point_repeats_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Newton reaches (1, 1) on Rosenbrock in a few steps and, with tol=0, stays there: the engine
    repeats its step instead of recomputing it, with the same results as the plain loop."""
    from descend import optim as O

    calls: list[int] = []
    step = O.Newton.step

    def counted(self, closure=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        return step(self, closure)

    monkeypatch.setattr(O.Newton, "step", counted)
    runs = [{"optimizer": "newton", "line_search": True}, {"optimizer": "newton"},
            {"optimizer": "adam", "lr": 0.05}, {"optimizer": "gd", "lr": 1e-3}]
    many = minimize_many("rosenbrock", runs, steps=300, tol=0.0, record_every=3)
    engine_calls = len(calls)
    for got, r in zip(many, runs):
        assert_same_run(got, reference_minimize("rosenbrock", steps=300, tol=0.0, record_every=3, **r))
    assert many[0].steps == 300 and many[0].path[-1].tolist() == [1.0, 1.0]
    assert engine_calls < 100  # two Newton runs of 300 steps: each stepped only until its fixed point
    calls.clear()
    alone = minimize("rosenbrock", optimizer="newton", line_search=True, steps=300, tol=None)
    assert len(calls) < 50
    assert_same_run(alone, reference_minimize("rosenbrock", optimizer="newton", line_search=True, steps=300, tol=None))


def test_long_rows_of_a_plain_function() -> None:
    """Rows of 40 numbers (norms summed step by step, as the one-row loop sums them)."""
    w = torch.linspace(0.5, 3.0, 40, dtype=torch.float64)

    def f(x: torch.Tensor) -> torch.Tensor:
        return (w * x * x).sum() + torch.sin(x).sum()

    x0 = torch.linspace(-1.0, 1.0, 40, dtype=torch.float64)
    runs = [{"optimizer": "adam", "lr": 0.05}, {"optimizer": "adam", "lr": 0.2}, {"optimizer": "gd", "lr": 0.1}]
    for got, r in zip(minimize_many(f, runs, x0=x0, steps=300, tol=1e-9, record_every=4), runs):
        assert_same_run(got, reference_minimize(f, x0=x0, steps=300, tol=1e-9, record_every=4, **r))


def test_a_gradient_function_that_uses_autograd() -> None:
    """The loop runs in inference mode only where nothing needs autograd: a landscape whose own
    gradient function calls autograd gets the ordinary loop, with the same results."""
    import dataclasses

    from descend import landscapes
    from descend.landscapes.base import autograd_grad

    base = landscapes.get("rosenbrock")
    land = dataclasses.replace(base, grad_fn=lambda xy: autograd_grad(base.f, xy), value_grad_fn=None)
    runs = [{"optimizer": "adam", "lr": 0.05}, {"optimizer": "gd", "lr": 1e-3}]
    many = minimize_many(land, runs, steps=300, tol=1e-6)
    for got, r in zip(many, runs):
        assert_same_run(got, reference_minimize(land, steps=300, tol=1e-6, **r))
    assert many[0].steps == 300 and np.isfinite(many[0].path).all()


def test_state_in_bfloat16_takes_the_optimizers_own_step() -> None:
    """A state stored rounded (state_dtype) is written by the optimizer's step, not the direct rule."""
    runs = [{"optimizer": "adam", "lr": 0.05, "state_dtype": torch.bfloat16}, {"optimizer": "adam", "lr": 0.05}]
    many = minimize_many("rosenbrock", runs, steps=200, tol=1e-6)
    for got, r in zip(many, runs):
        assert_same_run(got, reference_minimize("rosenbrock", steps=200, tol=1e-6, **r))
    assert not np.array_equal(many[0].path, many[1].path)
