"""descend's two C++ helpers for the CPU step: the non-finite scan and the byte-copy packer.

Both are checked against torch (``torch.isfinite``, ``_foreach_copy_``) and the engine
with them against the engine without them (the library made unavailable).
"""

import pytest
import torch

import descend.optim as O
from descend.optim import checks, native

pytestmark = pytest.mark.skipif(native.library() is None, reason=f"no native library: {native.error}")

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# sizes around the 8-stream tail, a thread's share and the split into threads (1 << 17)
SIZES = [0, 1, 7, 8, 9, 63, 1000, (1 << 17) - 1, (1 << 17) + 3, 300_007]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_finite_agrees_with_torch_at_every_place_and_size(dtype):
    gen = torch.Generator().manual_seed(0)
    info = torch.finfo(dtype)
    for n in SIZES:
        t = torch.randn(n, generator=gen).to(dtype)
        if n:  # the extremes are finite
            t[0], t[-1] = info.max, -info.tiny / 4  # (a subnormal)
        assert native.finite([t]) is True
        places = {0, n // 2, n - 1, max(n - 3, 0), n // 8 * 8 - 1} if n else set()
        for i in sorted(j for j in places if 0 <= j < n):
            for bad in (float("nan"), float("inf"), float("-inf")):
                u = t.clone()
                u[i] = bad
                assert native.finite([u]) is False, (n, i, bad)
                assert bool(torch.isfinite(u.float()).all()) is False


def test_finite_over_many_tensors_and_threads():
    gen = torch.Generator().manual_seed(1)
    ts = [torch.randn(int(s), generator=gen) for s in torch.randint(0, 3000, (500,), generator=gen)]
    ts.append(torch.randn(400_000, generator=gen))  # split across threads
    assert native.finite(ts)
    for k in (0, 17, 250, 499, 500):
        if ts[k].numel():
            bad = [t.clone() for t in ts]
            bad[k].view(-1)[-1] = float("nan")
            assert not native.finite(bad), k
    # a lazily negated gradient is scanned as it is: finiteness does not see the sign
    neg = torch._neg_view(ts[-1])
    assert native.dense([neg], neg.dtype) and not native.plain([neg], neg.dtype) and native.finite([neg])
    bad = ts[-1].clone()
    bad[5] = float("-inf")
    assert not native.finite([torch._neg_view(bad)])
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert native.finite(ts)
    finally:
        torch.set_num_threads(with_threads)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_finite_finds_a_nan_at_every_share_boundary(threads):
    """Gradients of at least 32768 elements are scanned in per-thread shares of each one (as torch
    splits their update) and smaller ones in shares of their elements together: a NaN on either
    side of every boundary, in large and small gradients, is found with any number of threads."""
    gen = torch.Generator().manual_seed(2)
    sizes = [5, 32767, 32768, 7, 32769, 100_001, 3, 65_536 * 3 + 1, 40_000]
    ts = [torch.randn(n, generator=gen) for n in sizes]
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        assert native.finite(ts)
        for k, n in enumerate(sizes):
            chunk = -(-n // threads)
            places = {0, n - 1} | {c + d for c in range(chunk, n, chunk) for d in (-1, 0)}
            for i in sorted(places):
                bad = list(ts)
                bad[k] = ts[k].clone()
                bad[k][i] = float("nan")
                assert not native.finite(bad), (k, i)
    finally:
        torch.set_num_threads(with_threads)


def test_packer_copies_like_foreach_copy_and_bumps_versions():
    gen = torch.Generator().manual_seed(2)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in [(3, 5), (7,), (2, 2, 2), (1,)]]
    packer = native.Packer.make(params)
    assert packer is not None
    n = sum(p.numel() for p in params)
    flat = torch.empty(n)
    packer.gather_params(flat)
    assert torch.equal(flat, torch.cat([p.detach().reshape(-1) for p in params]))
    grads = [torch.randn(p.shape, generator=gen) for p in params]
    assert packer.gather(grads, flat)
    assert torch.equal(flat, torch.cat([g.reshape(-1) for g in grads]))
    versions = [p._version for p in params]
    new = torch.arange(n, dtype=torch.float32)
    with torch.no_grad():
        packer.scatter_params(new)
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in params]), new)
    assert all(p._version > v for p, v in zip(params, versions))
    # bytes that are not the values: a transposed gradient, a lazily negated one
    assert not packer.gather([grads[0].t().contiguous().t(), *grads[1:]], flat)
    assert not packer.gather([torch._neg_view(grads[0]), *grads[1:]], flat)
    assert native.Packer.make([torch.randn(4, 3).t()]) is None


