"""``Scheduler(..., key=...)``: the same pure schedules drive beta1, momentum, weight_decay.

Checked against hand values, torch's ``OneCycleLR``/``CyclicLR`` with
``cycle_momentum=True`` (momentum and betas[0] at every step, and whole
float64 trajectories), and exact resume from state dicts.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

from descend import optim as O
from descend.schedules import Scheduler, cosine, cycle_momentum, cyclic, linear, one_cycle
from descend.schedules.base import Schedule

T = 20


def quartic(w: torch.Tensor) -> torch.Tensor:
    return ((w - 1) ** 4).sum() + (w**2).sum()


def test_one_cycle_momentum_hand_values() -> None:
    # linear anneal: up-phase ends at 0.3 * 10 - 1 = 2, the down phase at 9
    m = cycle_momentum(one_cycle(0.1, 10, pct_start=0.3, anneal="linear"), 0.85, 0.95)
    want = [0.95, 0.90, 0.85] + [0.85 + 0.1 * k / 7 for k in range(1, 8)]
    assert [m(n) for n in range(10)] == pytest.approx(want, abs=1e-15)
    assert m(25) == pytest.approx(0.95)  # after the last step: stays at the end value
    # cosine anneal, phase 2 at n = 5: pct = 3/7
    c = cycle_momentum(one_cycle(0.1, 10, pct_start=0.3), 0.85, 0.95)
    assert c(1) == pytest.approx(0.90, abs=1e-15)
    assert c(5) == pytest.approx(0.95 - 0.05 * (math.cos(math.pi * 3 / 7) + 1), abs=1e-15)
    assert c.base_lr == 0.95 and repr(c) == "cycle_momentum(one_cycle(0.1, 10))"


def test_cyclic_momentum_hand_values() -> None:
    # triangular2 with 2 steps up and 2 down: h = 0, .5, 1, .5, 0 ...; amplitude halves each cycle
    m = cycle_momentum(cyclic(0.01, 0.1, 2, mode="triangular2"), 0.8, 0.9)
    want = [0.9, 0.85, 0.8, 0.85, 0.9, 0.875, 0.85, 0.875]
    assert [m(n) for n in range(8)] == pytest.approx(want, abs=1e-15)


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_momentum_equals_torch(three_phase, anneal) -> None:
    w = torch.zeros(3, requires_grad=True)
    ref = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(
        ref, max_lr=0.1, total_steps=T, pct_start=0.25, anneal_strategy=anneal, three_phase=three_phase,
        base_momentum=0.8, max_momentum=0.95,
    )
    mine = torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1, momentum=0.9)
    lr = one_cycle(0.1, T, pct_start=0.25, anneal=anneal, three_phase=three_phase)
    lr_sched = Scheduler(mine, lr)
    m_sched = Scheduler(mine, cycle_momentum(lr, 0.8, 0.95), key="momentum")
    for _ in range(T - 1):
        assert mine.param_groups[0]["momentum"] == pytest.approx(ref.param_groups[0]["momentum"], abs=1e-15)
        assert mine.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"], rel=1e-13)
        ref.step()
        torch_sched.step()
        lr_sched.step()
        m_sched.step()
    assert mine.param_groups[0]["momentum"] == pytest.approx(0.95)


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_momentum_equals_torch_on_betas(mode) -> None:
    ref = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=0.01, betas=(0.9, 0.99))
    torch_sched = torch.optim.lr_scheduler.CyclicLR(
        ref, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=2, mode=mode, gamma=0.9,
        cycle_momentum=True, base_momentum=0.8, max_momentum=0.9,
    )
    mine = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=0.01, betas=(0.9, 0.99))
    lr = cyclic(0.01, 0.1, 3, steps_down=2, mode=mode, gamma=0.9)
    scheds = [Scheduler(mine, lr), Scheduler(mine, cycle_momentum(lr, 0.8, 0.9), key="beta1")]
    for _ in range(17):
        assert mine.param_groups[0]["betas"][0] == pytest.approx(ref.param_groups[0]["betas"][0], abs=1e-15)
        assert mine.param_groups[0]["betas"][1] == 0.99  # only beta1 is driven
        assert mine.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"], rel=1e-13)
        ref.step()
        torch_sched.step()
        for s in scheds:
            s.step()


def test_descend_adam_with_one_cycle_beta1_follows_torch_trajectory() -> None:
    torch.manual_seed(0)
    w0 = torch.randn(5, dtype=torch.float64)
    a, b = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    ref = torch.optim.Adam([a], lr=0.1, betas=(0.9, 0.999))
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=0.1, total_steps=T)
    mine = O.Adam([b], lr=0.1, beta1=0.9, beta2=0.999)
    lr = one_cycle(0.1, T)
    scheds = [Scheduler(mine, lr), Scheduler(mine, cycle_momentum(lr), key="beta1")]
    betas = []
    for _ in range(T - 1):
        for opt, w in ((ref, a), (mine, b)):
            opt.zero_grad()
            quartic(w).backward()
            opt.step()
        torch_sched.step()
        for s in scheds:
            s.step()
        betas.append(mine.param_groups[0]["beta1"])
    assert min(betas) == pytest.approx(0.85) and betas[-1] == pytest.approx(0.95)  # it really cycled
    assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_weight_decay_and_momentum_keys_take_values_as_they_are() -> None:
    opt = O.Momentum([torch.zeros(2, requires_grad=True)], lr=0.1, beta=0.9, weight_decay=0.5)
    wd = Scheduler(opt, linear(0.1, 4), key="weight_decay")
    beta = Scheduler(opt, cosine(0.9, 4, final_lr=0.5), key="beta")
    assert not wd.relative and not beta.relative  # a group value of 0.5 does not rescale the schedule
    got = []
    for _ in range(5):
        got.append((opt.param_groups[0]["weight_decay"], opt.param_groups[0]["beta"]))
        wd.step()
        beta.step()
    assert [g[0] for g in got] == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.0], abs=1e-15)
    assert [g[1] for g in got] == pytest.approx(
        [0.5 + 0.4 * (1 + math.cos(math.pi * n / 4)) / 2 for n in range(5)], abs=1e-15
    )
    # relative=True scales by the group's own value: 0.5 / 0.1
    opt.param_groups[0]["weight_decay"] = 0.5
    rel = Scheduler(opt, linear(0.1, 4), key="weight_decay", relative=True)
    rel.step()
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(0.075 * 5)


def test_resume_with_lr_and_beta1_schedulers_is_exact() -> None:
    torch.manual_seed(1)
    w0 = torch.randn(4, dtype=torch.float64)

    def build(w):
        opt = O.Adam([w], lr=0.05)
        lr = one_cycle(0.05, T, pct_start=0.4)
        return opt, Scheduler(opt, lr), Scheduler(opt, cycle_momentum(lr, 0.85, 0.95), key="beta1")

    def run(opt, scheds, w, steps):
        for _ in range(steps):
            opt.zero_grad()
            quartic(w).backward()
            opt.step()
            for s in scheds:
                s.step()

    w = w0.clone().requires_grad_()
    opt, s1, s2 = build(w)
    run(opt, (s1, s2), w, T - 1)

    v = w0.clone().requires_grad_()
    opt_a, a1, a2 = build(v)
    run(opt_a, (a1, a2), v, 7)
    saved = (opt_a.state_dict(), a1.state_dict(), a2.state_dict(), v.detach().clone())
    assert saved[2]["key"] == "beta1" and saved[1]["key"] == "lr"

    u = saved[3].clone().requires_grad_()
    opt_b, b1, b2 = build(u)
    opt_b.load_state_dict(saved[0])
    b1.load_state_dict(saved[1])
    b2.load_state_dict(saved[2])
    assert opt_b.param_groups[0]["beta1"] == opt_a.param_groups[0]["beta1"] != 0.9
    run(opt_b, (b1, b2), u, T - 1 - 7)
    assert torch.equal(u, w)
    with pytest.raises(ValueError, match="state drives key='beta1', this Scheduler drives key='lr'"):
        b1.load_state_dict(saved[2])


def test_a_state_saved_before_keys_existed_loads_as_lr() -> None:
    opt = O.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s = Scheduler(opt, cosine(0.1, 10))
    old = s.state_dict()
    old["t"] = 5
    del old["key"]
    s.load_state_dict(old)
    assert s.t == 5 and opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_bad_keys_and_momentum_schedules_are_refused() -> None:
    opt = O.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=r"key 'beta1' is not a hyperparameter of param group 0; it has .*lr"):
        Scheduler(opt, cosine(0.9, 10), key="beta1")
    with pytest.raises(ValueError, match="key must be the name of a param-group hyperparameter"):
        Scheduler(opt, cosine(0.9, 10), key="")
    with pytest.raises(ValueError, match=r"schedule must be a one_cycle\(...\) or cyclic\(...\)"):
        cycle_momentum(cosine(0.1, 10))
    with pytest.raises(ValueError, match=r"base_momentum must be in \[0, 0.95\], got 0.99"):
        cycle_momentum(one_cycle(0.1, 10), base_momentum=0.99)
    with pytest.raises(ValueError, match=r"max_momentum must be in \[0, 1\], got 1.5"):
        cycle_momentum(one_cycle(0.1, 10), max_momentum=1.5)


# ------------------------------------------------------------------ values the optimizer would refuse
def _adam(**kw):
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    return p, O.Adam([p], lr=0.1, **kw)


class Const(Schedule):
    """A user's schedule: any value, unchecked (descend's own schedules check their arguments)."""

    def __init__(self, value):
        object.__setattr__(self, "value", value)

    lr = 1.0

    def _lr(self, n):
        return self.value


@pytest.mark.parametrize("key, value, shown", [
    ("beta1", 1.0, "beta1 must be in [0, 1), got 1.0"),
    ("beta1", 1.5, "beta1 must be in [0, 1), got 1.5"),
    ("eps", float("nan"), "eps must be finite"),
    ("weight_decay", -0.1, "weight_decay must be in [0, inf), got -0.1"),
])
def test_a_value_the_constructor_refuses_is_refused_when_the_schedule_sets_it(key, value, shown):
    _, opt = _adam()
    with pytest.raises(ValueError, match=re.escape(f"the schedule gives {key}={value!r} for param group 0 at "
                                                   f"step 0: ") + ".*" + re.escape(shown)):
        Scheduler(opt, Const(value), key=key)
    group = opt.param_groups[0]
    assert (group["beta1"], group["eps"], group["weight_decay"]) == (0.9, 1e-8, 0.0)  # nothing written


def test_a_nan_lr_from_a_user_schedule_stops_before_the_parameters_change():
    from descend.schedules.base import Schedule

    @dataclasses.dataclass(frozen=True, repr=False)
    class NanLater(Schedule):
        lr: float = 0.1

        def _lr(self, n):
            return float("nan") if n >= 2 else 0.1

    p, opt = _adam()
    sched = Scheduler(opt, NanLater())
    (p ** 2).sum().backward()
    opt.step()
    sched.step()
    before = p.detach().clone()
    with pytest.raises(ValueError, match=r"the schedule gives lr=nan for param group 0 at step 2: lr must be finite"):
        sched.step()
    opt.step()  # (the lr still set is step 1's)
    assert torch.isfinite(p).all() and not torch.equal(p.detach(), before)
    # relative scaling that leaves the range is refused too (0.99 * 0.95 / 0.9 > 1)
    _, opt2 = _adam(betas=(0.99, 0.999))
    rising = Scheduler(opt2, cosine(0.9, 10, 0.95), key="beta1", relative=True)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\)"):
        for _ in range(10):
            rising.step()
    assert opt2.param_groups[0]["beta1"] < 1
    # torch.optim optimizers get torch's own ranges
    q = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\), got 1.5"):
        from descend.schedules import constant

        Scheduler(torch.optim.Adam([q]), constant(1.5), key="beta1")


def test_a_key_that_is_not_a_number_is_refused():
    from descend.schedules import constant

    _, opt = _adam()
    with pytest.raises(ValueError, match=r"key 'amsgrad' of param group 0 holds False, not a number"):
        Scheduler(opt, constant(0.5), key="amsgrad")


def test_one_absolute_schedule_over_groups_that_differ_warns(recwarn):
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))
    opt = O.AdamW(O.decay_groups(m, weight_decay=0.1), lr=1e-3)
    with pytest.warns(UserWarning, match=r"groups' weight_decay differ now \(0.1, 0\).*relative=True"):
        Scheduler(opt, cosine(0.1, 100), key="weight_decay")
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.1]  # (as asked: absolute)
    opt = O.AdamW(O.decay_groups(m, weight_decay=0.1), lr=1e-3)
    Scheduler(opt, cosine(0.1, 100), key="weight_decay", relative=True)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert not [w for w in recwarn if "differ now" in str(w.message)]


def test_no_scaling_warning_for_an_optimizer_resumed_mid_schedule(recwarn):
    p, opt = _adam()
    sched = Scheduler(opt, one_cycle(0.1, 100))
    for _ in range(30):
        (p ** 2).sum().backward()
        opt.step()
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    q, opt2 = _adam()
    opt2.load_state_dict(saved_opt)  # its lr is the schedule's value at step 30
    sched2 = Scheduler(opt2, one_cycle(0.1, 100))
    sched2.load_state_dict(saved_sched)
    assert not [w for w in recwarn if "no group's lr is that" in str(w.message)]
    assert sched2.get_last_lr() == sched.get_last_lr()
