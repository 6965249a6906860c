"""The step engine: eager = foreach = fused, storage stays the user's, low precision, complex.

The fused path compiles once per configuration (then Inductor's disk cache
serves it), so the cases come from the chosen ``ENGINE`` list of cases.py.
"""

import copy
import warnings

import pytest
import torch

import descend.optim as O
from descend.optim import checks, engine, fused

from .cases import BY_NAME, ENGINE, ids


def make(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    # one large tensor (updated in place by its own kernel call) and small ones (packed)
    shapes = [(300, 120), (11,), (2, 3, 4), (40, 7)]
    return [torch.randn(*s, generator=g).to(dtype) for s in shapes]


def run(case, impl, steps=60, lr_schedule=False, dtype=torch.float32, start=None, **extra):
    ps = [p.clone().requires_grad_() for p in (start or make(dtype=dtype))]
    opt = case.make(ps, impl=impl, **extra)
    gen = torch.Generator().manual_seed(7)
    base = opt.param_groups[0]["lr"]
    for i in range(steps):
        opt.zero_grad()
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen).to(dtype)
        if lr_schedule:
            opt.param_groups[0]["lr"] = base * (1 + 0.01 * i)
        opt.step()
    return ps, opt


def rel(a, b):
    return ((a.double() - b.double()).abs().max() / a.double().abs().max()).item()


@pytest.mark.parametrize("case", ENGINE, ids=ids(ENGINE))
def test_foreach_and_fused_equal_eager(case):
    eager, _ = run(case, "eager")
    for impl in ("foreach", "fused"):
        fast, opt = run(case, impl)
        assert [p.kind for p in opt._plans] == [impl]  # it really ran that path
        for a, b in zip(eager, fast):
            assert rel(a, b) <= 1e-6, impl


def test_fused_part_splits_big_and_packed_and_keeps_storage():
    ps, opt = run(BY_NAME["adam"], "fused", steps=2)
    part = opt._plans[0]
    assert part.big == [0] and part.small == [1, 2, 3]
    ptrs = [p.data_ptr() for p in ps]
    grads = [p.grad for p in ps]
    opt.step()
    assert [p.data_ptr() for p in ps] == ptrs  # never re-homed
    assert all(p.grad is g for p, g in zip(ps, grads))  # gradients untouched
    storages = {p.untyped_storage().data_ptr() for p in ps}
    assert len(storages) == len(ps)


def test_lr_changing_every_step_does_not_recompile():
    case = BY_NAME["adam"]
    run(case, "fused", steps=3)  # compiled (or loaded from cache) here
    before = fused.compile_count()
    run(case, "fused", steps=50, lr_schedule=True)
    assert fused.compile_count() == before


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_state_dicts_move_between_paths(impl):
    case = BY_NAME["adam_amsgrad_wd"]
    full, _ = run(case, "eager", steps=40)
    half, opt = run(case, impl, steps=20)
    sd = opt.state_dict()
    for other in ("eager", "foreach", "fused"):
        ps = [p.detach().clone().requires_grad_() for p in half]
        opt2 = case.make(ps, impl=other)
        opt2.load_state_dict(copy.deepcopy(sd))  # torch shares loaded state tensors
        gen = torch.Generator().manual_seed(7)
        for i in range(40):
            grads = [torch.randn(p.shape, generator=gen) for p in ps]
            if i < 20:
                continue
            for p, g in zip(ps, grads):
                p.grad = g
            opt2.step()
        for a, c in zip(full, ps):
            assert rel(a, c) <= 1e-6, (impl, other)


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_missing_grad_is_not_stepped(impl):
    case = BY_NAME["sgd_momentum_maximize"]
    ps = [p.clone().requires_grad_() for p in make()]
    ref = [p.clone().requires_grad_() for p in make()]
    opt, opt_ref = case.make(ps, impl=impl), case.make(ref, impl="eager")
    for step in range(3):
        for qs in (ps, ref):
            for j, p in enumerate(qs):
                p.grad = None if (step == 1 and j == 1) else torch.full_like(p, 1.0 + step)
        opt.step()
        opt_ref.step()
    assert opt.state[ps[0]]["step"] == 3 and opt.state[ps[1]]["step"] == 2
    for a, b in zip(ref, ps):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_nonfinite_skip_and_raise_on_every_path(impl):
    ps = [p.clone().requires_grad_() for p in make()]
    opt = O.Adam(ps, lr=0.01, impl=impl, nonfinite="skip")
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    before = [p.detach().clone() for p in ps]
    v_before = opt.state[ps[0]]["V"].clone()
    ps[2].grad[0, 1, 1] = float("nan")
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
    assert torch.equal(opt.state[ps[0]]["V"], v_before)
    assert opt.state[ps[0]]["step"] == 1
    opt.nonfinite = "raise"
    with pytest.raises(O.NonFiniteGradientError, match=r"NaN gradient in parameter 2 \(shape \(2, 3, 4\)\) at step 2"):
        opt.step()


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_device_side_skip_flag_keeps_old_values(impl):
    """The accelerator form of "skip" (no host sync) folds the flag into the update."""
    case = BY_NAME["adam_amsgrad_wd"]
    ps, opt = run(case, impl, steps=3)
    before = [p.detach().clone() for p in ps]
    states = {k: opt.state[ps[1]][k].clone() for k in ("V", "S", "S_max")}
    with torch.no_grad():
        for w in engine.collect(opt, opt._plans):
            engine.apply(opt, w, torch.tensor(False))
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
    assert all(torch.equal(opt.state[ps[1]][k], v) for k, v in states.items())
    with torch.no_grad():
        for w in engine.collect(opt, opt._plans):
            engine.apply(opt, w, torch.tensor(True))
    assert not torch.equal(ps[1], before[1])


