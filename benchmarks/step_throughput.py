"""Optimizer step throughput: descend (eager, fused) against torch.optim, side by side.

Prints, in one run on one machine:

* the ceiling: in-place axpy ``a += s * b`` over 256M float32 (12 bytes per element),
  timed in every round beside the optimizers;
* for each parameter set of ``shared/bench/param_sets.json`` and each optimizer:
  ms/step and GB/s for descend eager, descend fused, and torch.optim's
  for-loop, foreach and fused variants (fused where torch has one), with the
  ratio of descend fused to torch's fastest variant and to the ceiling;
* first-compile and cached-restart times of the fused path (fresh processes),
  and the number of recompiles over 100 steps with an lr that changes every step.

Every variant is timed in rounds (one step of each variant per round), so
machine noise hits all of them alike; the tables report medians.

    python benchmarks/step_throughput.py            # full run
    python benchmarks/step_throughput.py --quick    # fewer steps, a smaller ceiling buffer
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

import descend.optim as O
from descend.optim import fused

ROOT = Path(__file__).resolve().parents[1]
PARAM_SETS = ROOT.parent / "shared" / "bench" / "param_sets.json"

# name: (bytes per parameter, descend factory, torch factory, torch variants)
OPTIMIZERS = {
    "SGD": (12, lambda p, **k: O.SGD(p, lr=0.01, **k),
            lambda p, **k: torch.optim.SGD(p, lr=0.01, **k), ("loop", "foreach", "fused")),
    "Momentum": (20, lambda p, **k: O.Momentum(p, lr=0.01, beta=0.9, lr_inside=False, **k),
                 lambda p, **k: torch.optim.SGD(p, lr=0.01, momentum=0.9, **k), ("loop", "foreach", "fused")),
    "Nesterov": (20, lambda p, **k: O.Nesterov(p, lr=0.01, beta=0.9, lr_inside=False, **k),
                 lambda p, **k: torch.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True, **k),
                 ("loop", "foreach", "fused")),
    "Adagrad": (20, lambda p, **k: O.Adagrad(p, lr=0.01, eps_mode="outside", eps=1e-10, **k),
                lambda p, **k: torch.optim.Adagrad(p, lr=0.01, **k), ("loop", "foreach", "fused")),
    "RMSprop": (20, lambda p, **k: O.RMSprop(p, lr=0.01, beta=0.99, eps_mode="outside", **k),
                lambda p, **k: torch.optim.RMSprop(p, lr=0.01, **k), ("loop", "foreach")),
    "Adam": (28, lambda p, **k: O.Adam(p, lr=1e-3, **k),
             lambda p, **k: torch.optim.Adam(p, lr=1e-3, **k), ("loop", "foreach", "fused")),
    "AdamW": (28, lambda p, **k: O.AdamW(p, lr=1e-3, **k),
              lambda p, **k: torch.optim.AdamW(p, lr=1e-3, **k), ("loop", "foreach", "fused")),
}
TORCH_KW = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def params_for(shapes: list[list[int]], seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ps = []
    for shape in shapes:
        p = torch.randn(*shape, generator=gen).requires_grad_()
        p.grad = torch.randn(*shape, generator=gen) * 1e-2
        ps.append(p)
    return ps


class Ceiling:
    """In-place axpy ``a.add_(b, alpha=s)``: reads a and b, writes a (12 bytes per element).

    Timed once per round beside the optimizers, so that it sees the same machine load.
    """

    def __init__(self, numel: int) -> None:
        self.numel = numel
        self.a, self.b = torch.randn(numel), torch.randn(numel)
        self.a.add_(self.b, alpha=1e-3)

    def time_once(self) -> float:
        t0 = time.perf_counter()
        self.a.add_(self.b, alpha=1e-3)
        return time.perf_counter() - t0

    def gbps(self, seconds: float) -> float:
        return 12 * self.numel / seconds / 1e9


def bench_set(name: str, shapes: list, which: list[str], steps: int, warmup: int, ceiling: Ceiling) -> list[dict]:
    numel = sum(int(torch.Size(s).numel()) for s in shapes)
    rows = []
    for opt_name in which:
        nbytes, ours, theirs, variants = OPTIMIZERS[opt_name]
        makers = {
            "descend eager": lambda p, ours=ours: ours(p, impl="eager", nonfinite="ignore"),
            "descend fused": lambda p, ours=ours: ours(p, impl="fused", nonfinite="ignore"),
            "descend fused+check": lambda p, ours=ours: ours(p, impl="fused"),
        }
        for v in variants:
            makers[f"torch {v}"] = lambda p, v=v, theirs=theirs: theirs(p, **TORCH_KW[v])
        opts = {k: make(params_for(shapes, seed=i)) for i, (k, make) in enumerate(makers.items())}
        for opt in opts.values():
            for _ in range(warmup):
                opt.step()
        times: dict[str, list[float]] = {k: [] for k in opts}
        axpy: list[float] = []
        for _ in range(steps):
            for k, opt in opts.items():
                t0 = time.perf_counter()
                opt.step()
                times[k].append(time.perf_counter() - t0)
            axpy.append(ceiling.time_once())
        med = {k: statistics.median(v) for k, v in times.items()}
        torch_best = min(v for k, v in med.items() if k.startswith("torch"))
        torch_best_name = min((v, k) for k, v in med.items() if k.startswith("torch"))[1]
        rows.append({
            "set": name, "optimizer": opt_name, "numel": numel, "bytes_per_param": nbytes,
            "ms": {k: v * 1e3 for k, v in med.items()},
            "gbps": {k: nbytes * numel / v / 1e9 for k, v in med.items()},
            "torch_best": torch_best_name,
            "fused_vs_torch_best": torch_best / med["descend fused"],
            "ceiling_gbps": ceiling.gbps(statistics.median(axpy)),
        })
        del opts
    return rows


COMPILE_SCRIPT = textwrap.dedent("""
    import sys, time
    import torch
    import descend.optim as O
    torch.set_num_threads({threads})
    p = torch.randn(1_000_000, requires_grad=True)
    p.grad = torch.randn(1_000_000)
    opt = O.Adam([p], impl="fused")
    t0 = time.perf_counter()
    opt.step()
    print(time.perf_counter() - t0)
