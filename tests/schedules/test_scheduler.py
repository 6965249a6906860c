"""Scheduler: applying schedules to torch optimizers; resuming (test 4); descend vs torch.optim (test 5)."""

from __future__ import annotations

import io
import pickle
import warnings

import pytest
import torch

from descend import schedules as ds

STEPS = 1000
STOP = 500

# Fresh schedule objects each call (plateau is stateful).
FACTORIES = {
    "constant": lambda: ds.constant(0.1),
    "step": lambda: ds.step(0.1, 30),
    "multi_step": lambda: ds.multi_step(0.1, [300, 600, 900]),
    "exponential": lambda: ds.exponential(0.1, 0.995),
    "inverse_time": lambda: ds.inverse_time(0.1, 0.01, every=5, staircase=True),
    "inverse_sqrt": lambda: ds.inverse_sqrt(0.1, 10.0),
    "linear": lambda: ds.linear(0.1, 800, final_lr=0.01),
    "polynomial": lambda: ds.polynomial(0.1, 900, power=2.0),
    "cosine": lambda: ds.cosine(0.1, 1000),
    "cosine_restarts": lambda: ds.cosine_restarts(0.1, 50, mult=2),
    "one_cycle": lambda: ds.one_cycle(0.1, 1000),
    "cyclic": lambda: ds.cyclic(0.01, 0.1, 100, mode="triangular2"),
    "piecewise": lambda: ds.piecewise(0.1, [250, 499, 501], [0.05, 0.02, 0.01]),
    "warmup": lambda: ds.warmup(ds.cosine(0.1, 900), 100),
    "join": lambda: ds.join([ds.linear(0.0, 100, 0.1), ds.exponential(0.1, 0.99)], [100]),
    "scaled": lambda: 2.0 * ds.cosine(0.05, 1000),
    "plateau": lambda: ds.plateau(ds.constant(0.1), patience=30, factor=0.8, cooldown=2),
    "plateau(warmup(cosine))": lambda: ds.plateau(
        ds.warmup(ds.cosine(0.1, 950), 50), patience=3, factor=0.7, min_lr=0.01
    ),
}


WEIGHTS = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)


def metric(i: int) -> float:
    """A noisy loss that improves in jumps every 100 steps, so plateaus reduce the lr on both sides of 500."""
    return 1.0 / (1 + i // 100) + 0.001 * ((i * 7919) % 13)


def make_problem(optimizer_cls=torch.optim.SGD, lrs=(0.1,), **kwargs):
    torch.manual_seed(0)
    params = [torch.randn(3, dtype=torch.float64, requires_grad=True) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    return params, optimizer_cls(groups, **kwargs)


def train(opt, sched, params, start: int, stop: int, lrs: list) -> None:
    """Iterations start..stop-1: record the lrs used, take a step on a quadratic, step the schedule."""
    for i in range(start, stop):
        lrs.append([g["lr"] for g in opt.param_groups])
        with torch.no_grad():  # gradient of sum(w * (p - 1)^2), w = 1, 2, 3
            for p in params:
                p.grad = 2.0 * (p - 1.0) * WEIGHTS
        opt.step()
        if sched.needs_metric:
            sched.step(metric(i))
        else:
            sched.step()


def checkpoint(opt, sched) -> bytes:
    buf = io.BytesIO()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, buf)
    return buf.getvalue()


ORDERS = ("scheduler, optimizer", "optimizer, scheduler", "optimizer before building the Scheduler")


def run_resumed(make_schedule, order: str, lrs=(0.1,), **scheduler_kwargs):
    params, opt = make_problem(lrs=lrs, momentum=0.9)
    sched = ds.Scheduler(opt, make_schedule(), **scheduler_kwargs)
    seen: list = []
    train(opt, sched, params, 0, STOP, seen)
    blob = checkpoint(opt, sched)
    saved = [p.detach().clone() for p in params]

    # a new process: same construction as a fresh run, then the checkpoint
    params, opt = make_problem(lrs=lrs, momentum=0.9)
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)
    state = torch.load(io.BytesIO(blob))
    if order == ORDERS[2]:  # the group lrs are the saved (decayed) ones when the Scheduler is built
        opt.load_state_dict(state["optimizer"])
    sched = ds.Scheduler(opt, make_schedule(), **scheduler_kwargs)
    if order == ORDERS[0]:
        sched.load_state_dict(state["scheduler"])
        opt.load_state_dict(state["optimizer"])
    else:
        if order == ORDERS[1]:
            opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    train(opt, sched, params, STOP, STEPS, seen)
    return seen, params


