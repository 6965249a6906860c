"""Optimizer step time: descend against torch.optim at every model size, side by side.

Sizes: 2 parameters (a 2-D lab run), 10k (a digits MLP), 200k in 6 tensors
(MLP 512-256-10 on 256 inputs), 1M in 2000 tensors (``many-small``) and the two
25M sets of ``shared/bench/param_sets.json`` (``resnet50``, ``transformer``).
Columns, in ms per step (median of interleaved rounds: one step of every
variant per round, in an order shuffled each round by a seeded generator, so
machine noise, cache effects and what the previous variant left behind (OpenMP
threads still spinning after a parallel kernel) hit all alike):

* ``d.default``: descend as built (``impl="auto"``, ``nonfinite="raise"``);
* ``d.foreach`` / ``d.fused``: the multi-tensor path and the compiled path;
* ``t.default``: torch.optim as built (its CPU default is the for-loop);
* ``t.best``: torch's fastest of for-loop, foreach and fused;
* ``default/t.default`` and ``fast/t.best`` (fast = the better of d.foreach and d.fused);
* ``d.foreach nc`` / ``d.fused nc``: the same two paths with ``nonfinite="ignore"`` (no check of the
  gradients, as torch.optim has none), and ``fast nc/t.best``: what the check costs is the
  difference. The check reads every gradient once more before anything is written (a step is
  applied fully or not at all); where a step is bound by memory traffic that read is a floor:
  4 bytes more on SGD's 12 per element, Momentum's 20, Adam's 28;
* for SGD on the large sets, ``d.fused`` and ``d.fused nc`` against the in-place axpy ceiling
  ``a.add_(b, alpha=s)`` over as many elements (12 bytes each, timed in the same rounds);
* on the CPU from 1M parameters in tensors of 32k elements on average (not many-small, whose
  gradients the compiled path gathers first), ``g scan``: the check's read alone
  (:func:`native.finite` over the same gradients, timed in the same rounds), and ``check /
  scan``: ``d.fused`` less ``d.fused nc`` over it. At or below 1 the check costs no more than one
  bare read of the gradients, so ``d.fused nc`` plus ``g scan`` is about the least a step that
  checks before it writes can take.

Then the compiled path's first step in fresh processes (the first time on a machine;
with a cold Inductor cache; with a warm one and no kept kernels; with descend's kept kernels,
the default) and the recompiles over 100 steps with an lr that changes every step.

    python benchmarks/step_throughput.py                 # everything
    python benchmarks/step_throughput.py --quick         # small sizes, many-small and transformer
    python benchmarks/step_throughput.py --sets 2,10k --optimizers SGD,Adam
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

import descend.optim as O
from descend.optim import bulk, fused, native

ROOT = Path(__file__).resolve().parents[1]
PARAM_SETS = next((p for p in (ROOT.parent / "shared" / "bench" / "param_sets.json",
                                ROOT / "shared" / "bench" / "param_sets.json") if p.exists()),
                  ROOT.parent / "shared" / "bench" / "param_sets.json")
DEVICE = torch.device("cpu")


def sync() -> None:
    """Wait for the device (a no-op on the CPU), so a step's time includes its kernels."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
