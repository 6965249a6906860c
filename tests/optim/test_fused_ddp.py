"""The fused path under DistributedDataParallel (gloo, 2 processes on the CPU)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import descend.optim as O

STEPS, GLOBAL_BATCH = 12, 16


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(STEPS * GLOBAL_BATCH, 10, generator=g), torch.randn(STEPS * GLOBAL_BATCH, 1, generator=g)


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = torch.nn.parallel.DistributedDataParallel(make_model())
    opt = O.Adam(model.parameters(), lr=0.01, impl="fused")
    X, y = data()
    per = GLOBAL_BATCH // world
    for s in range(STEPS):
        lo = s * GLOBAL_BATCH + rank * per
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X[lo:lo + per]), y[lo:lo + per]).backward()
        opt.step()
    if rank == 0:
        torch.save({"params": [p.detach().clone() for p in model.module.parameters()],
                    "fused": opt._plans[0].kind == "fused"}, out)
    dist.destroy_process_group()
    os._exit(0)  # skip freeing DDP/gloo objects: their destructors can deadlock at exit


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_fused_adam_under_ddp_equals_one_process(tmp_path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    res = torch.load(out)
    assert res["fused"]
    model = make_model()
    opt = O.Adam(model.parameters(), lr=0.01, impl="eager")
    X, y = data()
    for s in range(STEPS):
        sl = slice(s * GLOBAL_BATCH, (s + 1) * GLOBAL_BATCH)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X[sl]), y[sl]).backward()
        opt.step()
    for a, b in zip(model.parameters(), res["params"]):
        assert (a.detach() - b).abs().max().item() <= 1e-6