def many_small(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g) for s in [(40_000,)] + [(5, 7)] * 30 + [(13,)] * 10]


def run(ps, impl, steps, grads_of):
    opt = O.Adam(ps, lr=1e-2, impl=impl)
    for i in range(steps):
        for j, p in enumerate(ps):
            p.grad = grads_of(i, j, p)
        opt.step()
    return opt


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_engine_with_and_without_the_library_is_bit_identical(impl, monkeypatch):
    """Including gradients the packer must not byte-copy (transposed, negated views)."""
    def grads_of(i, j, p):
        g = torch.randn(p.shape, generator=torch.Generator().manual_seed(100 * i + j))
        if j == 3:  # not contiguous
            g = g.t().contiguous().t()
        if j == 4 and i % 2:
            g = torch._neg_view(-g)
        return g

    ours = [p.clone().requires_grad_() for p in many_small()]
    opt = run(ours, impl, 4, grads_of)
    assert opt._plans[0].scan and (impl != "fused" or opt._plans[0].packer is not None)
    monkeypatch.setattr(native, "_loaded", [None])
    theirs = [p.clone().requires_grad_() for p in many_small()]
    ref = run(theirs, impl, 4, grads_of)
    assert not ref._plans[0].scan and ref._plans[0].packer is None
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    eager = [p.clone().requires_grad_() for p in many_small()]
    run(eager, "eager", 4, grads_of)
    assert all(torch.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(ours, eager))


@pytest.mark.parametrize("impl", ["foreach", "fused"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_a_nan_in_one_small_gradient_changes_nothing(impl, dtype):
    ps = [p.to(dtype).requires_grad_() for p in many_small()]
    opt = run(ps, impl, 1, lambda i, j, p: torch.ones_like(p))
    before = [p.detach().clone() for p in ps]
    states = [{k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v)} for p in ps]
    for p in ps:
        p.grad = torch.ones_like(p)
    ps[25].grad[3, 4] = float("nan")
    with pytest.raises(O.NonFiniteGradientError, match=r"NaN gradient in parameter 25 \(shape \(5, 7\)\)"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
    for p, st in zip(ps, states):
        assert all(torch.equal(opt.state[p][k], v) for k, v in st.items())
    opt.nonfinite = "skip"
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
    with torch.no_grad():
        assert checks.all_finite([]) is True


def test_a_missing_compiler_leaves_the_torch_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    assert native._load() is None
    assert "no C++ compiler" in native.error
    monkeypatch.setattr(native, "_loaded", [None])
    ps = [p.clone().requires_grad_() for p in many_small()]
    opt = run(ps, "fused", 2, lambda i, j, p: torch.full_like(p, 0.5))
    assert not opt._plans[0].scan and opt._plans[0].packer is None
    assert not list(tmp_path.iterdir())


def test_the_library_is_built_once_into_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    fns = native._load()
    assert fns is not None
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("native-") and built[0].endswith(".so")
    assert native._load() is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == built  # no second build, no leftovers


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_a_parameter_relaid_at_the_same_address_is_planned_again(impl):
    """``p.data = p.data.t()`` keeps the address but not the layout that byte copies and flat
    aliases were made for: the next step must see the new layout (as the eager path does)."""
    def params():
        g = torch.Generator().manual_seed(3)
        return [torch.randn(*s, generator=g) for s in [(200, 200)] + [(6, 6)] * 20]

    def run(impl):
        ps = [p.clone().requires_grad_() for p in params()]
        opt = O.Adam(ps, lr=1e-2, impl=impl)
        for i in range(4):
            if i == 2:
                for j in (0, 5):
                    ptr = ps[j].data_ptr()
                    ps[j].data = ps[j].data.t()  # same address and shape, now transposed
                    assert ps[j].data_ptr() == ptr and not ps[j].is_contiguous()
            for j, p in enumerate(ps):
                p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(10 * i + j))
            opt.step()
        return ps

    for a, b in zip(run(impl), run("eager")):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_parameter_shrunk_at_the_same_address_is_not_written_past_its_end():
    ps = [torch.nn.Parameter(torch.randn(50)) for _ in range(20)]
    opt = O.Adam(ps, lr=1e-2, impl="fused")
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    storage = ps[4].data
    ps[4].data = ps[4].data[:10]  # the same address, fewer elements
    tail = storage[10:].clone()
    for p in ps:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match=r"has shape \(50,\), the parameter now has shape \(10,\)"):
        opt.step()  # its state no longer fits (torch.optim.Adam fails inside the update); nothing is written
    assert torch.equal(storage[10:], tail)


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_a_gradient_resized_in_place_is_an_error_not_a_read_past_its_end(impl):
    ps = [torch.nn.Parameter(torch.randn(50)) for _ in range(20)]
    opt = O.Adam(ps, lr=1e-2, impl=impl)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    before = [p.detach().clone() for p in ps]
    ps[3].grad.resize_(7)  # torch allows this; the bytes past 7 elements are not the gradient's
    with pytest.raises(RuntimeError):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
    ps[3].grad = torch.ones_like(ps[3])
    ps[3].grad.data = torch.ones(50, dtype=torch.float16)  # half the bytes, through .data
    ps[5].grad.data = torch.full((50,), float("nan"), dtype=torch.float64)  # (checked by torch)
    with pytest.raises((RuntimeError, O.NonFiniteGradientError)):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))