SMALL = {
    "2": [[2]],
    "10k": [[64, 128], [128], [128, 10], [10]],
    "200k": [[256, 512], [512], [512, 256], [256], [256, 10], [10]],
}
OPTIMIZERS = {
    "SGD": (lambda p, **k: O.SGD(p, lr=0.01, **k), lambda p, **k: torch.optim.SGD(p, lr=0.01, **k), True),
    "Momentum": (lambda p, **k: O.Momentum(p, lr=0.01, beta=0.9, lr_inside=False, **k),
                 lambda p, **k: torch.optim.SGD(p, lr=0.01, momentum=0.9, **k), True),
    "Adam": (lambda p, **k: O.Adam(p, lr=1e-3, **k), lambda p, **k: torch.optim.Adam(p, lr=1e-3, **k), True),
    "AdamW": (lambda p, **k: O.AdamW(p, lr=1e-3, **k), lambda p, **k: torch.optim.AdamW(p, lr=1e-3, **k), True),
    "RMSprop": (lambda p, **k: O.RMSprop(p, lr=0.01, beta=0.99, eps_mode="outside", **k),
                lambda p, **k: torch.optim.RMSprop(p, lr=0.01, **k), False),
    "Adagrad": (lambda p, **k: O.Adagrad(p, lr=0.01, eps_mode="outside", eps=1e-10, **k),
                lambda p, **k: torch.optim.Adagrad(p, lr=0.01, **k), True),
}
TORCH_KW = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def param_sets(ap: argparse.ArgumentParser, names: list[str] | None) -> dict[str, list]:
    """The sets ``names`` asks for (None: every one there is) by name: the small ones here and
    the 25M ones of ``shared/bench/param_sets.json``; argparse's error for a name not there."""
    sets = dict(SMALL)
    if PARAM_SETS.exists():
        sets.update(json.loads(PARAM_SETS.read_text())["sets"])
    for name in names or ():
        if name not in sets:
            missing = "" if PARAM_SETS.exists() else (
                f" ({PARAM_SETS} is not there: the larger sets, many-small and the 25M ones, are missing)")
            ap.error(f"set {name!r} is not one of {', '.join(sets)}{missing}")
    return {n: sets[n] for n in names} if names is not None else sets


def round_order(items: list, r: int) -> list:
    """The order of round ``r``: ``items`` shuffled by a generator seeded with ``r``. A rotation
    would keep each variant's predecessor fixed (the one after torch's parallel fused kernel ran
    about 10 µs slower every time, its OpenMP threads still spinning); a shuffle varies it."""
    return random.Random(r).sample(items, len(items))


def check_device(ap: argparse.ArgumentParser, value: str) -> torch.device:
    """``--device`` as a torch device that this machine has, or argparse's error naming it."""
    try:
        device = torch.device(value)
    except RuntimeError:
        ap.error(f"--device {value!r} is not a torch device (cpu, cuda or cuda:N)")
    if device.type not in ("cpu", "cuda"):
        ap.error(f"--device {value!r}: only cpu and cuda devices are timed")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {value!r}: this torch sees no CUDA device (torch.cuda.is_available() is False)")
    return device


