"""Every scheduler of torch.optim.lr_scheduler and torch.optim.swa_utils, driving descend's optimizers.

One small float64 model with three param groups (two lrs given, one left at the default) is trained
twice, with the torch.optim twin and with the descend optimizer, under the same scheduler. The lr
histories (and the momentum or beta1 ones where the scheduler cycles them) and ``get_last_lr()``
must be equal, and the parameters bitwise equal where descend's step is torch's to the bit in
float64 (the multi-tensor SGD, Momentum, RMSprop and Adagrad steps), else within 1e-12.
(tests/optim/test_torch_compat.py covers one OneCycleLR and one CyclicLR per optimizer and the
recovered beta1; this file covers every scheduler, mode and option.)
"""

import io

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as L
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

import descend.optim as O
import descend.schedules as S
from descend.optim import fused

TOL = 1e-12
IMPLS = ["eager", "foreach"]
BITWISE = {"SGD", "SGDm", "Momentum", "RMSprop", "Adagrad"}  # foreach steps: torch's to the bit


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def groups(m):
    return [{"params": list(m[0].parameters()), "lr": 0.02}, {"params": [m[2].weight], "lr": 0.01},
            {"params": [m[2].bias]}]


def batch(t):
    gen = torch.Generator().manual_seed(100 + t)
    return (torch.randn(8, 4, generator=gen, dtype=torch.float64),
            torch.randn(8, 2, generator=gen, dtype=torch.float64))


def train_step(m, opt, t):
    x, y = batch(t)
    opt.zero_grad()
    ((m(x) - y) ** 2).mean().backward()
    opt.step()


# name -> (torch twin, descend optimizer with torch's spellings); both take (param groups, impl)
OPTS = {
    "SGD": (lambda g: torch.optim.SGD(g, lr=0.05), lambda g, i: O.SGD(g, lr=0.05, impl=i)),
    "SGDm": (lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9),
             lambda g, i: O.SGD(g, lr=0.05, momentum=0.9, impl=i)),
    "Momentum": (lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9),  # torch's rule: p -= lr * buf
                 lambda g, i: O.Momentum(g, lr=0.05, momentum=0.9, lr_inside=False, first_step="grad", impl=i)),
    "Nesterov": (lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True),
                 lambda g, i: O.Nesterov(g, lr=0.05, momentum=0.9, nesterov=True, lr_inside=False, impl=i)),
    "Adagrad": (lambda g: torch.optim.Adagrad(g, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
                lambda g, i: O.Adagrad(g, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, eps=1e-10,
                                       eps_mode="outside", impl=i)),
    "Adam": (lambda g: torch.optim.Adam(g, lr=0.01), lambda g, i: O.Adam(g, lr=0.01, impl=i)),
    "AdamW": (lambda g: torch.optim.AdamW(g, lr=0.01, weight_decay=0.1),
              lambda g, i: O.AdamW(g, lr=0.01, weight_decay=0.1, impl=i)),
    "RMSprop": (lambda g: torch.optim.RMSprop(g, lr=0.01, momentum=0.5),
                lambda g, i: O.RMSprop(g, lr=0.01, alpha=0.99, momentum=0.5, eps_mode="outside", impl=i)),
}


def momentum_of(group):
    return group.get("betas", group.get("momentum"))


def history(make_opt, make_sched, steps=30, step_sched=None):
    """Train ``steps`` steps; the lr, momentum and get_last_lr() after each scheduler step, and the parameters."""
    m = model()
    opt = make_opt(groups(m))
    sched = make_sched(opt)
    lrs, moms, last = [], [], []
    for t in range(steps):
        train_step(m, opt, t)
        (step_sched or (lambda s, t: s.step()))(sched, t)
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append([momentum_of(g) for g in opt.param_groups])
        last.append(sched.get_last_lr() if hasattr(sched, "get_last_lr") else None)
    return lrs, moms, last, [p.detach().clone() for p in m.parameters()]


def assert_same_run(oname, impl, make_sched, step_sched=None, steps=30):
    theirs_opt, ours_opt = OPTS[oname]
    theirs = history(theirs_opt, make_sched, steps, step_sched)
    ours = history(lambda g: ours_opt(g, impl), make_sched, steps, step_sched)
    assert ours[0] == theirs[0]  # lrs
    assert ours[1] == theirs[1]  # momentum / betas
    assert ours[2] == theirs[2]  # get_last_lr()
    gap = max((a - b).abs().max().item() for a, b in zip(theirs[3], ours[3]))
    assert gap <= (0 if impl == "foreach" and oname in BITWISE else TOL)
    assert max((a - b).abs().max().item() for a, b in zip(theirs[3], model().parameters())) > 1e-3
    return theirs


