"""Where one optimizer step's time goes: torch.profiler over a few steps of one optimizer on one set.

Prints the operators and kernels that took the most time (device time on a GPU, CPU
time on the CPU), how many graphs were compiled after the warm-up (0: no recompiles)
and how many compiled graphs are called directly (``fused.Direct``) rather than
through Dynamo.

    python benchmarks/profile_step.py --set transformer --optimizer Adam
    python benchmarks/profile_step.py --device cuda --set transformer --optimizer RMSprop --impl fused
"""

from __future__ import annotations

import argparse

import torch

import step_throughput
from descend.optim import fused
from step_throughput import OPTIMIZERS, check_device, param_sets, params_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", default="transformer", help="2, 10k, 200k, many-small, transformer or resnet50")
    ap.add_argument("--optimizer", default="Adam", help=", ".join(OPTIMIZERS))
    ap.add_argument("--impl", default="auto", choices=["auto", "eager", "foreach", "fused"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rows", type=int, default=15)
    args = ap.parse_args()
    shapes = param_sets(ap, [args.set])[args.set]
    if args.optimizer not in OPTIMIZERS:
        ap.error(f"--optimizer {args.optimizer!r}: choose from {', '.join(OPTIMIZERS)}")
    device = check_device(ap, args.device)
    step_throughput.DEVICE = device
    ps = params_for(shapes, seed=0)
    opt = OPTIMIZERS[args.optimizer][0](ps, impl=args.impl)
    for _ in range(3):
        opt.step()
    compiled = fused.compile_count()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        torch.cuda.synchronize()
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.steps):
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"{args.optimizer} (impl={args.impl}) on {args.set}, {device}, {args.steps} steps")
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
    direct = [d for v in fused._SOURCES.values() for d in v[4].values()]  # (Direct graphs, kept kernels)
    print(f"graphs compiled during the profiled steps: {fused.compile_count() - compiled}; "
          f"compiled calls: {sum(d is not None for d in direct)} direct, {sum(d is None for d in direct)} "
          "through Dynamo")


if __name__ == "__main__":
    main()
