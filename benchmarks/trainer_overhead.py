"""Trainer overhead: descend's Trainer against a hand-written PyTorch loop, same model and data.

Both train the same model (an MLP on digits by default) with the same
optimizer (descend Adam, lr 1e-3), the same batches (``descend.data.Batches``,
batch 64, seed 0) and the same number of epochs. The hand-written loop is::

    for epoch in range(E):
        for xb, yb in batches.iter_epoch(epoch):
            opt.zero_grad(); loss = loss_fn(model(xb), yb); loss.backward(); opt.step()

The Trainer variants time ``trainer.fit()`` from start to end (the loop, its
bookkeeping and its fixed start/finish costs); building the Trainer is not
timed, as building the optimizer is not timed for the hand loop:

* ``trainer``: no run folder, no evaluation, no progress bar (the target:
  <= 1.05x the hand loop per iteration);
* ``trainer+log``: a run folder with a metric line every 10 iterations, the
  final checkpoint and summary.json (no figures, no evaluation);
* ``trainer+progress``: ``trainer`` plus the Rich progress bar, drawn to a
  null terminal.

Rounds interleave the variants (order rotated each round), so machine noise
hits all of them alike; the table reports the median time per iteration and
its ratio to the hand loop's median.

    python benchmarks/trainer_overhead.py            # 15 rounds of 20 epochs
    python benchmarks/trainer_overhead.py --quick    # 5 rounds of 10 epochs
"""

from __future__ import annotations

import argparse
import copy
import io
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
from descend.train import TrainConfig, Trainer, build_model


def hand_loop(model: torch.nn.Module, ds: data.Dataset, epochs: int, batch_size: int, lr: float) -> float:
    """Seconds for ``epochs`` epochs of the plain loop."""
    opt = optim.Adam(model.parameters(), lr=lr)
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
                    progress=False, plots=False, device=device)
    console = None
    if variant == "trainer+log":
        shutil.rmtree(folder, ignore_errors=True)
        kw.update(out=folder, log_every=10)
    elif variant == "trainer+progress":
        kw.update(progress=True)
        console = Console(file=io.StringIO(), force_terminal=True, width=120)
    else:
        kw.update(log_every=10**9)
    trainer = Trainer(model, ds, TrainConfig(**kw), console=console)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 rounds of 10 epochs")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--hidden", type=str, default="64", help="MLP hidden widths, e.g. 256,256")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    rounds = args.rounds or (5 if args.quick else 15)
    epochs = args.epochs or (10 if args.quick else 20)
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = data.load("digits").to(args.device)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    base = build_model("mlp", ds, {"hidden": hidden}, seed=0).to(args.device)
    iterations = epochs * len(data.Batches(ds.X_train, ds.y_train, args.batch_size))
    lr = 1e-3
    variants = ["hand loop", "trainer", "trainer+log", "trainer+progress"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        # warm-up: first calls pay for lazy imports and allocator growth
        hand_loop(copy.deepcopy(base), ds, 1, args.batch_size, lr)
        for v in variants[1:]:
            trainer_run(copy.deepcopy(base), ds, 1, args.batch_size, lr, v, folder, args.device)
        for r in range(rounds):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            for v in order:
                model = copy.deepcopy(base)
                if v == "hand loop":
                    t = hand_loop(model, ds, epochs, args.batch_size, lr)
                else:
                    t = trainer_run(model, ds, epochs, args.batch_size, lr, v, folder, args.device)
                times[v].append(t / iterations)
    hand = statistics.median(times["hand loop"])
    table = Table(title=f"digits MLP{list(hidden)}, Adam, batch {args.batch_size}, {epochs} epochs = {iterations} "
                        f"iterations, {rounds} rounds, device {args.device}, torch threads {torch.get_num_threads()}")
    for col in ("variant", "median us/iter", "min us/iter", "max us/iter", "ratio to hand loop"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in variants:
        med = statistics.median(times[v])
        table.add_row(v, f"{med * 1e6:.1f}", f"{min(times[v]) * 1e6:.1f}", f"{max(times[v]) * 1e6:.1f}",
                      f"{med / hand:.3f}x")
    console = Console()
    console.print(table)
    ratio = statistics.median(times["trainer"]) / hand
    console.print(f"trainer / hand loop = {ratio:.3f}x (target <= 1.05x): {'met' if ratio <= 1.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
