"""Test 2: hand-computed values from the seed notes.

Note 002 (learning-rate decay): ``alpha = alpha0 / (1 + r * n)``,
``alpha = 0.95^n * alpha0``, ``alpha = k / sqrt(n) * alpha0``.
Note 003: step decay dividing by 10 at epochs 30, 60, 90; the linear
scaling rule (batch 20 with lr 0.01 becomes batch 40 with lr 0.02); linear
warmup followed by cosine decay.
"""

from __future__ import annotations

import pytest
import torch

from descend import schedules as ds


def approx(values):
    return pytest.approx(values, rel=1e-12, abs=0)


def test_inverse_time_alpha0_02_rate_1() -> None:
    # The course's table: alpha0 = 0.2, decay rate 1 -> 0.2, 0.1, 0.067, 0.05, 0.04
    s = ds.inverse_time(0.2, 1.0)
    assert [s(n) for n in range(5)] == approx([0.2, 0.1, 0.2 / 3, 0.05, 0.04])
    assert round(s(2), 4) == 0.0667


def test_inverse_time_rate_and_staircase() -> None:
    s = ds.inverse_time(1.0, 0.5)
    assert [s(n) for n in (0, 1, 2, 6)] == approx([1.0, 1 / 1.5, 0.5, 0.25])
    st = ds.inverse_time(1.0, 1.0, every=10, staircase=True)
    assert [st(n) for n in (0, 9, 10, 19, 20, 35)] == approx([1.0, 1.0, 0.5, 0.5, 1 / 3, 0.25])
    smooth = ds.inverse_time(1.0, 1.0, every=10)
    assert [smooth(n) for n in (5, 10, 30)] == approx([1 / 1.5, 0.5, 0.25])


def test_exponential_095_to_the_n() -> None:
    s = ds.exponential(0.2, 0.95)
    assert [s(n) for n in range(4)] == approx([0.2, 0.19, 0.1805, 0.171475])
    assert s(10) == approx(0.2 * 0.5987369392383789)
    assert s(100) == approx(0.2 * 0.95**100)


def test_inverse_sqrt_k_over_sqrt_n() -> None:
    s = ds.inverse_sqrt(0.2, 1.0)
    # defined at n = 0 (capped at alpha0), then exactly k / sqrt(n) * alpha0
    assert [s(n) for n in (0, 1, 4, 16, 100)] == approx([0.2, 0.2, 0.1, 0.05, 0.02])
    s3 = ds.inverse_sqrt(0.1, 3.0)
    assert [s3(n) for n in (0, 5, 9, 36, 900)] == approx([0.1, 0.1, 0.1, 0.05, 0.01])


def test_step_decay_divide_by_10_at_30_60_90() -> None:
    expected = {0: 0.1, 29: 0.1, 30: 0.01, 59: 0.01, 60: 0.001, 89: 0.001, 90: 1e-4, 200: 1e-4}
    s = ds.multi_step(0.1, [30, 60, 90])
    assert [s(n) for n in expected] == approx(list(expected.values()))
    every30 = ds.step(0.1, 30)
    assert [every30(n) for n in (0, 29, 30, 60, 90, 119)] == approx([0.1, 0.1, 0.01, 1e-3, 1e-4, 1e-4])
    assert every30(120) == approx(1e-5)  # step keeps dividing; multi_step stops at 90


def test_step_decay_per_epoch_with_a_scheduler() -> None:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = ds.Scheduler(opt, ds.multi_step(0.1, [30, 60, 90]), unit="epoch")
    seen = []
    for _epoch in range(100):
        seen.append(opt.param_groups[0]["lr"])
        sched.step()
    assert seen[29] == 0.1 and seen[30] == pytest.approx(0.01)
    assert seen[60] == pytest.approx(0.001) and seen[99] == pytest.approx(1e-4)
    assert sched.state_dict()["unit"] == "epoch"


def test_linear_scaling_rule() -> None:
    assert ds.scale_lr(0.01, 20, 40) == pytest.approx(0.02)  # note 003's example
    assert ds.scale_lr(0.1, 256, 8192) == pytest.approx(3.2)  # Goyal et al.: 0.1 * kn / 256
    assert ds.scale_lr(0.1, 256, 64) == pytest.approx(0.025)


def test_goyal_warmup_from_small_batch_lr() -> None:
    # batch x 4 -> lr x 4, reached after a 5-epoch linear warmup that starts at the old lr
    peak = ds.scale_lr(0.1, 256, 1024)
    s = ds.warmup(ds.multi_step(peak, [25, 55, 75]), 5, start=0.1)
    assert [s(n) for n in range(7)] == approx([0.1, 0.16, 0.22, 0.28, 0.34, 0.4, 0.4])
    assert [s(29), s(30), s(60), s(80)] == approx([0.4, 0.04, 0.004, 0.0004])


def test_linear_warmup_then_cosine() -> None:
    s = ds.warmup(ds.cosine(0.1, 900), 100)
    assert [s(n) for n in (0, 50, 100, 550, 1000, 2000)] == approx([0.0, 0.05, 0.1, 0.05, 0.0, 0.0])
