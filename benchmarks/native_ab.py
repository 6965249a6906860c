"""What descend's two step libraries save: its step with and without one of them, and torch's.

* ``--without bulk``: reading every gradient's facts in one C++ call (``descend.optim.bulk``)
  against a ``map`` in Python per fact (the path taken before that library is built);
* ``--without replay``: a traced foreach program replayed in one native call
  (``descend.optim.replay``) against the same program replayed with torch's ``_foreach_*`` ops.

Three optimizers on the same parameters and gradients, timed in interleaved rounds (the order
reversed every other round), ms per step as medians:

* ``with``: descend's default step;
* ``without``: the same optimizer class with the library switched off for its steps;
* ``torch``: the torch.optim twin (SGD: foreach; Momentum: SGD momentum foreach; Adam: fused).

    python benchmarks/native_ab.py                               # many-small, SGD and Adam, bulk
    python benchmarks/native_ab.py --without replay --sets 10k,200k,many-small,transformer \
        --optimizers SGD,Momentum
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import descend.optim as O
from descend.optim import bulk, replay
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


def without_replay(opt: torch.optim.Optimizer) -> None:
    saved = replay.step
    replay.step = lambda *a: False
    try:
        opt.step()
    finally:
        replay.step = saved


WITHOUT = {"bulk": without_bulk, "replay": without_replay}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="many-small")
    ap.add_argument("--optimizers", default="SGD,Adam", help="comma list of " + ",".join(TORCH))
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--without", default="bulk", choices=sorted(WITHOUT), help="the library switched off")
    args = ap.parse_args()
    names = args.optimizers.split(",")
    for name in names:
        if name not in TORCH:
            ap.error(f"--optimizers: {name!r} is not one of {', '.join(TORCH)}")
    torch.set_num_threads(args.threads)
    if bulk.library(wait=True) is None:
        ap.exit(1, f"the bulk library is not available here: {bulk.error}\n")
    if args.without == "replay" and replay.library() is None:
        ap.exit(1, f"the replay library is not available here: {replay.error}\n")
    sets = param_sets(ap, args.sets.split(","))
    print(f"torch {torch.__version__}, {args.threads} threads; ms per step, medians of {args.rounds} "
          f"interleaved rounds; with and without {args.without}\n")
    print("| set | optimizer | with | without | torch | with / without | with / torch | without / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for set_name, shapes in sets.items():
        for name in names:
            ps = params_for(shapes, 0)  # (one set for all three: see step_throughput.bench)
            a = getattr(O, name)(ps, lr=1e-3)
            b = getattr(O, name)(ps, lr=1e-3)
            steps = {"with": a.step, "without": lambda b=b, off=WITHOUT[args.without]: off(b),
                     "torch": TORCH[name](ps).step}
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
            print(f"| {set_name} | {name} | {m['with']:.3f} | {m['without']:.3f} | {m['torch']:.3f} "
                  f"| {m['with'] / m['without']:.2f}x | {m['with'] / m['torch']:.2f}x | {m['without'] / m['torch']:.2f}x |")


if __name__ == "__main__":
    main()