""")


def compile_times(threads: int) -> tuple[float, float]:
    """First fused step in a fresh process with an empty cache, then with the cache it left."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        script = COMPILE_SCRIPT.format(threads=threads)
        out = []
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            out.append(float(res.stdout.strip().splitlines()[-1]))
        return out[0], out[1]


def recompiles_with_changing_lr(steps: int = 100) -> int:
    ps = params_for([[1000, 100], [100]], seed=0)
    opt = O.Adam(ps, impl="fused")
    opt.step()  # compile (or load) once
    before = fused.compile_count()
    for i in range(steps):
        opt.param_groups[0]["lr"] = 1e-3 * (0.5 + 0.5 * (i % 10) / 10)
        opt.step()
    return fused.compile_count() - before


def print_table(rows: list[dict]) -> None:
    cols = ["descend eager", "descend fused", "descend fused+check", "torch loop", "torch foreach", "torch fused"]
    short = ["d.eager", "d.fused", "d.fused+chk", "t.loop", "t.foreach", "t.fused"]
    for set_name in dict.fromkeys(r["set"] for r in rows):
        sub = [r for r in rows if r["set"] == set_name]
        print(f"\n### {set_name}: {sub[0]['numel']:,} parameters — ms/step (GB/s)\n")
        print("| optimizer | " + " | ".join(short) + " | fused / torch best | fused / ceiling (GB/s) |")
        print("|---" * (len(cols) + 3) + "|")
        for r in sub:
            cells = []
            for c in cols:
                if c in r["ms"]:
                    cells.append(f"{r['ms'][c]:.2f} ({r['gbps'][c]:.1f})")
                else:
                    cells.append("—")
            frac = r["gbps"]["descend fused"] / r["ceiling_gbps"]
            print(f"| {r['optimizer']} | " + " | ".join(cells)
                  + f" | {r['fused_vs_torch_best']:.2f}x ({r['torch_best']}) | {frac:.2f} ({r['ceiling_gbps']:.0f}) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 25; quick 20)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller ceiling buffer; skip resnet50")
    ap.add_argument("--sets", default=None, help="comma list: resnet50,transformer,many-small")
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    ap.add_argument("--no-compile-times", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    steps = args.steps or (20 if args.quick else 25)
    all_sets = json.loads(PARAM_SETS.read_text())["sets"]
    names = args.sets.split(",") if args.sets else (
        ["transformer", "many-small"] if args.quick else ["resnet50", "transformer", "many-small"])
    which = args.optimizers.split(",")

    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} cores; medians of {steps} steps")
    ceiling = Ceiling((64 if args.quick else 256) * 1_000_000)
    print(f"ceiling: in-place axpy over {ceiling.numel // 1_000_000}M float32, timed in every round "
          "beside the optimizers (last column)")

    rows = []
    for name in names:
        rows += bench_set(name, all_sets[name], which, steps, args.warmup, ceiling)
    print_table(rows)

    extra = {}
    if not args.no_compile_times:
        cold, warm = compile_times(args.threads)
        n = recompiles_with_changing_lr()
        extra = {"first_compile_s": cold, "cached_restart_s": warm, "recompiles_100_steps": n}
        print(f"\nfused Adam, first step in a fresh process: cold cache {cold:.1f} s, cached {warm:.2f} s; "
              f"recompiles over 100 steps with lr changing every step: {n}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **extra}, indent=1))


if __name__ == "__main__":
    main()
