"""What bfloat16 optimizer state costs in accuracy: fp32 state against bf16 state on digits.

Three models on scikit-learn's bundled ``digits`` (8x8 images, 10 classes),
built by descend's own registries (``descend.models.build_for``):

* ``mlp``: the digits MLP descend uses by default (64-64-10, ReLU);
* ``cnn``: descend's ``SmallCNN`` (two 3x3 convs, max-pool, linear head);
* ``mlp-200k``: an MLP 64-512-320-10 (ReLU).

Data: ``descend.data.load("digits", split=(0.75, 0, 0.25), seed=0)``: one fixed
stratified 75/25 train/test split, standardized on the training part (as descend
always does). Training: a plain loop, mini-batches of 64 from
``descend.data.Batches`` (order seeded by ``(seed, epoch)``), cross-entropy,
``descend.optim.Adam(lr=1e-3)`` in three variants:

* ``fp32``: float32 state (the default);
* ``bf16 sr``: ``state_dtype=torch.bfloat16`` (stochastic rounding, the default);
* ``bf16 rtn``: ``state_dtype=torch.bfloat16, state_rounding="nearest"``;
* ``8-bit block (sim)``: what 8-bit blockwise state (Dettmers et al., "8-bit Optimizers
  via Block-wise Quantization", 2021; bitsandbytes and torchao build it for CUDA) would
  cost in accuracy. descend does not build it; this variant *simulates* its numerics:
  after every step, V and S are replaced by their 8-bit codes decoded again, each block
  of 2048 elements scaled by its largest magnitude and rounded to the nearest value of
  a dynamic (tree) code: a sign for V, then e zero bits for a factor 10^-e, an indicator
  bit and the rest a linear fraction. The step itself uses the new float32 V and S, as
  those kernels do (they decode, update, step and encode in one pass).

A seed sets the initial weights and the batch order, the same for all three
variants. Reported per model and variant: mean +- std (over seeds, ``ddof=1``)
of the final test accuracy and test loss, the largest per-seed difference to
fp32 (the signed difference of largest magnitude, variant minus fp32), and the
mean final training loss (full training set, eval mode).

    python benchmarks/state_dtype_accuracy.py                     # 3 seeds, 60 epochs
    python benchmarks/state_dtype_accuracy.py --seeds 5 --epochs 60 --threads 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import descend
import descend.optim as O
from descend import data, models

MODELS = {
    "mlp": ("mlp", {}),
    "cnn": ("cnn", {}),
    "mlp-200k": ("mlp", {"hidden": (512, 320)}),
}
VARIANTS = {
    "fp32": {},
    "bf16 sr": {"state_dtype": torch.bfloat16},
    "bf16 rtn": {"state_dtype": torch.bfloat16, "state_rounding": "nearest"},
    "8-bit block (sim)": {"blockwise8": True},
}
BLOCK = 2048


def dynamic_code(signed: bool) -> torch.Tensor:
    """The 256 (or fewer) values of an 8-bit dynamic tree code on [-1, 1] (or [0, 1]), sorted.

    After the sign bit (signed codes), e leading zero bits give the factor 10^-e, then an
    indicator bit, then 2^k linear steps of a fraction in (0.1, 1) (bin midpoints), k being
    what is left of the 8 bits. Zero and 1 (and -1) are codes of their own.
    """
    bits = 7 if signed else 8
    values = [0.0] + ([1.0] if signed else [])  # (255 fractions fill the unsigned code)
    for e in range(bits):
        n = 2 ** (bits - e - 1)
        edges = torch.linspace(0.1, 1.0, n + 1, dtype=torch.float64)
        mids = ((edges[:-1] + edges[1:]) / 2 * 10.0 ** (-e)).tolist()
        values += mids + ([-m for m in mids] if signed else [])
    code = torch.tensor(sorted(set(values)), dtype=torch.float64)
    assert code.numel() == 256
    return code


CODES = {True: dynamic_code(True), False: dynamic_code(False)}


def blockwise8(t: torch.Tensor, signed: bool) -> None:
    """Replace ``t`` by its 8-bit blockwise code, decoded (in place)."""
    code = CODES[signed]
    flat = t.reshape(-1).double()
    n = flat.numel()
    pad = (-n) % BLOCK
    blocks = torch.cat([flat, flat.new_zeros(pad)]).view(-1, BLOCK)
    scale = blocks.abs().amax(1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    x = blocks / scale
    mid = (code[1:] + code[:-1]) / 2  # nearest code: the bin of x between midpoints
    idx = torch.bucketize(x.contiguous(), mid)
    t.copy_((code[idx] * scale).reshape(-1)[:n].view_as(t))


class Blockwise8Adam(O.Adam):
    """descend's Adam (eager path) with V and S held at 8-bit blockwise precision (simulated)."""

    def step(self, closure=None):  # type: ignore[override]
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p)
                if st:
                    blockwise8(st["V"], signed=True)
                    blockwise8(st["S"], signed=False)
        return loss


