"""The engine on CUDA (skipped without a GPU): every path equals the CPU eager reference,
and nonfinite="skip" folds its check into the update without a host sync."""

import pytest
import torch

from .cases import ENGINE, ids

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def make(device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g).to(device) for s in [(300, 120), (11,), (2, 3, 4)]]


def run(case, impl, device, steps=20, **extra):
    ps = [p.clone().requires_grad_() for p in make(device)]
    opt = case.make(ps, impl=impl, **extra)
    gen = torch.Generator().manual_seed(7)
    for _ in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen).to(device)
        opt.step()
    return [p.detach().cpu() for p in ps], opt


@pytest.mark.parametrize("case", ENGINE, ids=ids(ENGINE))
def test_cuda_paths_equal_cpu_eager(case):
    ref, _ = run(case, "eager", "cpu")
    for impl in ("eager", "foreach", "fused"):
        got, _ = run(case, impl, "cuda")
        for a, b in zip(ref, got):
            assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-5, impl


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_skip_needs_no_host_sync_and_skips(impl):
    case = next(c for c in ENGINE if c.name == "adam")
    _, opt = run(case, impl, "cuda", steps=2, nonfinite="skip")
    ps = [p for g in opt.param_groups for p in g["params"]]
    before = [p.detach().clone() for p in ps]
    ps[1].grad[3] = float("nan")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
