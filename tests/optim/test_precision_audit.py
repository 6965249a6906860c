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


# ---------------------------------------------------------------- guards: edges the audit found right
T = torch.optim


def grads(shape, dtype, scale, n, seed=1):
    """n gradients of ``shape`` in ``dtype``: normal * scale, clamped inside fp16's range, some zeros."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        g = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).clamp(-65_000, 65_000)
        g[::5] = 0
        out.append(g.to(dtype))
    return out


@pytest.mark.parametrize("dtype", [torch.float16, BF16])
@pytest.mark.parametrize("scale", [300.0, 60_000.0, 1e-7])  # g*g overflows fp16; subnormal in fp16
@pytest.mark.parametrize("theirs, ours", [
    ((T.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
     (O.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.05, "maximize": True})),
    ((T.AdamW, {"lr": 1e-2, "weight_decay": 0.1}), (O.AdamW, {"lr": 1e-2, "weight_decay": 0.1})),
])
def test_16_bit_parameters_step_as_torchs_fused_kernel_bit_for_bit(theirs, ours, scale, dtype):
    """fp16/bf16 parameters in float32 opmath, state in the parameter's dtype: torch's fused=True
    kernel's bits on the eager and foreach paths (torch's own foreach path computes in 16 bits:
    with fp16 it turns these parameters into NaN where eps=1e-8 rounds to 0)."""
    x0 = torch.randn(37, generator=torch.Generator().manual_seed(0)).to(dtype)
    gs = grads(37, dtype, scale, 8)
    ref = torch.nn.Parameter(x0.clone())
    t_opt = theirs[0]([ref], fused=True, **theirs[1])
    for g in gs:
        ref.grad = g.clone()
        t_opt.step()
    assert torch.isfinite(ref).all()
    for impl in ("eager", "foreach"):
        p = torch.nn.Parameter(x0.clone())
        opt = ours[0]([p], impl=impl, **ours[1])
        for g in gs:
            p.grad = g.clone()
            opt.step()
        assert torch.equal(p, ref), impl
        assert opt.state[p]["V"].dtype == dtype


COMPLEX = [
    ("adam_amsgrad_wd_max", T.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.05, "maximize": True},
     O.Adam, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("adamw_amsgrad_max", T.AdamW, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1, "maximize": True},
     O.AdamW, {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("sgd_nesterov_wd_max", T.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01,
                                    "maximize": True},
     O.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01, "maximize": True}),
    ("rmsprop_centered_momentum_wd_max", T.RMSprop,
     {"lr": 0.01, "alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.01, "maximize": True},
     O.RMSprop, {"lr": 0.01, "beta": 0.9, "eps_mode": "outside", "centered": True, "momentum": 0.5,
                 "weight_decay": 0.01, "maximize": True}),
    ("adagrad_wd_max", T.Adagrad, {"lr": 0.1, "weight_decay": 0.01, "maximize": True,
                                   "initial_accumulator_value": 0.1},
     O.Adagrad, {"lr": 0.1, "eps": 1e-10, "eps_mode": "outside", "weight_decay": 0.01, "maximize": True,
                 "initial_accumulator_value": 0.1}),
]


@pytest.mark.parametrize("name, t_cls, t_kw, o_cls, o_kw", COMPLEX, ids=[c[0] for c in COMPLEX])
def test_complex_parameters_with_every_option_follow_torch_on_every_path(name, t_cls, t_kw, o_cls, o_kw):
    """complex128 as real pairs, with weight decay, amsgrad and maximize: torch.optim's
    single-tensor and foreach results on all three impls ("fused" runs complex on foreach)."""
    x0 = torch.randn(6, 5, dtype=torch.complex128, generator=torch.Generator().manual_seed(2))
    gs = grads((6, 5), torch.complex128, 1.0, 30, seed=3)
    refs = []
    for foreach in (False, True):
        a = torch.nn.Parameter(x0.clone())
        opt = t_cls([a], foreach=foreach, **t_kw)
        for g in gs:
            a.grad = g.clone()
            opt.step()
        refs.append(a)
    for impl in ("eager", "foreach", "fused"):
        b = torch.nn.Parameter(x0.clone())
        opt = o_cls([b], impl=impl, **o_kw)
        for g in gs:
            b.grad = g.clone()
            opt.step()
        for a in refs:
            assert (a - b).abs().max().item() <= 1e-12, impl
        assert all(v.dtype == torch.complex128 for k, v in opt.state[b].items() if k != "step")


def mixed():
    gen = torch.Generator().manual_seed(4)
    return [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen).to(BF16),
            torch.randn(4, generator=gen).half(), torch.randn(3, 2, generator=gen, dtype=torch.complex64),
            torch.randn(6, generator=gen, dtype=torch.float64)]


def test_one_group_of_five_dtypes_steps_alike_on_every_path_and_as_torch():
    """fp32, bf16, fp16, complex64 and fp64 parameters in one param group: the paths agree bit
    for bit, and the 16-bit ones take the bits of torch's fused kernel."""
    kw = {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "maximize": True}
    out = {}
    for impl in ("eager", "foreach", "fused"):
        ps = [torch.nn.Parameter(x) for x in mixed()]
        opt = O.AdamW(ps, impl=impl, **kw)
        steps(opt, ps, 5)
        out[impl] = ps
        assert [opt.state[p]["V"].dtype for p in ps] == [p.dtype for p in ps]
    for impl in ("foreach", "fused"):
        for a, b in zip(out["eager"], out[impl]):
            if impl == "foreach" and a.dtype in (torch.float32, torch.float64):  # (foreach's traced
                assert (a - b).abs().max().item() <= 4 * torch.finfo(a.dtype).eps, a.dtype  # program: last bits)
            else:
                assert torch.equal(a, b), (impl, a.dtype)
    ps = [torch.nn.Parameter(x) for x in mixed()]
    low = [p for p in ps if p.dtype in (torch.float16, BF16)]
    opt = T.AdamW(low, fused=True, **kw)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        for p in ps:
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            if any(p is q for q in low):
                p.grad = g
        opt.step()
    assert torch.equal(low[0], out["eager"][1]) and torch.equal(low[1], out["eager"][2])