def run_straight(make_schedule, lrs=(0.1,), **scheduler_kwargs):
    params, opt = make_problem(lrs=lrs, momentum=0.9)
    sched = ds.Scheduler(opt, make_schedule(), **scheduler_kwargs)
    seen: list = []
    train(opt, sched, params, 0, STEPS, seen)
    return seen, params


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.filterwarnings("ignore:Scheduler scales the schedule")  # (relative scaling on purpose)
def test_resume_from_state_dict_continues_exactly(name) -> None:
    make = FACTORIES[name]
    expected, p_expected = run_straight(make)
    for order in ORDERS:
        got, p_got = run_resumed(make, order)
        assert got == expected  # exact, every one of the 1000 lrs
        for a, b in zip(p_got, p_expected):
            assert torch.equal(a, b)
    values = [lr[0] for lr in expected]
    assert len(set(values[STOP:])) > 1 or name == "constant"


def test_plateau_reduces_on_both_sides_of_the_checkpoint() -> None:
    seen, _ = run_straight(FACTORIES["plateau"])
    values = [lr[0] for lr in seen]
    assert min(values[:STOP]) < 0.1 and min(values[STOP:]) < min(values[:STOP])


def test_resume_with_groups_relative_and_per_group_lists() -> None:
    lrs = (0.1, 0.02)
    expected, _ = run_straight(FACTORIES["plateau(warmup(cosine))"], lrs=lrs)
    got, _ = run_resumed(FACTORIES["plateau(warmup(cosine))"], ORDERS[2], lrs=lrs)
    assert got == expected

    def per_group():
        return [ds.cosine(0.1, 1000), ds.plateau(ds.step(0.02, 100), patience=2)]

    expected, _ = run_straight(per_group, lrs=lrs, unit="epoch")
    got, _ = run_resumed(per_group, ORDERS[1], lrs=lrs, unit="epoch")
    assert got == expected
    assert expected[STOP][0] == pytest.approx(ds.cosine(0.1, 1000)(STOP))


def test_sets_schedule_at_construction_and_after_each_step() -> None:
    p = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    s = ds.warmup(ds.cosine(0.1, 90), 10)
    sched = ds.Scheduler(opt, s)
    assert opt.param_groups[0]["lr"] == s(0) == 0.0
    for t in range(1, 30):
        sched.step()
        assert sched.t == t
        assert opt.param_groups[0]["lr"] == s(t)
        assert sched.get_last_lr() == sched.last_lr == [s(t)]


def test_one_schedule_is_relative_to_each_group_base_lr() -> None:
    a, b, c = (torch.zeros(1, requires_grad=True) for _ in range(3))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}, {"params": [c], "lr": 0.0}], lr=0.1)
    s = ds.cosine(0.1, 100)
    sched = ds.Scheduler(opt, s)
    for t in range(101):
        lr0, lr1, lr2 = (g["lr"] for g in opt.param_groups)
        assert lr0 == s(t)  # a group at the schedule's base lr gets schedule(t) exactly
        assert lr1 == pytest.approx(s(t) / 10, rel=1e-15, abs=0)
        assert lr2 == 0.0
        sched.step()
    assert sched.base_lrs == [0.1, 0.01, 0.0]

    absolute = ds.Scheduler(opt, ds.constant(0.3), relative=False)
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.3, 0.3]
    assert absolute.state_dict()["relative"] is False


def test_one_schedule_per_group_is_absolute() -> None:
    a, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 1.0}])
    s0, s1 = ds.exponential(0.1, 0.9), ds.constant(0.005)
    sched = ds.Scheduler(opt, [s0, s1])
    for t in range(20):
        assert [g["lr"] for g in opt.param_groups] == [s0(t), s1(t)]
        sched.step()


def test_tensor_lrs_are_updated_in_place() -> None:
    p = torch.zeros(4, 2, requires_grad=True)
    lr = torch.tensor(0.1, dtype=torch.float64)
    opt = torch.optim.SGD([p], lr=lr)
    sched = ds.Scheduler(opt, ds.step(0.1, 2, gamma=0.5))
    group_lr = opt.param_groups[0]["lr"]
    for _ in range(4):
        sched.step()
    assert opt.param_groups[0]["lr"] is group_lr
    assert group_lr.item() == pytest.approx(0.025)
    assert isinstance(sched.last_lr[0], torch.Tensor) and sched.last_lr[0] is not group_lr


