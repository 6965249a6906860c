"""The fused CPU step as one native call (``engine.stage``, ``native.launch``).

Once a part's kernels are called directly, its step runs as one call of descend's library: the
packed values gathered, every compiled kernel, the packed values copied back. These tests compare
it bit for bit with the same steps taken kernel by kernel from Python, and check the cases where
it must step aside (a gradient it cannot read as it is, state the user replaced, a skipped step)
and the generated modules it refuses to call into.
"""

import importlib.util
import platform

import pytest
import torch

import descend.optim as O
from descend.optim import fused, inductor, native
from descend.optim import launch as staging

pytestmark = pytest.mark.skipif(
    native.library() is None or platform.machine().lower() not in native.LAUNCH_MACHINES,
    reason=f"no native launch here: {native.error or platform.machine()}")

SHAPES = ((300, 200), (64,), (40_000,), (7, 3))  # two with calls of their own, two packed
MAKERS = {
    "Momentum": lambda ps, **k: O.Momentum(ps, lr=0.01, beta=0.9, weight_decay=0.01, **k),
    "Nesterov": lambda ps, **k: O.Nesterov(ps, lr=0.01, beta=0.9, **k),
    "Adam": lambda ps, **k: O.Adam(ps, lr=0.01, weight_decay=0.01, **k),
    "AdamW-amsgrad": lambda ps, **k: O.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True, **k),
    "RMSprop": lambda ps, **k: O.RMSprop(ps, lr=0.01, **k),
    "Adagrad": lambda ps, **k: O.Adagrad(ps, lr=0.1, **k),
    "Adam-bf16-stochastic": lambda ps, **k: O.Adam(ps, lr=0.01, state_dtype=torch.bfloat16, **k),
    "Adam-bf16-nearest": lambda ps, **k: O.Adam(ps, lr=0.01, state_dtype=torch.bfloat16,
                                                state_rounding="nearest", **k),
}


@pytest.fixture(autouse=True)
def _own_graphs(monkeypatch):
    """Compiled graphs of this test's own (loaded from Inductor's cache): another test may have
    left a graph that is not called directly (a failed assertion, a patched Inductor)."""
    monkeypatch.setattr(fused, "_SOURCES", {})


def _params(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen).to(dtype).requires_grad_() for s in SHAPES]


def _grads(ps, step):
    gen = torch.Generator().manual_seed(100 + step)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)


def _run(make, dtype, monkeypatch, launch, steps=5, between=None, **kw):
    """``steps`` steps with a new lr each; returns (params, optimizer, the steps that launched)."""
    launches = []
    now = [0]
    with monkeypatch.context() as m:
        real = native.launch
        m.setattr(native, "launch", lambda prog: (launches.append(now[0]), real(prog))[1])
        if not launch:
            m.setattr(staging, "stage", lambda opt, work: [None] * len(work))
        ps = _params(dtype)
        opt = make(ps, impl="fused", **kw)
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = 0.01 / (step + 1)
            _grads(ps, step)
            if between is not None:
                between(opt, ps, step)
            now[0] = step
            opt.step()
    return ps, opt, launches


def _same(a, b):
    (pa, oa, _), (pb, ob, _) = a, b
    for x, y in zip(pa, pb):
        assert torch.equal(x, y)
        sa, sb = oa.state[x], ob.state[y]
        assert sa.keys() == sb.keys()
        for k in sa:
            v, w = sa[k], sb[k]
            assert torch.equal(v, w) if isinstance(v, torch.Tensor) else v == w, k


@pytest.mark.parametrize("name, dtype", [
    (name, dtype) for name in MAKERS for dtype in (torch.float32, torch.float64, torch.bfloat16)
    if "bf16" not in name or dtype == torch.float32])  # (bf16 state is for float32 parameters)
def test_one_native_call_equals_the_kernels_called_from_python(name, dtype, monkeypatch):
    fast = _run(MAKERS[name], dtype, monkeypatch, launch=True)
    slow = _run(MAKERS[name], dtype, monkeypatch, launch=False)
    assert fast[2][-4:] == [1, 2, 3, 4]  # (the first step loads the kernel if no test did)
    assert slow[2] == []
    _same(fast, slow)


@pytest.mark.parametrize("nonfinite", ["raise", "ignore"])
def test_steps_it_cannot_take_go_kernel_by_kernel_with_the_same_result(nonfinite, monkeypatch):
    def between(opt, ps, step):
        if step == 2:  # a gradient that is not contiguous: read by torch, not by address
            ps[0].grad = ps[0].grad.t().contiguous().t()
        if step == 3:  # a packed one too
            ps[3].grad = ps[3].grad.t().contiguous().t()
        if step == 4:  # state the user replaced: the launch must write the new tensors
            for p in (ps[0], ps[1]):
                opt.state[p]["V"] = opt.state[p]["V"].clone()

    make = MAKERS["Adam"]
    fast = _run(make, torch.float32, monkeypatch, launch=True, steps=7, between=between, nonfinite=nonfinite)
    slow = _run(make, torch.float32, monkeypatch, launch=False, steps=7, between=between, nonfinite=nonfinite)
    _same(fast, slow)
    # not step 2, whose large gradient was strided (a packed one is gathered by torch: step 3 launched)
    assert fast[2][-5:] == [1, 3, 4, 5, 6]


