"""Adam and AdamW with state in bfloat16 against torch's fused float32 Adam, on the 25M sets.

``state_dtype=torch.bfloat16`` stores V and S in 16 bits (arithmetic in float32),
so a step moves 20 bytes per parameter instead of 28. Columns, ms per step
(median of interleaved rounds: one step of every variant per round, order shuffled):

* ``t.fused``: ``torch.optim.Adam(fused=True)`` (AdamW: ``torch.optim.AdamW(fused=True)``), float32 state;
* ``d.fp32``: descend's default (``impl="auto"``: the compiled path at this size), float32 state;
* ``d.bf16 sr`` / ``d.bf16 rtn``: the same with bf16 state, stochastic rounding / round to nearest;
* ``... nc``: the same with ``nonfinite="ignore"``: no check of the gradients, as
  torch.optim does none (descend's default reads every gradient once more before the
  step, so that a NaN changes nothing);
* ``t.fused / d.bf16 sr``: the speed-up over torch's fastest (target >= 1.3x).

    python benchmarks/state_dtype.py                       # both sets, Adam and AdamW
    python benchmarks/state_dtype.py --sets transformer --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import descend.optim as O
import step_throughput
from step_throughput import check_device, param_sets, params_for, round_order, sync


def variants(shapes: list[list[int]], name: str) -> dict:
    torch_cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[name]
    ours = getattr(O, name)
    bf16 = torch.bfloat16
    ps = params_for(shapes, 0)  # (one set for all: see step_throughput.bench)
    out = {"t.fused": torch_cls(ps, lr=1e-3, fused=True).step}
    for suffix, check in (("", "raise"), (" nc", "ignore")):
        out["d.fp32" + suffix] = ours(ps, lr=1e-3, nonfinite=check).step
        out["d.bf16 sr" + suffix] = ours(ps, lr=1e-3, state_dtype=bf16, nonfinite=check).step
        out["d.bf16 rtn" + suffix] = ours(ps, lr=1e-3, state_dtype=bf16, state_rounding="nearest",
                                          nonfinite=check).step
    return out


def measure(steps: dict, rounds: int) -> dict[str, float]:
    for fn in steps.values():  # compile and warm up
        fn()
        fn()
    names = list(steps)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = round_order(names, r)
        for k in order:
            sync()
            t0 = time.perf_counter()
            steps[k]()
            sync()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default="resnet50,transformer", help="comma-separated: resnet50, transformer")
    ap.add_argument("--optimizers", default="Adam,AdamW", help="comma-separated: Adam, AdamW")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (steps are timed with a device sync)")
    args = ap.parse_args()
    step_throughput.DEVICE = device = check_device(ap, args.device)
    torch.set_num_threads(args.threads)
    sets = param_sets(ap, args.sets.split(","))
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{args.threads} threads"
    print(f"torch {torch.__version__}, {where}; ms per step, medians of {args.rounds} "
          "interleaved rounds\n")
    ours = ["d.fp32", "d.bf16 sr", "d.bf16 rtn", "d.fp32 nc", "d.bf16 sr nc", "d.bf16 rtn nc"]
    print("| set | optimizer | t.fused | " + " | ".join(ours) + " | "
          + " | ".join(f"t.fused / {k}" for k in ours) + " |")
    print("|---" * (3 + 2 * len(ours)) + "|")
    for set_name in args.sets.split(","):
        for opt_name in args.optimizers.split(","):
            med = measure(variants(sets[set_name], opt_name), args.rounds)
            t = med["t.fused"]
            print(f"| {set_name} | {opt_name} | {t:.1f} | " + " | ".join(f"{med[k]:.1f}" for k in ours)
                  + " | " + " | ".join(f"{t / med[k]:.2f}x" for k in ours) + " |", flush=True)


if __name__ == "__main__":
    main()