def test_observe_without_advancing_and_metric_errors() -> None:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = ds.Scheduler(opt, ds.plateau(ds.cosine(0.1, 100), patience=0, factor=0.5))
    assert sched.needs_metric
    sched.observe(1.0)
    sched.observe(2.0)  # no improvement, patience 0: halve now, t unchanged
    assert sched.t == 0 and opt.param_groups[0]["lr"] == pytest.approx(0.05)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * ds.cosine(0.1, 100)(1))

    plain = ds.Scheduler(torch.optim.SGD([p], lr=0.1), ds.constant(0.1))
    assert not plain.needs_metric
    with pytest.raises(ValueError, match="no schedule is a plateau"):
        plain.step(0.5)
    assert plain.t == 0


def test_call_order_does_not_compound() -> None:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    s = ds.exponential(0.1, 0.5)
    sched = ds.Scheduler(opt, s)
    sched.step()
    opt.param_groups[0]["lr"] = 123.0  # someone else writes the lr
    sched.step()
    assert opt.param_groups[0]["lr"] == s(2)  # replaced, not multiplied


def test_load_state_dict_validates() -> None:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = ds.Scheduler(opt, ds.cosine(0.1, 100))
    for _ in range(5):
        sched.step()
    state = sched.state_dict()
    assert state["t"] == 5 and state["base_lrs"] == [0.1] and state["schedules"] == ["cosine(0.1, 100)"]
    assert pickle.loads(pickle.dumps(state)) == state

    with pytest.raises(ValueError, match="unit='iteration', this Scheduler has unit='epoch'"):
        ds.Scheduler(opt, ds.cosine(0.1, 100), unit="epoch").load_state_dict(state)
    with pytest.raises(ValueError, match=r"saved for schedules \['cosine\(0.1, 100\)'\]"):
        ds.Scheduler(opt, ds.cosine(0.1, 200)).load_state_dict(state)
    two = torch.optim.SGD([{"params": [p]}, {"params": [torch.zeros(1, requires_grad=True)]}], lr=0.1)
    with pytest.raises(ValueError, match="state has 1 param groups, the optimizer has 2"):
        ds.Scheduler(two, ds.cosine(0.1, 100)).load_state_dict(state)
    with pytest.raises(ValueError, match="Scheduler state must have keys"):
        ds.Scheduler(opt, ds.cosine(0.1, 100)).load_state_dict({"t": 3})
    with pytest.raises(ValueError, match="t must be an integer >= 0, got -2"):
        ds.Scheduler(opt, ds.cosine(0.1, 100)).load_state_dict({**state, "t": -2})
    with pytest.raises(ValueError, match="state has 0 plateau states, this Scheduler has 1"):
        ds.Scheduler(opt, ds.plateau(ds.cosine(0.1, 100))).load_state_dict(
            {**state, "schedules": ["plateau(cosine(0.1, 100))"]}
        )

    resumed = ds.Scheduler(opt, ds.cosine(0.1, 100))
    resumed.load_state_dict(state)
    assert resumed.t == 5 and opt.param_groups[0]["lr"] == ds.cosine(0.1, 100)(5)


def test_constructor_validates() -> None:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="unit must be one of 'iteration', 'epoch', got 'batch'"):
        ds.Scheduler(opt, ds.constant(0.1), unit="batch")
    with pytest.raises(ValueError, match=r"one per param group \(1\), got a list of 2"):
        ds.Scheduler(opt, [ds.constant(0.1), ds.constant(0.2)])
    with pytest.raises(ValueError, match="schedule must be a descend schedule"):
        ds.Scheduler(opt, lambda t: 0.1)
    with pytest.raises(ValueError, match="schedule.base_lr must be > 0"):
        ds.Scheduler(opt, ds.constant(0.0))
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        ds.Scheduler(object(), ds.constant(0.1))
    sched = ds.Scheduler(opt, [ds.constant(0.1)])  # one schedule per group: a new group has none
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})
    with pytest.raises(ValueError, match="build a new Scheduler after add_param_group"):
        sched.step()
    with pytest.raises(ValueError, match=r"key='betas' is torch's \(beta1, beta2\) tuple; drive one of them"):
        ds.Scheduler(torch.optim.Adam([p]), ds.constant(0.9), key="betas")


