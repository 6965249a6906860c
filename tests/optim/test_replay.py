"""descend.optim.replay: a traced foreach program replayed in one native call on the CPU.

The replay must give what torch's ``_foreach_*`` ops give on the same program, bit for bit:
every case of the table, float32 and float64, sizes on both sides of torch's parallel grain
and of the replay's block, a non-finite gradient let through, and every way a gradient or
state tensor can be one whose bytes are not plain (then torch's ops replay it).
"""

from __future__ import annotations

import pytest
import torch

import descend.optim as O
from descend.optim import replay

from .cases import CASES, child

pytestmark = pytest.mark.skipif(replay.library() is None, reason=f"replay library not built: {replay.error}")

SHAPES = [(37,), (70_001,), (3, 5), (1,), (40_000,), (1025,)]  # odd sizes, > GRAIN, a block and one more


def _calls(monkeypatch):
    """Count the native replays that ran (Code.run returning True)."""
    ran = []
    run = replay.Code.run

    def counted(self, *a):
        ok = run(self, *a)
        ran.append(ok)
        return ok

    monkeypatch.setattr(replay.Code, "run", counted)
    return ran


def _trajectory(case, dtype, native, steps=5, nan_at=None, **extra):
    saved = replay.step
    if not native:
        replay.step = lambda *a: False
    try:
        torch.manual_seed(0)
        ps = [torch.nn.Parameter(torch.randn(s, dtype=dtype)) for s in SHAPES]
        opt = case.make(ps, impl="foreach", **extra)
        g = torch.Generator().manual_seed(1)
        for t in range(steps):
            for p in ps:
                p.grad = torch.randn(p.shape, dtype=dtype, generator=g)
            if t == nan_at:
                ps[1].grad[7] = float("nan")
                ps[2].grad[0, 0] = float("inf")
            opt.step()
    finally:
        replay.step = saved
    return ps, opt


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(-1).view(torch.uint8),
                                                                     b.view(-1).view(torch.uint8))


