"""Tour topics on learning-rate schedules: every schedule of the notes, the linear scaling
rule, and warmup as its rescue.

Several learning rates or schedules train together as rows of one tensor (see
:mod:`descend.tour._util`): with descend's element-wise optimizers each row moves
exactly as it would alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as D
from .. import schedules as S
from ..plots.tour import Panel, Series, color, panels_figure
from ._util import F64, MLPRows, digits, rows_optimizer, set_row_lrs
from .base import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic

# --------------------------------------------------------------------------- 15. schedules


def _schedules(lr: float, T: int, ipe: int) -> dict[str, S.Schedule]:
    """Every schedule of the notes over ``T`` iterations (``ipe`` per epoch), starting at ``lr``."""
    return {
        "constant (no schedule)": S.constant(lr),
        "step: ÷10 at 30%, 60%, 90% (003)": S.multi_step(lr, [int(0.3 * T), int(0.6 * T), int(0.9 * T)]),
        "exponential 0.95^epoch (002)": S.exponential(lr, 0.95 ** (1.0 / ipe)),
        "1/(1 + r·epoch), r = 0.5 (002)": S.inverse_time(lr, 0.5, every=ipe),
        "k/√epoch (002, 003)": S.inverse_sqrt(lr, math.sqrt(ipe)),
        "linear to 0 (003)": S.linear(lr, T),
        "cosine (003)": S.cosine(lr, T),
        "linear warmup + cosine (003)": S.warmup(S.cosine(lr, T - 2 * ipe), 2 * ipe),
        "manual: ÷5 at 50%, ÷25 at 75% (002)": S.piecewise(lr, [T // 2, (3 * T) // 4], [lr / 5, lr / 25]),
    }


def measure_schedules(ctx: Context) -> dict[str, Any]:
    """Linear regression on diabetes by SGD, every schedule of the notes as one row; the gap per epoch."""
    ds = ctx.cached(("diabetes", "f64"), lambda: D.load("diabetes", dtype=F64, seed=ctx.seed))
    X, y = ds.train
    n = len(X)
    A = torch.cat([X, torch.ones(n, 1, dtype=F64)], 1)
    yv = y[:, 0]
    optimum = D.least_squares(ds).train_mse
    bs, lr, epochs = 16, 0.1, ctx.pick(40, 15)
    ipe = math.ceil(n / bs)
    T = epochs * ipe
    scheds = _schedules(lr, T, ipe)
    names = list(scheds)
    R = len(names)
    W = torch.zeros(R, A.shape[1], dtype=F64, requires_grad=True)
    opt = rows_optimizer("sgd", [W], lr=[lr] * R)
    batches = D.Batches(A, yv, bs, seed=ctx.seed)

    def gap_now() -> np.ndarray:
        with torch.no_grad():
            return (((A @ W.T - yv[:, None]) ** 2).mean(0) - optimum).numpy()

    gaps = [gap_now()]
    it = 0
    for e in range(epochs):
        for ab, yb in batches.iter_epoch(e):
            set_row_lrs(opt, [scheds[k](it) for k in names])
            opt.zero_grad()
            ((ab @ W.T - yb[:, None]) ** 2).mean(0).sum().backward()
            opt.step()
            it += 1
        gaps.append(gap_now())
    G = np.stack(gaps)  # (epochs + 1, R)
    return {"n": n, "optimum": optimum, "bs": bs, "lr": lr, "epochs": epochs, "ipe": ipe, "T": T, "scheds": scheds,
            "names": names, "R": R, "G": G}


def judge_schedules(final: np.ndarray) -> tuple[str, int]:
    """``final[0]``: the constant lr's final gap, the rest the decaying schedules'. Held if every schedule ends
    closer than the constant lr, depends if some do, did not hold if none. Returns (verdict, how many)."""
    better = int(np.sum(final[1:] < final[0]))
    return judge(better == len(final) - 1, partly=better > 0), better


@topic("schedules")
def schedules(ctx: Context) -> Finding:
    """Topic ``schedules``: measure (:func:`measure_schedules`), judge (:func:`judge_schedules`), write."""
    m = measure_schedules(ctx)
    n, optimum, bs, lr, epochs, ipe, T = (m[k] for k in ("n", "optimum", "bs", "lr", "epochs", "ipe", "T"))
    scheds, names, R, G = m["scheds"], m["names"], m["R"], m["G"]
    final = G[-1]
    base = final[0]
    decays = final[1:]
    verdict, better = judge_schedules(final)
    xs = np.arange(T)
    fig = panels_figure([
        Panel("the learning rates (same start, same epochs)", "iteration", "learning rate",
              [Series(k, xs, [scheds[k](i) for i in xs], color=color(j), steps=True, width=1.5)
               for j, k in enumerate(names)], legend=None),
        Panel("distance of the training MSE from the least-squares optimum", "epoch", "MSE − optimum",
              [Series(k, np.arange(epochs + 1), G[:, j], color=color(j), width=1.5) for j, k in enumerate(names)],
              ylog=True, legend="outside", integer_x=True),
    ], title=f"Diabetes, linear regression by SGD (batches of {bs}, base lr {lr:g}): the schedules of notes 002 "
       "and 003", width=14.5)
    ranked = sorted(zip(decays, names[1:]))
    by_name = dict(zip(names, final))
    slow = [by_name[k] for k in names if k.startswith(("k/", "1/("))]
    to_zero = [by_name[k] for k in names if k.startswith(("linear to 0", "cosine", "linear warmup"))]
    slow_decay_worse = min(slow) > max(to_zero)
    numbers: dict[str, float | int | str] = {f"{k}: final MSE − optimum": float(v) for k, v in zip(names, final)}
    numbers["least-squares optimum (train MSE)"] = float(optimum)
    numbers["schedules that beat the constant lr"] = f"{better} of {len(decays)}"
    return ctx.finding(
        verdict, numbers, [fig],
        rule="every schedule starts at the same lr and gets the same epochs and the same batches. Held if every "
        "decaying schedule ends closer to the optimum than the constant lr; depends if some do; did not hold if "
        "none does.",
        summary=f"With a fixed lr {lr:g} SGD ended {base:.1f} above the least-squares optimum ({optimum:.0f})"
        + (": it hovers, as note 002 says. " if better else ". ")
        + f"{better} of {len(decays)} decaying schedules ended closer; the closest was {ranked[0][1]} "
        f"({ranked[0][0]:.1f}), the farthest {ranked[-1][1]} ({ranked[-1][0]:.1f})."
        + (" The schedules that keep the lr high for long (k/√epoch, 1/(1 + r·epoch)) gained less than those that "
           "bring it near zero by the end (linear, cosine, warmup + cosine)." if slow_decay_worse else ""),
        setup=f"diabetes (standardized features, unscaled target, float64, {n} training examples), linear "
        f"regression, mini-batch SGD with batches of {bs} ({ipe} iterations per epoch, the same order for all), "
        f"{epochs} epochs = {T} iterations, base lr {lr:g}; the {R} schedules of descend.schedules train together "
        "as rows of one tensor with per-row learning rates set from each schedule every iteration.",
        caption="Left: each schedule's lr per iteration. Right: how close each run got, epoch by epoch.",
    )


# --------------------------------------------------------------------------- 16. linear scaling rule


def _softmax_rows(W: torch.Tensor, b: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of R stacked softmax regressions: W (R, k, d), b (R, k) -> (R,)."""
    R, k = b.shape
    logits = torch.matmul(xb, W.transpose(1, 2)) + b[:, None, :]
    return F.cross_entropy(logits.reshape(-1, k), yb.repeat(R), reduction="none").view(R, -1).mean(1)


