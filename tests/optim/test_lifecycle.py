"""What code written for torch.optim does to parameters and state over a run.

Parameters that get no gradient (an unused head), parameters frozen and unfrozen
(fine-tuning), state reset from outside (``opt.state.clear()``) and options that
add or drop a state tensor mid-run (SGD's momentum from 0). Each is compared with
torch.optim in float64 on every path: the step plan descend caches must notice
all of them.
"""

from collections import defaultdict

import pytest
import torch

import descend.optim as O

IMPLS = ["auto", "eager", "fused"]
TOL = 1e-12


def model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()


def batch(t):
    gen = torch.Generator().manual_seed(100 + t)
    return torch.randn(8, 4, generator=gen, dtype=torch.float64), torch.randn(8, 2, generator=gen, dtype=torch.float64)


def train(m, opt, steps, before=None):
    for t in range(steps):
        if before:
            before(t, m, opt)
        x, y = batch(t)
        opt.zero_grad()
        ((m(x) - y) ** 2).mean().backward()
        opt.step()


def gap(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def pair(impl, torch_cls="Adam", **kw):
    """(torch optimizer factory, descend optimizer factory) computing the same rule."""
    if torch_cls == "Adam":
        return (lambda ps: torch.optim.Adam(ps, lr=0.05, **kw),
                lambda ps: O.Adam(ps, lr=0.05, eps_mode="outside", impl=impl, **kw))
    return (lambda ps: torch.optim.SGD(ps, lr=0.05, **kw), lambda ps: O.SGD(ps, lr=0.05, impl=impl, **kw))


@pytest.mark.parametrize("impl", IMPLS)
def test_a_parameter_without_a_gradient_is_skipped_and_saves_no_state(impl):
    """An unused parameter (in a group with used ones) gets no update and no state entry,
    and takes its first step when a gradient arrives; the step is never half-applied."""
    ours, theirs = model(), model()
    head = [torch.nn.Parameter(torch.ones(3, dtype=torch.float64)) for _ in range(2)]

    def groups(m, h):
        return [{"params": [m[0].weight, h[0]]}, {"params": [*m[0].parameters(), *m[2].parameters()][1:]}]

    make_t, make_d = pair(impl)
    ot, od = make_t(groups(theirs, head[0:1])), make_d(groups(ours, head[1:2]))

    def use_head_from_step_3(t, m, opt):
        if t >= 3:
            h = head[0] if opt is ot else head[1]
            h.grad = torch.full_like(h, 0.5)

    for m, opt in ((theirs, ot), (ours, od)):
        for t in range(5):
            x, y = batch(t)
            opt.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            use_head_from_step_3(t, m, opt)
            if t == 2:  # before its first gradient: no state saved, as torch
                assert len(opt.state_dict()["state"]) == 4
            opt.step()
    assert gap(ours, theirs) < TOL
    assert (head[0] - head[1]).abs().max().item() < TOL
    assert od.state[head[1]]["step"] == 2
    fresh = make_d(groups(model(), [torch.nn.Parameter(torch.ones(3, dtype=torch.float64))]))
    fresh.load_state_dict(od.state_dict())


def test_a_checkpoint_with_empty_state_entries_loads():
    """Checkpoints written before empty entries were dropped hold ``{}`` for unstepped parameters."""
    m = model()
    opt = O.Adam(m.parameters(), lr=0.01)
    train(m, opt, 1)
    sd = opt.state_dict()
    n = len(sd["param_groups"][0]["params"])
    sd["state"][n] = {}
    sd["param_groups"][0]["params"].append(n)
    extra = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    again = O.Adam([*model().parameters(), extra], lr=0.01)
    again.load_state_dict(sd)
    assert extra not in again.state or not again.state[extra]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rule", ["Adam", "SGD"])
def test_a_frozen_parameter_trains_once_unfrozen(impl, rule):
    kw = {"momentum": 0.9} if rule == "SGD" else {}
    make_t, make_d = pair(impl, rule, **kw)
    ours, theirs = model(), model()
    for m in (ours, theirs):
        m[0].requires_grad_(False)
    ot, od = make_t(theirs.parameters()), make_d(ours.parameters())

    def unfreeze(t, m, opt):
        if t == 2:
            m[0].requires_grad_(True)

    before = ours[0].weight.detach().clone()
    train(theirs, ot, 5, unfreeze)
    train(ours, od, 5, unfreeze)
    assert (ours[0].weight - before).abs().max().item() > 1e-3
    assert gap(ours, theirs) < TOL


RESETS = {
    "clear": lambda opt, m: opt.state.clear(),
    "del": lambda opt, m: opt.state.__delitem__(m[0].weight),
    "empty dict": lambda opt, m: opt.state.__setitem__(m[2].bias, {}),
    "new defaultdict": lambda opt, m: setattr(opt, "state", defaultdict(dict)),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reset", list(RESETS))
def test_state_reset_from_outside_restarts_the_moments(impl, reset):
    make_t, make_d = pair(impl)
    ours, theirs = model(), model()
    ot, od = make_t(theirs.parameters()), make_d(ours.parameters())

    def at_3(t, m, opt):
        if t == 3:
            RESETS[reset](opt, m)

    train(theirs, ot, 6, at_3)
    train(ours, od, 6, at_3)
    assert gap(ours, theirs) < TOL
    assert len(od.state_dict()["state"]) == len(ot.state_dict()["state"]) == 4
    steps = sorted(int(st["step"]) for st in ot.state_dict()["state"].values())
    assert sorted(st["step"] for st in od.state_dict()["state"].values()) == steps


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dampening", [0.0, 0.5])
def test_sgd_momentum_switched_on_mid_run_is_torchs(impl, dampening):
    """Momentum warm-up from 0: the buffer starts with the gradient, as torch's (with no
    dampening on its first step, whichever step that is)."""
    make_t, make_d = pair(impl, "SGD", dampening=dampening)
    ours, theirs = model(), model()
    ot, od = make_t(theirs.parameters()), make_d(ours.parameters())

    def warm(t, m, opt):
        opt.param_groups[0]["momentum"] = min(0.9, 0.3 * t)

    train(theirs, ot, 6, warm)
    train(ours, od, 6, warm)
    assert gap(ours, theirs) < TOL


@pytest.mark.parametrize("impl", ["foreach", "fused"])
def test_options_that_add_or_drop_state_agree_on_every_path(impl):
    """RMSprop's centered and momentum, Adam's amsgrad switched on then off: the new state
    starts at zero (as on a first step), the paths agree with the per-tensor reference,
    and the state saves and loads as that of an optimizer built with the new options."""
    for cls, key, on, off in ((O.RMSprop, "centered", True, False), (O.RMSprop, "momentum", 0.5, 0.0),
                              (O.Adam, "amsgrad", True, False)):
        runs = {}
        for which in ("eager", impl):
            m = model()
            opt = cls(m.parameters(), lr=0.01, impl=which)

            def toggle(t, m, opt, key=key, on=on, off=off):
                if t in (2, 4):
                    for g in opt.param_groups:
                        g[key] = on if t == 2 else off

            train(m, opt, 3, toggle)
            state_key = {"centered": "mean", "momentum": "buf", "amsgrad": "S_max"}[key]
            assert all(state_key in st for st in opt.state.values()), (cls, key)
            train(m, opt, 3, lambda t, m, opt: toggle(t + 3, m, opt))
            assert not any(state_key in st for st in opt.state.values()), (cls, key)
            again = cls(model().parameters(), lr=0.01, **{key: off})
            again.load_state_dict(opt.state_dict())
            runs[which] = m
        assert gap(runs["eager"], runs[impl]) < TOL, (cls, key)


@pytest.mark.parametrize("impl", [*IMPLS, "foreach"])
@pytest.mark.parametrize("torch_cls", ["Adam", "SGD"])
def test_torch_state_written_into_opt_state_directly_is_adopted(impl, torch_cls):
    """ZeroRedundancyOptimizer.load_state_dict writes a consolidated torch.optim state straight into
    ``optim.state[p]`` (exp_avg, a tensor step): the moments carry over, as a torch run's would."""
    kw = {"momentum": 0.9} if torch_cls == "SGD" else {}
    make_t, make_d = pair(impl, torch_cls, **kw)
    ours, theirs = model(), model()
    ot = make_t(theirs.parameters())
    train(theirs, ot, 4)
    od = make_d(ours.parameters())
    ours.load_state_dict(theirs.state_dict())
    for p, q in zip(ours.parameters(), theirs.parameters()):
        od.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in ot.state[q].items()}
    train(theirs, ot, 4)
    train(ours, od, 4)
    assert gap(ours, theirs) < TOL
    assert set(od.state_dict()["state"][0]) == ({"step", "V", "S"} if torch_cls == "Adam" else {"step", "v"})


@pytest.mark.parametrize("impl", [*IMPLS, "foreach"])
def test_a_parameter_resized_under_its_state_is_refused_before_anything_changes(impl):
    """A grown vocabulary (``emb.weight.data = bigger``): torch fails inside the update; descend refuses
    before any parameter or state is written, naming the shapes."""
    emb, lin = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 1)
    opt = O.Adam([emb.weight, lin.weight, lin.bias], lr=1e-2, impl=impl)
    lin(emb(torch.tensor([1, 2]))).sum().backward()
    opt.step()
    opt.zero_grad()
    emb.weight.data = torch.cat([emb.weight.data, torch.zeros(10, 8)])
    lin(emb(torch.tensor([1, 2]))).sum().backward()
    before = {id(p): {k: (v.clone() if torch.is_tensor(v) else v) for k, v in st.items()} for p, st in opt.state.items()}
    weights = [p.detach().clone() for p in (lin.weight, lin.bias)]
    with pytest.raises(ValueError, match=r"state 'V' of parameter 0 \(shape \(60, 8\)\) has shape \(50, 8\), the "
                                         r"parameter now has shape \(60, 8\).*nothing was changed"):
        opt.step()
    for p, st in opt.state.items():
        assert all(torch.equal(v, before[id(p)][k]) if torch.is_tensor(v) else v == before[id(p)][k]
                   for k, v in st.items())
    assert all(torch.equal(a, b.detach()) for a, b in zip(weights, (lin.weight, lin.bias)))
    del opt.state[emb.weight]  # the way out the message names
    opt.step()
    assert opt.state[emb.weight]["V"].shape == (60, 8)
