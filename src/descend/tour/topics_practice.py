"""Tour topics on practice: learning-rate schedules, the linear scaling rule, Adam then SGD,
per-part optimizers, and the notes' advice on choosing an optimizer.

Schedules come from :mod:`descend.schedules`, phases and per-part optimizers
from :mod:`descend.train` (``Phase``, ``PartOptimizer`` specs), data from
:mod:`descend.data`. Several learning rates, schedules or batch-size variants
train together as rows of one tensor (see :mod:`descend.tour._util`): with
descend's element-wise optimizers each row moves exactly as it would alone.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as D
from .. import models as M
from .. import optim as O
from .. import schedules as S
from ..plots.tour import Bars, Panel, Series, color, panels_figure, png
from ..train import Phase
from ._util import rows_optimizer, set_row_lrs
from .core import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic
from .topics_data import _digits, _fit

F64 = torch.float64


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


@topic(
    "schedules", "Every learning-rate schedule of the notes, with warmup", note="003, 002",
    claim="There is no single best learning rate, but starting large and making it smaller later works well. "
    "A large fixed learning rate does well early but then hovers around the optimum without getting close; "
    "decaying it (step decay, exponential, 1/(1 + r·n), k/√n, linear, cosine, linear warmup then cosine, or "
    "by hand) gets much closer.",
    quote="초기의 Learning Rate를 크게 → 이후에 작게 하는 것이 좋다 … 고정된 학습률은 … 최적화 값에 근접하지 못하고 주위를 맴도는 현상",
)
def schedules(ctx: Context) -> Finding:
    """Topic ``schedules``: run the experiment, draw the figure, judge the claim (see the decorator)."""
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
    opt = rows_optimizer(O.SGD, [W], lr=[lr] * R)
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
    final = G[-1]
    base = final[0]
    decays = final[1:]
    better = int(np.sum(decays < base))
    verdict = judge(better == len(decays), partly=better > 0)
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
    return Finding(
        verdict=verdict,
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
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Left: each schedule's lr per iteration. Right: how close each run got, epoch by epoch.",
    )


# --------------------------------------------------------------------------- 16. linear scaling rule


def _softmax_rows(W: torch.Tensor, b: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of R stacked softmax regressions: W (R, k, d), b (R, k) -> (R,)."""
    R, k = b.shape
    logits = torch.matmul(xb, W.transpose(1, 2)) + b[:, None, :]
    return F.cross_entropy(logits.reshape(-1, k), yb.repeat(R), reduction="none").view(R, -1).mean(1)