@dataclass
class ScalingMeasured:
    """Final loss, loss per epoch and first-epoch peak of each variant (same lr, scaled, scaled + warmup)."""

    base_batch: int
    base_lr: float
    epochs: int
    sizes: list[int]
    n_classes: int
    final: dict[int, np.ndarray]      # batch size -> (variants,) final training loss
    curves: dict[int, np.ndarray]     # batch size -> (epochs, variants) training loss per epoch
    spikes: dict[int, np.ndarray]     # batch size -> (variants,) highest batch loss of epoch 1 after step 1


SCALING_VARIANTS = ["same lr", "scaled lr (rule)", "scaled lr + 1 epoch warmup"]


def measure_linear_scaling(ctx: Context) -> ScalingMeasured:
    """Softmax regression on digits by SGD at growing batch sizes, three lr variants as rows of one tensor."""
    ds = digits(ctx)
    X, y = ds.train
    n, d = X.shape
    k = int(y.max()) + 1
    b0, lr0 = 16, 0.05
    epochs = ctx.pick(10, 4)
    sizes = ctx.pick([16, 32, 64, 128, 256, 512], [16, 64, 256])
    final: dict[int, np.ndarray] = {}
    spikes: dict[int, np.ndarray] = {}
    curves: dict[int, np.ndarray] = {}
    for B in sizes:
        factor = B / b0
        ipe = math.ceil(n / B)
        plans = [S.constant(lr0), S.constant(lr0 * factor),
                 S.warmup(S.constant(lr0 * factor), ipe, start=min(lr0, lr0 * factor))]
        R = len(plans)
        W = torch.zeros(R, k, d, requires_grad=True)
        bias = torch.zeros(R, k, requires_grad=True)
        opt = rows_optimizer("sgd", [W, bias], lr=[lr0] * R)
        batches = D.Batches(X, y, B, seed=ctx.seed)
        it = 0
        peak = np.zeros(R)
        curve = []
        for e in range(epochs):
            for xb, yb in batches.iter_epoch(e):
                set_row_lrs(opt, [p(it) for p in plans])
                opt.zero_grad()
                rows = _softmax_rows(W, bias, xb, yb)
                if e == 0 and it > 0:  # batch losses of the first epoch, after the first step
                    peak = np.maximum(peak, rows.detach().numpy())
                rows.sum().backward()
                opt.step()
                it += 1
            with torch.no_grad():
                curve.append(_softmax_rows(W, bias, X, y).numpy())
        final[B] = curve[-1]
        curves[B] = np.stack(curve)
        spikes[B] = peak
    return ScalingMeasured(base_batch=b0, base_lr=lr0, epochs=epochs, sizes=sizes, n_classes=k, final=final,
                           curves=curves, spikes=spikes)


