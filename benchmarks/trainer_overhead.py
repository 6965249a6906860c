"""Trainer overhead: descend's Trainer against a hand-written PyTorch loop, same model and data.

Each model (a digits MLP, a 200k-parameter MLP and a small CNN, all on
digits) is trained with the same batches (``descend.data.Batches``, batch 64,
seed 0), the same number of epochs and Adam at lr 1e-3. The hand-written loop
runs twice: with descend's Adam and with ``torch.optim.Adam`` (what a user
would otherwise write; ``descend / torch`` is the whole-iteration ratio of
forward, backward and step). The loop is::

    for epoch in range(E):
        for xb, yb in batches.iter_epoch(epoch):
            opt.zero_grad(); loss = loss_fn(model(xb), yb); loss.backward(); opt.step()

The Trainer variants time ``trainer.fit()`` from start to end (the loop, its
bookkeeping and its fixed start/finish costs); building the Trainer is not
timed, as building the optimizer is not timed for the hand loop:

* ``trainer``: no run folder, no evaluation, no progress bar (the target:
  <= 1.05x the hand loop per iteration);
* ``trainer+log``: a run folder with a metric line every 10 iterations, the
  final checkpoint and summary.json (no figures, no evaluation).

Rounds interleave the variants (order shuffled each round), so machine noise
hits all of them alike; the table reports the median time per iteration and
its ratio to the hand loop's median.

    python benchmarks/trainer_overhead.py            # 15 rounds of 20 epochs
    python benchmarks/trainer_overhead.py --quick    # 5 rounds of 10 epochs
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from descend import data, optim
from descend.models import cross_entropy
from descend.optim import bulk
from descend.train import TrainConfig, Trainer, build_model
from step_throughput import check_device, round_order


def hand_loop(model: torch.nn.Module, ds: data.Dataset, epochs: int, batch_size: int, lr: float,
              opt_class: type = optim.Adam) -> float:
    """Seconds for ``epochs`` epochs of the plain loop (descend's Adam, or ``torch.optim.Adam``)."""
    opt = opt_class(model.parameters(), lr=lr)
    batches = data.Batches(ds.X_train, ds.y_train, batch_size, seed=0)
    model.train()
    if ds.X_train.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for xb, yb in batches.iter_epoch(epoch):
            opt.zero_grad()
            loss = cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    if ds.X_train.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def trainer_run(model: torch.nn.Module, ds: data.Dataset, epochs: int, batch_size: int, lr: float,
                variant: str, folder: Path, device: str) -> float:
    """Seconds for ``trainer.fit()`` of the given variant."""
    kw: dict = dict(optimizer="adam", lr=lr, batch_size=batch_size, epochs=epochs, evaluate=False,
                    progress=False, device=device)
    if variant == "trainer+log":
        shutil.rmtree(folder, ignore_errors=True)
        kw.update(out=folder, log_every=10)
    else:
        kw.update(log_every=10**9)
    trainer = Trainer(model, ds, TrainConfig(**kw))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


MODELS = {"mlp": ("mlp", {"hidden": (64,)}), "mlp200k": ("mlp", {"hidden": (512, 320)}), "cnn": ("cnn", {})}


def measure(name: str, ds: data.Dataset, args: argparse.Namespace, rounds: int, epochs: int) -> None:
    kind, options = MODELS[name]
    base = build_model(kind, ds, options, seed=0).to(args.device)
    n_params = sum(p.numel() for p in base.parameters())
    iterations = epochs * len(data.Batches(ds.X_train, ds.y_train, args.batch_size))
    lr = 1e-3
    variants = ["torch hand loop", "hand loop", "trainer", "trainer+log"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        # warm-up: first calls pay for lazy imports and allocator growth
        hand_loop(copy.deepcopy(base), ds, 1, args.batch_size, lr)
        hand_loop(copy.deepcopy(base), ds, 1, args.batch_size, lr, torch.optim.Adam)
        for v in variants[2:]:
            trainer_run(copy.deepcopy(base), ds, 1, args.batch_size, lr, v, folder, args.device)
        for r in range(rounds):
            order = round_order(variants, r)
            for v in order:
                model = copy.deepcopy(base)
                if v == "hand loop":
                    t = hand_loop(model, ds, epochs, args.batch_size, lr)
                elif v == "torch hand loop":
                    t = hand_loop(model, ds, epochs, args.batch_size, lr, torch.optim.Adam)
                else:
                    t = trainer_run(model, ds, epochs, args.batch_size, lr, v, folder, args.device)
                times[v].append(t / iterations)
    ref = statistics.median(times["torch hand loop"])
    hand = statistics.median(times["hand loop"])
    table = Table(title=f"{name} ({n_params:,} parameters) on digits, Adam, batch {args.batch_size}, {epochs} epochs "
                        f"= {iterations} iterations, {rounds} rounds, device {args.device}, "
                        f"torch threads {torch.get_num_threads()}")
    for col in ("variant", "median us/iter", "min us/iter", "max us/iter", "ratio to torch hand loop",
                "ratio to descend hand loop"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in variants:
        med = statistics.median(times[v])
        table.add_row(v, f"{med * 1e6:.1f}", f"{min(times[v]) * 1e6:.1f}", f"{max(times[v]) * 1e6:.1f}",
                      f"{med / ref:.3f}x", f"{med / hand:.3f}x")
    console = Console()
    console.print(table)
    console.print(f"{name}: whole iteration, descend Adam / torch.optim.Adam = {hand / ref:.3f}x (target <= 1.0x); "
                  f"trainer / descend hand loop = {statistics.median(times['trainer']) / hand:.3f}x (target <= 1.05x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 rounds of 10 epochs")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--models", default="mlp,mlp200k,cnn", help="comma list of " + ",".join(MODELS))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    check_device(ap, args.device)
    bulk.library(wait=True)  # (built in the background once per machine: every step takes it)
    rounds = args.rounds or (5 if args.quick else 15)
    epochs = args.epochs or (10 if args.quick else 20)
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = data.load("digits").to(args.device)
    for name in args.models.split(","):
        measure(name, ds, args, rounds, epochs)


if __name__ == "__main__":
    main()