def plateau_metric(sched, t):
    sched.step([1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8][t % 10])


LR_SCHEDULERS = {
    "LambdaLR": lambda o: L.LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1 / (1 + e), lambda e: 1.0]),
    "MultiplicativeLR": lambda o: L.MultiplicativeLR(o, lambda e: 0.95),
    "StepLR": lambda o: L.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda o: L.MultiStepLR(o, milestones=[5, 12, 12, 20], gamma=0.3),
    "ConstantLR": lambda o: L.ConstantLR(o, factor=0.25, total_iters=6),
    "LinearLR": lambda o: L.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=10),
    "ExponentialLR": lambda o: L.ExponentialLR(o, gamma=0.93),
    "PolynomialLR": lambda o: L.PolynomialLR(o, total_iters=25, power=2.0),
    "CosineAnnealingLR": lambda o: L.CosineAnnealingLR(o, T_max=10, eta_min=1e-4),
    "CosineAnnealingWarmRestarts": lambda o: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-4),
    "ChainedScheduler": lambda o: L.ChainedScheduler([L.ConstantLR(o, 0.5, 4), L.ExponentialLR(o, 0.9)]),
    "SequentialLR": lambda o: L.SequentialLR(
        o, [L.LinearLR(o, 0.1, total_iters=5), L.CosineAnnealingLR(o, 20)], milestones=[5]),
    "SWALR-cos": lambda o: SWALR(o, swa_lr=[0.02, 0.01, 0.005], anneal_epochs=5, anneal_strategy="cos"),
    "SWALR-linear": lambda o: SWALR(o, swa_lr=0.02, anneal_epochs=4, anneal_strategy="linear"),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("oname", ["SGDm", "Adam", "RMSprop", "Adagrad"])
@pytest.mark.parametrize("sname", sorted(LR_SCHEDULERS))
def test_every_lr_scheduler_drives_descend_as_torch(sname, oname, impl):
    lrs = assert_same_run(oname, impl, LR_SCHEDULERS[sname])[0]
    assert len({tuple(x) for x in lrs}) > 1  # the lr did change


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("oname", ["SGDm", "Adam"])
def test_reduce_lr_on_plateau(oname, impl):
    lrs = assert_same_run(oname, impl, lambda o: L.ReduceLROnPlateau(
        o, factor=0.5, patience=1, threshold=0.01, cooldown=1, min_lr=[1e-3, 0, 2e-3]), plateau_metric)[0]
    assert lrs[0] == [0.02, 0.01, 0.05 if oname == "SGDm" else 0.01] and lrs[-1] != lrs[0]
    assert min(x[0] for x in lrs) == 1e-3  # the floor of group 0 was reached


def test_warm_restarts_stepped_with_fractional_epochs():
    """CosineAnnealingWarmRestarts' documented per-batch use: step(epoch + i / iters)."""
    assert_same_run("SGDm", "foreach", LR_SCHEDULERS["CosineAnnealingWarmRestarts"],
                    lambda s, t: s.step(t / 4), steps=24)


