"""Test 3: properties that hold for every schedule, checked with hypothesis.

Non-negative everywhere; warmup is monotone and ends at the wrapped
schedule's first value; warm restarts are periodic; join is continuous where
the parts agree.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from descend import schedules as ds

# per test, not a global profile: other test folders keep their own settings
fast = settings(max_examples=60, deadline=None)

lrs = st.floats(0.0, 10.0, allow_nan=False)
pos_lrs = st.floats(1e-6, 10.0, allow_nan=False)
gammas = st.floats(1e-3, 1.0, allow_nan=False)
horizons = st.integers(1, 2000)
steps = st.integers(0, 10**6)


@st.composite
def increasing_ints(draw, min_size=1, max_size=5):
    gaps = draw(st.lists(st.integers(1, 500), min_size=min_size, max_size=max_size))
    return [sum(gaps[: i + 1]) for i in range(len(gaps))]


@st.composite
def one_cycles(draw):
    total = draw(st.integers(20, 5000))
    three = draw(st.booleans())
    pct = draw(st.floats(0.1, 0.45 if three else 0.9))
    return ds.one_cycle(
        draw(lrs), total, pct_start=pct, anneal=draw(st.sampled_from(["cos", "linear"])),
        div_factor=draw(st.floats(1.0, 100.0)), final_div_factor=draw(st.floats(1.0, 1e5)),
        three_phase=three,
    )


@st.composite
def cyclics(draw):
    lo = draw(lrs)
    return ds.cyclic(
        lo, lo + draw(lrs), draw(st.integers(1, 500)), draw(st.none() | st.integers(1, 500)),
        mode=draw(st.sampled_from(["triangular", "triangular2", "exp_range"])), gamma=draw(gammas),
    )


@st.composite
def piecewises(draw):
    bounds = draw(increasing_ints())
    values = draw(st.lists(lrs, min_size=len(bounds), max_size=len(bounds)))
    return ds.piecewise(draw(lrs), bounds, values)


base_schedules = st.one_of(
    st.builds(ds.constant, lrs),
    st.builds(ds.step, lrs, st.integers(1, 1000), gammas),
    st.builds(ds.multi_step, lrs, increasing_ints(), gammas),
    st.builds(ds.exponential, lrs, gammas),
    st.builds(ds.inverse_time, lrs, st.floats(0.0, 100.0), st.integers(1, 100), st.booleans()),
    st.builds(ds.inverse_sqrt, lrs, st.floats(1e-3, 1e3)),
    st.builds(ds.linear, lrs, horizons, lrs),
    st.builds(ds.polynomial, lrs, horizons, st.floats(0.1, 5.0), lrs),
    st.builds(ds.cosine, lrs, horizons, lrs),
    st.builds(ds.cosine_restarts, lrs, st.integers(1, 500), st.integers(1, 3), lrs),
    one_cycles(),
    cyclics(),
    piecewises(),
)


@st.composite
def warmups(draw, inner=base_schedules):
    s = draw(inner)
    start = draw(st.floats(0.0, 1.0)) * s(0)
    return ds.warmup(s, draw(st.integers(1, 500)), start=start,
                     shape=draw(st.sampled_from(["linear", "cosine", "constant"])))


@st.composite
def joins(draw):
    parts = draw(st.lists(base_schedules, min_size=1, max_size=4))
    gaps = draw(st.lists(st.integers(1, 500), min_size=len(parts) - 1, max_size=len(parts) - 1))
    return ds.join(parts, [sum(gaps[: i + 1]) for i in range(len(gaps))])


schedules = st.one_of(
    base_schedules,
    warmups(),
    joins(),
    st.builds(lambda s, f: f * s, base_schedules, st.floats(0.0, 10.0)),
)


@fast
@given(schedules, st.lists(steps, min_size=1, max_size=20))
def test_non_negative_and_finite(s, ns) -> None:
    for n in [0, 1, *ns]:
        lr = s(n)
        assert math.isfinite(lr) and lr >= 0.0, (s, n, lr)


@fast
@given(schedules, st.lists(st.floats(-10, 10), max_size=40), st.lists(steps, min_size=1, max_size=10))
def test_plateau_non_negative_and_below_its_schedule(s, metrics, ns) -> None:
    p = ds.plateau(s, patience=1, factor=0.5, min_lr=0.001)
    for m in metrics:
        p.observe(m)
    assert 0.0 < p.scale <= 1.0 or s.base_lr == 0.0
    for n in ns:
        assert 0.0 <= p(n) <= s(n)


@fast
@given(warmups())
def test_warmup_is_monotone_and_ends_at_first_value(w) -> None:
    values = [w(n) for n in range(w.steps + 1)]
    assert values[0] == w.start
    assert all(a <= b for a, b in zip(values, values[1:])), values
    assert values[-1] == w.schedule(0)
    assert w(w.steps + 7) == w.schedule(7)


@fast
@given(st.builds(ds.cosine_restarts, pos_lrs, st.integers(1, 300), st.just(1), lrs), steps)
def test_restarts_are_periodic(s, n) -> None:
    assert s(n + s.period) == s(n)
    assert s(n * s.period) == s.lr  # every restart starts at the peak


@fast
@given(
    st.builds(ds.cosine_restarts, pos_lrs, st.integers(1, 50), st.integers(2, 4), lrs),
    st.integers(0, 6),
    st.data(),
)
def test_restarts_with_mult_repeat_the_first_cycle_stretched(s, i, data) -> None:
    start = s.period * (s.mult**i - 1) // (s.mult - 1)  # first step of cycle i
    stretch = s.mult**i
    assert s(start) == s.lr
    assert s.position(start) == (0, s.period * stretch)
    t = data.draw(st.integers(0, s.period - 1))
    # same point of the cosine; pi * t / T_i is rounded in torch's order, hence isclose
    assert math.isclose(s(start + stretch * t), s(t), rel_tol=1e-12, abs_tol=1e-300)


@fast
@given(pos_lrs, lrs, st.integers(1, 1000), st.sampled_from(["cosine", "exponential", "constant", "linear"]),
       st.integers(1, 1000))
def test_join_is_continuous_where_the_parts_agree(a, c, b, kind, horizon) -> None:
    first = ds.linear(a, b, final_lr=c)  # reaches c at step b
    second = {
        "cosine": ds.cosine(c, horizon),
        "exponential": ds.exponential(c, 0.99),
        "constant": ds.constant(c),
        "linear": ds.linear(c, horizon, final_lr=c / 2),
    }[kind]
    j = ds.join([first, second], [b])
    assert [j(n) for n in range(b)] == [first(n) for n in range(b)]
    assert math.isclose(j(b), first(b), rel_tol=1e-12, abs_tol=1e-300)  # no jump at the boundary
    jump = abs(j(b) - j(b - 1))
    assert jump <= abs(first(b) - first(b - 1)) * (1 + 1e-9) + 1e-15
    assert [j(b + n) for n in range(50)] == [second(n) for n in range(50)]


@fast
@given(joins(), st.integers(0, 5000))
def test_join_evaluates_each_part_on_its_own_clock(j, n) -> None:
    bounds = (0, *j.boundaries)
    i = max(k for k, b in enumerate(bounds) if b <= n)
    assert j(n) == j.schedules[i](n - bounds[i])


def test_triangular2_far_out_underflows_to_the_base_lr() -> None:
    # 1 / 2.0 ** (cycle - 1) (torch's form) overflows after 1024 cycles
    s = ds.cyclic(0.01, 0.1, 1, mode="triangular2")
    assert s(4097) == 0.01 and s(10**6 + 1) == 0.01
