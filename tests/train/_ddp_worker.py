"""Worker of the DDP test: the same Trainer, one process per rank, gloo on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from descend.train import TrainConfig, Trainer

# (batch size, accumulate): equal shards 32 + 32; unequal shards 32 + 31 with accumulation
CASES = [(64, 1), (63, 2)]


def problem() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 8, generator=g)
    y = (X[:, :3].argmax(1) + (X[:, 3] > 1).long()) % 3
    return X, y


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))


def fit(batch_size: int, accumulate: int) -> tuple[nn.Module, object, list[int]]:
    """Train; also returns the sizes of the training batches this process's model saw."""
    net = model()
    seen: list[int] = []
    net.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])) if m.training else None)
    cfg = TrainConfig(optimizer="adam", lr=0.01, batch_size=batch_size, accumulate=accumulate, epochs=2,
                      progress=False, log_every=1)
    return net, Trainer(net, problem(), cfg).fit(), seen


def worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)
    try:
        out = []
        for b, k in CASES:
            net, result, seen = fit(b, k)
            out.append({"params": net.state_dict(), "history": result.history, "final": result.final,
                        "iterations": result.iterations, "seen": seen})
        torch.save(out, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
    os._exit(0)  # skip freeing DDP/gloo objects: their destructors can deadlock at exit