CYCLIC_MODES = {
    "triangular": dict(mode="triangular"),
    "triangular2": dict(mode="triangular2", base_momentum=0.7, max_momentum=0.95),
    "exp_range": dict(mode="exp_range", gamma=0.97, step_size_down=5),
    "scale_fn": dict(scale_fn=lambda x: 0.5 ** x, scale_mode="iterations"),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cycle_momentum", [True, False])
@pytest.mark.parametrize("oname", ["Momentum", "Nesterov", "SGD", "SGDm", "Adam", "AdamW", "RMSprop"])
@pytest.mark.parametrize("mode", sorted(CYCLIC_MODES))
def test_cyclic_lr_every_mode(mode, oname, cycle_momentum, impl):
    kw = CYCLIC_MODES[mode]
    _, moms, _, _ = assert_same_run(oname, impl, lambda o: L.CyclicLR(
        o, base_lr=[0.001, 0.002, 0.003], max_lr=0.05, step_size_up=4, cycle_momentum=cycle_momentum, **kw))
    assert (len({str(x) for x in moms}) > 1) == cycle_momentum


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("oname", ["Momentum", "Nesterov", "SGD", "SGDm", "Adam", "AdamW", "RMSprop"])
@pytest.mark.parametrize("kw", [dict(three_phase=False), dict(three_phase=True, anneal_strategy="linear"),
                                dict(cycle_momentum=False, div_factor=10.0, final_div_factor=100.0)],
                         ids=["two-phase", "three-phase", "no-momentum"])
def test_one_cycle_lr(kw, oname, impl):
    _, moms, _, _ = assert_same_run(oname, impl, lambda o: L.OneCycleLR(
        o, max_lr=[0.05, 0.04, 0.03], epochs=3, steps_per_epoch=10, **kw))
    assert (len({str(x) for x in moms}) > 1) == kw.get("cycle_momentum", True)


def test_two_torch_schedulers_compose_as_on_torchs_optimizer():
    """StepLR and ExponentialLR on one optimizer multiply (torch's chaining)."""
    lrs = assert_same_run("SGDm", "foreach", lambda o: (L.StepLR(o, 3, 0.5), L.ExponentialLR(o, 0.9)),
                          lambda s, t: [x.step() for x in s])[0]
    assert lrs[2][0] == pytest.approx(0.02 * 0.5 * 0.9 ** 3, rel=1e-15)


# ------------------------------------------------------------------ resume, get_last_lr, last_epoch
RESUMED = {
    "OneCycleLR": lambda o: L.OneCycleLR(o, 0.05, total_steps=30),
    "CyclicLR": lambda o: L.CyclicLR(o, 0.001, 0.05, 4, mode="triangular2"),
    "SequentialLR": LR_SCHEDULERS["SequentialLR"],
    "ChainedScheduler": LR_SCHEDULERS["ChainedScheduler"],
    "ReduceLROnPlateau": lambda o: L.ReduceLROnPlateau(o, factor=0.5, patience=1),
    "SWALR": LR_SCHEDULERS["SWALR-cos"],
}


@pytest.mark.parametrize("oname", ["SGDm", "Adam"])
@pytest.mark.parametrize("sname", sorted(RESUMED))
def test_scheduler_and_optimizer_state_resume_exactly(sname, oname):
    """Save both state dicts at step 12 (through torch.save), rebuild both, load, run to 30:
    the run is bitwise the uninterrupted one, lrs and get_last_lr() included."""
    make_opt, make_sched = (lambda g: OPTS[oname][1](g, "foreach")), RESUMED[sname]
    step_sched = plateau_metric if sname == "ReduceLROnPlateau" else (lambda s, t: s.step())
    ref = history(make_opt, make_sched, 30, step_sched)
    m = model()
    opt = make_opt(groups(m))
    sched = make_sched(opt)
    for t in range(12):
        train_step(m, opt, t)
        step_sched(sched, t)
    buf = io.BytesIO()
    torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    m = model()
    m.load_state_dict(saved["model"])
    opt = make_opt(groups(m))
    sched = make_sched(opt)
    opt.load_state_dict(saved["opt"])
    sched.load_state_dict(saved["sched"])
    for t in range(12, 30):
        train_step(m, opt, t)
        step_sched(sched, t)
    assert [g["lr"] for g in opt.param_groups] == ref[0][-1] == sched.get_last_lr()
    assert [momentum_of(g) for g in opt.param_groups] == ref[1][-1]
    assert all(torch.equal(a, b) for a, b in zip(ref[3], m.parameters()))


@pytest.mark.parametrize("oname", ["Adam", "AdamW", "SGDm", "Momentum", "RMSprop"])
@pytest.mark.parametrize("direction", ["torch-to-descend", "descend-to-torch"])
def test_resume_across_libraries_under_one_cycle(direction, oname):
    """Stop a OneCycleLR run at step 12 under one library, go on under the other (descend's state
    in torch's format one way, torch's state loaded by descend the other): torch's own run, exactly."""
    make_sched = lambda o: L.OneCycleLR(o, [0.05, 0.04, 0.03], total_steps=30)  # noqa: E731
    theirs_opt, ours_opt = OPTS[oname]
    first, then = (theirs_opt, ours_opt) if direction == "torch-to-descend" else (ours_opt, theirs_opt)
    ref = history(theirs_opt, make_sched, 30)
    m = model()
    opt = first(groups(m), "foreach") if first is ours_opt else first(groups(m))
    sched = make_sched(opt)
    for t in range(12):
        train_step(m, opt, t)
        sched.step()
    saved = opt.state_dict(format="torch") if first is ours_opt else opt.state_dict()
    assert "descend" not in saved
    m2 = model()
    m2.load_state_dict(m.state_dict())
    opt2 = then(groups(m2), "foreach") if then is ours_opt else then(groups(m2))
    sched2 = make_sched(opt2)
    opt2.load_state_dict(saved)
    sched2.load_state_dict(sched.state_dict())
    for t in range(12, 30):
        train_step(m2, opt2, t)
        sched2.step()
    assert [g["lr"] for g in opt2.param_groups] == ref[0][-1] == sched2.get_last_lr()
    assert [momentum_of(g) for g in opt2.param_groups] == ref[1][-1]
    gap = max((a - b).abs().max().item() for a, b in zip(ref[3], m2.parameters()))
    assert gap <= (0 if oname in BITWISE else TOL)


@pytest.mark.parametrize("make", [lambda o, e: L.StepLR(o, 3, 0.5, last_epoch=e),
                                  lambda o, e: L.CosineAnnealingLR(o, 10, last_epoch=e),
                                  lambda o, e: L.CyclicLR(o, 0.001, 0.05, 4, last_epoch=e)],
                         ids=["StepLR", "CosineAnnealingLR", "CyclicLR"])
@pytest.mark.parametrize("oname", ["SGDm", "Adam"])
def test_last_epoch_needs_initial_lr_as_in_torch(make, oname):
    theirs_opt, ours_opt = OPTS[oname]
    raised = []
    for opt in (theirs_opt(groups(model())), ours_opt(groups(model()), "foreach")):
        with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in param_groups\[0\]") as err:
            make(opt, 5)
        raised.append(str(err.value))
    assert raised[0] == raised[1]

    def with_initial_lr(g):
        for group in g:
            group["initial_lr"] = 2 * group.get("lr", 0.03)
        return g

    lrs = history(lambda g: ours_opt(g, "foreach"), lambda o: make(o, -1), 12)[0]  # a fresh start
    theirs = history(lambda g: theirs_opt(with_initial_lr(g)), lambda o: make(o, 5), 12)
    ours = history(lambda g: ours_opt(with_initial_lr(g), "foreach"), lambda o: make(o, 5), 12)
    assert ours[0] == theirs[0] != lrs and ours[1] == theirs[1] and ours[2] == theirs[2]
    assert max((a - b).abs().max().item() for a, b in zip(theirs[3], ours[3])) <= TOL


# ------------------------------------------------------------------ swa_utils
class BatchNet(nn.Module):
    def __init__(self):
        super().__init__()
        # (no bias before the BatchNorm: its gradient would be rounding noise, which Adam's g / sqrt(v)
        # scales up to steps of lr, and the two runs' noise differs in the last bit)
        self.a, self.bn, self.b = nn.Linear(4, 6, bias=False), nn.BatchNorm1d(6), nn.Linear(6, 2)

    def forward(self, x):
        return self.b(torch.relu(self.bn(self.a(x))))


@pytest.mark.parametrize("oname", ["SGDm", "Adam"])
def test_swa_averaged_model_and_update_bn(oname):
    """The SWA recipe: cosine for 5 epochs, then SWALR with AveragedModel.update_parameters each
    epoch, then update_bn: the averaged weights and BatchNorm statistics equal torch's."""
    loader = [batch(t) for t in range(6)]
    out = []
    for make in (OPTS[oname][0], lambda g: OPTS[oname][1](g, "foreach")):
        torch.manual_seed(0)
        net = BatchNet().double()
        opt = make([{"params": net.a.parameters(), "lr": 0.02}, {"params": net.bn.parameters()},
                    {"params": net.b.parameters(), "lr": 0.01}])
        swa, cosine, swa_sched = AveragedModel(net), L.CosineAnnealingLR(opt, 10), SWALR(opt, 0.01, anneal_epochs=3)
        lrs = []
        for epoch in range(12):
            for x, y in loader:
                opt.zero_grad()
                ((net(x) - y) ** 2).mean().backward()
                opt.step()
            if epoch >= 5:
                swa.update_parameters(net)
                swa_sched.step()
            else:
                cosine.step()
            lrs.append([g["lr"] for g in opt.param_groups])
        update_bn([x for x, _ in loader], swa)
        assert int(swa.n_averaged) == 7 and int(swa.module.bn.num_batches_tracked) == len(loader)
        out.append((lrs, [*swa.parameters(), *swa.buffers()]))
    assert out[0][0] == out[1][0]
    gap = max((a - b).abs().max().item() for a, b in zip(out[0][1], out[1][1]))
    assert gap <= (0 if oname in BITWISE else TOL)


# ------------------------------------------------------------------ the compiled path
@pytest.mark.parametrize("oname, make", [
    ("Adam", lambda o: L.OneCycleLR(o, [0.05, 0.04, 0.03], total_steps=20, three_phase=True)),
    ("SGDm", lambda o: L.CyclicLR(o, 0.001, 0.05, 3, mode="exp_range", gamma=0.9)),
], ids=["Adam-OneCycleLR", "SGDm-CyclicLR"])
def test_fused_follows_the_cycled_lr_and_momentum_without_recompiling(oname, make):
    theirs_opt, ours_opt = OPTS[oname]
    theirs = history(theirs_opt, make, 20)
    counts = []
    ours = history(lambda g: ours_opt(g, "fused"), make, 20,
                   lambda s, t: (s.step(), counts.append(fused.compile_count())))
    assert ours[0] == theirs[0] and ours[1] == theirs[1] and len({str(x) for x in ours[1]}) > 1
    assert counts[1:] == [counts[0]] * 19  # lr and momentum are 0-d tensors to the compiled step
    assert max((a - b).abs().max().item() for a, b in zip(theirs[3], ours[3])) <= TOL


# ------------------------------------------------------------------ a torch scheduler beside descend's Scheduler
def adam_with(make_torch):
    m = model()
    opt = O.Adam(groups(m), lr=0.01)
    return m, opt, make_torch(opt)


@pytest.mark.parametrize("first", ["torch", "descend"])
def test_a_torch_scheduler_and_descends_scheduler_on_one_lr_are_refused(first):
    """torch composes two of its schedulers; descend's Scheduler sets schedule(t) outright, so the one
    stepped last would silently win. Refused, whichever was built first."""
    m, opt, _ = adam_with(lambda o: None)
    match = (r"a torch.optim.lr_scheduler scheduler was built on this Adam and sets its 'lr'.*"
             r"Drive 'lr' with one of them")
    if first == "torch":
        L.ExponentialLR(opt, 0.9)
        with pytest.raises(ValueError, match=match):
            S.Scheduler(opt, S.cosine(0.02, 20))
        return
    ours = S.Scheduler(opt, S.cosine(0.02, 20))
    theirs = L.ExponentialLR(opt, 0.9)
    train_step(m, opt, 0)
    theirs.step()
    with pytest.raises(ValueError, match=match):
        ours.step()
    assert ours.t == 0 and [g["lr"] for g in opt.param_groups] == theirs.get_last_lr()  # nothing moved


def test_descends_scheduler_on_a_key_the_torch_scheduler_leaves_alone_is_allowed():
    m, opt, theirs = adam_with(lambda o: L.OneCycleLR(o, 0.05, total_steps=10, cycle_momentum=False))
    decay = S.Scheduler(opt, S.cosine(0.1, 10), key="weight_decay")
    beta1 = S.Scheduler(opt, S.cosine(0.9, 10), key="beta1")  # OneCycleLR does not cycle it here
    for t in range(3):
        train_step(m, opt, t)
        theirs.step()
        decay.step()
        beta1.step()
    assert [g["weight_decay"] for g in opt.param_groups] == [S.cosine(0.1, 10)(3)] * 3
    assert opt.param_groups[0]["betas"][0] == S.cosine(0.9, 10)(3)
    assert theirs.get_last_lr() == [g["lr"] for g in opt.param_groups]
    _, opt, _ = adam_with(lambda o: L.OneCycleLR(o, 0.05, total_steps=10))  # cycles beta1
    with pytest.raises(ValueError, match="sets its 'beta1'"):
        S.Scheduler(opt, S.cosine(0.9, 10), key="beta1")
    torch_adam = torch.optim.Adam(groups(model()))  # key="beta1" drives torch's betas[0]
    L.OneCycleLR(torch_adam, 0.05, total_steps=10)
    with pytest.raises(ValueError, match="built on this Adam and sets its 'beta1'"):
        S.Scheduler(torch_adam, S.cosine(0.9, 10), key="beta1")
    momentum = O.Momentum(groups(model()), momentum=0.9)
    L.CyclicLR(momentum, 0.001, 0.05)
    with pytest.raises(ValueError, match="sets its 'beta'"):  # Momentum's name of torch's momentum
        S.Scheduler(momentum, S.cosine(0.9, 10), key="beta")
    rmsprop = O.RMSprop(groups(model()), momentum=0.5)
    L.CyclicLR(rmsprop, 0.001, 0.05)
    S.Scheduler(rmsprop, S.cosine(0.9, 10), key="beta")  # RMSprop's beta is torch's alpha: not cycled
