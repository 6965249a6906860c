"""DistributedDataParallel for the Trainer: joining the process group, sharding weights, reductions.

Launched by ``torchrun`` (``WORLD_SIZE``/``MASTER_ADDR`` set) or inside an
initialized process group, the Trainer wraps the model in
``DistributedDataParallel``; each rank takes its shard of every batch
(:func:`descend.data.shard_bounds`) and weights its loss so that the summed
gradient is the global batch mean's (:func:`group_scales`). Two gloo
processes end with the parameters one process ends with.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .. import data as D


def join(mode: str, device: torch.device) -> tuple[int, int, bool, torch.device]:
    """``(rank, world, owns_group, device)``: join (or create) the process group when launched for DDP."""
    if mode == "off" or not dist.is_available():
        return 0, 1, False, device
    owns = False
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "MASTER_ADDR" not in os.environ:
            return 0, 1, False, device
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    rank, world = dist.get_rank(), dist.get_world_size()
    if world > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    return rank, world, owns, device


def leave(owns: bool) -> None:
    """Destroy the process group if this Trainer created it."""
    if owns and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device, world: int) -> nn.Module:
    """``module`` itself, or wrapped in DistributedDataParallel when there are several ranks."""
    if world <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)


def group_scales(sizes: list[int], k: int, rank: int, world: int) -> list[list[float] | None]:
    """Per iteration: each batch's loss weight on this rank, so that the gradient is the global mean's."""
    out: list[list[float] | None] = []
    for g in range(0, len(sizes), k):
        group = sizes[g : g + k]
        total = sum(group)
        bounds = [D.shard_bounds(s, rank, world) for s in group]
        scales = [(hi - lo) * world / total for lo, hi in bounds]
        out.append(None if all(s == 1.0 for s in scales) else scales)
    return out


def mean(values: list[Any], sizes: list[int]) -> float:
    """Example-weighted mean of per-batch mean losses (floats, or tensors on an accelerator)."""
    n = sum(sizes)
    if n == 0:
        return float("nan")
    if values and isinstance(values[0], torch.Tensor):
        values = torch.stack(values).double().cpu().tolist()
    return sum(float(v) * s for v, s in zip(values, sizes)) / n


def reduced_mean(values: list[Any], sizes: list[int], world: int, device: torch.device) -> float:
    """:func:`mean` over every rank's examples."""
    if world == 1:
        return mean(values, sizes)
    local = mean(values, sizes) * sum(sizes) if sum(sizes) else 0.0
    t = torch.tensor([local, float(sum(sizes))], dtype=torch.float64,
                     device=device if device.type == "cuda" else torch.device("cpu"))
    dist.all_reduce(t)
    return float(t[0] / t[1]) if float(t[1]) else float("nan")
