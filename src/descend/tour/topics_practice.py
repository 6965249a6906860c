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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as D
from .. import models as M
from .. import optim as O
from ..plots.tour import Bars, Panel, Series, color, panels_figure
from ..train import Phase
from ._util import digits, fit, rows_optimizer, take
from .base import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic

# --------------------------------------------------------------------------- 17. Adam then SGD


def measure_adam_then_sgd(ctx: Context) -> dict[str, Any]:
    """MLPs on digits trained with Adam, with SGD, and with Adam then SGD (phases), over seeds."""
    ds = digits(ctx)
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
            h, f, _ = fit(model, ds, batch_size=64, epochs=E, seed=seed, **cfg)
            hist[name].append(h)
            fin[name].append(f or {})

    def mean_curve(name: str, key: str) -> np.ndarray:
        return np.mean([[r.get(key, np.nan) for r in h] for h in hist[name]], axis=0)

    def mean_final(name: str, key: str) -> float:
        return float(np.mean([f.get(key, np.nan) for f in fin[name]]))

    early = {k: float(mean_curve(k, "val_loss")[0]) for k in ("Adam", "SGD")}
    return {"E": E, "adam_lr": adam_lr, "early": early, "mean_curve": mean_curve, "mean_final": mean_final, "plans": plans, "seeds": seeds, "sgd_lr": sgd_lr}


def judge_adam_then_sgd(early: dict[str, float], switch: tuple[float, float], adam: tuple[float, float]) -> tuple:
    """Early: Adam's validation loss after epoch 1 below SGD's. End: the switched run's (validation loss, test
    accuracy) has a lower loss than Adam alone's and at least its accuracy. Held if both, depends if one.
    Returns (verdict, fast start, better end)."""
    fast_start = early["Adam"] < early["SGD"]
    better_end = switch[0] < adam[0] and switch[1] >= adam[1]
    return judge(fast_start and better_end, partly=fast_start or better_end), fast_start, better_end


@topic("adam_then_sgd")
def adam_then_sgd(ctx: Context) -> Finding:
    """Topic ``adam_then_sgd``: measure (:func:`measure_adam_then_sgd`), judge (:func:`judge_adam_then_sgd`), write."""
    m = measure_adam_then_sgd(ctx)
    (E, adam_lr, early, mean_curve, mean_final, plans, seeds, sgd_lr) = take(
        m, "E adam_lr early mean_curve mean_final plans seeds sgd_lr")
    switch_loss, adam_loss = mean_final("Adam, then SGD", "val_loss"), mean_final("Adam", "val_loss")
    switch_acc, adam_acc = mean_final("Adam, then SGD", "test_accuracy"), mean_final("Adam", "test_accuracy")
    verdict, fast_start, better_end = judge_adam_then_sgd(early, (switch_loss, switch_acc), (adam_loss, adam_acc))
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
    return ctx.finding(
        verdict, numbers, [fig],
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


def measure_parts(ctx: Context) -> dict[str, Any]:
    """Fine-tuning a pretrained MLP on new digits three ways: everywhere aggressive, per part, body frozen."""
    ds = digits(ctx)
    old_classes, new_classes = list(range(6)), list(range(6, 10))
    old = _subset(ds, old_classes)
    new = _subset(ds, new_classes, limit=400, seed=ctx.seed)
    torch.manual_seed(ctx.seed)
    base = M.MLP(64, (64, 64), n_out=len(old_classes))
    _, pre, _ = fit(base, old, optimizer="adam", lr=1e-3, batch_size=16, epochs=ctx.pick(10, 4), seed=ctx.seed)
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
            _, f, _ = fit(model, new, optimizer=spec, batch_size=16, epochs=E, seed=seed)
            body1 = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if not n.startswith("net.4")])
            drift.append(float((body1 - body0).norm() / body0.norm()))
            acc_new.append(float((f or {}).get("test_accuracy", float("nan"))))
            probe = copy.deepcopy(model)
            probe.net[4] = old_head
            acc_old.append(_accuracy(probe, old.X_val, old.y_val))
        res[name] = {"new": float(np.mean(acc_new)), "old": float(np.mean(acc_old)), "drift": float(np.mean(drift))}
    a, p, z = (res[k] for k in plans)
    return {"E": E, "a": a, "new": new, "p": p, "pre": pre, "res": res, "seeds": seeds, "z": z}


def judge_parts(everywhere: dict[str, float], per_part: dict[str, float], frozen: dict[str, float]) -> tuple:
    """Keeps: the per-part run's old-task accuracy is at least 5 points above the all-aggressive run's. Learns:
    its new-task accuracy is within 5 points of that run's and not below the frozen body's. Held if both,
    depends if it keeps. Returns (verdict, keeps, learns)."""
    keeps = per_part["old"] >= everywhere["old"] + 0.05
    learns = per_part["new"] >= everywhere["new"] - 0.05 and per_part["new"] >= frozen["new"]
    return judge(keeps and learns, partly=keeps), keeps, learns


@topic("parts")
def parts(ctx: Context) -> Finding:
    """Topic ``parts``: measure (:func:`measure_parts`), judge (:func:`judge_parts`), write."""
    m = measure_parts(ctx)
    E, a, new, p, pre, res, seeds, z = take(m, "E a new p pre res seeds z")
    verdict, keeps, learns = judge_parts(a, p, z)
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
    return ctx.finding(
        verdict, numbers, [fig],
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
        caption="Three ways to fine-tune: what the new task gained and what the old one lost.",
    )


