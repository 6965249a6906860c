"""The fused path computes what the eager path computes.

Each configuration compiles once per process (and is then served from
Inductor's disk cache), so the cases here are chosen to cover every rule
and option without compiling more than needed.
"""

import io
import warnings

import pytest
import torch

import descend.optim as O
from descend.optim import fused

CONFIGS = {
    "sgd": (O.SGD, {"lr": 0.05, "weight_decay": 0.01}),
    "sgd_momentum": (O.SGD, {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "maximize": True}),
    "sgd_nesterov": (O.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "heavy_ball": (O.Momentum, {"lr": 0.02, "l1": 1e-3}),
    "ema": (O.Momentum, {"lr": 0.05, "style": "ema", "first_step": "grad"}),
    "nesterov_ema": (O.Nesterov, {"lr": 0.05, "style": "ema"}),
    "adagrad": (O.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    "adagrad_outside": (O.Adagrad, {"lr": 0.1, "eps_mode": "outside", "eps": 1e-10}),
    "rmsprop": (O.RMSprop, {"lr": 0.01}),
    "rmsprop_centered_momentum": (O.RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.5,
                                              "eps_mode": "outside"}),
    "adam": (O.Adam, {"lr": 0.01, "weight_decay": 0.01}),
    "adam_amsgrad_inside": (O.Adam, {"lr": 0.01, "amsgrad": True, "eps_mode": "inside"}),
    "adam_hat_nobc": (O.Adam, {"lr": 0.01, "eps_mode": "hat"}),
    "adam_no_bias_correction": (O.Adam, {"lr": 0.001, "bias_correction": False}),
    "adamw": (O.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
}


def make(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(300, 7, generator=g), torch.randn(11, generator=g), torch.randn(2, 3, 4, generator=g)]


def run(cls, kw, impl, steps=200, lr_schedule=False, start=None, opt_state=None):
    ps = [p.clone().requires_grad_() for p in (start or make())]
    opt = cls(ps, impl=impl, **kw)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    gen = torch.Generator().manual_seed(7)
    base = opt.param_groups[0]["lr"]
    for i in range(steps):
        opt.zero_grad()
        for p in ps:
            g = torch.randn(p.shape, generator=gen)
            if p.grad is None:
                p.grad = g
            else:
                p.grad.copy_(g)
        if lr_schedule:
            opt.param_groups[0]["lr"] = base * (1 + 0.01 * i)
        opt.step()
    return ps, opt


def rel(a, b):
    return ((a - b).abs().max() / a.abs().max()).item()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_equals_eager(name):
    cls, kw = CONFIGS[name]
    eager, _ = run(cls, kw, "eager")
    fast, opt = run(cls, kw, "fused")
    assert opt._buckets[0] is not None  # it really ran fused
    for a, b in zip(eager, fast):
        assert rel(a, b) <= 1e-6


def test_lr_changing_every_step_does_not_recompile():
    cls, kw = CONFIGS["adam"]
    run(cls, kw, "fused", steps=3)  # compiled (or loaded from cache) here
    before = fused.compile_count()
    run(cls, kw, "fused", steps=100, lr_schedule=True)
    assert fused.compile_count() == before


def test_fused_params_are_views_into_one_buffer_and_state_dicts_move_both_ways():
    cls, kw = CONFIGS["adam_amsgrad_inside"]
    full_eager, _ = run(cls, kw, "eager", steps=100)
    half, opt = run(cls, kw, "fused", steps=50)
    b = opt._buckets[0][0]
    assert all(p.untyped_storage().data_ptr() == b.P.untyped_storage().data_ptr() for p in half)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)
    # fused -> eager: continue the remaining 50 steps on the eager path
    cont, _ = run_from(cls, kw, "eager", [p.detach() for p in half], sd, skip=50)
    for a, c in zip(full_eager, cont):
        assert rel(a, c) <= 1e-6
    # eager -> fused
    half_e, opt_e = run(cls, kw, "eager", steps=50)
    cont2, opt2 = run_from(cls, kw, "fused", [p.detach() for p in half_e], opt_e.state_dict(), skip=50)
    assert opt2._buckets[0] is not None
    for a, c in zip(full_eager, cont2):
        assert rel(a, c) <= 1e-6


def run_from(cls, kw, impl, start, state, skip, steps=50):
    """Continue from step ``skip`` with the same gradient stream as ``run``."""
    ps = [p.clone().requires_grad_() for p in start]
    opt = cls(ps, impl=impl, **kw)
    opt.load_state_dict(state)
    gen = torch.Generator().manual_seed(7)
    for i in range(skip + steps):
        grads = [torch.randn(p.shape, generator=gen) for p in ps]
        if i < skip:
            continue
        opt.zero_grad()
        for p, g in zip(ps, grads):
            if p.grad is None:
                p.grad = g
            else:
                p.grad.copy_(g)
        opt.step()
    return ps, opt


def test_replaced_grad_is_copied_in_with_a_warning():
    cls, kw = CONFIGS["adam"]
    eager, _ = run(cls, kw, "eager", steps=20)
    ps = [p.clone().requires_grad_() for p in make()]
    opt = cls(ps, impl="fused", **kw)
    gen = torch.Generator().manual_seed(7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            opt.zero_grad()
            for p in ps:
                p.grad = torch.randn(p.shape, generator=gen)  # replaces the view every step
            opt.step()
    assert any("copied it first" in str(w.message) for w in caught)
    for a, b in zip(eager, ps):
        assert rel(a, b) <= 1e-6


def test_missing_grad_is_not_stepped():
    """A parameter whose gradient is None stays put, as in torch."""
    cls, kw = CONFIGS["sgd_momentum"]
    ps = [p.clone().requires_grad_() for p in make()]
    opt = cls(ps, impl="fused", **kw)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    frozen = ps[1].detach().clone()
    with pytest.warns(RuntimeWarning, match="no gradient"):
        ps[1].grad = None
        ps[0].grad.fill_(1.0)
        ps[2].grad.fill_(1.0)
        opt.step()
    assert torch.equal(ps[1], frozen)
    assert opt.state[ps[0]]["step"] == 2 and opt.state[ps[1]]["step"] == 1


def test_zero_grad_keeps_the_flat_buffer():
    cls, kw = CONFIGS["sgd"]
    ps = [p.clone().requires_grad_() for p in make()]
    opt = cls(ps, impl="fused", **kw)
    (sum((p**2).sum() for p in ps)).backward()
    opt.step()
    views = [p.grad for p in ps]
    opt.zero_grad()
    assert all(p.grad is v and not p.grad.any() for p, v in zip(ps, views))
    (sum((p**2).sum() for p in ps)).backward()  # accumulates into the views
    assert all(p.grad is v for p, v in zip(ps, views))
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in ps)


def test_nonfinite_on_fused_path():
    cls, kw = CONFIGS["adam"]
    ps = [p.clone().requires_grad_() for p in make()]
    opt = cls(ps, impl="fused", nonfinite="skip", **kw)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    before = [p.detach().clone() for p in ps]
    v_before = opt.state[ps[0]]["V"].clone()
    ps[2].grad[0, 1, 1] = float("nan")
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, before))
    assert torch.equal(opt.state[ps[0]]["V"], v_before)
    opt.nonfinite = "raise"
    with pytest.raises(O.NonFiniteGradientError, match=r"NaN gradient in parameter 2 \(shape \(2, 3, 4\)\) at step 2"):
        opt.step()


def test_auto_picks_eager_for_small_problems_and_fused_when_asked():
    x = torch.zeros(2, requires_grad=True)
    opt = O.Adam([x])
    x.grad = torch.ones(2)
    opt.step()
    assert opt._buckets[0] is None  # a 2-D toy never waits for a compiler
    lrs = torch.tensor([[0.1], [0.2]])
    X = torch.zeros(2, 2, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="lr is a tensor of shape"):
        opt = O.Adam([X], lr=lrs, impl="fused")
        X.grad = torch.ones(2, 2)
        opt.step()
    with pytest.raises(ValueError, match="impl must be one of 'auto', 'eager', 'fused'"):
        O.Adam([x], impl="compiled")