def judge_linear_scaling(m: ScalingMeasured) -> tuple[str, list[int], list[int]]:
    """Held if at every larger batch the scaled lr ends closer to the base's loss than the same lr, and within
    25% of it; depends if closer only at some; did not hold if never. Returns (verdict, closer, within)."""
    base = float(m.final[m.base_batch][0])
    dev = {B: np.abs(m.final[B] - base) / base for B in m.sizes}
    larger = [B for B in m.sizes if B > m.base_batch]
    closer = [B for B in larger if dev[B][1] < dev[B][0]]
    within = [B for B in larger if dev[B][1] <= 0.25]
    if len(closer) == len(larger) and len(within) == len(larger):
        return HELD, closer, within
    return (DEPENDS if closer else NOT_HELD), closer, within


@topic("linear_scaling")
def linear_scaling(ctx: Context) -> Finding:
    """Topic ``linear_scaling``: measure (:func:`measure_linear_scaling`), judge, write."""
    m = measure_linear_scaling(ctx)
    verdict, closer, within = judge_linear_scaling(m)
    b0, lr0, epochs, sizes, k = m.base_batch, m.base_lr, m.epochs, m.sizes, m.n_classes
    final, curves, spikes, variants = m.final, m.curves, m.spikes, SCALING_VARIANTS
    base = float(final[b0][0])
    larger = [B for B in sizes if B > b0]
    first_loss = math.log(k)
    diverged = any(not np.all(np.isfinite(final[B])) for B in sizes)
    spike_scaled = max(float(spikes[B][1]) for B in sizes)
    spike_warm = max(float(spikes[B][2]) for B in sizes)
    fig = panels_figure([
        Panel(f"training loss after {epochs} epochs against the batch size", "batch size", "cross-entropy",
              [Series(v, sizes, [final[B][j] for B in sizes], marker="o", color=color(j),
                      style=["-", "-", "--"][j]) for j, v in enumerate(variants)],
              xlog=True, ylog=True, hlines=[(base, f"batch {b0}, lr {lr0:g}")], xticks=sizes),
        Panel(f"loss per epoch with batch {sizes[-1]} ({sizes[-1] // b0}x the base)", "epoch", "cross-entropy",
              [Series(v, np.arange(1, epochs + 1), curves[sizes[-1]][:, j], marker="o", color=color(j),
                      style=["-", "-", "--"][j]) for j, v in enumerate(variants)]
              + [Series(f"batch {b0}, lr {lr0:g} (the base)", np.arange(1, epochs + 1), curves[b0][:, 0],
                        color="black", style=":")], ylog=True, integer_x=True),
    ], title=f"Digits, softmax regression by SGD: batch {b0} at lr {lr0:g}, then larger batches with and without "
       "scaling the lr")
    numbers: dict[str, float | int | str] = {f"batch {b0}, lr {lr0:g}: final loss (the base)": base}
    for B in larger:
        numbers[f"batch {B}: loss with lr {lr0:g} / {lr0 * B / b0:g} / {lr0 * B / b0:g} + warmup"] = (
            " / ".join(f"{v:.4f}" for v in final[B]))
    numbers["highest batch loss in epoch 1 after the first step, scaled lr"] = spike_scaled
    numbers["highest batch loss in epoch 1 after the first step, scaled lr + warmup"] = spike_warm
    numbers["loss at the start, log(10)"] = first_loss
    return ctx.finding(
        verdict, numbers, [fig],
        rule=f"the base is batch {b0} at lr {lr0:g}; every run gets the same {epochs} epochs. Held if, at every "
        "larger batch, the scaled lr ends closer to the base's loss than the unscaled lr, and within 25% of it; "
        "depends if it is closer only at some batch sizes or drifts beyond 25%; did not hold if never closer.",
        summary=f"Keeping lr {lr0:g} while the batch grew left the loss at "
        f"{', '.join(f'{final[B][0]:.3f}' for B in larger)} for batches {larger} (fewer steps of the same size), "
        f"against {base:.3f} for the base; scaling the lr gave "
        f"{', '.join(f'{final[B][1]:.3f}' for B in larger)}: closer at {len(closer)} of {len(larger)} batch sizes "
        f"and within 25% at {len(within)}. The scaled lr reached {lr0 * sizes[-1] / b0:g} "
        + ("without diverging here" if not diverged else "and diverged at some batch size")
        + f"; the highest batch loss in the first epoch (after the first step) was {spike_scaled:.2f} without "
        "warmup and "
        f"{spike_warm:.2f} with it (the start is log 10 = {first_loss:.2f})"
        + (": this convex model is forgiving, so warmup had little to prevent here (the next section puts warmup "
           "to the test on a deep network)." if spike_scaled <= first_loss and not diverged else
           ": without warmup the scaled lr jumped above the starting loss, as the note warns."),
        setup=f"digits (standardized), softmax regression, mini-batch SGD for {epochs} epochs at batch sizes "
        f"{sizes}; for each batch size B three rows of one tensor share the same batches: lr {lr0:g}, lr "
        f"{lr0:g}·B/{b0} (descend.schedules.scale_lr's rule) and the same after a one-epoch linear warmup "
        f"from {lr0:g} (descend.schedules.warmup).",
        caption="Left: where each variant ends against the batch size. Right: the largest batch, epoch by epoch.",
    )