def test_auto_takes_foreach_for_small_problems_and_fused_for_large():
    x = torch.zeros(2, requires_grad=True)
    opt = O.Adam([x])
    x.grad = torch.ones(2)
    opt.step()
    assert opt._plans[0].kind == "foreach"  # a 2-D toy never waits for a compiler
    many = [torch.zeros(10, requires_grad=True) for _ in range(engine.AUTO_MIN_TENSORS)]
    assert engine.build(O.Adam(many))[0].kind == "fused"
    assert engine.build(O.SGD(many))[0].kind == "foreach"  # one _foreach_add_: nothing to fuse
    assert engine.build(O.SGD(many, weight_decay=0.01))[0].kind == "foreach"
    assert engine.build(O.Momentum(many, beta=0.9))[0].kind == "fused"  # three passes become one
    lrs = torch.tensor([[0.1], [0.2]])
    X = torch.zeros(2, 2, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="lr is a tensor of shape"):
        opt = O.Adam([X], lr=lrs, impl="fused")
        X.grad = torch.ones(2, 2)
        opt.step()
    assert opt._plans[0].kind == "eager"
    with pytest.raises(ValueError, match="impl must be one of 'auto', 'eager', 'foreach', 'fused'"):
        O.Adam([x], impl="compiled")


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_sparse_gradient_gets_the_clear_error_on_every_path(impl):
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = O.Adam(emb.parameters(), impl=impl)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(ValueError, match="sparse gradient; descend.optim.Adam supports dense gradients only"):
        opt.step()


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_model_to_dtype_after_steps_state_follows(impl):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    ref = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    ref.load_state_dict(model.state_dict())
    opt, opt_ref = O.Adam(model.parameters(), lr=0.01, impl=impl), O.Adam(ref.parameters(), lr=0.01, impl="eager")
    X, y = torch.randn(16, 4), torch.randn(16, 1)

    def train(m, o, steps):
        dt = next(m.parameters()).dtype
        for _ in range(steps):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(X.to(dt)), y.to(dt)).backward()
            o.step()

    train(model, opt, 3)
    train(ref, opt_ref, 3)
    model.double()
    ref.double()
    for st in opt_ref.state.values():  # the reference: state cast by hand
        for k in ("V", "S"):
            st[k] = st[k].double()
    train(model, opt, 3)
    train(ref, opt_ref, 3)
    assert all(st["V"].dtype == torch.float64 for st in opt.state.values())
    for a, b in zip(model.parameters(), ref.parameters()):
        assert (a - b).abs().max().item() <= 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_computed_in_float32_on_every_path(dtype):
    """fp16/bf16 parameters: the arithmetic runs in float32 (torch's opmath) on every path."""
    p = {impl: torch.ones(3, dtype=dtype, requires_grad=True) for impl in ("eager", "foreach", "fused")}
    tp = torch.ones(3, requires_grad=True)  # torch.optim in float32: the reference
    opts = {impl: O.Adam([x], lr=0.01, impl=impl) for impl, x in p.items()}
    topt = torch.optim.Adam([tp], lr=0.01, foreach=False)
    for step in range(5):
        g = torch.tensor([300.0, -0.5, 2.0]).to(dtype) * (step + 1)  # 300^2 overflows fp16
        tp.grad = g.float()
        topt.step()
        for impl, x in p.items():
            x.grad = g.clone()
            opts[impl].step()
    for impl, x in p.items():
        assert torch.isfinite(opts[impl].state[x]["S"]).all(), impl
        assert torch.equal(x, p["eager"]), impl  # eager and fast paths agree
        grain = 4e-3 if dtype == torch.float16 else 2e-2  # bf16 has 8 bits of mantissa
        assert (x.float() - tp).abs().max().item() <= grain, impl  # and torch in fp32
    assert p["eager"][0].item() < 0.96  # the parameter moves (it froze when g*g overflowed)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop_torch_form", "adagrad_torch_form",
                                  "sgd_as_torch", "adam_amsgrad_wd"])