@topic(
    "linear_scaling", "The linear scaling rule (batch × N, lr × N), with warmup", note="003",
    claim="If the batch size grows N times, the learning rate should grow N times too to get the same result "
    "(batch 20 at lr 0.01 becomes batch 40 at lr 0.02). Starting a large batch at the scaled lr right away can "
    "diverge, so the lr is raised from a small value to the planned one first (warmup).",
    quote="Batch size가 N배 증가한다면, Learning Rate도 N배 증가 시켜야 같은 성능이 나온다",
)
def linear_scaling(ctx: Context) -> Finding:
    """Topic ``linear_scaling``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    ds = _digits(ctx)
    X, y = ds.train
    n, d = X.shape
    k = int(y.max()) + 1
    b0, lr0 = 16, 0.05
    epochs = ctx.pick(10, 4)
    sizes = ctx.pick([16, 32, 64, 128, 256, 512], [16, 64, 256])
    variants = ["same lr", "scaled lr (rule)", "scaled lr + 1 epoch warmup"]
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
        opt = rows_optimizer(O.SGD, [W, bias], lr=[lr0] * R)
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
    base = float(final[b0][0])
    dev = {B: np.abs(final[B] - base) / base for B in sizes}
    larger = [B for B in sizes if B > b0]
    closer = [B for B in larger if dev[B][1] < dev[B][0]]
    within = [B for B in larger if dev[B][1] <= 0.25]
    if len(closer) == len(larger) and len(within) == len(larger):
        verdict = HELD
    elif closer:
        verdict = DEPENDS
    else:
        verdict = NOT_HELD
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
    return Finding(
        verdict=verdict,
        rule=f"the base is batch {b0} at lr {lr0:g}; every run gets the same {epochs} epochs. Held if, at every "
        "larger batch, the scaled lr ends closer to the base's loss than the unscaled lr, and within 25% of it; "
        "depends if it is closer only at some batch sizes or drifts beyond 25%; did not hold if never closer.",
        summary=f"Keeping lr {lr0:g} while the batch grew left the loss at "
        f"{', '.join(f'{final[B][0]:.3f}' for B in larger)} for batches {larger} (fewer steps of the same size), "
        f"against {base:.3f} for the base; scaling the lr gave "
        f"{', '.join(f'{final[B][1]:.3f}' for B in larger)}: closer at {len(closer)} of {len(larger)} batch sizes "
        f"and within 25% at {len(within)}. The scaled lr reached {lr0 * sizes[-1] / b0:g} without diverging "
        f"here; the highest batch loss in the first epoch (after the first step) was {spike_scaled:.2f} without warmup and "
        f"{spike_warm:.2f} with it (the start is log 10 = {first_loss:.2f})"
        + (": this convex model is forgiving, so warmup had little to prevent; the warmup half of the note was "
           "not put to the test here." if spike_scaled <= first_loss and not diverged else
           ": without warmup the scaled lr jumped above the starting loss, as the note warns."),
        setup=f"digits (standardized), softmax regression, mini-batch SGD for {epochs} epochs at batch sizes "
        f"{sizes}; for each batch size B three rows of one tensor share the same batches: lr {lr0:g}, lr "
        f"{lr0:g}·B/{b0} (descend.schedules.scale_lr's rule) and the same after a one-epoch linear warmup "
        f"from {lr0:g} (descend.schedules.warmup).",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Left: where each variant ends against the batch size. Right: the largest batch, epoch by epoch.",
    )


# --------------------------------------------------------------------------- 17. Adam then SGD


@topic(
    "adam_then_sgd", "Adam first, then SGD", note="000",
    claim="Do not mix optimizers in one step, but switch between phases: start with Adam, which makes fast "
    "progress in the first epochs, then switch to SGD, whose simple, steady steps control the later stage "
    "better and help the model converge to a better minimum (and generalize).",
    quote="초기 에포크에서 빠른 진행 능력을 가진 Adam으로 시작하고 … 후속 에포크에서 SGD로 전환",
)
def adam_then_sgd(ctx: Context) -> Finding:
    """Topic ``adam_then_sgd``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    ds = _digits(ctx)
    E = ctx.pick(16, 4)
    seeds = ctx.pick([ctx.seed, ctx.seed + 1, ctx.seed + 2], [ctx.seed])
    adam_lr, sgd_lr = 1e-3, 0.1
    plans = {
        "Adam": {"optimizer": "adam", "lr": adam_lr},
        "SGD": {"optimizer": "sgd", "lr": sgd_lr},
        "Adam, then SGD": {"phases": [Phase(E // 2, "adam", lr=adam_lr), Phase(E - E // 2, "sgd", lr=sgd_lr)]},
    }
    hist: dict[str, list[list[dict]]] = {k: [] for k in plans}
    fin: dict[str, list[dict]] = {k: [] for k in plans}
    for seed in seeds:
        for name, cfg in plans.items():
            torch.manual_seed(seed)
            model = M.MLP(64, (128, 128), n_out=10)
            h, f, _ = _fit(model, ds, batch_size=64, epochs=E, seed=seed, **cfg)
            hist[name].append(h)
            fin[name].append(f or {})

    def mean_curve(name: str, key: str) -> np.ndarray:
        return np.mean([[r.get(key, np.nan) for r in h] for h in hist[name]], axis=0)

    def mean_final(name: str, key: str) -> float:
        return float(np.mean([f.get(key, np.nan) for f in fin[name]]))

    early = {k: float(mean_curve(k, "val_loss")[0]) for k in ("Adam", "SGD")}
    fast_start = early["Adam"] < early["SGD"]
    switch_loss, adam_loss = mean_final("Adam, then SGD", "val_loss"), mean_final("Adam", "val_loss")
    switch_acc, adam_acc = mean_final("Adam, then SGD", "test_accuracy"), mean_final("Adam", "test_accuracy")
    better_end = switch_loss < adam_loss and switch_acc >= adam_acc
    verdict = judge(fast_start and better_end, partly=fast_start or better_end)
    ctx.facts["adam_then_sgd"] = {
        "fast_start": fast_start, "better_end": better_end,
        "sgd_vs_adam_test": (mean_final("SGD", "test_accuracy"), adam_acc),
    }
    ep = np.arange(1, E + 1)
    fig = panels_figure([
        Panel("validation loss per epoch", "epoch", "validation cross-entropy",
              [Series(k, ep, mean_curve(k, "val_loss"), marker="o", color=color(i), style="--" if i == 2 else "-")
               for i, k in enumerate(plans)],
              ylog=True, vlines=[(E // 2 + 0.5, "switch to SGD")], integer_x=True),
        Panel("validation accuracy per epoch", "epoch", "validation accuracy",
              [Series(k, ep, mean_curve(k, "val_accuracy"), marker="o", color=color(i), style="--" if i == 2 else "-")
               for i, k in enumerate(plans)],
              vlines=[(E // 2 + 0.5, "switch to SGD")], legend="lower right", integer_x=True),
    ], title=f"Digits, MLP 64-128-128-10: Adam (lr {adam_lr:g}), SGD (lr {sgd_lr:g}) and Adam for {E // 2} epochs "
       f"then SGD (mean of {len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
    numbers: dict[str, float | int | str] = {}
    for k in plans:
        numbers[f"{k}: validation loss after epoch 1"] = float(mean_curve(k, "val_loss")[0])
        numbers[f"{k}: final training loss"] = mean_final(k, "train_loss")
        numbers[f"{k}: final validation loss"] = mean_final(k, "val_loss")
        numbers[f"{k}: final test accuracy"] = mean_final(k, "test_accuracy")
    return Finding(
        verdict=verdict,
        rule="two parts, averaged over the seeds. Early: Adam's validation loss after the first epoch is below "
        "SGD's. End: the run that switches from Adam to SGD halfway ends with a lower validation loss than Adam "
        "alone and at least its test accuracy. Held if both; depends if one; did not hold if neither.",
        summary=f"After one epoch the validation loss was {early['Adam']:.3f} with Adam and {early['SGD']:.3f} "
        f"with SGD: {'Adam was faster at the start' if fast_start else 'Adam was not faster at the start'}. At "
        f"the end the switched run had validation loss {switch_loss:.4f} and test accuracy {switch_acc:.4f}, "
        f"Adam alone {adam_loss:.4f} and {adam_acc:.4f}, SGD alone {mean_final('SGD', 'val_loss'):.4f} and "
        f"{mean_final('SGD', 'test_accuracy'):.4f}. "
        + ("The switch paid off here." if better_end else
           "Switching to plain SGD did not beat staying with Adam on either count in this short run: SGD's "
           "steady steps continued more slowly than Adam would have." if (switch_loss >= adam_loss and
                                                                         switch_acc <= adam_acc) else
           "Mixed: the switched run " + ("had the lower validation loss" if switch_loss < adam_loss else
                                         "had the higher validation loss")
           + " but " + ("the higher" if switch_acc > adam_acc else "not the higher") + " test accuracy."),
        setup=f"digits (standardized), descend.models.MLP 64-128-128-10 (ReLU), batches of 64, {E} epochs, seeds "
        f"{seeds}; descend.train.Trainer with Adam lr {adam_lr:g}, plain SGD lr {sgd_lr:g}, and phases "
        f"[Phase({E // 2}, 'adam'), Phase({E - E // 2}, 'sgd')] (SGD built fresh at the switch).",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Validation loss and accuracy per epoch; the dotted line is the switch.",
    )


# --------------------------------------------------------------------------- 18. per-part optimizers


def _subset(ds: D.Dataset, classes: list[int], limit: int | None = None, seed: int = 0) -> D.Dataset:
    """The examples of ``classes`` (relabelled 0..k-1) as a Dataset; ``limit`` caps the training split."""
    parts = {}
    for split in ("train", "val", "test"):
        X, y = ds.part(split)
        keep = torch.zeros_like(y, dtype=torch.bool)
        for c in classes:
            keep |= y == c
        Xs, ys = X[keep], y[keep] - min(classes)
        if split == "train" and limit is not None and len(Xs) > limit:
            idx = torch.randperm(len(Xs), generator=torch.Generator().manual_seed(seed))[:limit]
            Xs, ys = Xs[idx], ys[idx]
        parts[split] = (Xs, ys)
    return dataclasses.replace(
        ds, X_train=parts["train"][0], y_train=parts["train"][1], X_val=parts["val"][0], y_val=parts["val"][1],
        X_test=parts["test"][0], y_test=parts["test"][1], n_classes=len(classes), class_names=None, indices={},
    )


def _accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(X).argmax(1) == y).float().mean())


@topic(
    "parts", "Different optimizers for different parts of a model", note="000",
    claim="When new layers are added to a pretrained model, use a stable, non-aggressive optimizer for the "
    "pretrained layers to keep the features they learned intact, and a more aggressive, fast-adjusting one for "
    "the new layers.",
    quote="사전 훈련된 계층의 경우 안정적이고 공격적이지 않은 옵티마이저가 이미 학습한 피처의 무결성을 유지하는 데 이상적입니다",
)
def parts(ctx: Context) -> Finding:
    """Topic ``parts``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    ds = _digits(ctx)
    old_classes, new_classes = list(range(6)), list(range(6, 10))
    old = _subset(ds, old_classes)
    new = _subset(ds, new_classes, limit=400, seed=ctx.seed)
    torch.manual_seed(ctx.seed)
    base = M.MLP(64, (64, 64), n_out=len(old_classes))
    _, pre, _ = _fit(base, old, optimizer="adam", lr=1e-3, batch_size=16, epochs=ctx.pick(10, 4), seed=ctx.seed)
    old_head = copy.deepcopy(base.net[4])
    fast = ("adam", {"lr": 1e-2})
    plans = {
        "Adam 1e-2 everywhere": {"net.0": fast, "net.2": fast, "net.4": fast},
        "per part: SGD 1e-2 body, Adam 1e-2 head": {"net.0": ("sgd", {"lr": 1e-2}), "net.2": ("sgd", {"lr": 1e-2}),
                                                    "net.4": fast},
        "body frozen, Adam 1e-2 head": {"net.0": None, "net.2": None, "net.4": fast},
    }
    seeds = ctx.pick([ctx.seed + 1, ctx.seed + 2, ctx.seed + 3], [ctx.seed + 1])
    E = ctx.pick(8, 3)
    res: dict[str, dict[str, float]] = {}
    for name, spec in plans.items():
        acc_new, acc_old, drift = [], [], []
        for seed in seeds:
            torch.manual_seed(seed)
            model = copy.deepcopy(base)
            model.net[4] = torch.nn.Linear(64, len(new_classes))
            body0 = torch.cat([p.detach().flatten().clone() for n, p in model.named_parameters() if not n.startswith("net.4")])
            _, f, _ = _fit(model, new, optimizer=spec, batch_size=16, epochs=E, seed=seed)
            body1 = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if not n.startswith("net.4")])
            drift.append(float((body1 - body0).norm() / body0.norm()))
            acc_new.append(float((f or {}).get("test_accuracy", float("nan"))))
            probe = copy.deepcopy(model)
            probe.net[4] = old_head
            acc_old.append(_accuracy(probe, old.X_val, old.y_val))
        res[name] = {"new": float(np.mean(acc_new)), "old": float(np.mean(acc_old)), "drift": float(np.mean(drift))}
    a, p, z = (res[k] for k in plans)
    keeps = p["old"] >= a["old"] + 0.05
    learns = p["new"] >= a["new"] - 0.05 and p["new"] >= z["new"]
    verdict = judge(keeps and learns, partly=keeps)
    ctx.facts["parts"] = {"keeps": keeps, "learns": learns}
    cats = ["new task: test accuracy", "old task: accuracy with the old head", "body moved: |Δw| / |w|"]
    fig = panels_figure([
        Panel("fine-tuning a pretrained network on a new task", "", "",
              bars=Bars(cats, [(k, [v["new"], v["old"], v["drift"]], color(i)) for i, (k, v) in enumerate(res.items())],
                        fmt="{:.3f}", ylim=(0, 1.38)), legend="upper center"),
    ], title=f"Digits: body pretrained on classes 0–5, new head for classes 6–9 ({new.n_train} examples, {E} epochs)",
        width=10.5, height=4.8)
    numbers: dict[str, float | int | str] = {"pretrained: validation accuracy on classes 0–5": float((pre or {}).get(
        "val_accuracy", float("nan")))}
    for k, v in res.items():
        numbers[f"{k}: new-task test accuracy"] = v["new"]
        numbers[f"{k}: old-task accuracy (old head)"] = v["old"]
        numbers[f"{k}: body change |Δw|/|w|"] = v["drift"]
    return Finding(
        verdict=verdict,
        rule="keeps: the per-part run's old-task accuracy (pretrained body with its old head) is at least 5 points "
        "above the all-aggressive run's. Learns: its new-task accuracy is within 5 points of the all-aggressive "
        "run's and not below the frozen body's. Held if both; depends if it keeps the features but learns less; "
        "did not hold if it does not keep them.",
        summary=f"Adam at 1e-2 everywhere reached {a['new']:.3f} on the new task but moved the body by "
        f"{a['drift']:.2f} of its norm, and the old task fell to {a['old']:.3f}. Gentle SGD on the body with Adam "
        f"on the new head reached {p['new']:.3f}, moved the body by {p['drift']:.3f} and kept the old task at "
        f"{p['old']:.3f}; a frozen body kept it at {z['old']:.3f} but reached only {z['new']:.3f}. "
        + ("The split kept the pretrained features and still learned the new task." if keeps and learns else
           "The split kept the pretrained features but gave up some accuracy on the new task." if keeps else
           "The split did not keep the pretrained features better."),
        setup="digits (standardized); descend.models.MLP 64-64-64 pretrained with Adam on classes 0–5; its head "
        f"replaced by a new Linear for classes 6–9 (at most 400 training examples), fine-tuned {E} epochs with "
        "descend.train.Trainer and per-part optimizer specs (descend.train.PartOptimizer: body net.0, net.2; head "
        f"net.4; None freezes), batches of 16, seeds {seeds}. Old-task accuracy: the fine-tuned body with the "
        "old head on classes 0–5.",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Three ways to fine-tune: what the new task gained and what the old one lost.",
    )


# --------------------------------------------------------------------------- 19. choosing an optimizer


def _sparse_problem(gen: torch.Generator, n: int = 3000, d: int = 100) -> tuple[torch.Tensor, ...]:
    """Binary features present with probability 0.3 down to 0.003 (sparse), logistic labels."""
    p = torch.logspace(math.log10(0.3), math.log10(0.003), d)
    X = (torch.rand(n, d, generator=gen) < p).float()
    w = torch.randn(d, generator=gen) * 2.0
    y = (torch.rand(n, generator=gen) < torch.sigmoid(X @ w - 0.5)).float()
    return X, y, w


def _sparse(ctx: Context) -> dict[str, dict[str, float]]:
    X, y, w_true = _sparse_problem(ctx.generator(19))
    ntr = 2000
    Xtr, ytr, Xte, yte = X[:ntr], y[:ntr], X[ntr:], y[ntr:]
    d = X.shape[1]
    rare = slice(d // 2, d)
    lrs = list(np.logspace(-2.5, 1.5, 9))
    epochs = ctx.pick(5, 2)

    def rows_loss(W: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        z = xb @ W[:, :-1].T + W[:, -1]
        return F.binary_cross_entropy_with_logits(z, yb[:, None].expand_as(z), reduction="none").mean(0)

    out = {}
    for name, cls in (("SGD", O.SGD), ("Adam", O.Adam), ("Adagrad", O.Adagrad)):
        W = torch.zeros(len(lrs), d + 1, requires_grad=True)
        opt = rows_optimizer(cls, [W], lr=lrs)
        batches = D.Batches(Xtr, ytr, 32, seed=ctx.seed)
        for e in range(epochs):
            for xb, yb in batches.iter_epoch(e):
                opt.zero_grad()
                rows_loss(W, xb, yb).sum().backward()
                opt.step()
        with torch.no_grad():
            tr = rows_loss(W, Xtr, ytr).numpy()
            te = rows_loss(W, Xte, yte).numpy()
            err = (W[:, rare] - w_true[rare]).abs().mean(1).numpy()
        tr = np.where(np.isfinite(tr), tr, np.inf)
        k = int(np.argmin(tr))
        out[name] = {"lr": float(lrs[k]), "train": float(tr[k]), "test": float(te[k]), "rare": float(err[k])}
    return out


def _online(ctx: Context) -> dict[str, dict[str, object]]:
    gen = ctx.generator(23)
    d, T = 10, ctx.pick(2000, 600)
    X = torch.randn(T, d, generator=gen)
    w1 = torch.randn(d, generator=gen)
    w2 = w1 + 0.5 * torch.randn(d, generator=gen)  # a small change of the data's law halfway
    W_true = torch.where(torch.arange(T)[:, None] < T // 2, w1, w2)
    y = (X * W_true).sum(1) + 0.1 * torch.randn(T, generator=gen)
    lrs = [0.001, 0.003, 0.01, 0.03, 0.1]
    after = ctx.pick(300, 150)
    out: dict[str, dict[str, object]] = {}
    for name, cls in (("SGD", O.SGD), ("Adam", O.Adam), ("Adagrad", O.Adagrad)):
        W = torch.zeros(len(lrs), d, requires_grad=True)
        opt = rows_optimizer(cls, [W], lr=lrs)
        err = torch.zeros(T, len(lrs))
        for t in range(T):
            opt.zero_grad()
            ((W @ X[t] - y[t]) ** 2).sum().backward()
            opt.step()
            with torch.no_grad():
                err[t] = ((W - W_true[t]) ** 2).sum(1)
        e = err.numpy()
        post = e[T // 2 + 1:T // 2 + 1 + after].mean(0)
        post = np.where(np.isfinite(post), post, np.inf)
        k = int(np.argmin(post))
        out[name] = {"lr": lrs[k], "post": float(post[k]), "curve": e[:, k], "T": T}
    return out


@topic(
    "choose", "How to choose an optimizer: the notes' advice against this run", note="000",
    claim="Practical advice: use SGD for online learning (frequent small updates that adapt quickly to small "
    "changes in the data); use Adam for sparse data (per-parameter learning rates give rare features larger "
    "updates); do not combine optimizers in one step, but switch between phases (Adam early, SGD later) or give "
    "different parts of a model different optimizers; SGD's simple steps are more stable late in training.",
    quote="온라인 학습에는 SGD 사용 … Adam 및 희소 데이터 … 옵티마이저를 결합하지 마세요",
)
def choose(ctx: Context) -> Finding:
    """Topic ``choose``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    sp = _sparse(ctx)
    on = _online(ctx)
    advice: list[tuple[str, str, str]] = []  # (advice, measured, outcome)
    sparse_ok = sp["Adam"]["train"] < sp["SGD"]["train"] and sp["Adam"]["rare"] < sp["SGD"]["rare"]
    advice.append((
        "Adam for sparse data",
        f"sparse logistic regression, best lr each: training loss Adam {sp['Adam']['train']:.3f}, SGD "
        f"{sp['SGD']['train']:.3f}, Adagrad {sp['Adagrad']['train']:.3f}; error on the rare features' weights "
        f"Adam {sp['Adam']['rare']:.2f}, SGD {sp['SGD']['rare']:.2f}, Adagrad {sp['Adagrad']['rare']:.2f}",
        HELD if sparse_ok else NOT_HELD))
    online_ok = on["SGD"]["post"] <= min(on["Adam"]["post"], on["Adagrad"]["post"])
    advice.append((
        "SGD for online learning",
        f"one example at a time, the law changes halfway: mean squared weight error over the next steps, best lr "
        f"each: SGD {on['SGD']['post']:.3f}, Adam {on['Adam']['post']:.3f}, Adagrad {on['Adagrad']['post']:.3f}",
        HELD if online_ok else NOT_HELD))
    phases = ctx.facts.get("adam_then_sgd")
    if phases is not None:
        advice.append(("switch phases: Adam early, SGD later",
                       "section 'Adam first, then SGD': Adam faster at the start: "
                       f"{'yes' if phases['fast_start'] else 'no'}; switched run better at the end: "
                       f"{'yes' if phases['better_end'] else 'no'}",
                       judge(phases["fast_start"] and phases["better_end"],
                             partly=phases["fast_start"] or phases["better_end"])))
        sgd_acc, adam_acc = phases["sgd_vs_adam_test"]
        advice.append(("SGD is more stable and generalizes better late in training",
                       f"same section: final test accuracy SGD {sgd_acc:.4f}, Adam {adam_acc:.4f} (within 0.5 "
                       "points: depends)",
                       HELD if sgd_acc > adam_acc + 0.005 else NOT_HELD if sgd_acc < adam_acc - 0.005 else DEPENDS))
    part = ctx.facts.get("parts")
    if part is not None:
        advice.append(("different optimizers for different parts",
                       f"section 'different parts': pretrained features kept: {'yes' if part['keeps'] else 'no'}; "
                       f"new task learned as well: {'yes' if part['learns'] else 'no'}",
                       judge(part["keeps"] and part["learns"], partly=part["keeps"])))
    advice.append(("do not combine optimizers in one step",
                   "not measured: a design rule (descend's PartOptimizer gives each parameter exactly one "
                   "optimizer, and phases hand over between steps)", "not measured"))
    measured = [o for _, _, o in advice if o in (HELD, NOT_HELD, DEPENDS)]
    n_held = sum(1 for o in measured if o == HELD)
    verdict = judge(n_held == len(measured), partly=n_held > 0 or DEPENDS in measured)
    names = list(sp)
    t_on = int(next(iter(on.values()))["T"])
    window = 25
    kernel = np.ones(window) / window
    fig = panels_figure([
        Panel("sparse data (rare features): each at its best lr", "", "",
              bars=Bars(["training loss", "test loss", "error on rare weights"],
                        [(k, [sp[k]["train"], sp[k]["test"], sp[k]["rare"]], color(i)) for i, k in enumerate(names)],
                        fmt="{:.3f}")),
        Panel("online learning: the data's law changes halfway", "example (one step each)",
              "squared error of the weights (moving average)",
              [Series(f"{k} (lr {v['lr']:g})", np.arange(window - 1, t_on), np.convolve(v["curve"], kernel, "valid"),
                      color=color(i)) for i, (k, v) in enumerate(on.items())],
              ylog=True, vlines=[(t_on // 2, "the change")], legend="upper right"),
    ], title="Two pieces of the notes' advice, measured (the others come from earlier sections)")
    numbers: dict[str, float | int | str] = {}
    for a, m, o in advice:
        numbers[a] = m if o == "not measured" else f"{o}: {m}"
    for k in names:
        numbers[f"sparse, {k}: best lr"] = sp[k]["lr"]
    for k, v in on.items():
        numbers[f"online, {k}: best lr"] = float(v["lr"])
    return Finding(
        verdict=verdict,
        rule="each piece of advice that this tour measured gets its own held / did not hold / depends (listed in "
        "the table). Held if every measured piece held; depends if some held or depended; did not hold if none did. Advice "
        "that is a design rule rather than a measurable claim is listed as not measured.",
        summary=f"{n_held} of {len(measured)} measured pieces of advice held in this run. "
        + " ".join(f"{a}: {o}." for a, _, o in advice if o != "not measured")
        + " The notes' advice is a set of defaults, not laws: which optimizer wins depends on the problem and on "
        "tuning, as the sections above show.",
        setup=f"Sparse: {3000} synthetic examples with 100 binary features present with probability 0.3 down to "
        "0.003, logistic labels; SGD, Adam and Adagrad, mini-batches of 32, 9 learning rates from 3e-3 to 30 as "
        f"rows of one tensor; the rare half of the features scored. Online: a linear model learning from one "
        f"example at a time, {t_on} examples, the true weights change by a small step halfway; 5 learning rates "
        "each. Phases and parts: the sections above.",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Left: sparse data. Right: tracking a change in an online stream.",
    )