# --------------------------------------------------------------------------- 18. warmup rescues the scaled lr


@dataclass
class WarmupMeasured:
    """Peak batch loss and divergence of every (batch size, variant, seed) run."""

    sizes: list[int]                  # 1 = no scaling (the base), then the large batches
    base_batch: int
    base_lr: float
    hidden: tuple[int, ...]
    epochs: int
    warmup_epochs: int
    seeds: list[int]
    spike_factor: float
    first: dict[int, np.ndarray]       # (variants, seeds) batch loss at the first step
    peak: dict[int, np.ndarray]        # (variants, seeds) highest batch loss after the first step (inf: diverged)
    final: dict[int, np.ndarray]       # (variants, seeds) final training loss (nan: diverged)
    curves: dict[int, np.ndarray]      # (iterations, variants, seeds) batch losses of the largest batch
    warm_iters: dict[int, int]
    n_train: int

    def diverged(self, B: int) -> np.ndarray:
        """(variants, seeds): the run's loss became non-finite (or above 1e3)."""
        return ~np.isfinite(self.final[B])

    def spiked(self, B: int) -> np.ndarray:
        """(variants, seeds): diverged, or a batch loss after the first step above ``spike_factor`` × the first."""
        return self.diverged(B) | (self.peak[B] > self.spike_factor * self.first[B])


WARMUP_VARIANTS = ("cosine from the scaled lr at once", "linear warmup, then cosine")


