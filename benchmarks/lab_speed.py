"""The lab's speed: playground races through the rows engine, and a 64-lr sweep as one run.

Part 1, races (issue 14's targets, server-side compute of ``descend.lab.minimize_many``):

* ``web race``: Rosenbrock, Adam (lr 0.02) and GD (lr 1e-3), 2000 steps, tol 1e-6 (the
  playground's default race), target <= 0.3 s;
* ``8 x 5000``: eight runs (six optimizers, two of them twice) x 5000 steps, no early stop,
  target <= 2 s;
* ``Newton``: Newton (2000 steps, no early stop) against GD (the same), target <= 5x.

For each: the median time of ``minimize_many``, the part spent inside the optimizers' own
steps (the engine: ``descend.optim``) and the rest (the runner: evaluating the landscape
once for all rows, measuring, recording, Python), from :class:`descend.lab.engine.Stats`,
and the time of the same runs as separate ``minimize`` calls. Every round checks that each
run of ``minimize_many`` equals its ``minimize`` bit for bit.

Part 2, sweep: ``run_many`` with 64 learning rates (one ``(64, 2)`` parameter, an lr tensor
of shape ``(64, 1)``, 1000 steps) against 64 calls of ``minimize``, on Rosenbrock, float64,
``tol=None``, learning rates that do not diverge (target: >= 20x).

Rounds alternate the cases so that machine noise hits all alike; tables show medians.

    python benchmarks/lab_speed.py            # 5 rounds; races, then GD, Momentum and Adam sweeps
    python benchmarks/lab_speed.py --quick    # 3 rounds; races, then the GD sweep
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from descend.lab import minimize, minimize_many, run_many
from descend.lab.engine import Stats, run_rows
from descend.lab.objective import Objective
from descend.lab.runner import _row

N_LRS = 64
STEPS = 1000
LANDSCAPE = "rosenbrock"
# lr ranges on which none of the 64 runs diverges within 1000 steps
CASES = {
    "gd": (np.logspace(-5, -2.7, N_LRS), {}),
    "momentum": (np.logspace(-6, -3.7, N_LRS), {"beta": 0.9}),
    "adam": (np.logspace(-4, -1, N_LRS), {}),
}


RACES = {
    "web race": ([{"optimizer": "adam", "lr": 0.02}, {"optimizer": "gd", "lr": 1e-3}],
                 {"steps": 2000, "tol": 1e-6}, 0.3),
    "8 x 5000": ([{"optimizer": o, "lr": lr} for o, lr in [
        ("adam", 0.02), ("adam", 0.005), ("gd", 1e-3), ("gd", 5e-4), ("momentum", 1e-4), ("nesterov", 1e-4),
        ("rmsprop", 1e-3), ("adagrad", 0.5)]], {"steps": 5000, "tol": None}, 2.0),
    "Newton": ([{"optimizer": "newton"}], {"steps": 2000, "tol": None}, None),
    "GD": ([{"optimizer": "gd", "lr": 1e-3}], {"steps": 2000, "tol": None}, None),
}


def race_round(runs: list[dict], common: dict) -> tuple[float, float, float, bool]:
    """(minimize_many seconds, engine seconds, separate minimize seconds, all runs equal)."""
    t0 = time.perf_counter()
    many = minimize_many(LANDSCAPE, runs, **common)
    t_many = time.perf_counter() - t0
    obj = Objective(LANDSCAPE)
    rows = [_row(obj.start(None), r["optimizer"], None, {k: v for k, v in r.items() if k != "optimizer"})
            for r in runs]
    stats = Stats()
    run_rows(obj, rows, stats=stats, **common)
    t0 = time.perf_counter()
    singles = [minimize(LANDSCAPE, **common, **r) for r in runs]
    t_sep = time.perf_counter() - t0
    equal = all(np.array_equal(a.path, b.path) and np.array_equal(a.losses, b.losses) for a, b in zip(many, singles))
    return t_many, stats.step_time / stats.wall_time * t_many, t_sep, equal


def races(rounds: int) -> None:
    for runs, common, _ in RACES.values():
        race_round(runs[:1], {**common, "steps": 50})  # warm-up
    times: dict[str, list[tuple[float, float, float, bool]]] = {k: [] for k in RACES}
    for _ in range(rounds):
        for name, (runs, common, _) in RACES.items():
            times[name].append(race_round(runs, common))
    header = f"{'race':<10} {'minimize_many':>14} {'engine':>9} {'runner':>9} {'per step':>9} " \
             f"{'separate':>10} {'speed-up':>9} {'target':>8} {'equal':>6}"
    print(header)
    print("-" * len(header))
    for name, (_runs, common, target) in RACES.items():
        m = statistics.median(t[0] for t in times[name])
        e = statistics.median(t[1] for t in times[name])
        sep = statistics.median(t[2] for t in times[name])
        steps = common["steps"]
        shown = f"<= {target:g} s" if target else ""
        print(f"{name:<10} {m * 1e3:>11.0f} ms {e * 1e3:>6.0f} ms {(m - e) * 1e3:>6.0f} ms "
              f"{m / steps * 1e6:>6.0f} us {sep * 1e3:>7.0f} ms {sep / m:>8.1f}x {shown:>8} "
              f"{'yes' if all(t[3] for t in times[name]) else 'NO':>6}")
    newton = statistics.median(t[0] for t in times["Newton"]) / statistics.median(t[0] for t in times["GD"])
    print(f"Newton / GD, 2000 steps each: {newton:.1f}x (target <= 5x)")
    print()


def one_round(name: str, lrs: np.ndarray, kw: dict) -> tuple[float, float, bool]:
    t0 = time.perf_counter()
    many = run_many(LANDSCAPE, None, name, lr=lrs, steps=STEPS, tol=None, **kw)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    singles = [minimize(LANDSCAPE, None, name, lr=float(lr), steps=STEPS, tol=None, **kw) for lr in lrs]
    t_sep = time.perf_counter() - t0
    assert not many.diverged.any(), f"{name}: some lr diverged; the comparison needs full-length runs"
    equal = all(np.array_equal(many.row(i).path, s.path) for i, s in enumerate(singles))
    return t_vec, t_sep, equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, GD only")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per optimizer (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: 2-number tensors gain nothing from more, and on a busy "
                             "machine extra threads cost Newton's autograd up to 10x)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (3 if args.quick else 5)
    names = ["gd"] if args.quick else list(CASES)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"lab_speed: {N_LRS} learning rates x {STEPS} steps on {LANDSCAPE}, float64, CPU "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds, medians")
    races(rounds)
    header = f"{'optimizer':<10} {'one vectorized run':>19} {f'{N_LRS} separate runs':>17} {'speed-up':>9} " \
             f"{'per step (vec / sep)':>22} {'rows equal':>11}"
    print(header)
    print("-" * len(header))
    ratios = []
    for name in names:
        lrs, kw = CASES[name]
        one_round(name, lrs[:2], kw)  # warm-up
        vec, sep, eq = [], [], []
        for _ in range(rounds):
            a, b, same = one_round(name, lrs, kw)
            vec.append(a)
            sep.append(b)
            eq.append(same)
        v, s = statistics.median(vec), statistics.median(sep)
        ratios.append(s / v)
        per = f"{v / STEPS * 1e6:.0f} / {s / (STEPS * N_LRS) * 1e6:.0f} us"
        print(f"{name:<10} {v * 1e3:>16.0f} ms {s * 1e3:>14.0f} ms {s / v:>8.1f}x {per:>22} "
              f"{'yes' if all(eq) else 'NO':>11}")
    print(f"target >= 20x: {'met' if min(ratios) >= 20 else 'NOT met'} (lowest {min(ratios):.1f}x)")


if __name__ == "__main__":
    main()
