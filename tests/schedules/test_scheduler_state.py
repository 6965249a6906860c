"""A resumed Scheduler runs the schedule that was saved: loading tells apart functions of the same
repr (two lambdas) and matches reprs that differ only by an address; a plateau shared by two
Schedulers counts one metric per step."""

from __future__ import annotations

import pytest
import torch

import descend.schedules as ds
from descend.train import CheckpointError, train


class Shaped(ds.Schedule):
    """A user's schedule in LambdaLR's style: ``lr * fn(t)``."""

    def __init__(self, lr: float, fn) -> None:
        self.lr, self.fn = lr, fn

    def _lr(self, t: int) -> float:
        return self.lr * self.fn(t)


class Table:
    """Settings without a repr of their own: theirs shows an address."""

    def __init__(self, every: int) -> None:
        self.every = every


class Stepped(ds.Schedule):
    def __init__(self, lr: float, table: Table) -> None:
        self.lr, self.table = lr, table

    def _lr(self, t: int) -> float:
        return self.lr * 0.5 ** (t // self.table.every)


def decay(gamma: float):
    return lambda t: gamma**t


def scheduler(schedule: ds.Schedule) -> ds.Scheduler:
    return ds.Scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), schedule)


def saved(schedule: ds.Schedule, steps: int = 7) -> dict:
    s = scheduler(schedule)
    for _ in range(steps):
        s.step()
    return s.state_dict()


def test_two_lambdas_of_the_same_repr_are_told_apart() -> None:
    state = saved(Shaped(0.1, lambda t: 0.5**t))
    other = scheduler(Shaped(0.1, lambda t: 1.0))
    assert state["schedules"] == [repr(other.schedules[0])]  # the repr cannot tell them apart
    with pytest.raises(ValueError, match="the same repr but compute something else"):
        other.load_state_dict(state)
    assert other.t == 0 and other.get_last_lr() == [0.1]  # nothing was loaded
    again = scheduler(Shaped(0.1, lambda t: 0.5**t))  # the same code, defined anew (as in a new process)
    again.load_state_dict(state)
    assert again.t == 7 and again.get_last_lr() == [pytest.approx(0.1 * 0.5**7)]
    # a closure's values and a descend schedule's function argument count too
    with pytest.raises(ValueError, match="the same repr"):
        scheduler(Shaped(0.1, decay(0.9))).load_state_dict(saved(Shaped(0.1, decay(0.5))))
    scheduler(Shaped(0.1, decay(0.5))).load_state_dict(saved(Shaped(0.1, decay(0.5))))
    cyc = saved(ds.cyclic(0.1, 0.5, 5, scale_fn=lambda x: 1 / x))
    with pytest.raises(ValueError, match="the same repr"):
        scheduler(ds.cyclic(0.1, 0.5, 5, scale_fn=lambda x: 1.0)).load_state_dict(cyc)


def test_reprs_that_differ_only_by_an_address_match() -> None:
    first = Stepped(0.1, Table(3))  # (kept alive: its address is not reused below)
    state = saved(first)
    again = scheduler(Stepped(0.1, Table(3)))
    assert state["schedules"] != [repr(again.schedules[0])] and " at 0x" in state["schedules"][0]
    again.load_state_dict(state)  # (refused before: "saved for schedules [...<Table object at 0x...>]")
    assert again.t == 7 and again.get_last_lr() == [pytest.approx(0.1 * 0.5**2)]
    with pytest.raises(ValueError, match="the same repr but compute something else"):
        scheduler(Stepped(0.1, Table(4))).load_state_dict(state)


def test_a_resumed_training_run_refuses_another_lambda(tmp_path) -> None:
    kw = dict(optimizer="sgd", lr=0.1, batch_size=30, out=tmp_path, progress=False, plots=False, tensorboard=False)
    train("iris", "softmax", epochs=2, schedule=Shaped(0.1, lambda t: 0.9**t), **kw)
    for epochs in (2, 3):  # the same budget, and a longer one (a changed setting)
        with pytest.raises(CheckpointError, match="does not fit this run's optimizer or schedule: .*the same repr"):
            train("iris", "softmax", epochs=epochs, schedule=Shaped(0.1, lambda t: 1.0), resume=True, **kw)
    r = train("iris", "softmax", epochs=3, schedule=Shaped(0.1, lambda t: 0.9**t), resume=True, **kw)
    assert r.status == "completed" and r.history[-1]["lr"] == pytest.approx(0.1 * 0.9**9)


def test_a_plateau_shared_by_two_schedulers_counts_each_step_once() -> None:
    def run(shared: bool) -> list[float]:
        p = ds.plateau(ds.constant(0.1), patience=2)
        w = [torch.zeros(1, requires_grad=True) for _ in range(2)]
        opts = [torch.optim.SGD([x], lr=0.1) for x in w]
        scheds = [ds.Scheduler(o, p) for o in opts] if shared else [ds.Scheduler(opts[0], p)]
        lrs = []
        for step in range(8):
            if step == 4 and shared:  # saved and loaded mid-run, as on resume
                states = [s.state_dict() for s in scheds]
                for s, st in zip(scheds, states):
                    s.load_state_dict(st)
            for s in scheds:
                s.step(1.0)  # each Scheduler is fed the step's metric
            lrs.append(scheds[0].get_last_lr()[0])
            assert all(s.get_last_lr() == scheds[0].get_last_lr() for s in scheds)
        return lrs

    # one improvement, then more than patience=2 bad steps: reduced after the 4th, and again after the 7th
    expected = [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001]
    assert run(shared=False) == pytest.approx(expected)
    assert run(shared=True) == pytest.approx(expected)  # (counted twice, it was reduced at step 2)
    # a param group each, one Scheduler: also once
    p = ds.plateau(ds.constant(0.1), patience=2)
    two = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]},
                           {"params": [torch.zeros(1, requires_grad=True)]}], lr=0.1)
    s = ds.Scheduler(two, [p, p])
    for _ in range(3):
        s.step(1.0)
    assert p.observations == 3 and s.get_last_lr() == [0.1, 0.1]