def test_a_skipped_step_changes_nothing_with_the_launch_staged(monkeypatch):
    def between(opt, ps, step):
        if step == 3:
            before.extend([p.detach().clone() for p in ps] + [opt.state[ps[0]]["step"]])
            ps[3].grad[1, 1] = float("nan")  # a packed gradient
        if step == 4:
            after.extend([p.detach().clone() for p in ps] + [opt.state[ps[0]]["step"]])

    before, after = [], []
    _, _, launches = _run(MAKERS["Adam"], torch.float32, monkeypatch, launch=True, steps=6, between=between,
                          nonfinite="skip")
    assert launches[-4:] == [1, 2, 4, 5]
    for x, y in zip(before, after):
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y


GENERATED = """
cpp_fused_0 = async_compile.cpp_pybinding(['const float*', 'float*', {size}], r'''
extern "C" void kernel(const float* in_ptr0, float* out_ptr0, const int64_t ks0) {{}}
''')


class Runner:
    def call(self, args):
        arg0_1, arg1_1, arg2_1 = args
        args.clear()
        s0 = arg0_1
        assert_size_stride(arg1_1, (s0, ), (1, ), 'input')
{body}
        cpp_fused_0({call})
        del arg1_1
        return ()
"""


@pytest.mark.parametrize("size, body, call", [
    ("'const int64_t'", "        buf0 = empty_strided_cpu((s0, ), (1, ), torch.float32)", "arg1_1, arg2_1, s0"),
    ("'const int64_t'", "        cpp_fused_0(arg1_1, arg2_1, s0)", "arg1_1, arg2_1, s0"),
    ("'const int64_t'", "", "arg1_1, arg2_1, 2*s0"),
    ("'const int64_t'", "", "arg1_1, s0, s0"),
    ("'const double'", "", "arg1_1, arg2_1, s0"),
    ("'const int64_t'", "", "arg1_1, arg2_1"),
])
def test_a_generated_module_that_does_more_than_one_plain_kernel_call_is_not_launched(
        size, body, call, tmp_path, monkeypatch):
    # (every library lookup answers, so that only the module's shape can refuse)
    monkeypatch.setattr(inductor, "prefetching", lambda argtypes, source: "kernel.so")
    monkeypatch.setattr(native, "kernel_address", lambda path: 1234)
    assert inductor.c_kernel(_generated(tmp_path, "'const int64_t'", "", "arg1_1, arg2_1, s0")) == \
        (1234, [(1, "ptr"), (2, "ptr"), (0, "int")], "kernel.so")  # the plain shape is found
    assert inductor.c_kernel(_generated(tmp_path, size, body, call)) is None


def _generated(tmp_path, size, body, call):
    path = tmp_path / "generated.py"
    path.write_text(GENERATED.format(size=size, body=body, call=call))
    spec = importlib.util.spec_from_file_location(f"generated_{len(call)}_{len(body)}", path)
    module = importlib.util.module_from_spec(spec)
    module.async_compile = type("A", (), {"cpp_pybinding": staticmethod(lambda types, src: None)})
    spec.loader.exec_module(module)
    return module.Runner().call


def test_the_kernels_of_real_steps_are_found_with_their_arguments():
    ps = _params(torch.float32)
    opt = MAKERS["Adam"](ps, impl="fused")
    for step in range(2):
        _grads(ps, step)
        opt.step()
    found = [h.native() for v in fused._SOURCES.values() for sig, h in v[4].items() if h is not None]
    assert found and all(f is not None for f in found)
    for fn, spec in found:  # pointers, and the length (graphs of 1 element have it built in)
        assert fn and any(attr is None for _, attr in spec)
    assert any(attr == "size" for _, spec in found for _, attr in spec)


def test_a_launched_step_is_seen_by_autograd(monkeypatch):
    ps, opt, launches = _run(MAKERS["Adam"], torch.float32, monkeypatch, launch=True, steps=2)
    assert launches[-1:] == [1]
    loss = sum((p * p).sum() for p in ps)  # saves every parameter for the backward pass
    versions = [p._version for p in ps]
    _grads(ps, 2)
    opt.step()  # launched
    assert all(p._version > v for p, v in zip(ps, versions))  # large and packed alike
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
