"""The engine on CUDA (skipped without a GPU): every path equals the CPU eager reference,
and nonfinite="skip" folds its check into the update without a host sync."""

import pytest
import torch

import descend.optim as O
from descend.optim import engine, fused

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
    assert_nan_step_skipped_without_host_sync(opt)


def assert_nan_step_skipped_without_host_sync(opt):
    """A NaN in one gradient: the step changes nothing and makes no host sync (nonfinite="skip")."""
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


def _adam_steps(ps, steps=6, **kw):
    opt = O.Adam(ps, lr=0.01, weight_decay=0.01, **kw)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 0.01 / (step + 1)  # a new lr every step: no recompile
        gen = torch.Generator().manual_seed(100 + step)
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen).to(p.device)
        opt.step()
    return opt


def test_direct_calls_on_cuda_equal_calls_through_dynamo(monkeypatch):
    """With CUDA among fused.DIRECT_DEVICES (the default), later steps call Inductor's graph
    without Dynamo, bit for bit as through Dynamo, and within float32 rounding of the CPU eager path."""
    assert "cuda" in fused.DIRECT_DEVICES
    shapes = [(300, 200), (64,), (40_000,)]

    def fresh(device):
        g = torch.Generator().manual_seed(0)
        return [torch.randn(*s, generator=g).to(device).requires_grad_() for s in shapes]

    monkeypatch.setattr(fused, "DIRECT_DEVICES", {"cpu"})  # through Dynamo on CUDA
    slow = fresh("cuda")
    _adam_steps(slow, impl="fused", nonfinite="skip")
    ref = fresh("cpu")
    _adam_steps(ref, impl="eager")

    monkeypatch.setattr(fused, "DIRECT_DEVICES", {"cpu", "cuda"})
    entered = []
    real = fused.compiled_call
    monkeypatch.setattr(fused, "compiled_call", lambda fn, *a: (entered.append(1), real(fn, *a))[1])
    _adam_steps(fresh("cuda"), steps=1, impl="fused")
    first = len(entered)
    fast = fresh("cuda")
    opt = _adam_steps(fast, impl="fused", nonfinite="skip")
    assert len(entered) == first  # every later call was direct
    for a, b, c in zip(fast, slow, ref):
        assert torch.equal(a, b)
        assert ((a.detach().cpu() - c).abs().max() / c.abs().max()).item() <= 1e-5
    assert_nan_step_skipped_without_host_sync(opt)  # the flag is folded in on the direct call too


@pytest.mark.parametrize("impl", ["foreach", "fused"])
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_bf16_state_on_cuda_matches_the_cpu(impl, rounding, monkeypatch):
    """State in bfloat16 on CUDA: stored in bf16, and the same trajectory as on the CPU (the
    rounding noise is a function of position and step, not of a device's random generator).
    The position is the element's place in the flat tensor the kernel sees, so the compiled
    path packs the same tensors on both devices here."""
    monkeypatch.setattr(engine, "BIG_ACCELERATOR", engine.BIG)
    kw = {"state_dtype": torch.bfloat16, "state_rounding": rounding}
    case = next(c for c in ENGINE if c.name == "adam")
    cpu, _ = run(case, impl, "cpu", **kw)
    got, opt = run(case, impl, "cuda", **kw)
    assert all(st["S"].dtype == torch.bfloat16 for st in opt.state.values())
    for a, b in zip(cpu, got):
        assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-4, impl


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_parameters_on_cuda_agree_across_paths(dtype):
    """fp16/bf16 parameters compute in float32 on every path, on CUDA as on the CPU."""
    case = next(c for c in ENGINE if c.name == "adam")

    def go(impl, device):
        ps = [p.to(dtype).clone().requires_grad_() for p in make(device)]
        opt = case.make(ps, impl=impl)
        gen = torch.Generator().manual_seed(7)
        for _ in range(10):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=gen).to(device, dtype)
            opt.step()
        return [p.detach().float().cpu() for p in ps]

    ref = go("eager", "cpu")
    for impl in ("eager", "foreach", "fused"):
        for a, b in zip(ref, go(impl, "cuda")):
            # one rounding of the parameter to 16 bits per step may differ: a few units in the last place
            assert (a - b).abs().max().item() <= 4 * torch.finfo(dtype).eps * a.abs().max().item(), impl


@pytest.mark.parametrize("name", ["adam", "sgd_nesterov"])
def test_own_kernel_calls_on_cuda_and_their_gradient_check(name, monkeypatch):
    """Tensors from engine.BIG_ACCELERATOR elements up get a kernel call of their own on CUDA
    (lowered here so the test tensors qualify): the same result as the CPU eager path, and a
    NaN in such a tensor's gradient is caught (the check reads it, not only the packed ones)."""
    monkeypatch.setattr(engine, "BIG_ACCELERATOR", 1024)
    case = next(c for c in ENGINE if c.name == name)
    ref, _ = run(case, "eager", "cpu")
    got, opt = run(case, "fused", "cuda")
    for a, b in zip(ref, got):
        assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-5
    ps = [p for g in opt.param_groups for p in g["params"]]
    before = [p.detach().clone() for p in ps]
    ps[0].grad[5, 7] = float("inf")  # the (300, 120) tensor: a call of its own
    with pytest.raises(FloatingPointError):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
