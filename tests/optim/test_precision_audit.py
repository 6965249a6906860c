"""Low precision and complex parameters against torch.optim and across eager, foreach and fused:
the cases an audit found wrong (each failed before its fix), and the edges it checked."""

import io

import pytest
import torch

import descend.optim as O

BF16 = torch.bfloat16


def steps(opt, ps, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        opt.step()


@pytest.mark.parametrize("pdt", [torch.float32, torch.float16])
def test_float64_state_is_computed_in_float64_on_the_compiled_path(pdt):
    """``state_dtype=torch.float64`` beside float32 (or fp16) parameters: the compiled kernel took
    its scalars (``1 - beta2``, ...) in float32, so the float64 state kept float32's accuracy and
    every element of S differed from eager's (relative 5e-8). It is eager's, bit for bit."""
    out = {}
    for impl in ("eager", "fused"):
        gen = torch.Generator().manual_seed(1)
        ps = [torch.nn.Parameter(torch.randn(s, generator=gen).to(pdt)) for s in ((5, 4), (40_000,))]
        opt = O.Adam(ps, lr=1e-2, impl=impl, state_dtype=torch.float64)
        steps(opt, ps, 4)
        out[impl] = ps, opt.state
    (pe, se), (pf, sf) = out["eager"], out["fused"]
    for a, b in zip(pe, pf):
        assert sf[b]["S"].dtype == torch.float64
        assert torch.equal(se[a]["S"], sf[b]["S"]) and torch.equal(se[a]["V"], sf[b]["V"])
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("cls, kw", [(O.SGD, {"momentum": 0.9}), (O.Adam, {"amsgrad": True, "weight_decay": 0.1})])
def test_a_float64_tensor_lr_steps_float32_and_complex_rows_as_their_separate_runs(cls, kw, dtype):
    """A tensor lr of shape (N, 1) runs N trajectories bit-identical to N runs with lr as a number
    (engine's promise). A float64 lr promoted a float32 (or complex64) row's arithmetic to float64,
    so the rows drifted from their separate runs in the last bits."""
    lrs = torch.tensor([[1e-3], [3e-3], [1e-2], [0.3]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 2, generator=gen, dtype=torch.float64).to(dtype)
    gs = [torch.randn(4, 2, generator=gen, dtype=torch.float64).to(dtype) for _ in range(20)]

    def run(x, lr, rows):
        p = torch.nn.Parameter(x.clone())
        opt = cls([p], lr=lr, impl="eager", **kw)
        for g in gs:
            p.grad = g[rows].clone()
            opt.step()
        return p.detach()

    batch = run(x0, lrs, slice(None))
    for i in range(4):
        assert torch.equal(batch[i:i + 1], run(x0[i:i + 1], lrs[i].item(), slice(i, i + 1))), i