def test_a_group_added_mid_run_follows_the_one_schedule_from_the_current_step() -> None:
    """Progressive unfreezing: the new group's lr when added is its base, scaled by the schedule from
    the step the others are at (before, the next step raised and a new Scheduler restarted at t=0)."""
    p, q = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    schedule = ds.cosine(0.1, 100)
    sched = ds.Scheduler(opt, schedule)
    for _ in range(40):
        opt.step()
        sched.step()
    opt.add_param_group({"params": [q], "lr": 0.01})
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == schedule(41)
    assert opt.param_groups[1]["lr"] == pytest.approx(schedule(41) * 0.01 / 0.1, rel=1e-15)
    again = ds.Scheduler(torch.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.01}], lr=0.1), schedule)
    again.load_state_dict(sched.state_dict())  # the grown state resumes into a two-group run
    assert again.t == 41 and again.base_lrs == [0.1, 0.01]


def test_one_cycle_and_cyclic_scaled_to_another_lr_warn() -> None:
    """Ported torch code: OneCycleLR(max_lr=1e-2) on Adam(lr=1e-3) peaks at 1e-2; relative scaling
    would peak at 1e-3, so the Scheduler says so. The usual relative use is not warned about."""
    p = torch.zeros(1, requires_grad=True)
    with pytest.warns(UserWarning, match=r"no group's lr is that \(0.001\), so group 0 gets 0.1x.*relative=False"):
        ds.Scheduler(torch.optim.Adam([p], lr=1e-3), ds.one_cycle(1e-2, 100))
    with pytest.warns(UserWarning, match="the schedule starts at 0.01"):
        ds.Scheduler(torch.optim.SGD([p], lr=0.1), ds.cyclic(0.01, 0.1, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.Scheduler(torch.optim.Adam([p], lr=1e-2), ds.one_cycle(1e-2, 100))
        ds.Scheduler(torch.optim.Adam([p], lr=1e-3), ds.one_cycle(1e-2, 100), relative=False)
        ds.Scheduler(torch.optim.SGD([p], lr=0.1), ds.cosine(1.0, 100))  # a shape scaled to the lr
        torch_peak = ds.Scheduler(torch.optim.Adam([p], lr=1e-3), ds.one_cycle(1e-2, 100), relative=False)
    assert max(torch_peak.lr_at(t)[0] for t in range(100)) == pytest.approx(1e-2)


def test_a_schedule_written_as_a_plain_class_saves_and_resumes() -> None:
    """LambdaLR's role: a user's subclass of Schedule that is not a dataclass."""

    class Halving(ds.Schedule):
        def __init__(self, lr: float) -> None:
            self.lr = lr  # (base_lr reads the lr)

        def _lr(self, t):
            return self.lr * 0.5 ** (t // 10)

    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = ds.Scheduler(opt, Halving(0.1))
    for _ in range(25):
        sched.step()
    state = sched.state_dict()
    assert state["schedules"] == ["Halving(lr=0.1)"]
    again = ds.Scheduler(torch.optim.SGD([p], lr=0.1), Halving(0.1))
    again.load_state_dict(state)
    assert again.get_last_lr() == [0.025]


def descend_optim():
    import descend.optim as optim

    if not hasattr(optim, "SGD"):
        pytest.skip("descend.optim not available yet")
    return optim


@pytest.mark.parametrize("schedule_name", ["warmup", "cyclic", "plateau(warmup(cosine))"])
@pytest.mark.parametrize("kind", ["SGD", "SGD-momentum", "Adam"])
@pytest.mark.filterwarnings("ignore:Scheduler scales the schedule")  # (relative scaling on purpose)
def test_drives_descend_and_torch_optimizers_identically(schedule_name, kind) -> None:
    optim = descend_optim()
    if kind == "Adam" and not hasattr(optim, "Adam"):
        pytest.skip("descend.optim.Adam not available yet")
    name = kind.split("-")[0]
    kwargs = {"momentum": 0.9} if kind == "SGD-momentum" else {}
    make = FACTORIES[schedule_name]
    runs = []
    for cls in (getattr(optim, name), getattr(torch.optim, name)):
        params, opt = make_problem(cls, lrs=(0.1, 0.05), **kwargs)
        sched = ds.Scheduler(opt, make())
        seen: list = []
        train(opt, sched, params, 0, 300, seen)
        runs.append((seen, [p.detach().clone() for p in params]))
    (lrs_d, p_d), (lrs_t, p_t) = runs
    assert lrs_d == lrs_t
    for a, b in zip(p_d, p_t):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert not torch.equal(p_d[0], make_problem(lrs=(0.1, 0.05))[0][0])  # the parameters moved