def measure_warmup(ctx: Context) -> WarmupMeasured:
    """Deep ReLU MLPs without normalization on digits, plain SGD, the lr scaled with the batch."""
    ds = digits(ctx)
    X, y = ds.train
    n, d = X.shape
    hidden = (128, 128, 128, 128)
    b0, lr0 = 16, 0.04
    sizes = ctx.pick([256, 512], [512])
    epochs, warm = 30, 10
    seeds = list(range(ctx.seed, ctx.seed + ctx.pick(8, 4)))
    m = WarmupMeasured(sizes=sizes, base_batch=b0, base_lr=lr0, hidden=hidden, epochs=epochs, warmup_epochs=warm,
                       seeds=seeds, spike_factor=2.0, first={}, peak={}, final={}, curves={}, warm_iters={},
                       n_train=n)
    for B in sizes:
        ipe = math.ceil(n / B)
        lr = lr0 * B / b0
        T, W = epochs * ipe, warm * ipe  # note 003's plan: warmup to the lr, then cosine decay
        plans = [S.cosine(lr, T), S.warmup(S.cosine(lr, T - W), W, start=lr0)]
        m.warm_iters[B] = warm * ipe
        V, N = len(plans), len(seeds)
        net = MLPRows((d, *hidden, 10), N, torch.Generator().manual_seed(ctx.seed * 7919 + B), repeat=V)
        opt = rows_optimizer("sgd", net.params, lr=[lr] * (V * N))
        batches = D.Batches(X, y, B, seed=ctx.seed)
        it, rec = 0, []
        for e in range(epochs):
            for xb, yb in batches.iter_epoch(e):
                set_row_lrs(opt, [p(it) for p in plans for _ in seeds])
                opt.zero_grad()
                rows = net.losses(xb, yb)
                rec.append(rows.detach().numpy().copy())
                rows.nan_to_num(0.0, 0.0, 0.0).sum().backward()
                opt.step()
                it += 1
        with torch.no_grad():
            fin = net.losses(X, y).numpy()
        curve = np.stack(rec).reshape(len(rec), V, N)
        after = np.where(np.isfinite(curve[1:]), curve[1:], np.inf)
        m.first[B], m.peak[B] = curve[0], after.max(0)
        m.final[B] = np.where(np.isfinite(fin) & (fin < 1e3), fin, np.nan).reshape(V, N)
        m.curves[B] = curve
    return m


def _last(values: np.ndarray) -> int:
    """Index of the last finite value (0 if none)."""
    idx = np.flatnonzero(np.isfinite(values))
    return int(idx[-1]) if idx.size else 0


def _median_text(med: list[float]) -> str:
    """The median final losses without and with warmup, or which side had half its seeds diverge."""
    if all(np.isfinite(med)):
        return f"The median final training loss was {med[0]:.4f} without warmup and {med[1]:.4f} with it."
    side = ("without warmup" if not np.isfinite(med[0]) else "") + (
        " and with it" if not np.isfinite(med[0]) and not np.isfinite(med[1]) else
        "with warmup" if not np.isfinite(med[1]) else "")
    other = [f"{v:.4f} {w}" for v, w in zip(med, ("without warmup", "with warmup")) if np.isfinite(v)]
    return (f"At least half the seeds diverged {side}, so no median final loss there"
            + (f" (median {other[0]})." if other else "."))


def judge_warmup(m: WarmupMeasured) -> tuple[str, int, int]:
    """At the largest batch a run fails if it diverges or spikes: held if at least half the seeds fail at once and
    at most a quarter after warmup; did not hold if they fail as often or more with warmup; depends otherwise.
    Returns (verdict, failures at once, failures with warmup)."""
    f = m.spiked(m.sizes[-1])
    at_once, warmed, N = int(f[0].sum()), int(f[1].sum()), len(m.seeds)
    if at_once >= N / 2 and warmed <= N / 4:
        return HELD, at_once, warmed
    if at_once <= warmed:
        return NOT_HELD, at_once, warmed
    return DEPENDS, at_once, warmed


