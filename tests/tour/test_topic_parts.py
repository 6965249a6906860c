"""The new topics' parts on their own: the judge functions (pure) on hand-made measurements, the stacked
MLP against separate models, the soft-threshold step, and the tour's rows loop against the lab's run_many."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descend import lab
from descend.tour._util import MLPRows, descend_rows, rows_optimizer, soft_threshold
from descend.tour.base import DEPENDS, HELD, NOT_HELD
from descend.tour.topics_combine import FAMILIES, CombineMeasured, judge_combine
from descend.tour.topics_regularization import METHODS, L1Measured, judge_l1
from descend.tour.topics_schedules import WarmupMeasured, judge_warmup


def l1_measured(zeroed_l1, kept_l1, val_l1, zeroed_l2=(5, 5, 5), val_l2=(1.0, 0.9, 2.0)) -> L1Measured:
    lams = np.array([0.01, 0.1, 1.0])
    arr = np.array
    return L1Measured(
        n=100, d=60, k=6, noise=1.0, steps=10, tau=1e-3, lr=0.5, smallest_informative=0.1,
        lams={m: lams for m in METHODS},
        val={"L1 prox": arr(val_l1, float), "L1 subgradient": arr(val_l1, float), "L2": arr(val_l2, float)},
        zeroed={"L1 prox": arr(zeroed_l1), "L1 subgradient": arr([0, 0, 0]), "L2": arr(zeroed_l2)},
        exact={m: arr([0, 0, 0]) for m in METHODS},
        kept={"L1 prox": arr(kept_l1), "L1 subgradient": arr([6, 6, 6]), "L2": arr([6, 6, 6])},
        weights={m: np.zeros((3, 60)) for m in METHODS}, informative=np.arange(60) < 6,
    )


def test_judge_l1_compares_at_the_largest_penalty_no_worse_than_l2s_best():
    # L2's best validation loss is 0.9; L1's penalties 0 and 1 are no worse, so penalty 1 is compared.
    verdict, p, q = judge_l1(l1_measured(zeroed_l1=(10, 50, 54), kept_l1=(6, 6, 2), val_l1=(0.5, 0.8, 3.0)))
    assert (verdict, p, q) == (HELD, 1, 1)
    # 50 of 54 zeroed but an informative weight lost there: depends
    assert judge_l1(l1_measured((10, 50, 54), (6, 5, 2), (0.5, 0.8, 3.0)))[0] == DEPENDS
    # 43 of 54 is under 80%: did not hold
    assert judge_l1(l1_measured((10, 43, 54), (6, 6, 2), (0.5, 0.8, 3.0)))[0] == NOT_HELD
    # L2 zeroing 11 of 54 (over 20%) would select too: did not hold
    assert judge_l1(l1_measured((10, 50, 54), (6, 6, 2), (0.5, 0.8, 3.0), zeroed_l2=(11, 11, 11)))[0] == NOT_HELD


def warmup_measured(final_at_once, final_warm) -> WarmupMeasured:
    n = len(final_at_once)
    ones = np.ones((2, n))
    return WarmupMeasured(sizes=[512], base_batch=16, base_lr=0.04, hidden=(8,), epochs=2, warmup_epochs=1,
                          seeds=list(range(n)), spike_factor=2.0, first={512: 2 * ones}, peak={512: 3 * ones},
                          final={512: np.array([final_at_once, final_warm], float)}, curves={}, warm_iters={512: 4},
                          n_train=100)


def test_judge_warmup_counts_divergence_over_seeds():
    nan = np.nan
    assert judge_warmup(warmup_measured([nan, nan, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1])) == (HELD, 2, 0)
    assert judge_warmup(warmup_measured([nan, nan, nan, 0.1], [nan, nan, 0.1, 0.1])) == (DEPENDS, 3, 2)
    assert judge_warmup(warmup_measured([0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1])) == (NOT_HELD, 0, 0)
    m = warmup_measured([nan, 0.1], [0.1, 0.1])
    m.peak[512][1, 1] = 5.0  # a spike above 2x the first loss, without diverging
    assert m.spiked(512).tolist() == [[True, False], [False, True]]


def combine_measured(sum_vals) -> CombineMeasured:
    adam, sgd = [1e-3, 1e-2], [0.1, 0.3]
    pairs = [(a, s) for a in adam for s in sgd]
    val = {"Adam": np.array([[0.30], [0.20]]), "SGD": np.array([[0.25], [0.22]]),
           FAMILIES[2]: np.array(sum_vals, float).reshape(4, 1), FAMILIES[3]: np.full((4, 1), 0.21)}
    return CombineMeasured(adam_lrs=adam, sgd_lrs=sgd, settings={"Adam": [(a, 0.0) for a in adam],
                           "SGD": [(0.0, s) for s in sgd], FAMILIES[2]: pairs, FAMILIES[3]: pairs}, val=val,
                           curves={}, hidden=(8,), epochs=2, batch=4, seeds=[0], tol=0.05)


def test_judge_combine_worse_at_best_and_unstable():
    # best single 0.20; the sum's best 0.19 is not worse, and no pair is worse than both parts
    assert judge_combine(combine_measured([0.24, 0.21, 0.19, 0.2])) == (NOT_HELD, False, False)
    # the sum's best 0.22 > 1.05 * 0.21 (the phases), and pairs (1e-2, 0.1), (1e-2, 0.3) end above 1.05x both
    # of their parts alone (0.20 and 0.25, 0.20 and 0.22); (1e-3, 0.1) at 0.26 is below Adam 1e-3's 0.30
    m = combine_measured([0.26, 0.22, 0.40, np.inf])
    assert m.worse_than_parts() == [(1e-2, 0.1), (1e-2, 0.3)]
    assert judge_combine(m) == (HELD, True, True)
    assert judge_combine(combine_measured([0.22, 0.30, 0.24, 0.23])) == (DEPENDS, True, False)  # worse at best only


def test_soft_threshold_is_the_l1_proximal_step():
    w = torch.tensor([[0.5, -0.05, 0.1, -2.0]])
    soft_threshold(w, torch.tensor([[0.1]]))
    assert torch.allclose(w, torch.tensor([[0.4, 0.0, 0.0, -1.9]]))


def test_stacked_mlp_rows_train_like_separate_models():
    gen = torch.Generator().manual_seed(0)
    net = MLPRows((5, 7, 3), 2, gen, repeat=1)
    X, y = torch.randn(16, 5, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    opt = rows_optimizer("sgd", net.params, lr=[0.1, 0.5])
    ref = []
    for r, lr in enumerate((0.1, 0.5)):
        m = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
        with torch.no_grad():
            for lin, w, b in zip((m[0], m[2]), net.weights, net.biases):
                lin.weight.copy_(w[r].T)
                lin.bias.copy_(b[r, 0])
        ref.append((m, torch.optim.SGD(m.parameters(), lr=lr)))
    for _ in range(3):
        opt.zero_grad()
        net.losses(X, y).sum().backward()
        opt.step()
        for m, o in ref:
            o.zero_grad()
            torch.nn.functional.cross_entropy(m(X), y).backward()
            o.step()
    with torch.no_grad():
        got = net.losses(X, y)
        want = torch.stack([torch.nn.functional.cross_entropy(m(X), y) for m, _ in ref])
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got[0], got[1])  # the rows really differ


def test_descend_rows_equals_lab_run_many():
    """The tour's full-batch rows (the lab's engine on a rows function) give run_many's numbers on the same
    rule and rows (run_many differentiates each row by vmap, the tour the sum of the rows' losses)."""
    gen = torch.Generator().manual_seed(1)
    A = torch.randn(40, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(40, generator=gen, dtype=torch.float64)
    lrs, wds = [0.05, 0.2, 0.4], [0.0, 0.1, 1.0]
    steps, losses, points = descend_rows(lambda W: ((A @ W.T - b[:, None]) ** 2).mean(0),
                                         torch.zeros(3, 4, dtype=torch.float64), "sgd", 50, lr=lrs, weight_decay=wds)
    runs = lab.run_many(lambda w: ((A @ w - b) ** 2).mean(), torch.zeros(4, dtype=torch.float64), "gd", steps=50,
                        tol=None, lr=lrs, weight_decay=wds)
    assert steps.tolist() == runs.record_steps.tolist()
    assert losses[-1] == pytest.approx(runs.losses[-1], rel=1e-12)
    assert np.allclose(points, runs.paths, rtol=1e-12, atol=1e-14)
    assert losses[-1][2] < losses[0][2]  # it moved


def test_warmup_median_text_names_the_side_that_diverged():
    from descend.tour.topics_schedules import _median_text

    assert _median_text([0.1, 0.2]) == "The median final training loss was 0.1000 without warmup and 0.2000 with it."
    assert _median_text([np.inf, 0.2]).startswith("At least half the seeds diverged without warmup,")
    assert "(median 0.2000 with warmup)" in _median_text([np.inf, 0.2])
    assert "without warmup and with it" in _median_text([np.inf, np.inf])


def test_judge_linear_scaling_compares_each_larger_batch_with_the_base():
    from descend.tour.topics_schedules import ScalingMeasured, judge_linear_scaling

    def measured(finals):
        return ScalingMeasured(base_batch=16, base_lr=0.05, epochs=2, sizes=[16, 64, 256], n_classes=10,
                               final={B: np.array(v) for B, v in zip([16, 64, 256], finals)}, curves={}, spikes={})

    # base 0.20; scaled 0.21 and 0.24 are closer than the same lr's 0.40, 0.90 and within 25%
    assert judge_linear_scaling(measured([(0.2, 0.2, 0.2), (0.4, 0.21, 0.2), (0.9, 0.24, 0.2)])) == (HELD, [64, 256],
                                                                                                      [64, 256])
    # at 256 the scaled lr ends 0.30: closer than 0.90 but 50% off
    assert judge_linear_scaling(measured([(0.2, 0.2, 0.2), (0.4, 0.21, 0.2), (0.9, 0.30, 0.2)]))[0] == DEPENDS
    assert judge_linear_scaling(measured([(0.2, 0.2, 0.2), (0.21, 0.4, 0.2), (0.25, 0.9, 0.2)]))[0] == NOT_HELD
