"""The step wrapper: torch's hooks and profiler label work as with torch.optim (the label is
skipped only when nobody listens)."""

from __future__ import annotations

import torch
import torch.optim.optimizer as torch_optimizer

import descend.optim as O


def _opt(cls=O.Adam, **kw):
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    p.grad = torch.tensor([0.5, 0.25])
    return cls([p], lr=0.1, **kw), p


def test_pre_and_post_hooks_run_once_in_order_and_can_change_args():
    opt, p = _opt()
    calls = []

    def pre(o, args, kwargs):
        calls.append("pre")
        return args, kwargs

    opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    opt.step()
    opt.step()
    assert calls == ["pre", "post", "pre", "post"]
    assert opt.state[p]["step"] == 2


def test_subclass_that_overrides_step_runs_hooks_once():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = O.Nesterov([p], lr=0.1, beta=0.9)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    p.grad = torch.tensor([0.5, 0.25])
    opt.step()
    assert calls == ["pre"]


def test_global_hooks():
    opt, _ = _opt(O.SGD)
    calls = []
    h1 = torch_optimizer.register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("pre", o)))
    h2 = torch_optimizer.register_optimizer_step_post_hook(lambda o, a, k: calls.append(("post", o)))
    try:
        opt.step()
    finally:
        h1.remove()
        h2.remove()
    opt.step()
    assert calls == [("pre", opt), ("post", opt)]


def test_profiler_sees_the_step_label_like_torch():
    opt, _ = _opt()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    names = {e.name for e in prof.events()}
    assert "Optimizer.step#Adam.step" in names


def test_hooked_step_equals_plain_step_bitwise():
    a, pa = _opt()
    b, pb = _opt()
    b.register_step_pre_hook(lambda o, args, kw: None)
    for _ in range(5):
        a.step()
        b.step()
    assert torch.equal(pa, pb)
    assert torch.equal(a.state[pa]["V"], b.state[pb]["V"])
