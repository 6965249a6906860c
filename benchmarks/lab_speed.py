"""A 64-lr sweep as one vectorized run against 64 separate runs, measured in one process.

For each optimizer: ``descend.lab.run_many`` with 64 learning rates (one
``(64, 2)`` parameter, an lr tensor of shape ``(64, 1)``, 1000 steps) and 64
calls of ``descend.lab.minimize`` (one per lr, 1000 steps each), on
Rosenbrock from its classic start, float64, no early stop (``tol=None``)
and learning rates that do not diverge, so both sides do all 64 x 1000
steps. The two are timed in alternating rounds so that machine noise hits
both alike; the table reports medians and the ratio (target: >= 20x). Each
round also checks that every vectorized row equals its separate run bit for
bit.

    python benchmarks/lab_speed.py            # 5 rounds, GD, Momentum and Adam
    python benchmarks/lab_speed.py --quick    # 3 rounds, GD only
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from descend.lab import minimize, run_many

N_LRS = 64
STEPS = 1000
LANDSCAPE = "rosenbrock"
# lr ranges on which none of the 64 runs diverges within 1000 steps
CASES = {
    "gd": (np.logspace(-5, -2.7, N_LRS), {}),
    "momentum": (np.logspace(-6, -3.7, N_LRS), {"beta": 0.9}),
    "adam": (np.logspace(-4, -1, N_LRS), {}),
}


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
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    names = ["gd"] if args.quick else list(CASES)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"lab_speed: {N_LRS} learning rates x {STEPS} steps on {LANDSCAPE}, float64, CPU "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds, medians")
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
