"""State in 16 bits (``state_dtype=torch.bfloat16``): storage, rounding, paths, state_dict, resume."""

import io

import pytest
import torch

import descend.optim as O
from descend.optim import lowstate

from .test_engine import make

BF16 = torch.bfloat16


def run(cls, impl, steps=30, **kw):
    ps = [p.clone().requires_grad_() for p in make()]
    opt = cls(ps, lr=1e-2, impl=impl, **kw)
    gen = torch.Generator().manual_seed(7)
    for _ in range(steps):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return ps, opt


# ---------------------------------------------------------------- rounding itself
def test_stochastic_rounding_lands_on_a_neighbour_and_is_unbiased():
    lo = torch.tensor(1.0, dtype=BF16)
    step = (torch.tensor(1.0078125) - 1.0).item()  # bf16 spacing at 1
    salt = torch.randn(200_000, generator=torch.Generator().manual_seed(0))  # (gradients: all different)
    for frac in (0.1, 0.25, 0.5, 0.9):
        x = torch.full((200_000,), 1.0 + frac * step)
        r = lowstate.stochastic_bf16(x, lowstate.seed(3, "S"), salt)
        assert set(r.float().unique().tolist()) <= {lo.item(), 1.0 + step}
        up = (r.float() > 1.0).double().mean().item()
        assert up == pytest.approx(frac, abs=0.01)  # 200k draws: the standard error is about 0.001
        # one element over many steps (the seed changes each step): the same probability
        one = torch.stack([lowstate.stochastic_bf16(x[:1], lowstate.seed(t, "S"), salt[:1]) for t in range(4000)])
        assert (one.float() > 1.0).double().mean().item() == pytest.approx(frac, abs=0.03)
    neg = lowstate.stochastic_bf16(torch.full((100_000,), -(1.0 + 0.25 * step)), 11, salt[:100_000]).float()
    assert neg.mean().item() == pytest.approx(-(1.0 + 0.25 * step), abs=2e-5)
    special = torch.tensor([0.0, float("inf"), -float("inf"), 3.0e38])
    out = lowstate.stochastic_bf16(special, 5).float()
    assert out[0] == 0 and out[1] == float("inf") and out[2] == -float("inf") and out[3] >= 2.99e38


def test_the_same_seed_rounds_the_same_and_a_new_step_differently():
    x = torch.randn(10_000)
    a = lowstate.stochastic_bf16(x, lowstate.seed(5, "V"))
    assert torch.equal(a, lowstate.stochastic_bf16(x, lowstate.seed(5, "V")))
    assert not torch.equal(a, lowstate.stochastic_bf16(x, lowstate.seed(6, "V")))
    assert not torch.equal(a, lowstate.stochastic_bf16(x, lowstate.seed(5, "S")))


def test_nearest_stalls_a_slow_average_where_stochastic_follows_it():
    """S <- 0.999 S (beta2) with g = 0: bf16 keeps 8 bits, so 0.999 * S rounds back to S."""
    for rounding, moves in (("nearest", False), ("stochastic", True)):
        p = torch.nn.Parameter(torch.zeros(4096))
        opt = O.Adam([p], lr=1e-3, state_dtype=BF16, state_rounding=rounding, impl="eager")
        p.grad = 1 + torch.rand(4096, generator=torch.Generator().manual_seed(0))  # (S differs by element)
        opt.step()
        s0 = opt.state[p]["S"].float().mean().item()
        for _ in range(200):
            p.grad = torch.zeros(4096)
            opt.step()
        s = opt.state[p]["S"].float().mean().item()
        exact = s0 * 0.999 ** 200
        if moves:
            assert s == pytest.approx(exact, rel=0.01)
        else:
            assert s == s0  # stalled: 0.999 * s rounds to s every step


# ---------------------------------------------------------------- the optimizer
@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_adam_bf16_state_is_stored_in_bf16_and_stays_close_to_fp32(impl, rounding):
    ps, opt = run(O.Adam, impl, state_dtype=BF16, state_rounding=rounding)
    ref, _ = run(O.Adam, "eager")
    for p, r in zip(ps, ref):
        st = opt.state[p]
        assert st["V"].dtype == BF16 and st["S"].dtype == BF16 and p.dtype == torch.float32
        assert torch.allclose(p, r, atol=3e-3), (p - r).abs().max()