def params_for(shapes: list[list[int]], seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ps = []
    for shape in shapes:
        p = torch.randn(*shape, generator=gen).to(DEVICE).requires_grad_()
        p.grad = (torch.randn(*shape, generator=gen) * 1e-2).to(DEVICE)
        ps.append(p)
    return ps


class Scan:
    """The gradient check's read alone: one :func:`native.finite` call over ``ps``' gradients."""

    def __init__(self, ps: list[torch.Tensor]) -> None:
        self.grads = [p.grad for p in ps]

    def step(self) -> bool | None:
        return native.finite(self.grads)


class Axpy:
    """In-place ``a.add_(b, alpha=s)``: the least an SGD step can cost (12 bytes per element)."""

    def __init__(self, numel: int) -> None:
        self.a, self.b = torch.randn(numel, device=DEVICE), torch.randn(numel, device=DEVICE)

    def step(self) -> None:
        self.a.add_(self.b, alpha=1e-3)


def steps_for(numel: int, quick: bool) -> int:
    n = 400 if numel < 50_000 else 60 if numel < 2_000_000 else 12
    return max(8, n // 2) if quick else n


def bench(set_name: str, shapes: list, which: list[str], quick: bool, warmup: int) -> list[dict]:
    numel = sum(int(torch.Size(s).numel()) for s in shapes)
    steps = steps_for(numel, quick)
    rows = []
    for opt_name in which:
        ours, theirs, has_fused = OPTIMIZERS[opt_name]
        makers = {
            "d.default": lambda p, ours=ours: ours(p),
            "d.foreach": lambda p, ours=ours: ours(p, impl="foreach"),
            "d.fused": lambda p, ours=ours: ours(p, impl="fused"),
            "d.foreach nc": lambda p, ours=ours: ours(p, impl="foreach", nonfinite="ignore"),
            "d.fused nc": lambda p, ours=ours: ours(p, impl="fused", nonfinite="ignore"),
            "t.default": lambda p, theirs=theirs: theirs(p),
            "t.loop": lambda p, theirs=theirs: theirs(p, **TORCH_KW["loop"]),
            "t.foreach": lambda p, theirs=theirs: theirs(p, **TORCH_KW["foreach"]),
        }
        if has_fused:
            makers["t.fused"] = lambda p, theirs=theirs: theirs(p, **TORCH_KW["fused"])
        # every variant steps the same parameters and gradients: on this VM five copies of the same
        # SGD step on separate copies of the 25M transformer set took 13.7-21.1 ms (medians, one
        # process), so separate copies measured where memory lay more than the code
        ps = params_for(shapes, seed=0)
        runners = {k: make(ps) for k, make in makers.items()}
        if opt_name == "SGD" and numel >= 1_000_000:
            runners["axpy"] = Axpy(numel)
        if numel >= 1_000_000 and numel >= 32768 * len(shapes) and DEVICE.type == "cpu" and native.library():
            runners["g scan"] = Scan(ps)
        for r in runners.values():
            for _ in range(warmup):
                r.step()
        times: dict[str, list[float]] = {k: [] for k in runners}
        order = list(runners.items())
        for i in range(steps):
            for k, r in round_order(order, i):
                sync()
                t0 = time.perf_counter()
                r.step()
                sync()
                times[k].append(time.perf_counter() - t0)
        ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        t_best = min((v, k) for k, v in ms.items() if k.startswith("t.") and k != "t.default")
        fast = min(ms["d.foreach"], ms["d.fused"])
        fast_nc = min(ms["d.foreach nc"], ms["d.fused nc"])
        rows.append({"set": set_name, "numel": numel, "tensors": len(shapes), "optimizer": opt_name,
                     "ms": ms, "t_best": t_best[1], "default_vs_torch_default": ms["d.default"] / ms["t.default"],
                     "fast_vs_torch_best": fast / t_best[0], "fast_nc_vs_torch_best": fast_nc / t_best[0],
                     "fused_vs_axpy": ms["axpy"] / ms["d.fused"] if "axpy" in ms else None,
                     "fused_nc_vs_axpy": ms["axpy"] / ms["d.fused nc"] if "axpy" in ms else None,
                     "check_vs_scan": (ms["d.fused"] - ms["d.fused nc"]) / ms["g scan"] if "g scan" in ms else None})
        del runners
    return rows


def print_rows(rows: list[dict]) -> None:
    cols = ["d.default", "d.foreach", "d.fused", "d.foreach nc", "d.fused nc",
            "t.default", "t.loop", "t.foreach", "t.fused", "g scan"]
    for set_name in dict.fromkeys(r["set"] for r in rows):
        sub = [r for r in rows if r["set"] == set_name]
        print(f"\n### {set_name}: {sub[0]['numel']:,} parameters in {sub[0]['tensors']} tensors (ms/step)\n")
        print("| optimizer | " + " | ".join(cols) + " | default / t.default | fast / t.best | fast nc / t.best"
              " | check / scan | SGD fused (nc) / axpy |")
        print("|---" * (len(cols) + 6) + "|")
        for r in sub:
            cells = [f"{r['ms'][c]:.3f}" if c in r["ms"] else "—" for c in cols]
            axpy = f"{r['fused_vs_axpy']:.2f} ({r['fused_nc_vs_axpy']:.2f})" if r["fused_vs_axpy"] else ""
            check = f"{r['check_vs_scan']:.2f}" if r.get("check_vs_scan") is not None else ""
            print(f"| {r['optimizer']} | " + " | ".join(cells) + f" | {r['default_vs_torch_default']:.2f}x"
                  f" | {r['fast_vs_torch_best']:.2f}x ({r['t_best']}) | {r['fast_nc_vs_torch_best']:.2f}x | {check} | {axpy} |")


COMPILE_SCRIPT = textwrap.dedent("""
    import time
    start = time.perf_counter()
    import torch
    import descend.optim as O
    torch.set_num_threads({threads})
    ps = [torch.randn(n, device="{device}", requires_grad=True) for n in (1_000_000, 1000, 10)]
    for p in ps:
        p.grad = torch.randn_like(p)
    opt = O.Adam(ps, impl="fused")
    t0 = time.perf_counter()
    opt.step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    done = time.perf_counter()
    print(done - t0, done - start)
""")


def compile_times(threads: int) -> dict[str, tuple[float, float]]:
    """The compiled path's first step in fresh processes, and the whole process up to it
    (imports included), in four conditions:

    * ``first``: on a machine descend has never run on (both caches empty);
    * ``cold``: Inductor's cache empty (as after a reboot clears /tmp), descend's cache of the
      CPU probes present, its kept kernels off (``DESCEND_KERNEL_CACHE=0``): a real compile;
    * ``inductor``: Inductor's cache warm, kept kernels off: what torch.compile's cache gives;
    * ``warm``: both caches as the first run left them (the default: kept kernels)."""
    with tempfile.TemporaryDirectory() as root:
        ours = os.path.join(root, "descend")
        out = {}
        for name, inductor, kept in (("first", "a", "1"), ("cold", "b", "0"), ("inductor", "b", "0"),
                                     ("warm", "a", "1")):
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": os.path.join(root, inductor), "DESCEND_CACHE_DIR": ours,
                   "DESCEND_KERNEL_CACHE": kept}
            res = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT.format(threads=threads, device=DEVICE.type)],
                                 env=env, capture_output=True, text=True, check=True)
            step, total = res.stdout.strip().splitlines()[-1].split()
            out[name] = (float(step), float(total))
        return out