# --------------------------------------------------------------------------- 19. choosing an optimizer


# The two experiments' settings, used by the code and quoted by the text.
SPARSE = {"n": 3000, "train": 2000, "d": 100, "p_common": 0.3, "p_rare": 0.003, "batch": 32,
          "lrs": [float(v) for v in np.logspace(-2.5, 1.5, 9)]}
ONLINE_LRS = [0.001, 0.003, 0.01, 0.03, 0.1]


def _sparse_problem(gen: torch.Generator, n: int = SPARSE["n"], d: int = SPARSE["d"]) -> tuple[torch.Tensor, ...]:
    """Binary features present with probability SPARSE["p_common"] down to SPARSE["p_rare"], logistic labels."""
    p = torch.logspace(math.log10(SPARSE["p_common"]), math.log10(SPARSE["p_rare"]), d)
    X = (torch.rand(n, d, generator=gen) < p).float()
    w = torch.randn(d, generator=gen) * 2.0
    y = (torch.rand(n, generator=gen) < torch.sigmoid(X @ w - 0.5)).float()
    return X, y, w


def _sparse(ctx: Context) -> dict[str, dict[str, float]]:
    X, y, w_true = _sparse_problem(ctx.generator(19))
    ntr = SPARSE["train"]
    Xtr, ytr, Xte, yte = X[:ntr], y[:ntr], X[ntr:], y[ntr:]
    d = X.shape[1]
    rare = slice(d // 2, d)
    lrs = SPARSE["lrs"]
    epochs = ctx.pick(5, 2)

    def rows_loss(W: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        z = xb @ W[:, :-1].T + W[:, -1]
        return F.binary_cross_entropy_with_logits(z, yb[:, None].expand_as(z), reduction="none").mean(0)

    out = {}
    for key in ("sgd", "adam", "adagrad"):
        name = O.display(key)
        W = torch.zeros(len(lrs), d + 1, requires_grad=True)
        opt = rows_optimizer(key, [W], lr=lrs)
        batches = D.Batches(Xtr, ytr, SPARSE["batch"], seed=ctx.seed)
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
    lrs = ONLINE_LRS
    after = ctx.pick(300, 150)
    out: dict[str, dict[str, object]] = {}
    for key in ("sgd", "adam", "adagrad"):
        name = O.display(key)
        W = torch.zeros(len(lrs), d, requires_grad=True)
        opt = rows_optimizer(key, [W], lr=lrs)
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


def judge_choose(outcomes: list[str]) -> tuple[str, int, list[str]]:
    """Each piece of advice has its own verdict; held if every one held, depends if some held or depended, did
    not hold if none. Returns (verdict, how many held, the verdicts counted)."""
    measured = [o for o in outcomes if o in (HELD, NOT_HELD, DEPENDS)]
    n_held = sum(1 for o in measured if o == HELD)
    return judge(n_held == len(measured), partly=n_held > 0 or DEPENDS in measured), n_held, measured


@topic("choose")
def choose(ctx: Context) -> Finding:
    """Topic ``choose``: measure (:func:`_sparse`, :func:`_online`, earlier sections' facts), judge each piece of
    advice and the whole (:func:`judge_choose`), write."""
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
    combined = ctx.facts.get("combine")
    if combined is not None:
        advice.append(("do not combine optimizers in one step",
                       "section 'Two optimizers in one step': worse at its best lr: "
                       f"{'yes' if combined['worse_best'] else 'no'}; unstable across lr pairs: "
                       f"{'yes' if combined['unstable'] else 'no'}", combined["verdict"]))
    verdict, n_held, measured = judge_choose([o for _, _, o in advice])
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
        numbers[a] = f"{o}: {m}"
    for k in names:
        numbers[f"sparse, {k}: best lr"] = sp[k]["lr"]
    for k, v in on.items():
        numbers[f"online, {k}: best lr"] = float(v["lr"])
    return ctx.finding(
        verdict, numbers, [fig],
        rule="each piece of advice that this tour measured gets its own held / did not hold / depends (listed in "
        "the table). Held if every measured piece held; depends if some held or depended; did not hold if none did. Advice "
        "measured in another section takes that section's verdict; run alone (--only), only the advice measured "
        "here is listed.",
        summary=f"{n_held} of {len(measured)} measured pieces of advice held in this run. "
        + " ".join(f"{a}: {o}." for a, _, o in advice)
        + " The notes' advice is a set of defaults, not laws: which optimizer wins depends on the problem and on "
        "tuning, as the sections above show.",
        setup=f"Sparse: {SPARSE['n']} synthetic examples ({SPARSE['train']} for training) with {SPARSE['d']} binary "
        f"features present with probability {SPARSE['p_common']:g} down to {SPARSE['p_rare']:g}, logistic labels; "
        f"SGD, Adam and Adagrad, mini-batches of {SPARSE['batch']}, {len(SPARSE['lrs'])} learning rates from "
        f"{SPARSE['lrs'][0]:.2g} to {SPARSE['lrs'][-1]:.2g} as "
        f"rows of one tensor; the rare half of the features scored. Online: a linear model learning from one "
        f"example at a time, {t_on} examples, the true weights change by a small step halfway; learning rates "
        f"{ONLINE_LRS} each. Phases, parts and one-step combining: the sections above.",
        caption="Left: sparse data. Right: tracking a change in an online stream.",
    )