@pytest.mark.parametrize("impl", ["eager", "foreach"])
def test_complex_parameters_follow_torch(name, impl):
    case = BY_NAME[name]
    t_cls, t_kw = case.torch
    gen = torch.Generator().manual_seed(3)
    start = torch.randn(5, 2, dtype=torch.complex128, generator=gen)
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    ta, ob = t_cls([a], **t_kw), case.make([b], impl=impl)
    for _ in range(100):
        g = torch.randn(5, 2, dtype=torch.complex128, generator=gen)
        a.grad, b.grad = g.clone(), g.clone()
        ta.step()
        ob.step()
    assert (a - b).abs().max().item() <= 1e-12


def test_complex_first_step_is_torchs():
    x = torch.zeros(1, dtype=torch.complex64, requires_grad=True)
    opt = O.Adam([x], lr=0.01)
    x.grad = torch.tensor([1 + 1j])
    opt.step()
    assert torch.allclose(x, torch.tensor([-0.01 - 0.01j]))


def test_no_warning_on_the_default_path():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(BY_NAME["adam"], "auto", steps=3)


def test_fused_compiles_one_graph_for_every_rank_and_bumps_versions():
    """Large parameters of rank 1, 2 and 4 and the packed small ones share one compiled graph,
    and autograd still sees each parameter change (its version counter moves)."""
    shapes = [(40_000,), (300, 200), (64, 32, 3, 3), (7,), (3, 5)]
    ps = [torch.randn(*s).requires_grad_() for s in shapes]
    opt = O.Adagrad(ps, lr=0.05, impl="fused", eps=1e-9)  # a configuration no other test compiles
    for p in ps:
        p.grad = torch.randn_like(p)
    before = fused.compile_count()
    versions = [p._version for p in ps]
    opt.step()
    opt.step()
    assert fused.compile_count() - before <= 1
    assert all(p._version > v for p, v in zip(ps, versions))
    # the same two steps on the eager path from the same start agree
    start = [torch.randn(*s) for s in shapes]
    a = [t.clone().requires_grad_() for t in start]
    b = [t.clone().requires_grad_() for t in start]
    oa, ob = O.Adagrad(a, lr=0.05, impl="fused", eps=1e-9), O.Adagrad(b, lr=0.05, impl="eager", eps=1e-9)
    for _ in range(2):
        for x, y in zip(a, b):
            x.grad = torch.ones_like(x)
            y.grad = torch.ones_like(y)
        oa.step()
        ob.step()
    assert all(torch.allclose(x, y, rtol=1e-6, atol=1e-7) for x, y in zip(a, b))


def test_fused_in_place_write_is_seen_by_autograd_like_torch():
    p = torch.randn(40_000, requires_grad=True)
    q = torch.randn(10, requires_grad=True)
    opt = O.Adam([p, q], lr=1e-2, impl="fused")
    loss = (p * p).sum() + (q * q).sum()  # saves p and q for the backward pass
    p.grad, q.grad = torch.ones_like(p), torch.ones_like(q)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_fused_parts_of_parameters_check_the_gathered_copy_and_still_catch_nan():
    ps = [torch.nn.Parameter(torch.randn(40_000)), torch.nn.Parameter(torch.randn(10)),
          torch.nn.Parameter(torch.randn(3, 4))]
    opt = O.Adam(ps, lr=1e-2, impl="fused")
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    with torch.no_grad():
        work = engine.collect(opt, opt._plans)
        checks.grad_checks(work)
    assert work[0].gathered  # nn.Parameter, not only plain tensors
    before = [p.detach().clone() for p in ps]
    ps[2].grad[1, 2] = float("inf")
    with pytest.raises(O.NonFiniteGradientError, match=r"infinite gradient in parameter 2"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))


def test_replacing_a_packed_state_tensor_is_seen_by_the_next_step():
    def run(impl):
        torch.manual_seed(0)
        ps = [torch.randn(n, dtype=torch.float64, requires_grad=True) for n in (5, 7, 40_000)]
        opt = O.Adam(ps, lr=0.1, impl=impl)
        for step in range(3):
            for p in ps:
                p.grad = torch.full_like(p, 1.0 + step)
            opt.step()
            if step == 0:  # the user's own tensor replaces the state of a small (packed) parameter
                opt.state[ps[0]]["V"] = torch.full((5,), 7.0, dtype=torch.float64)
        return ps, opt

    (a, fast), (b, ref) = run("fused"), run("eager")
    assert fast._plans[0].small  # the small parameters really were packed
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.state[a[0]]["V"], ref.state[b[0]]["V"], rtol=1e-12, atol=1e-12)


def test_own_kernel_calls_start_at_32k_elements_on_the_cpu_and_16m_on_an_accelerator():
    assert engine.own_call_size(torch.device("cpu")) == engine.BIG == 32_768
    assert engine.own_call_size(torch.device("cuda", 0)) == engine.BIG_ACCELERATOR == 1 << 24
    ps = [torch.zeros(40_000, requires_grad=True), torch.zeros(100, requires_grad=True)]
    opt = O.Adam(ps, impl="fused")
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    (part,) = opt._plans
    assert part.kind == "fused" and part.big == [0] and part.small == [1]