@pytest.mark.parametrize("cls", [O.AdamW, O.RMSprop, O.Adagrad, O.Momentum])
def test_other_rules_store_bf16_state_eager_equals_foreach(cls):
    kw = {"beta": 0.9} if cls is O.Momentum else {}
    a, oa = run(cls, "eager", state_dtype=BF16, **kw)
    b, ob = run(cls, "foreach", state_dtype=BF16, **kw)
    ref, _ = run(cls, "eager", **kw)
    for pa, pb, r in zip(a, b, ref):
        assert all(v.dtype == BF16 for k, v in oa.state[pa].items() if k != "step")
        assert torch.equal(pa, pb)  # the same rounding, element for element
        assert torch.allclose(pa, r, atol=2e-2)  # bf16 keeps 8 bits: about 0.4% of each state value per step


@pytest.mark.parametrize("cls", [O.Adam, O.AdamW, O.Momentum])  # (Adagrad's kernel differs in a last bit)
def test_every_path_rounds_alike_packed_or_not(cls):
    """The dither comes from the parameter, not from a position: the compiled path, which packs
    small tensors into one buffer, stores the same bf16 state as eager and foreach, bit for bit
    (where, as here, their float32 arithmetic agrees too; a large tensor's own kernel may differ
    from eager in the last bit of the arithmetic, and then the rounding follows it)."""
    kw = {"beta": 0.9} if cls is O.Momentum else {}
    gen = torch.Generator().manual_seed(3)
    x0 = [torch.randn(s, generator=gen) for s in ((10, 10), (50,), (7,), (300,))]
    g0 = [[torch.randn(x.shape, generator=gen) for x in x0] for _ in range(4)]
    out = {}
    for impl in ("eager", "foreach", "fused"):
        ps = [torch.nn.Parameter(x.clone()) for x in x0]
        opt = cls(ps, lr=1e-2, impl=impl, state_dtype=BF16, **kw)
        for gs in g0:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        out[impl] = [p.detach() for p in ps] + [v for p in ps for k, v in opt.state[p].items() if k != "step"]
    for impl in ("foreach", "fused"):
        assert all(torch.equal(a, b) for a, b in zip(out["eager"], out[impl])), impl


def test_float64_parameters_with_bf16_state_run_on_every_path():
    """The compiled path rounded a float64 value's 64-bit words as if they were float32 ones."""
    gen = torch.Generator().manual_seed(6)
    x0 = torch.randn(40_000, generator=gen, dtype=torch.float64)
    out = []
    for impl in ("eager", "fused"):
        p = torch.nn.Parameter(x0.clone())
        opt = O.Adam([p], lr=1e-2, impl=impl, state_dtype=BF16)
        for _ in range(3):
            p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
            opt.step()
        assert opt.state[p]["V"].dtype == BF16
        out.append(opt.state[p]["S"].float())
    assert (out[0] != out[1]).float().mean() < 1e-3  # (last-bit differences of the arithmetic aside)


def test_a_tensor_lr_batch_rounds_as_its_separate_runs():
    lrs = torch.tensor([[1e-3], [3e-3], [1e-2], [3e-2]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    gs = [torch.randn(4, 2, generator=gen, dtype=torch.float64) for _ in range(30)]

    def run_rows(x, lr, rows):
        p = torch.nn.Parameter(x.clone())
        opt = O.Adam([p], lr=lr, impl="eager", state_dtype=BF16)
        for g in gs:
            p.grad = 0.5 * p.detach() + g[rows]
            opt.step()
        return p.detach(), opt.state[p]["S"]

    batch, s_batch = run_rows(x0, lrs, slice(None))
    for i in range(4):
        one, s_one = run_rows(x0[i:i + 1], lrs[i].item(), slice(i, i + 1))
        assert torch.equal(batch[i:i + 1], one) and torch.equal(s_batch[i:i + 1], s_one), i


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_bf16_parameters_keep_torchs_rounding_on_every_path(impl):
    """bf16 parameters keep bf16 state as torch.optim does, rounded to nearest (torch's fused
    kernels compute in float32): ``state_rounding`` applies where state_dtype is below the parameter."""
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(64, generator=gen).to(BF16)
    gs = [torch.randn(64, generator=gen).to(BF16) for _ in range(10)]
    out = []
    for build in (lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True), lambda ps: O.Adam(ps, lr=1e-2, impl=impl)):
        p = torch.nn.Parameter(x0.clone())
        opt = build([p])
        for g in gs:
            p.grad = g.clone()
            opt.step()
        out.append(p.detach())
    assert torch.equal(out[0], out[1])


def test_state_memory_is_halved_and_saves_half_the_bytes():
    sizes = {}
    for dtype in (None, BF16):
        ps, opt = run(O.Adam, "foreach", steps=2, state_dtype=dtype)
        buf = io.BytesIO()
        torch.save(opt.state_dict(), buf)
        sizes[dtype] = (sum(v.numel() * v.element_size() for st in opt.state.values()
                            for k, v in st.items() if k != "step"), len(buf.getvalue()))
    assert sizes[BF16][0] * 2 == sizes[None][0]
    assert sizes[BF16][1] < 0.6 * sizes[None][1]


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_resume_is_bitwise_exact_and_the_state_stays_bf16(impl):
    straight, _ = run(O.Adam, impl, steps=20, state_dtype=BF16)
    first, opt = run(O.Adam, impl, steps=10, state_dtype=BF16)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    assert all(v.dtype == BF16 for st in saved["state"].values() for k, v in st.items() if k != "step")
    # the second half's gradients: replay the generator past the first 10 steps
    gen = torch.Generator().manual_seed(7)
    for _ in range(10):
        for p in first:
            torch.randn(p.shape, generator=gen)
    ps = [p.detach().clone().requires_grad_() for p in first]
    opt3 = O.Adam(ps, lr=1e-2, impl=impl, state_dtype=BF16)
    opt3.load_state_dict(saved)
    for _ in range(10):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen)
        opt3.step()
    for a, b in zip(ps, straight):
        assert torch.equal(a, b)
    assert all(opt3.state[p]["V"].dtype == BF16 for p in ps)