@topic("warmup")
def warmup(ctx: Context) -> Finding:
    """Topic ``warmup``: measure (:func:`measure_warmup`), judge (:func:`judge_warmup`), write."""
    m = measure_warmup(ctx)
    verdict, at_once, warmed = judge_warmup(m)
    B = m.sizes[-1]
    N = len(m.seeds)
    lr = m.base_lr * B / m.base_batch
    cap = 1e3  # the scale's top: a run past it diverged (its loss went on to overflow)
    curve = np.where(np.isfinite(m.curves[B]) & (m.curves[B] <= cap), m.curves[B], np.nan)
    its = np.arange(1, curve.shape[0] + 1)
    panels = [Panel(f"batch {B}, lr {lr:g}: {name}", "iteration", "batch cross-entropy",
                    [Series(f"seed {s}", its[:_last(curve[:, j, i]) + 1], curve[:_last(curve[:, j, i]) + 1, j, i],
                            color=color(i), width=1.2, end_marker="x" if m.diverged(B)[j, i] else None)
                     for i, s in enumerate(m.seeds)],
                    ylog=True, legend=None,
                    vlines=[(m.warm_iters[B], "warmup ends")] if j == 1 else [],
                    hlines=[(float(np.median(m.first[B][j])) * m.spike_factor, f"{m.spike_factor:g}× the first loss")])
              for j, name in enumerate(WARMUP_VARIANTS)]
    fig = panels_figure(panels, title=f"Digits, MLP 64-{'-'.join(map(str, m.hidden))}-10 (ReLU, no normalization), "
                        f"plain SGD: batch {m.base_batch} at lr {m.base_lr:g} scaled {B // m.base_batch}× "
                        f"({N} seeds; × marks the last loss of a run that then diverged)", width=13)
    numbers: dict[str, float | int | str] = {}
    for b in m.sizes:
        div, spk = m.diverged(b), m.spiked(b)
        for j, name in enumerate(WARMUP_VARIANTS):
            numbers[f"batch {b} (lr {m.base_lr * b / m.base_batch:g}), {name}: diverged / spiked or diverged (of {N})"] = (
                f"{int(div[j].sum())} / {int(spk[j].sum())}")
            ok = m.final[b][j][np.isfinite(m.final[b][j])]
            numbers[f"batch {b}, {name}: median final training loss of the runs that did not diverge"] = (
                float(np.median(ok)) if ok.size else "none")
    spk = m.spiked(B)
    div = m.diverged(B)
    med = [np.median(np.where(np.isfinite(m.final[B][j]), m.final[B][j], np.inf)) for j in range(2)]
    summary = (f"At batch {B} with the scaled lr {lr:g}, {at_once} of {N} seeds failed (spiked above "
               f"{m.spike_factor:g}× the first batch loss, or diverged) when the cosine schedule started at {lr:g}, "
               f"and {warmed} of {N} after a {m.warmup_epochs}-epoch linear warmup from {m.base_lr:g}; of those, "
               f"{int(div[0].sum())} and {int(div[1].sum())} diverged. " + _median_text(med))
    if len(m.sizes) > 1:
        f0 = m.spiked(m.sizes[0])
        summary += (f" At batch {m.sizes[0]} (lr {m.base_lr * m.sizes[0] / m.base_batch:g}) {int(f0[0].sum())} without warmup and "
                    f"{int(f0[1].sum())} with it failed.")
    summary += {HELD: " Warmup rescued the scaled lr, as note 003 says.",
                NOT_HELD: " Warmup did not make the scaled lr safer here.",
                DEPENDS: f" Warmup reduced the failures at batch {B} from {at_once} to {warmed} of {N}, but not to "
                         "a quarter of the seeds: at this scale warmup made failures rarer but did not rescue the "
                         "scaled lr."}[verdict]
    return ctx.finding(
        verdict, numbers, [fig],
        rule=f"a run fails if it diverges (loss non-finite or above 1e3) or spikes (a batch loss after the first step "
        f"above {m.spike_factor:g}× the first). At the largest batch ({B}): held if at least half of the {N} seeds fail "
        "without warmup and at most a quarter with it; did not hold if they fail as often or more with warmup; "
        "depends otherwise.",
        summary=summary,
        setup=f"digits (standardized, {m.n_train} training examples), a ReLU MLP 64-{'-'.join(map(str, m.hidden))}-10 "
        f"with He initialization and no normalization, plain SGD for {m.epochs} epochs; base batch {m.base_batch} at "
        f"lr {m.base_lr:g}, scaled to batch sizes {m.sizes} at lr {m.base_lr:g}·B/{m.base_batch}; "
        f"both with note 003's cosine decay to 0 over the run, started at once or after descend.schedules.warmup "
        f"over {m.warmup_epochs} epochs from {m.base_lr:g}. Seeds {m.seeds} (the "
        "initial weights); both variants of a seed start from the same weights and see the same batches; all "
        "runs train as rows of one stacked network.",
        caption="Every seed's batch loss at the largest batch, without warmup (left) and with it (right).",
    )
