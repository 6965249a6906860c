"""lr_find: the ramp and its smoothing, exact restoration of model, optimizer and RNG, and
the suggestion against a grid of short trainings on digits."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import descend.optim as O
from descend import data, models
from descend.lab import lr_find
from descend.lab.lr_find import centered, notes, steepest_index, suggest, valley_index


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


def mlp(seed: int, batchnorm: bool = False, dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.MLP(64, (64,), n_out=10, batchnorm=batchnorm, dropout=dropout)


def tensors_of(state: dict) -> list[tuple[str, torch.Tensor]]:
    out = []
    for pid, st in state["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                out.append((f"{pid}.{key}", value))
    return out


@pytest.mark.parametrize("make_opt", [
    lambda ps: O.Adam(ps, lr=3e-3, amsgrad=True, impl="eager"),
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
], ids=["descend-adam", "torch-sgd"])
def test_model_optimizer_rng_and_batches_are_restored_bitwise(digits, make_opt) -> None:
    model = mlp(0, batchnorm=True, dropout=0.2)
    opt = make_opt(model.parameters())
    batches = data.Batches(digits.X_train, digits.y_train, 64, seed=3)
    for xb, yb in list(batches)[:5]:  # some history: optimizer state, BatchNorm statistics
        opt.zero_grad()
        models.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    model.net[0].train()  # a mix of modes, to be kept as it is
    params = [p.detach().clone() for p in model.parameters()]
    grads = [p.grad.detach().clone() for p in model.parameters()]
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modes = [m.training for m in model.modules()]
    saved = copy.deepcopy(opt.state_dict())
    rng = torch.get_rng_state()
    epoch = batches.epoch

    result = lr_find(model, models.cross_entropy, batches, opt, num_iter=60)
    assert len(result.lrs) > 20  # it trained for real (and moved everything) before restoring

    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    named = dict(model.named_buffers())
    assert set(named) == set(buffers) and any("running_var" in n for n in named)
    assert all(torch.equal(named[n], b) for n, b in buffers.items())
    assert [m.training for m in model.modules()] == modes
    now = opt.state_dict()
    assert [g["lr"] for g in now["param_groups"]] == [g["lr"] for g in saved["param_groups"]]
    before, after = tensors_of(saved), tensors_of(now)
    assert len(before) == len(after) > 0
    assert all(a == c and torch.equal(b, d) for (a, b), (c, d) in zip(before, after))
    assert torch.equal(torch.get_rng_state(), rng)
    assert batches.epoch == epoch


def test_ramp_smoothing_and_stop_rule(digits) -> None:
    model = mlp(1)
    before = [p.detach().clone() for p in model.parameters()]
    batches = data.Batches(digits.X_train, digits.y_train, 64, seed=1)
    r = lr_find(model, models.cross_entropy, batches, "adam", start_lr=1e-7, end_lr=10.0, num_iter=100)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())
    n = len(r.lrs)
    i = np.arange(n)
    np.testing.assert_allclose(r.lrs, 1e-7 * (10.0 / 1e-7) ** (i / 99), rtol=1e-12)
    avg, expected = 0.0, []
    for k, loss in enumerate(r.losses):
        avg = 0.98 * avg + 0.02 * loss
        expected.append(avg / (1 - 0.98 ** (k + 1)))
    np.testing.assert_allclose(r.ema, expected, rtol=1e-12)
    assert r.stop_reason == "diverged" and n < 100
    assert r.ema[-1] > 4 * r.ema[:-1].min()
    assert all(r.ema[k] <= 4 * r.ema[: k + 1].min() for k in range(n - 1))
    h = max(2, n // 20)  # the lag-free curve: centred means of the raw losses
    window = [r.losses[max(0, k - h): k + h + 1].mean() for k in range(n)]
    np.testing.assert_allclose(r.smoothed, window, rtol=1e-12)
    assert r.best == r.suggestions["min_over_10"] == r.lrs[np.argmin(r.smoothed)] / 10
    assert r.best_rule == "min_over_10" and set(r.suggestions) == {"valley", "steepest", "min_over_10"}
    assert r.to_dict()["best"] == r.best


def train_briefly(digits, lr: float, seed: int, epochs: int = 2) -> float:
    model = mlp(seed)
    opt = O.Adam(model.parameters(), lr=lr, impl="eager")
    batches = data.Batches(digits.X_train, digits.y_train, 64, seed=seed)
    for _ in range(epochs):
        for xb, yb in batches:
            opt.zero_grad()
            models.cross_entropy(model(xb), yb).backward()
            opt.step()
    with torch.no_grad():
        loss = float(models.cross_entropy(model(digits.X_val), digits.y_val))
    return loss if math.isfinite(loss) else math.inf


@pytest.mark.parametrize("seed", [0, 1])
def test_suggestion_lands_in_the_best_third_of_a_grid_on_digits(digits, seed: int) -> None:
    grid = np.logspace(-4, 0, 9)
    val = np.array([train_briefly(digits, lr, seed) for lr in grid])
    best_third = set(np.argsort(val)[:3].tolist())
    r = lr_find(mlp(seed), models.cross_entropy, data.Batches(digits.X_train, digits.y_train, 64, seed=seed), "adam")
    nearest = int(np.argmin(np.abs(np.log(grid) - np.log(r.best))))
    assert nearest in best_third, (r.suggestions, grid[sorted(best_third)], val)


def test_suggestion_rules_on_made_up_curves() -> None:
    lrs = np.logspace(-6, 0, 61)
    x = np.log10(lrs)
    curve = 2.0 - 1.5 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, 40 * (x + 1) ** 2, 0.0)
    s = steepest_index(lrs, curve)
    assert abs(x[s] + 3) < 0.11  # the sigmoid's inflection at 1e-3
    v = valley_index(curve)
    start, stop = 0, int(np.argmin(curve))  # one decreasing stretch from the start to the minimum
    assert v == start + int((stop - start) / 3) + int((stop - start) / 6)
    sugg = suggest(lrs, curve)
    smooth = centered(curve)
    assert sugg["min_over_10"] == lrs[np.argmin(smooth)] / 10 and sugg["steepest"] == lrs[steepest_index(lrs, smooth)]
    assert suggest(lrs[:2], curve[:2])["valley"] is None
    # noise at the start of the ramp is not "steepest": a dip in the first tenth is skipped
    dip = curve.copy()
    dip[2] -= 0.3
    assert steepest_index(lrs, dip) == s


def test_no_suggestion_from_a_curve_too_short_or_below_the_range_and_notes_say_why() -> None:
    """A test that diverged at once leaves no curve (its min/10 lay below the range tried); a loss
    lowest at the start says to start lower; one still falling at the end says to raise end_lr."""
    lrs = np.logspace(1, 3, 100)
    assert suggest(lrs[:2], np.array([2.3, 1e4])) == {"valley": None, "steepest": None, "min_over_10": None}
    assert "recorded 2 step(s) before it stopped (diverged): no curve to read" in notes(lrs[:2], np.array([2.3, 1e4]),
                                                                                     "diverged")[0]
    rising = np.linspace(1.0, 5.0, 40)
    assert suggest(lrs[:40], rising)["min_over_10"] is None  # (lrs[0] / 10 was never tried)
    assert "lowest at the start of the range" in notes(lrs[:40], rising, "diverged")[0]
    falling = np.linspace(5.0, 1.0, 100)
    assert suggest(lrs, falling)["min_over_10"] == pytest.approx(lrs[-1] / 10, rel=0.1)
    assert "still falling at the end of the range: raise --end-lr" in notes(lrs, falling, "completed")[0]
    x = np.log10(lrs)
    good = 2.0 - 1.5 / (1 + np.exp(-3 * (x - 2))) + np.where(x > 2.6, 40 * (x - 2.6) ** 2, 0.0)
    assert notes(lrs, good, "completed") == []


def test_the_figure_of_a_test_that_diverged_at_once_draws_its_steps_only(tmp_path) -> None:
    from descend.plots.lab import lr_find_figure

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    X, y = torch.randn(64, 4), torch.randn(64, 1)
    result = lr_find(model, torch.nn.functional.mse_loss, data.Batches(X, y, 16, seed=0), "sgd",
                     start_lr=1e3, end_lr=1e6, num_iter=50)
    assert len(result.lrs) < 5 and result.best is None and result.notes
    fig = lr_find_figure(result, tmp_path / "lr.png")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["loss per step"]  # no smoothed line over 2 points, no suggestion line
    assert (tmp_path / "lr.png").stat().st_size > 0


def test_centered_curve_has_no_lag() -> None:
    """A loss that falls linearly in log lr and then rises: the centred curve's minimum is where the
    raw minimum is (within the window's asymmetry); a moving average's minimum comes late."""
    lrs = np.logspace(-6, 1, 100)
    x = np.log10(lrs)
    raw = np.where(x < -1, -x, 1 + 3 * (x + 1))
    assert abs(int(np.argmin(centered(raw))) - int(np.argmin(raw))) <= 2
    avg, ema = 0.0, []
    for k, v in enumerate(raw):
        avg = 0.98 * avg + 0.02 * v
        ema.append(avg / (1 - 0.98 ** (k + 1)))
    assert int(np.argmin(ema)) - int(np.argmin(raw)) >= 5


def grid_truth(ds: data.Dataset, model: str, opt: str, grid: np.ndarray, steps: int = 100) -> np.ndarray:
    """Training loss (whole training set) after ``steps`` steps of each lr, from one seeded start."""
    out = []
    for lr in grid:
        net = models.build_for(ds, model, seed=0)
        loss_fn = models.loss_for_model(ds, net)
        o = O.build(opt, net.parameters(), lr=float(lr))
        batches, it = data.Batches(ds.X_train, ds.y_train, 32, seed=0), 0
        while it < steps:
            for xb, yb in batches:
                o.zero_grad()
                loss = loss_fn(net(xb), yb)
                if not torch.isfinite(loss):  # diverged
                    it = steps
                    break
                loss.backward()
                o.step()
                it += 1
                if it == steps:
                    break
        with torch.no_grad():
            v = float(loss_fn(net(ds.X_train), ds.y_train))
        out.append(v if math.isfinite(v) else math.inf)
    return np.array(out)


@pytest.mark.parametrize("name,model,opt", [
    ("digits", "softmax", "adam"), ("digits", "mlp", "momentum"), ("breast_cancer", "logistic", "gd"),
    ("diabetes", "linear", "momentum"),
])
def test_best_suggestion_is_within_one_grid_step_of_the_grid_truth(name: str, model: str, opt: str) -> None:
    ds = data.load(name)
    grid = np.logspace(-4, 1, 9)  # 0.625 decades a step
    truth = grid[int(np.argmin(grid_truth(ds, model, opt, grid)))]
    net = models.build_for(ds, model, seed=0)
    r = lr_find(net, models.loss_for_model(ds, net), data.Batches(ds.X_train, ds.y_train, 32, seed=0), opt,
                start_lr=1e-5, end_lr=10.0)
    step = math.log10(grid[1] / grid[0])
    assert abs(math.log10(r.best) - math.log10(truth)) <= step + 1e-9, (r.suggestions, truth)
    assert r.suggestions["steepest"] is not None and r.suggestions["steepest"] > r.lrs[len(r.lrs) // 10 - 1]


def test_lr_find_errors(digits) -> None:
    model = mlp(0)
    batches = data.Batches(digits.X_train, digits.y_train, 64)
    with pytest.raises(ValueError, match="end_lr must be larger than start_lr"):
        lr_find(model, models.cross_entropy, batches, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_iter must be an integer >= 10, got 3"):
        lr_find(model, models.cross_entropy, batches, num_iter=3)
    with pytest.raises(ValueError, match=r"smooth must be a number in \[0, 1\), got 1.0"):
        lr_find(model, models.cross_entropy, batches, smooth=1.0)
    with pytest.raises(ValueError, match="diverge must be a finite number > 1"):
        lr_find(model, models.cross_entropy, batches, diverge=1.0)
    with pytest.raises(ValueError, match="Newton has no lr to range-test"):
        lr_find(model, models.cross_entropy, batches, "newton")
    with pytest.raises(ValueError, match="batches yielded no batch"):
        lr_find(model, models.cross_entropy, [], "adam")
    with pytest.raises(ValueError, match="unknown optimizer '[a-z]*'; choose one of gd, sgd"):
        lr_find(model, models.cross_entropy, batches, "lamb")