def _assert_same(x, y):
    assert all(_same(a.detach(), b.detach()) for a, b in zip(x[0], y[0]))
    for a, b in zip(x[1].state.values(), y[1].state.values()):
        assert a.keys() == b.keys()
        assert all(_same(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replay_equals_torchs_foreach_ops_bitwise(case, dtype, monkeypatch):
    ran = _calls(monkeypatch)
    fast = _trajectory(case, dtype, native=True)
    native_ran = any(ran)
    _assert_same(fast, _trajectory(case, dtype, native=False))
    if case.cls in (O.SGD, O.Momentum, O.Nesterov):  # (averages: no square root, no maximum)
        assert native_ran
    else:
        assert not native_ran


def test_every_sgd_form_equals_torch_sgd_bitwise_on_two_threads(monkeypatch):
    """torch.optim.SGD (foreach) and descend's SGD replayed natively, float32, 2 threads (the forms
    whose formula groups as torch's does: Nesterov's look-ahead is grouped otherwise, so it agrees
    to rounding only, with torch's ops as much as natively)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    ran = _calls(monkeypatch)
    for kw in ({}, {"weight_decay": 0.01}, {"momentum": 0.9}, {"momentum": 0.9, "weight_decay": 0.01},
               {"momentum": 0.8, "dampening": 0.3, "maximize": True}):
        torch.manual_seed(0)
        a = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
        b = [torch.nn.Parameter(p.detach().clone()) for p in a]
        oa, ob = O.SGD(a, lr=0.05, impl="foreach", **kw), torch.optim.SGD(b, lr=0.05, foreach=True, **kw)
        for _ in range(4):
            for p, q in zip(a, b):
                p.grad = torch.randn(p.shape)
                q.grad = p.grad.clone()
            oa.step()
            ob.step()
        assert all(_same(p.detach(), q.detach()) for p, q in zip(a, b)), kw
    assert ran and all(ran)


def test_a_nonfinite_gradient_let_through_spreads_as_with_torchs_ops():
    case = next(c for c in CASES if c.name == "sgd_momentum_maximize")
    fast = _trajectory(case, torch.float32, native=True, nan_at=2, nonfinite="ignore")
    assert torch.isnan(fast[0][1][7]) and not torch.isfinite(fast[0][2][0, 0])  # (the step let them through)
    _assert_same(fast, _trajectory(case, torch.float32, native=False, nan_at=2, nonfinite="ignore"))


@pytest.mark.parametrize("make,where", [
    (lambda p: torch.randn(p.shape[1], p.shape[0]).t(), "grad"),  # not contiguous
    (lambda p: torch._neg_view(torch.randn(p.shape)), "grad"),  # a lazy negation: bytes not values
    (lambda p: torch.randn(p.shape[1], p.shape[0]).t(), "state"),  # (torch's ops refuse a negated one)
], ids=["grad-strided", "grad-neg", "state-strided"])
def test_a_tensor_whose_bytes_are_not_its_values_replays_with_torchs_ops(make, where, monkeypatch):
    ran = _calls(monkeypatch)
    runs = []
    for native in (True, False):
        saved = replay.step
        if not native:
            replay.step = lambda *a: False
        try:
            torch.manual_seed(0)
            ps = [torch.nn.Parameter(torch.randn(4, 3)) for _ in range(3)]
            opt = O.SGD(ps, lr=0.1, momentum=0.9, impl="foreach")
            for p in ps:
                p.grad = torch.randn(4, 3)
            opt.step()
            torch.manual_seed(5)
            for p in ps:
                p.grad = torch.randn(4, 3)
            odd = make(ps[1])
            odd.copy_(torch.randn(4, 3))
            if where == "grad":
                ps[1].grad = odd
            else:
                key = next(iter(k for k, v in opt.state[ps[1]].items() if torch.is_tensor(v)))
                odd.copy_(opt.state[ps[1]][key])
                opt.state[ps[1]][key] = odd
            opt.step()
        finally:
            replay.step = saved
        runs.append([p.detach().clone() for p in ps])
    assert ran == [True]  # (the first step natively; the second refused before the call)
    assert all(_same(a, b) for a, b in zip(*runs))


def test_autograd_sees_the_parameters_written(monkeypatch):
    """Written through pointers, the parameters' version counters are still bumped, so a graph
    that saved a parameter refuses to backward through the step, as with torch.optim."""
    ran = _calls(monkeypatch)
    ps = [torch.nn.Parameter(torch.randn(5)) for _ in range(3)]
    opt = O.SGD(ps, lr=0.1, momentum=0.9, impl="foreach")
    for p in ps:
        p.grad = torch.ones(5)
    loss = sum((p * p).sum() for p in ps)
    versions = [p._version for p in ps]
    opt.step()
    assert ran == [True] and all(p._version > v for p, v in zip(ps, versions))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_a_parameter_resized_in_place_is_planned_again(monkeypatch):
    """``p.data = p.data[:k]`` keeps the address: the replay's sizes must follow (new plan)."""
    ps = [torch.nn.Parameter(torch.randn(6)) for _ in range(2)]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    oa, ob = O.SGD(ps, lr=0.1, impl="foreach"), torch.optim.SGD(ref, lr=0.1)
    for o, qs in ((oa, ps), (ob, ref)):
        for q in qs:
            q.grad = torch.ones(6)
        o.step()
        for q in qs:
            q.data = q.data[:4]
            q.grad = torch.full((4,), 2.0)
        o.step()
    assert all(_same(a.detach(), b.detach()) for a, b in zip(ps, ref))


def test_replay_off_by_environment():
    code = ("import torch, descend.optim as O\n"
            "ps = [torch.nn.Parameter(torch.ones(3)) for _ in range(3)]\n"
            "o = O.SGD(ps, lr=0.1, momentum=0.9)\n"
            "for p in ps: p.grad = torch.ones(3)\n"
            "o.step(); o.step(); print(o._plans[0].replay, float(ps[0][0]))")
    plan, value = child(code, DESCEND_REPLAY="0")
    assert plan == "None" and abs(float(value) - (1 - 0.1 - 0.19)) < 1e-6  # (V = 1, then 1.9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("where", [(0, 36), (1, 70_000), (4, 0), (3, 0)],
                         ids=["small", "last-of-a-split-tensor", "first-of-a-split-tensor", "one-element"])
@pytest.mark.parametrize("mode,bad", [("raise", float("nan")), ("skip", float("inf")), ("skip", float("-inf"))],
                         ids=["raise-nan", "skip-inf", "skip-neg-inf"])
def test_the_check_runs_in_the_replay_call_and_a_nonfinite_gradient_changes_nothing(dtype, where, mode, bad,
                                                                                    monkeypatch):
    """With the part replayed natively, the ``nonfinite`` check is the same call's first phase
    (each thread scans its share of every gradient, then all update or none): on 2 threads, a
    value that is not finite anywhere (a small tensor; either thread's share of a split one)
    leaves every parameter, state tensor and step count as it was, and the run goes on as
    torch.optim.SGD's does without that step."""
    from descend.optim import checks

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    ran = _calls(monkeypatch)
    scans = []
    scan = checks.grad_checks
    monkeypatch.setattr(checks, "grad_checks", lambda work: scans.append(1) or scan(work))
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(s, dtype=dtype)) for s in SHAPES]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    oa = O.SGD(a, lr=0.05, momentum=0.9, weight_decay=0.01, impl="foreach", nonfinite=mode)
    ob = torch.optim.SGD(b, lr=0.05, momentum=0.9, weight_decay=0.01, foreach=True)
    g = torch.Generator().manual_seed(1)
    for t in range(5):
        grads = [torch.randn(p.shape, dtype=dtype, generator=g) for p in a]
        if t == 2:
            before = ([p.detach().clone() for p in a],
                      [{k: v.clone() if torch.is_tensor(v) else v for k, v in oa.state[p].items()} for p in a])
            grads[where[0]].view(-1)[where[1]] = bad
            for p, gr in zip(a, grads):
                p.grad = gr
            if mode == "raise":
                with pytest.raises(O.NonFiniteGradientError, match="at step 3; no parameter was changed"):
                    oa.step()
            else:
                oa.step()
            assert ran[-1] == replay.NONFINITE  # (found by the native call's scan)
            assert all(_same(p.detach(), q) for p, q in zip(a, before[0]))
            for p, old in zip(a, before[1]):
                st = oa.state[p]
                assert st.keys() == old.keys()
                assert all(_same(st[k], old[k]) if torch.is_tensor(old[k]) else st[k] == old[k] for k in old)
            continue
        for p, q, gr in zip(a, b, grads):
            p.grad, q.grad = gr, gr.clone()
        oa.step()
        ob.step()
    assert scans == [1]  # (only the first step, whose state is still empty, checks apart)
    assert ran.count(True) == 4
    assert all(_same(p.detach(), q.detach()) for p, q in zip(a, b))