def commit() -> str:
    """The checkout's commit (``+dirty`` when src/ has local changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``(X, y)``."""
    model.eval()
    with torch.no_grad():
        logits = model(X)
        loss = F.cross_entropy(logits, y).item()
        acc = (logits.argmax(1) == y).double().mean().item()
    model.train()
    return acc, loss


def run(ds: data.Dataset, model_key: str, options: dict, seed: int, epochs: int,
        batch_size: int, lr: float) -> tuple[float, float, float]:
    """Train one model with one variant and seed; (test accuracy, test loss, final train loss)."""
    name, kw = MODELS[model_key]
    model = models.build_for(ds, name, seed=seed, **kw)
    if options.get("blockwise8"):
        opt = Blockwise8Adam(model.parameters(), lr=lr, impl="eager")
    else:
        opt = O.Adam(model.parameters(), lr=lr, **options)
    batches = data.Batches(ds.X_train, ds.y_train, batch_size=batch_size, seed=seed)
    model.train()
    for _ in range(epochs):
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    acc, test_loss = evaluate(model, ds.X_test, ds.y_test)
    _, train_loss = evaluate(model, ds.X_train, ds.y_train)
    return acc, test_loss, train_loss


def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def largest(diffs: list[float]) -> float:
    """The signed difference of largest magnitude."""
    return max(diffs, key=abs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    for k in keys:
        if k not in MODELS:
            ap.error(f"unknown model {k!r}; valid: {', '.join(MODELS)}")

    ds = data.load("digits", split=(0.75, 0.0, 0.25), seed=0)
    seeds = list(range(args.seeds))
    print(f"# bf16 (and simulated 8-bit blockwise) optimizer state: accuracy cost on digits (descend {descend.__version__}, commit {commit()})")
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()} CPU, "
          f"{args.threads} thread(s)")
    print(f"data: digits, {len(ds.X_train)} train / {len(ds.X_test)} test (stratified, split seed 0, "
          f"standardized on train)")
    print(f"training: Adam(lr={args.lr:g}), batch {args.batch_size}, {args.epochs} epochs "
          f"({data.iterations_per_epoch(len(ds.X_train), args.batch_size) * args.epochs} steps), "
          f"seeds {seeds}")
    for k in keys:
        name, kw = MODELS[k]
        n = models.n_parameters(models.build_for(ds, name, seed=0, **kw))
        print(f"  {k}: {n:,} parameters")
    print()

    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    t_start = time.perf_counter()
    print("per seed: test accuracy, test loss, train loss, seconds")
    for k in keys:
        for seed in seeds:
            for v, options in VARIANTS.items():
                t0 = time.perf_counter()
                r = run(ds, k, options, seed, args.epochs, args.batch_size, args.lr)
                results.setdefault((k, v), []).append(r)
                print(f"  {k:9s} seed {seed}  {v:9s}  acc {r[0]:.4f}  loss {r[1]:.4f}  "
                      f"train {r[2]:.2e}  {time.perf_counter() - t0:5.1f}s", flush=True)
    total = time.perf_counter() - t_start
    print()

    print("| model | state | test accuracy (mean ± std) | test loss (mean ± std) "
          "| largest Δacc vs fp32 | largest Δloss vs fp32 | train loss (mean) |")
    print("|---|---|---|---|---|---|---|")
    for k in keys:
        base = results[(k, "fp32")]
        for v in VARIANTS:
            rs = results[(k, v)]
            am, asd = mean_std([r[0] for r in rs])
            lm, lsd = mean_std([r[1] for r in rs])
            if v == "fp32":
                da = dl = "—"
            else:
                da = f"{100 * largest([r[0] - b[0] for r, b in zip(rs, base, strict=True)]):+.2f} pp"
                dl = f"{largest([r[1] - b[1] for r, b in zip(rs, base, strict=True)]):+.4f}"
            tm = statistics.fmean(r[2] for r in rs)
            print(f"| {k} | {v} | {100 * am:.2f}% ± {100 * asd:.2f} | {lm:.4f} ± {lsd:.4f} | {da} | {dl} "
                  f"| {tm:.2e} |")
    print()
    print(f"one test example is {100 / len(ds.X_test):.2f} pp of accuracy; Δ is variant minus fp32, same seed")
    print(f"{len(keys) * len(seeds) * len(VARIANTS)} runs in {total:.0f} s")
    rest = sys.argv[1:] if argv is None else argv
    print(" ".join(["command: python benchmarks/state_dtype_accuracy.py", *rest]))


if __name__ == "__main__":
    main()