def test_bad_state_dtype_and_rounding_name_the_argument():
    p = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match=r"state_dtype must be .*float16 state overflows"):
        O.Adam(p, state_dtype=torch.float16)
    with pytest.raises(ValueError, match=r"got .fp16..*float16 state overflows"):
        O.Adam(p, state_dtype="fp16")
    with pytest.raises(ValueError, match=r"state_dtype must be .*got .int8."):
        O.Adam(p, state_dtype="int8")
    with pytest.raises(ValueError, match="state_rounding must be one of 'stochastic', 'nearest'"):
        O.Adam(p, state_rounding="up")
    assert O.Adam(p, state_dtype="bf16").state_dtype is BF16
    z = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    opt = O.Adam([z], state_dtype=BF16)
    z.grad = torch.ones(3, dtype=torch.complex64)
    with pytest.raises(ValueError, match=r"state_dtype=torch.bfloat16 needs real floating-point parameters"):
        opt.step()


def test_kernels_at_the_16_bit_width_equal_the_float32_width_ones_bit_for_bit(monkeypatch):
    """descend has Inductor vectorize bf16-state kernels at the 16-bit width (faster); the
    results must be exactly those of the kernels Inductor makes on its own."""
    import contextlib

    from descend.optim import fused

    def run():
        torch.manual_seed(0)
        p = torch.randn(40_007).requires_grad_()
        opt = O.Adam([p], lr=1e-2, impl="fused", state_dtype=torch.bfloat16)
        for s in range(4):
            p.grad = torch.randn(40_007, generator=torch.Generator().manual_seed(s))
            opt.step()
        return p.detach().clone(), opt.state[p]["V"].clone(), opt.state[p]["S"].clone()

    # the pinned torch has the internals the widening needs (else it would silently not apply)
    assert not isinstance(fused._wide_low_precision(), contextlib.nullcontext)
    monkeypatch.setattr(fused, "_SOURCES", {})
    wide = run()
    monkeypatch.setattr(fused, "_SOURCES", {})  # compiled again (and cached apart) without it
    monkeypatch.setattr(fused, "_wide_low_precision", contextlib.nullcontext)
    monkeypatch.setattr(fused, "_KEY_PASS", [None])
    narrow = run()
    for a, b in zip(wide, narrow):
        assert torch.equal(a, b)


@pytest.mark.parametrize("extra", [(), ({"stats": 1},)])
def test_the_widening_takes_inductors_tiling_answer_of_either_length(monkeypatch, extra):
    """Inductor's TilingSelect.select_tiling answers (factors, indices) before torch 2.12 and
    (factors, indices, stats) since; the 16-bit widening must handle both."""
    from torch._inductor import cpu_vec_isa
    from torch._inductor.codegen import cpp as inductor_cpp

    from descend.optim import fused

    isa = cpu_vec_isa.pick_vec_isa()
    if not isa:
        pytest.skip("no vector ISA on this CPU")
    answer = ([isa.nelements(torch.float)], [0], *extra)
    monkeypatch.setattr(inductor_cpp.TilingSelect, "select_tiling", lambda self, fns, sizes: answer)
    monkeypatch.setattr(inductor_cpp, "_get_loop_body", lambda fns: fns)
    monkeypatch.setattr(inductor_cpp, "_get_dtype_from_loopbodies", lambda bodies: {torch.float32, BF16})
    with fused._wide_low_precision():
        got = inductor_cpp.TilingSelect.select_tiling(None, [], [])
    assert got == ([isa.nelements(BF16)], [0], *extra)