def test_flags_a_compiler_refuses_are_dropped_in_turn_and_openmp_is_optional(monkeypatch, tmp_path):
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "FLAG_SETS", (["-O3", "--no-such-flag"], ["-O3"]))  # the last: no OpenMP
    fns = native._load()
    assert fns is not None and [p.suffix for p in tmp_path.iterdir()] == [".so"]
    monkeypatch.setattr(native, "_loaded", [fns])  # the single-threaded build gives the same answers
    gen = torch.Generator().manual_seed(4)
    ts = [torch.randn(n, generator=gen) for n in (3, 500, 300_000)]
    assert native.finite(ts)
    ts[2][-1] = float("inf")
    assert not native.finite(ts)
    packer = native.Packer.make(ts)
    flat = torch.empty(sum(t.numel() for t in ts))
    packer.gather_params(flat)
    assert torch.equal(flat, torch.cat(ts))


def test_a_failed_build_is_remembered_not_retried_by_every_process(monkeypatch, tmp_path):
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "FLAG_SETS", (["--no-such-flag"],))
    assert native._load() is None
    assert "building the native library failed" in native.error and "--no-such-flag" in native.error
    assert [p.suffix for p in tmp_path.iterdir()] == [".failed"]  # no leftovers

    def refuse(*a, **k):
        raise AssertionError("the compiler ran again")

    monkeypatch.setattr(native.subprocess, "run", refuse)
    assert native._load() is None and "--no-such-flag" in native.error


@pytest.mark.parametrize("shape", [(1,), (2,), (4, 4), (17,)], ids=str)  # (17: past the tiny path)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_a_tiny_gradient_is_checked_exactly_at_every_place(shape, dtype):
    p = torch.zeros(shape, dtype=dtype, requires_grad=True)
    opt = O.Momentum([p], lr=0.1, beta=0.9)
    p.grad = torch.full(shape, torch.finfo(dtype).max, dtype=dtype)  # finite: no false alarm
    opt.step()
    before = p.detach().clone()
    for i in range(p.numel()):
        for bad in (float("nan"), float("inf"), float("-inf")):
            p.grad = torch.ones(shape, dtype=dtype)
            p.grad.view(-1)[i] = bad
            with pytest.raises(O.NonFiniteGradientError):
                opt.step()
            assert torch.equal(p, before)
