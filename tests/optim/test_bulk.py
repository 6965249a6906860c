"""descend.optim.bulk: a step's per-gradient facts read in one C++ call.

Every step reads, for every gradient, whether it is there, sparse, plain and contiguous,
and its address and size. bulk.grads reads them in C++ through torch's headers; these
tests hold it to what torch's Python API says, and the steps it serves bitwise equal to
the same steps with the facts read in Python (bulk answering None).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch

import descend.optim as O
from descend.optim import bulk, engine, native

from .cases import child

pytestmark = pytest.mark.skipif(bulk.library(wait=True) is None, reason=f"bulk library not built: {bulk.error}")


def _params(sizes, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(n, generator=g, dtype=dtype)) for n in sizes]
    return ps


def _grads(ps, seed):
    g = torch.Generator().manual_seed(seed)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def test_grads_reads_what_torch_says():
    ps = _params([3, 5, 7]) + [torch.randn(2, 2, requires_grad=True)]
    _grads(ps, 1)
    ps[1].grad = None
    out, flags, ptrs, counts = bulk.grads(ps)
    assert flags == bulk.NONE
    assert [g is p.grad for g, p in zip(out, ps)] == [True, True, True, True]
    assert list(ptrs) == [0 if p.grad is None else p.grad.data_ptr() for p in ps]
    assert list(counts) == [0 if p.grad is None else p.grad.numel() for p in ps]
    ps[1].grad = torch.zeros(5)
    assert bulk.grads(ps)[1] == 0
    assert bulk.layout(ps) == bulk.layout_of([p.data_ptr() for p in ps], [p.numel() for p in ps],
                                             [p.is_contiguous() for p in ps])
    t = torch.randn(3, 4).t()
    assert bulk.layout([t]).tolist() == [t.data_ptr(), 12, 0]


@pytest.mark.parametrize("make", [
    lambda p: torch.randn(p.shape[1], p.shape[0]).t(),  # not contiguous
    lambda p: torch._neg_view(torch.randn(p.shape)),  # a lazy negation: its bytes are not its values
    lambda p: torch.randn(p.shape).as_subclass(type("Sub", (torch.Tensor,), {})),  # a subclass
], ids=["strided", "neg", "subclass"])
def test_grads_flags_a_gradient_whose_bytes_are_not_plain(make):
    ps = [torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)]
    _grads(ps, 2)
    ps[1].grad = make(ps[1])
    out, flags, ptrs, counts = bulk.grads(ps)
    assert flags == bulk.OTHER and out[1] is ps[1].grad
    assert ptrs[1] == 0 and ptrs[0] == ps[0].grad.data_ptr()


def test_grads_flags_sparse_and_refuses_what_it_cannot_read():
    emb = torch.nn.Embedding(6, 3, sparse=True)
    emb(torch.tensor([1, 4])).sum().backward()
    assert bulk.grads([emb.weight])[1] == bulk.SPARSE
    sub = torch.randn(3).as_subclass(type("Sub", (torch.Tensor,), {})).requires_grad_()
    assert bulk.grads([sub]) is None and bulk.layout([sub]) is None  # (a parameter that is a subclass)
    assert bulk.grads([]) is None and bulk.layout([torch.randn(2), 3]) is None
    assert bulk.grads((torch.randn(2, requires_grad=True),)) is None  # (a tuple, not a list)


def _python_path(monkeypatch):
    monkeypatch.setattr(bulk, "grads", lambda params: None)
    monkeypatch.setattr(bulk, "layout", lambda ts: None)
    monkeypatch.setattr(bulk, "same", lambda dicts, keys, refs: None)


# 1200 small tensors (auto takes the compiled path from 1000) and two large ones, which the
# compiled path updates by calls of their own
SIZES = [7 + i % 23 for i in range(1200)] + [40_000, 33_000]
CASES = [("SGD", {}), ("Momentum", {}), ("Adam", {"weight_decay": 0.01}), ("RMSprop", {}),
         ("Adam", {"impl": "foreach"}), ("Adam", {"impl": "fused", "nonfinite": "ignore"}),
         ("AdamW", {"nonfinite": "skip"})]


def _same(a, b):
    """Bitwise equal values, NaN where NaN (nonfinite="ignore" lets a NaN gradient through)."""
    return a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def _run(name, kw, steps=4, nan_at=None):
    ps = _params(SIZES)
    opt = getattr(O, name)(ps, lr=1e-2, **kw)
    raised = []
    for s in range(steps):
        _grads(ps, 10 + s)
        if s == 2:
            ps[5].grad = None  # a parameter without a gradient this step
        if nan_at == s:
            ps[300].grad[1] = float("nan")
            before = ([p.detach().clone() for p in ps], copy.deepcopy(opt.state_dict()))
            try:
                opt.step()
            except O.NonFiniteGradientError as e:
                raised.append(str(e))
            if kw.get("nonfinite") != "ignore":
                assert all(torch.equal(a, p) for a, p in zip(before[0], ps)), "a NaN step changed a parameter"
            continue
        opt.step()
    return [p.detach().clone() for p in ps], opt.state_dict(), raised


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES])
def test_steps_equal_the_python_path_bitwise(name, kw, monkeypatch):
    fast = _run(name, kw, nan_at=1)
    _python_path(monkeypatch)
    slow = _run(name, kw, nan_at=1)
    assert all(_same(a, b) for a, b in zip(fast[0], slow[0]))
    assert fast[2] == slow[2] and (fast[2] != []) == (kw.get("nonfinite", "raise") == "raise")
    for (i, a), (j, b) in zip(fast[1]["state"].items(), slow[1]["state"].items()):
        assert i == j and a.keys() == b.keys()
        assert all(_same(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)


def test_the_step_reads_no_gradient_attribute_in_python(monkeypatch):
    """With every gradient plain, the check and the compiled step take the facts bulk.grads read:
    the per-tensor readers in Python (native.dense/plain, Packer.gather) are not called."""
    ps = _params([9] * 1500 + [40_000])
    opt = O.Adam(ps, lr=1e-3)
    _grads(ps, 3)
    opt.step()
    opt.step()  # (the compiled kernels are called directly from the second step)

    def refuse(*a, **k):
        raise AssertionError("per-tensor reading in Python")
    for name in ("dense", "plain"):
        monkeypatch.setattr(native, name, refuse)
    monkeypatch.setattr(native.Packer, "gather", refuse)
    before = [p.detach().clone() for p in ps]
    _grads(ps, 4)
    opt.step()
    assert all(w.gptrs is not None for w in engine.collect(opt, opt._plans))
    assert not any(torch.equal(a, p) for a, p in zip(before, ps))


def test_without_the_library_steps_read_in_python():
    """DESCEND_BULK=0 (or no compiler or headers): the library is not built and steps still run."""
    code = ("import torch, descend.optim as O; from descend.optim import bulk\n"
            "ps = [torch.nn.Parameter(torch.ones(3)) for _ in range(1100)]\n"
            "o = O.Adam(ps, lr=0.1)\n"
            "for p in ps: p.grad = torch.ones(3)\n"
            "o.step(); o.step(); print(bulk.library(wait=True), float(ps[0][0]))")
    lib, value = child(code, DESCEND_BULK="0")
    assert lib == "None" and abs(float(value) - 0.8) < 1e-6  # (two Adam steps of lr 0.1 from 1)


def test_a_library_that_does_not_build_is_not_tried_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    path, why = native.build("broken", "this is not C++", ([],), [], "")
    assert path is None and "building the broken library failed" in why
    assert list(tmp_path.glob("broken-*.failed"))
    again = native.build("broken", "this is not C++", ([],), [], "")
    assert again == (None, why)


def test_same_is_dict_get_identity():
    from descend.optim.torchnames import ParamState

    a, b = torch.zeros(2), torch.zeros(2)
    d1, d2 = {"V": a}, ParamState({"S": b})
    assert bulk.same([d1, d2], ["V", "S"], [a, b]) is True
    assert bulk.same([d1, d2], ["V", "S"], [a, a]) is False
    assert bulk.same([d1, d2], ["V", "V"], [a, b]) is False  # (missing: no __missing__ is called)
    assert bulk.same([d1], ["V", "S"], [a]) is None and bulk.same([3], ["V"], [a]) is None


def test_a_build_is_started_once_in_a_process_of_its_own(tmp_path, monkeypatch):
    """The library is built by `python -m descend.optim.bulk MARKER`, which outlives the process
    that started it; while a live process holds the marker no other build starts."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    started = []
    monkeypatch.setattr(bulk.subprocess, "Popen", lambda args, **kw: started.append((args, kw)))
    monkeypatch.setattr(bulk, "_builder", [])
    marker = tmp_path / "bulk-x.building"
    marker.write_text(str(os.getpid()))  # a live process is building it
    bulk._start_build(marker)
    assert started == []
    marker.write_text(str(gone.pid))  # the process that was building it is gone
    bulk._start_build(marker)
    (args, kw), = started
    assert args == [sys.executable, "-m", "descend.optim.bulk", str(marker)] and kw["start_new_session"]
    assert marker.read_text() == str(os.getpid())
