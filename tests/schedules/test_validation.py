"""Bad input raises ValueError naming the argument and the allowed range; schedules are plain values."""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from descend import schedules as ds

BAD = [
    # negative or zero steps
    (lambda: ds.cosine(0.1, 0), r"steps must be an integer >= 1, got 0"),
    (lambda: ds.cosine(0.1, -5), r"steps must be an integer >= 1, got -5"),
    (lambda: ds.linear(0.1, 0), r"steps must be an integer >= 1, got 0"),
    (lambda: ds.polynomial(0.1, -1), r"steps must be an integer >= 1, got -1"),
    (lambda: ds.one_cycle(0.1, 0), r"steps must be an integer >= 1, got 0"),
    (lambda: ds.step(0.1, 0), r"every must be an integer >= 1, got 0"),
    (lambda: ds.cosine_restarts(0.1, 0), r"period must be an integer >= 1, got 0"),
    (lambda: ds.cyclic(0.1, 1.0, 0), r"steps_up must be an integer >= 1, got 0"),
    (lambda: ds.warmup(ds.constant(0.1), 0), r"steps must be an integer >= 1, got 0"),
    (lambda: ds.cosine(0.1, 2.5), r"steps must be an integer >= 1, got 2.5"),
    (lambda: ds.cosine(0.1, 100)(-1), r"step must be an integer >= 0, got -1"),
    # gamma outside its range
    (lambda: ds.step(0.1, 10, gamma=1.5), r"gamma must be in \(0, 1\], got 1.5"),
    (lambda: ds.step(0.1, 10, gamma=0.0), r"gamma must be in \(0, 1\], got 0.0"),
    (lambda: ds.exponential(0.1, -0.9), r"gamma must be in \(0, 1\], got -0.9"),
    (lambda: ds.multi_step(0.1, [10], gamma=2), r"gamma must be in \(0, 1\], got 2"),
    (lambda: ds.cyclic(0.1, 1.0, 10, mode="exp_range", gamma=1.01), r"gamma must be in \(0, 1\], got 1.01"),
    (lambda: ds.plateau(ds.constant(0.1), factor=1.0), r"factor must be in \(0, 1\), got 1.0"),
    # milestones not increasing
    (lambda: ds.multi_step(0.1, [30, 20]), r"milestones must be strictly increasing integers >= 1, got \[30, 20\]"),
    (lambda: ds.multi_step(0.1, [30, 30]), r"milestones must be strictly increasing"),
    (lambda: ds.multi_step(0.1, [0, 30]), r"milestones must be strictly increasing integers >= 1"),
    (lambda: ds.join([ds.constant(1), ds.constant(2), ds.constant(3)], [50, 10]), r"boundaries must be strictly increasing"),
    (lambda: ds.piecewise(0.1, [10, 5], [0.1, 0.2]), r"boundaries must be strictly increasing"),
    # other ranges
    (lambda: ds.constant(-0.1), r"lr must be in \[0, inf\), got -0.1"),
    (lambda: ds.cosine(math.nan, 10), r"lr must be a finite number in \[0, inf\), got nan"),
    (lambda: ds.cosine(0.1, 10, final_lr=-1), r"final_lr must be in \[0, inf\), got -1"),
    (lambda: ds.inverse_time(0.1, -1.0), r"rate must be in \[0, inf\), got -1.0"),
    (lambda: ds.inverse_sqrt(0.1, 0.0), r"k must be in \(0, inf\), got 0.0"),
    (lambda: ds.polynomial(0.1, 10, power=0), r"power must be in \(0, inf\), got 0"),
    (lambda: ds.cosine_restarts(0.1, 10, mult=0), r"mult must be an integer >= 1, got 0"),
    (lambda: ds.one_cycle(0.1, 100, pct_start=1.0), r"pct_start must be in \(0, 1\), got 1.0"),
    (lambda: ds.one_cycle(0.1, 5, pct_start=0.1), r"pct_start \* steps must leave at least one step"),
    (lambda: ds.one_cycle(0.1, 100, anneal="cosine"), r"anneal must be one of 'cos', 'linear', got 'cosine'"),
    (lambda: ds.cyclic(0.1, 0.05, 10), r"max_lr must be in \[0.1, inf\), got 0.05"),
    (lambda: ds.cyclic(0.1, 1.0, 10, mode="sine"), r"mode must be one of 'triangular'"),
    (lambda: ds.piecewise(0.1, [10, 20], [0.1]), r"values must have one entry per boundary \(2\), got 1"),
    (lambda: ds.warmup(ds.constant(0.1), 10, start=0.2), r"start must be in \[0, 0.1\], got 0.2"),
    (lambda: ds.warmup(ds.constant(0.1), 10, shape="quadratic"), r"shape must be one of 'linear'"),
    (lambda: ds.warmup(lambda n: 0.1, 10), r"schedule must be a descend schedule"),
    (lambda: ds.join([ds.constant(1), ds.constant(2)], [10, 20]), r"boundaries must have len\(schedules\) - 1 = 1"),
    (lambda: ds.join([], []), r"schedules must hold at least one schedule"),
    (lambda: ds.plateau(ds.constant(0.1), mode="lowest"), r"mode must be one of 'min', 'max', got 'lowest'"),
    (lambda: ds.plateau(ds.constant(0.1), patience=-1), r"patience must be an integer >= 0, got -1"),
    (lambda: ds.plateau(ds.constant(0.1), threshold_mode="ratio"), r"threshold_mode must be one of 'rel', 'abs'"),
    (lambda: ds.warmup(ds.plateau(ds.constant(0.1)), 10), r"plateau\(...\) must be the outermost schedule"),
    (lambda: 0.5 * ds.plateau(ds.constant(0.1)), r"plateau\(...\) must be the outermost schedule"),
    (lambda: ds.constant(0.1) * -2.0, r"factor must be in \[0, inf\), got -2.0"),
    (lambda: ds.scale_lr(0.1, 0, 64), r"base_batch_size must be an integer >= 1, got 0"),
    (lambda: ds.scale_lr(-0.1, 32, 64), r"base_lr must be in \[0, inf\), got -0.1"),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_names_argument_and_range(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


ALL = [
    ds.constant(0.1),
    ds.step(0.1, 30),
    ds.multi_step(0.1, [30, 60, 90], gamma=0.5),
    ds.exponential(0.1, 0.95),
    ds.inverse_time(0.2, 1.0, every=2, staircase=True),
    ds.inverse_sqrt(0.1, 4.0),
    ds.linear(0.1, 100, final_lr=0.01),
    ds.polynomial(0.1, 100, power=2.0),
    ds.cosine(0.1, 100, final_lr=0.001),
    ds.cosine_restarts(0.1, 10, mult=2),
    ds.one_cycle(0.1, 100, three_phase=True),
    ds.cyclic(0.01, 0.1, 10, mode="triangular2"),
    ds.piecewise(0.1, [10, 20], [0.05, 0.01]),
    ds.warmup(ds.cosine(0.1, 90), 10, start=0.01, shape="cosine"),
    ds.join([ds.constant(0.1), ds.exponential(0.1, 0.9)], [5]),
    0.5 * ds.cosine(0.1, 100),
]


@pytest.mark.parametrize("s", ALL, ids=repr)
def test_repr_rebuilds_and_pickle_roundtrips(s) -> None:
    namespace = {name: getattr(ds, name) for name in ds.__all__}
    rebuilt = eval(repr(s), namespace)  # the repr is the call that builds it
    unpickled = pickle.loads(pickle.dumps(s))
    assert rebuilt == s and unpickled == s
    assert [rebuilt(n) for n in range(120)] == [s(n) for n in range(120)]
    assert [unpickled(n) for n in range(120)] == [s(n) for n in range(120)]
    assert isinstance(s(3), float)


def test_schedules_are_frozen_and_hashable() -> None:
    s = ds.cosine(0.1, 100)
    with pytest.raises(AttributeError):
        s.lr = 0.2  # type: ignore[misc]
    assert hash(s) == hash(ds.cosine(0.1, 100))
    assert ds.multi_step(0.1, [30, 60]).milestones == (30, 60)


def test_repr_shows_only_non_default_keywords() -> None:
    assert repr(ds.cosine(0.1, 1000)) == "cosine(0.1, 1000)"
    assert repr(ds.warmup(ds.cosine(0.1, 900), 100, start=0.01)) == "warmup(cosine(0.1, 900), 100, start=0.01)"
    assert repr(0.5 * ds.step(1, 10)) == "0.5 * step(1.0, 10)"
    assert repr(ds.plateau(ds.constant(0.1), patience=3)) == "plateau(constant(0.1), patience=3)"


def test_scaling_by_a_constant() -> None:
    s = ds.cosine(0.1, 100)
    half = 0.5 * s
    assert half.base_lr == pytest.approx(0.05)
    assert [half(n) for n in range(101)] == [0.5 * s(n) for n in range(101)]
    assert (s * 2)(0) == pytest.approx(0.2)
    with pytest.raises(TypeError):
        s * s  # noqa: B018


def test_plateau_state_roundtrip_and_copy() -> None:
    p = ds.plateau(ds.constant(1.0), patience=0, factor=0.5)
    for m in (1.0, 2.0, 3.0):
        p.observe(m)
    assert p(0) == 0.25
    q = copy.deepcopy(p)
    assert q(0) == 0.25 and q.state_dict() == p.state_dict()
    fresh = ds.plateau(ds.constant(1.0), patience=0, factor=0.5)
    fresh.load_state_dict(p.state_dict())
    assert fresh(7) == 0.25 and fresh.num_bad == p.num_bad and fresh.best == 1.0
    with pytest.raises(ValueError, match="plateau state must have keys"):
        fresh.load_state_dict({"scale": 1.0})
    p.reset()
    assert p(0) == 1.0 and p.observations == 0
