"""What reading the gradients in one C++ call saves: descend's step with and without the bulk library.

Three optimizers on the same parameters and gradients, timed in interleaved rounds (the order
reversed every other round), ms per step as medians:

* ``bulk``: descend's default step (the per-tensor facts read by ``descend.optim.bulk``);
* ``python``: the same optimizer class with ``bulk`` answering None, so every fact is read by a
  ``map`` in Python (the path taken before the library is built, or where it cannot be);
* ``torch``: the torch.optim twin (SGD: foreach; Momentum: SGD momentum foreach; Adam: fused).

    python benchmarks/bulk_ab.py                               # many-small, SGD and Adam
    python benchmarks/bulk_ab.py --sets many-small,transformer --optimizers SGD,Momentum,Adam
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import descend.optim as O
from descend.optim import bulk
from step_throughput import param_sets, params_for

TORCH = {"SGD": lambda ps: torch.optim.SGD(ps, lr=1e-3, foreach=True),
         "Momentum": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, foreach=True),
         "Adam": lambda ps: torch.optim.Adam(ps, lr=1e-3, fused=True)}


def without_bulk(opt: torch.optim.Optimizer) -> None:
    saved = bulk.grads, bulk.layout, bulk.same
    bulk.grads, bulk.layout, bulk.same = (lambda ps: None), (lambda ts: None), (lambda *a: None)
    try:
        opt.step()
    finally:
        bulk.grads, bulk.layout, bulk.same = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="many-small")
    ap.add_argument("--optimizers", default="SGD,Adam", help="comma list of " + ",".join(TORCH))
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    names = args.optimizers.split(",")
    for name in names:
        if name not in TORCH:
            ap.error(f"--optimizers: {name!r} is not one of {', '.join(TORCH)}")
    torch.set_num_threads(args.threads)
    if bulk.library(wait=True) is None:
        ap.exit(1, f"the bulk library is not available here: {bulk.error}\n")
    sets = param_sets(ap, args.sets.split(","))
    print(f"torch {torch.__version__}, {args.threads} threads; ms per step, medians of {args.rounds} "
          "interleaved rounds\n")
    print("| set | optimizer | bulk | python | torch | bulk / python | bulk / torch | python / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for set_name, shapes in sets.items():
        for name in names:
            a = getattr(O, name)(params_for(shapes, 0), lr=1e-3)
            b = getattr(O, name)(params_for(shapes, 0), lr=1e-3)
            steps = {"bulk": a.step, "python": lambda b=b: without_bulk(b),
                     "torch": TORCH[name](params_for(shapes, 0)).step}
            for f in steps.values():
                f()
                f()
            times: dict[str, list[float]] = {k: [] for k in steps}
            for r in range(args.rounds):
                for k, f in (list(steps.items()) if r % 2 else list(steps.items())[::-1]):
                    t = time.perf_counter()
                    f()
                    times[k].append(time.perf_counter() - t)
            m = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            print(f"| {set_name} | {name} | {m['bulk']:.3f} | {m['python']:.3f} | {m['torch']:.3f} "
                  f"| {m['bulk'] / m['python']:.2f}x | {m['bulk'] / m['torch']:.2f}x | {m['python'] / m['torch']:.2f}x |")


if __name__ == "__main__":
    main()
