"""The compiled path calls Inductor's graph directly after the first call through Dynamo."""

import torch

import descend.optim as O
from descend.optim import fused, inductor


def _params(seed, shapes=((300, 200), (64,), (40_000,))):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]


def _grads(ps, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


def _run(ps, impl, steps=6):
    opt = O.Adam(ps, lr=0.01, impl=impl, weight_decay=0.01)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 0.01 / (step + 1)  # a new lr every step: no recompile
        _grads(ps, step)
        opt.step()
    return opt


def test_direct_calls_equal_calls_through_dynamo_bit_for_bit(monkeypatch):
    monkeypatch.setattr(fused, "_SOURCES", {})  # (compiled afresh: an earlier test may have compiled this rule)
    through_dynamo = []
    real = fused.compiled_call
    monkeypatch.setattr(fused, "compiled_call", lambda fn, *a: (through_dynamo.append(1), real(fn, *a))[1])
    a = _params(0)
    _run(a, "fused", steps=1)
    first = len(through_dynamo)
    assert first >= 1
    a = _params(0)
    fast = _run(a, "fused")
    assert len(through_dynamo) == first  # no step entered Dynamo again: every call was direct
    # on the CPU the direct call goes to the generated module itself, past AOTAutograd's wrappers
    hits = [h for v in fused._SOURCES.values() for h in v[4].values() if h is not None]
    assert hits and all(h.inner is not None for h in hits)

    monkeypatch.setattr(fused, "call", lambda fn, names, direct, sig, args: real(fn, *args))
    b = _params(0)
    slow = _run(b, "fused")
    c = _params(0)
    _run(c, "eager")
    for x, y, z in zip(a, b, c):
        assert torch.equal(x, y)
        assert torch.equal(fast.state[x]["S"], slow.state[y]["S"])
        torch.testing.assert_close(x, z, rtol=1e-13, atol=1e-13)


def test_sizes_zero_and_one_and_new_dtypes_get_their_own_graph():
    for dtype in (torch.float32, torch.float64):
        for n in (1, 2, 50_000):
            p = torch.full((n,), 1.0, dtype=dtype, requires_grad=True)
            q = p.detach().clone().requires_grad_()
            fast, ref = O.RMSprop([p], lr=0.1, impl="fused"), O.RMSprop([q], lr=0.1, impl="eager")
            for step in range(3):
                p.grad = torch.full_like(p, 0.5 + step)
                q.grad = p.grad.clone()
                fast.step()
                ref.step()
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6, msg=f"{dtype} {n}")


def test_a_failed_inductor_assertion_falls_back_to_dynamo():
    seen = []

    class Refuses:
        def __call__(self, args):
            raise AssertionError("expected size 3==3, stride 2==1 at dim=0")

    def fn(*args):
        seen.append(len(args))

    direct = {("sig",): Refuses()}
    fused.call(fn, ["x"], direct, ("sig",), [torch.zeros(3)])
    assert seen == [1] and direct[("sig",)] is None
    fused.call(fn, ["x"], direct, ("sig",), [torch.zeros(3)])  # from then on, always Dynamo
    assert seen == [1, 1]


def test_kernels_are_compiled_with_run_time_threads(monkeypatch):
    """A kernel first compiled on a small tensor must not stay serial for every later size
    (Inductor decides from the first call's size and caches the kernel for all sizes)."""
    import torch._inductor.compile_fx as cfx
    from torch._inductor import config

    seen = []
    real = cfx.compile_fx
    monkeypatch.setattr(cfx, "compile_fx", lambda gm, ex: (seen.append(config.cpp.dynamic_threads), real(gm, ex))[1])
    fused._backend(torch.fx.symbolic_trace(lambda x: x * 2), [torch.zeros(3)])
    assert seen == [True]
    assert config.cpp.dynamic_threads is False  # only descend's compiles are affected


def test_the_generated_module_is_reached_only_when_found_exactly_once():
    assert inductor.generated_call(lambda *a: None) is None  # nothing compiled inside
    assert inductor.generated_call(object()) is None
    for opt_class in (O.Adam, O.RMSprop):
        p = torch.randn(40_000, dtype=torch.float64, requires_grad=True)
        p.grad = torch.ones_like(p)
        opt_class([p], lr=0.1, impl="fused").step()
    hits = [h for v in fused._SOURCES.values() for h in v[4].values() if h is not None and h.inner is not None]
    graphs = {id(h.inner.__self__) for h in hits}
    assert len(graphs) >= 2
    one = hits[0]
    assert inductor.generated_call(one.compiled) == one.inner
    assert inductor.generated_call([one.compiled, one.compiled]) == one.inner  # one graph reached twice
    other = next(h for h in hits if id(h.inner.__self__) != id(one.inner.__self__))
    assert inductor.generated_call([one.compiled, other.compiled]) is None  # two graphs: keep the outer call