def recompiles_with_changing_lr(steps: int = 100) -> int:
    ps = params_for([[100_000], [1000, 100], [100]], seed=0)
    opt = O.Adam(ps, impl="fused")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps + 1)
    opt.step()
    sched.step()
    before = fused.compile_count()
    for _ in range(steps):
        opt.step()
        sched.step()
    return fused.compile_count() - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="half the steps; skip resnet50")
    ap.add_argument("--sets", default=None, help="comma list of 2,10k,200k,many-small,transformer,resnet50")
    ap.add_argument("--optimizers", default="SGD,Momentum,Adam,RMSprop")
    ap.add_argument("--no-compile-times", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (steps are timed with a device sync)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = check_device(ap, args.device)
    torch.set_num_threads(args.threads)
    bulk.library(wait=True)  # (built in the background once per machine: every step takes it)
    default = ["2", "10k", "200k", "many-small", "transformer"] + ([] if args.quick else ["resnet50"])
    sets = param_sets(ap, args.sets.split(",") if args.sets else None)
    if not args.sets:
        sets = {n: sets[n] for n in default if n in sets}
    if not args.sets and len(sets) < len(default):
        print(f"(many-small and the 25M sets are left out: {PARAM_SETS} is not there)")
    names = list(sets)
    where = torch.cuda.get_device_name() if DEVICE.type == "cuda" else f"{args.threads} threads, {os.cpu_count()} cores"
    print(f"torch {torch.__version__}, {DEVICE.type}: {where}; "
          "medians of interleaved rounds")
    rows = []
    for name in names:
        rows += bench(name, sets[name], args.optimizers.split(","), args.quick, args.warmup)
    print_rows(rows)
    extra = {}
    if not args.no_compile_times:
        times = compile_times(args.threads)
        n = recompiles_with_changing_lr()
        extra = {"compile_times_s": times, "recompiles_100_steps": n}
        said = {"first": "the first time on a machine (CPU probes too)", "cold": "cold Inductor cache",
                "inductor": "warm Inductor cache, no kept kernels", "warm": "warm (kept kernels, the default)"}
        print("\ncompiled Adam in a fresh process: first step (whole process up to it, imports included)")
        for name, (step, total) in times.items():
            print(f"  {said[name]}: {step:.2f} s ({total:.2f} s)")
        print(f"recompiles over 100 OneCycleLR steps: {n}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **extra}, indent=1))


if __name__ == "__main__":
    main()