@pytest.mark.filterwarnings("ignore:Complex modules")
@pytest.mark.parametrize("impl", ["eager", "foreach"])
@pytest.mark.parametrize("start, to, state_dtype, expect", [
    (torch.float32, torch.float16, BF16, BF16),  # state_dtype holds: the state stays bf16
    (torch.float32, BF16, None, BF16),  # the state follows the parameter
    (torch.complex64, torch.complex128, None, torch.complex128),
    (torch.float32, torch.complex64, None, torch.complex64),
])
def test_the_state_follows_a_model_cast_after_steps(impl, start, to, state_dtype, expect):
    """model.to(dtype) after a few steps: the state is cast (or kept in state_dtype) and the
    steps go on as those of an optimizer given the cast state by hand."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4).to(start)
    opt = O.RMSprop(model.parameters(), lr=0.01, centered=True, momentum=0.5, impl=impl,
                    state_dtype=state_dtype)
    ps = list(model.parameters())
    steps(opt, ps, 3)
    saved = opt.state_dict()
    model.to(to)
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    ref_opt = O.RMSprop(ref, lr=0.01, centered=True, momentum=0.5, impl="eager", state_dtype=state_dtype)
    ref_opt.load_state_dict(saved)
    for st in ref_opt.state.values():
        for k in ("S", "mean", "buf"):
            st[k] = st[k].to(expect)
    steps(opt, ps, 3, seed=1)
    steps(ref_opt, ref, 3, seed=1)
    for p, r in zip(ps, ref):
        assert p.dtype == to
        assert all(opt.state[p][k].dtype == expect for k in ("S", "mean", "buf"))
        assert torch.equal(p, r) if impl == "eager" else (p - r).abs().max().item() <= 1e-6


@pytest.mark.parametrize("impl, dtype, state_dtype", [
    *[(impl, dtype, sd) for impl in ("eager", "foreach")
      for dtype, sd in ((torch.float16, None), (torch.float16, BF16), (BF16, None), (torch.complex64, None))],
    ("fused", torch.float16, None), ("fused", BF16, None),  # (bf16 state there: test_state_dtype)
])
def test_low_precision_and_complex_state_survives_save_and_load_bit_for_bit(impl, dtype, state_dtype):
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randn(7, 3, generator=gen).to(dtype)
    kw = {"lr": 0.01, "amsgrad": True, "impl": impl, "state_dtype": state_dtype}
    straight = torch.nn.Parameter(x0.clone())
    steps(O.Adam([straight], **kw), [straight], 10)
    first = torch.nn.Parameter(x0.clone())
    opt = O.Adam([first], **kw)
    gen_steps = torch.Generator().manual_seed(0)
    for i in range(10):
        g = torch.randn(first.shape, generator=gen_steps, dtype=torch.float64).to(dtype)
        if i == 5:
            buf = io.BytesIO()
            torch.save(opt.state_dict(), buf)
            buf.seek(0)
            resumed = torch.nn.Parameter(first.detach().clone())
            opt = O.Adam([resumed], **kw)
            opt.load_state_dict(torch.load(buf, weights_only=True))
            first = resumed
        first.grad = g
        opt.step()
    assert torch.equal(first, straight)
    assert opt.state[first]["S_max"].dtype == (state_dtype or dtype)


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
@pytest.mark.parametrize("dtype", [torch.float16, BF16, torch.complex64])
def test_a_sparse_gradient_is_refused_clearly_and_changes_nothing(impl, dtype):
    dense = torch.nn.Parameter(torch.ones(3, dtype=dtype))
    table = torch.nn.Parameter(torch.zeros(4, 3, dtype=dtype))
    opt = O.SGD([dense, table], lr=0.1, momentum=0.9, impl=impl, nonfinite="skip")
    dense.grad = torch.ones(3, dtype=dtype)
    table.grad = torch.sparse_coo_tensor(torch.tensor([[1, 2]]), torch.ones(2, 3, dtype=dtype), (4, 3),
                                         check_invariants=True)
    with pytest.raises(ValueError, match=r"parameter 1 .*has a sparse gradient; descend.optim.SGD supports "
                                         r"dense gradients only"):
        opt.step()
    assert torch.equal(dense, torch.ones(3, dtype=dtype))
    # (the compiled path lays out its state when it plans: step 0, buffers of zeros)
    assert all(st.get("step", 0) == 0 and all(not v.any() for k, v in st.items() if k != "step")
               for st in opt.state.values())


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_complex_parameters_beside_real_ones_under_state_dtype_get_an_error_that_says_what_to_do(impl):
    """state_dtype is one setting for the whole optimizer: "use state_dtype=None for it" left a
    model with real and complex parameters without a way out. Nothing is stepped."""
    real = torch.nn.Parameter(torch.ones(3))
    z = torch.nn.Parameter(torch.ones(2, dtype=torch.complex64))
    opt = O.Adam([real, z], lr=0.1, impl=impl, state_dtype=BF16)
    real.grad, z.grad = torch.ones(3), torch.ones(2, dtype=torch.complex64)
    with pytest.raises(ValueError, match=r"state_dtype=torch.bfloat16 needs real floating-point parameters, got a "
                                         r"torch.complex64 parameter of shape \(2,\); .*give this one an "
                                         r"optimizer of its own with state_dtype=None"):
        opt.step()
    assert torch.equal(real, torch.ones(3)) and torch.equal(z, torch.ones(2, dtype=torch.complex64))
    rest = O.Adam([z], lr=0.1, impl=impl)  # the way out the message gives
    opt = O.Adam([real], lr=0.1, impl=impl, state_dtype=BF16)
    opt.step()
    rest.step()
    assert opt.state[real]["V"].dtype == BF16 and rest.state[z]["V"].dtype == torch.complex64
    assert torch.allclose(z, torch.full((2,), 0.9 + 0j, dtype=torch.complex64))  # (Adam: lr * sign, per part)
