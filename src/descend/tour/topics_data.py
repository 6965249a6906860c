"""Tour topics on real data: full-batch vs mini-batch vs pure SGD, feature scaling, MSE vs
cross-entropy, batch normalization and L2 regularization.

The data sets are scikit-learn's bundled tables loaded by :func:`descend.data.load`
(nothing is downloaded); models come from :mod:`descend.models`, optimizers from
:mod:`descend.optim`, training runs from :class:`descend.train.Trainer` where a
real training loop (evaluation, BatchNorm modes) matters.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as D
from .. import models as M
from .. import optim as O
from ..plots.tour import Panel, Series, color, panels_figure
from ._util import F64, descend_rows, digits, fit, shown, steps_to, take
from .base import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic

# --------------------------------------------------------------------------- 3. batch size


def _budgeted(X: torch.Tensor, y: torch.Tensor, batch: int | None, lr: float, budget: float,
              seed: int) -> dict[str, object]:
    """Softmax regression trained for ``budget`` seconds of optimizer time.

    Evaluations (full training loss) happen at geometrically spaced iterations and are
    not counted in the time. Returns the curve ``(iteration, epoch, seconds, loss)``.
    """
    torch.manual_seed(seed)
    model = M.softmax_regression(X.shape[1], int(y.max()) + 1)
    opt = O.build("sgd", model.parameters(), lr=lr, impl="eager", nonfinite="ignore")
    batches = D.Batches(X, y, batch, seed=seed)
    ipe = len(batches)

    def full_loss() -> float:
        with torch.no_grad():
            return float(M.cross_entropy(model(X), y))

    curve = [(0, 0.0, 0.0, full_loss())]
    it, clock, nxt, epoch = 0, 0.0, 1, 0
    diverged = False
    while clock < budget and not diverged:
        t0 = time.perf_counter()
        for xb, yb in batches.iter_epoch(epoch):
            opt.zero_grad()
            M.cross_entropy(model(xb), yb).backward()
            opt.step()
            it += 1
            if it >= nxt:
                clock += time.perf_counter() - t0
                loss = full_loss()
                curve.append((it, it / ipe, clock, loss))
                nxt = max(nxt + 1, int(nxt * 1.15))
                if not math.isfinite(loss):
                    diverged = True
                    break
                if clock >= budget:
                    break
                t0 = time.perf_counter()
        else:
            clock += time.perf_counter() - t0
        epoch += 1
    if curve[-1][0] != it and not diverged:
        curve.append((it, it / ipe, clock, full_loss()))
    return {"curve": np.asarray(curve, dtype=np.float64), "iterations": it, "diverged": diverged,
            "per_epoch": ipe}


def _at(curve: np.ndarray, col: int, value: float) -> float:
    """The loss of the last record whose column ``col`` is at most ``value``."""
    ok = curve[:, col] <= value + 1e-12
    return float(curve[ok][-1, 3]) if ok.any() else float(curve[0, 3])


def measure_batch(ctx: Context) -> dict[str, Any]:
    """Softmax regression on digits by full-batch GD, mini-batches and pure SGD, per epoch and per second."""
    ds = digits(ctx)
    X, y = ds.train
    budget = ctx.pick(0.4, 0.1)
    lrs = [0.01, 0.1, 1.0, 10.0]
    methods = [("full-batch GD", None), ("mini-batch SGD (32)", 32), ("pure SGD (1)", 1)]
    runs: dict[str, list[tuple[float, dict[str, object]]]] = {}
    for name, b in methods:
        runs[name] = [(lr, _budgeted(X, y, b, lr, budget, ctx.seed)) for lr in lrs]

    def finite(r: dict[str, object]) -> bool:
        return not r["diverged"] and math.isfinite(float(r["curve"][-1, 3]))

    # every method completed at least e_star epochs (in every run that did not diverge)
    e_star = min(min(float(r["curve"][-1, 1]) for _, r in rs if finite(r)) for rs in runs.values())
    best_e: dict[str, dict[str, object]] = {}  # per method: the lr with the lowest loss after e_star epochs
    best_t: dict[str, dict[str, object]] = {}  # per method: the lr with the lowest loss when time ran out
    table: dict[str, float | int | str] = {}
    for name, rs in runs.items():
        ok = [(lr, r) for lr, r in rs if finite(r)]
        # ties (full-batch GD before its first full step) go to the lr that ended lowest
        lr_e, r_e = min(ok, key=lambda p: (_at(p[1]["curve"], 1, e_star), float(p[1]["curve"][-1, 3])))
        lr_t, r_t = min(ok, key=lambda p: float(p[1]["curve"][-1, 3]))
        best_e[name] = {"lr": lr_e, **r_e}
        best_t[name] = {"lr": lr_t, **r_t}
        for lr, r in rs:
            table[f"{name}, lr {lr:g}: loss after {budget:g} s"] = float(r["curve"][-1, 3]) if finite(r) else "diverged"
    at_epoch = {n: _at(r["curve"], 1, e_star) for n, r in best_e.items()}
    at_time = {n: float(r["curve"][-1, 3]) for n, r in best_t.items()}
    gd, mb, sgd = (m[0] for m in methods)
    return {"X": X, "at_epoch": at_epoch, "at_time": at_time, "best_e": best_e, "best_t": best_t, "budget": budget, "e_star": e_star, "gd": gd, "lrs": lrs, "mb": mb, "sgd": sgd, "table": table}


def judge_batch(at_epoch: dict[str, float], at_time: dict[str, float], gd: str, mb: str, sgd: str) -> tuple[str, bool, bool]:
    """Per epoch: mini-batch and pure SGD below full-batch GD; per second: mini-batch below GD. Held if both,
    depends if one, did not hold if neither. Returns (verdict, per epoch, per second)."""
    per_epoch = at_epoch[mb] < at_epoch[gd] and at_epoch[sgd] < at_epoch[gd]
    per_second = at_time[mb] < at_time[gd]
    return judge(per_epoch and per_second, partly=per_epoch or per_second), per_epoch, per_second


@topic("batch")
def batch(ctx: Context) -> Finding:
    """Topic ``batch``: measure (:func:`measure_batch`), judge (:func:`judge_batch`), write."""
    m = measure_batch(ctx)
    (X, at_epoch, at_time, best_e, best_t, budget, e_star, gd, lrs, mb, sgd, table) = take(
        m, "X at_epoch at_time best_e best_t budget e_star gd lrs mb sgd table")
    verdict, per_epoch, per_second = judge_batch(at_epoch, at_time, gd, mb, sgd)
    best = best_t
    numbers: dict[str, float | int | str] = {}
    for n in best_t:
        c = best_t[n]["curve"]
        numbers[f"{n}: epochs in {budget:g} s"] = float(c[-1, 1])
        numbers[f"{n}: updates per second"] = float(best_t[n]["iterations"]) / max(float(c[-1, 2]), 1e-9)
        numbers[f"{n}: best loss after {e_star:.3g} epochs (lr {best_e[n]['lr']:g})"] = at_epoch[n]
        numbers[f"{n}: best loss after {budget:g} s (lr {best_t[n]['lr']:g})"] = at_time[n]
    numbers.update(table)
    # log axes: the record at 0 (before any update) is left out
    series_e = [Series(f"{n} (lr {r['lr']:g})", r["curve"][1:, 1], r["curve"][1:, 3], color=color(i))
                for i, (n, r) in enumerate(best_e.items())]
    series_t = [Series(f"{n} (lr {r['lr']:g})", r["curve"][1:, 2], r["curve"][1:, 3], color=color(i))
                for i, (n, r) in enumerate(best_t.items())]
    fig = panels_figure([
        Panel(f"per epoch: each at its best lr after {e_star:.2g} epochs", "epochs (log scale)",
              "cross-entropy on the whole training set", series_e, xlog=True, ylog=True,
              vlines=[(e_star, "all reached")], legend="lower left"),
        Panel(f"per second: each at its best lr after {budget:g} s of updates", "seconds of updates (log scale)",
              "cross-entropy on the whole training set", series_t, xlog=True, ylog=True, legend="lower left"),
    ], title=f"Digits ({len(X)} training images), softmax regression: lr from {lrs} for each method and criterion")
    summary = (
        f"Per epoch: after {e_star:.2g} epochs (the most the slowest method completed) the training loss was "
        f"{at_epoch[gd]:.3g} for full-batch GD, {at_epoch[mb]:.3g} for mini-batches of 32 and {at_epoch[sgd]:.3g} "
        f"for pure SGD: {'more, cheaper updates win per epoch' if per_epoch else 'full-batch GD was not behind'}. "
        f"Per second: after {budget:g} s of updates the losses were {at_time[gd]:.3g}, {at_time[mb]:.3g} and "
        f"{at_time[sgd]:.3g}. "
        + ("Mini-batches won per second too." if per_second else
           f"Full-batch GD won per second: on {len(X)} examples one vectorized pass over all of them costs less "
           f"than {best[mb]['per_epoch']} separate small steps (full batch: "
           f"{numbers[f'{gd}: updates per second']:.0f} updates/s, batches of 32: "
           f"{numbers[f'{mb}: updates per second']:.0f}/s, single examples: "
           f"{numbers[f'{sgd}: updates per second']:.0f}/s). The notes' argument is about data too large to "
           "pass over cheaply; on a small table on a CPU the per-step overhead decides.")
    )
    return ctx.finding(
        verdict, numbers, [fig],
        rule="each method gets the same wall-clock budget of updates and, for each criterion, its best lr of the "
        "same grid. Per epoch: mini-batch and pure SGD must have a lower training loss than full-batch GD after "
        "the number of epochs the slowest method completed. Per second: mini-batch must have a lower loss than "
        "full-batch GD when the budget runs out. Held if both; depends if one; did not hold if neither.",
        summary=summary,
        setup=f"digits (scikit-learn's 8x8 images, standardized, {len(X)} training examples), softmax "
        f"regression (descend.models), descend.optim.SGD with batch size all ({len(X)}), 32 and 1 (reshuffled "
        f"each epoch by descend.data.Batches), lr in {lrs}; {budget:g} s of optimizer time each (evaluation of "
        "the full training loss at geometrically spaced steps is not counted); one torch thread.",
        caption="Left: loss against epochs. Right: the same runs against seconds of updates.",
    )


# --------------------------------------------------------------------------- 11. feature scaling


def _bce_rows(X: torch.Tensor, y: torch.Tensor):
    def loss(W: torch.Tensor) -> torch.Tensor:
        z = X @ W[:, :-1].T + W[:, -1]
        return F.binary_cross_entropy_with_logits(z, y[:, None].expand_as(z), reduction="none").mean(0)

    return loss


def _condition(X: torch.Tensor) -> float:
    A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    ev = torch.linalg.eigvalsh(0.25 * A.T @ A / len(X))
    return float(ev[-1] / ev[0].clamp_min(1e-300))


def measure_scaling(ctx: Context) -> dict[str, Any]:
    """Logistic regression on breast cancer by GD over an lr grid, raw features against standardized ones."""
    raw = ctx.cached(("breast_cancer", "raw"), lambda: D.load("breast_cancer", standardize=False, dtype=F64,
                                                               seed=ctx.seed))
    std = ctx.cached(("breast_cancer", "f64"), lambda: D.load("breast_cancer", dtype=F64, seed=ctx.seed))
    lrs = np.logspace(-8, 2, ctx.pick(21, 11))
    steps = ctx.pick(500, 200)
    res = {}
    for name, ds in (("raw features", raw), ("standardized", std)):
        X, y = ds.train
        yf = y.to(F64)
        W0 = torch.zeros(len(lrs), X.shape[1] + 1, dtype=F64)
        marks, losses, _ = descend_rows(_bce_rows(X, yf), W0, "gd", steps, record_every=1, lr=list(lrs))
        finals = np.where(np.isfinite(losses[-1]), losses[-1], np.inf)
        k = int(np.argmin(finals))
        res[name] = {"marks": marks, "losses": losses, "finals": finals, "best": k, "kappa": _condition(X),
                     "range": float((X.max(0).values - X.min(0).values).max() / (X.max(0).values - X.min(0).values).min())}
    r, s = res["raw features"], res["standardized"]
    return {"lrs": lrs, "r": r, "raw": raw, "res": res, "s": s, "steps": steps}


def judge_scaling(raw: dict[str, Any], std: dict[str, Any]) -> str:
    """Held if standardized features reach a lower loss at their best lr and a lower Hessian condition number
    than raw ones; depends if one of the two."""
    better = std["finals"][std["best"]] < raw["finals"][raw["best"]]
    kappa_drop = std["kappa"] < raw["kappa"]
    return judge(better and kappa_drop, partly=better or kappa_drop)


@topic("scaling")
def scaling(ctx: Context) -> Finding:
    """Topic ``scaling``: measure (:func:`measure_scaling`), judge (:func:`judge_scaling`), write."""
    m = measure_scaling(ctx)
    lrs, r, raw, res, s, steps = take(m, "lrs r raw res s steps")
    verdict = judge_scaling(r, s)
    target = 0.1
    hit = {n: steps_to(v["losses"][:, v["best"]], v["marks"], target) for n, v in res.items()}
    fig = panels_figure([
        Panel(f"training loss at each version's best lr ({steps} full-batch steps)", "step", "logistic loss",
              [Series(f"{n} (lr {lrs[v['best']]:.2g})", v["marks"], v["losses"][:, v["best"]], color=color(i))
               for i, (n, v) in enumerate(res.items())], xlog="symlog", ylog=True,
              hlines=[(target, f"loss {target:g}")]),
        Panel("final loss against the learning rate", "learning rate", "logistic loss after the last step",
              [Series(n, lrs, np.where(np.isfinite(v["finals"]), v["finals"], np.nan), color=color(i), marker="o")
               for i, (n, v) in enumerate(res.items())], xlog=True, ylog=True,
              hlines=[(math.log(2), "start: log 2")]),
    ], title="Breast cancer, logistic regression by gradient descent: raw features against standardized ones")
    numbers = {
        "raw: largest / smallest feature range": r["range"],
        "raw: Hessian condition number": r["kappa"], "standardized: Hessian condition number": s["kappa"],
        "raw: best lr": float(lrs[r["best"]]), "raw: final loss": float(r["finals"][r["best"]]),
        "standardized: best lr": float(lrs[s["best"]]), "standardized: final loss": float(s["finals"][s["best"]]),
        f"raw: steps to loss {target:g}": shown(hit["raw features"], steps),
        f"standardized: steps to loss {target:g}": shown(hit["standardized"], steps),
    }
    return ctx.finding(
        verdict, numbers, [fig],
        rule="held if, each at its best lr of the same grid and the same number of full-batch GD steps, the "
        "standardized features reach a lower training loss than the raw ones, and standardizing lowers the "
        "condition number of the loss's Hessian at the start; depends if only one holds.",
        summary=f"The raw features span ranges {r['range']:.0f}x apart; the Hessian's condition number was "
        f"{r['kappa']:.2e} raw and {s['kappa']:.2e} standardized. Raw, the best lr was {lrs[r['best']]:.2g}"
        f"{' (every larger lr of the grid ended higher: the steps overshoot along the large features)' if r['best'] < len(lrs) - 1 else ''} and after "
        f"{steps} steps the loss was "
        f"{r['finals'][r['best']]:.3f}; standardized, lr {lrs[s['best']]:.2g} reached {s['finals'][s['best']]:.3f}"
        f". Loss {target:g} was reached in {shown(hit['standardized'], steps)} steps standardized and in "
        f"{shown(hit['raw features'], steps)} raw.",
        setup=f"breast_cancer (569 tumours, 30 features; {raw.n_train} for training), logistic regression with "
        f"bias, full-batch gradient descent (descend.optim.SGD) from zero weights, {len(lrs)} learning rates from "
        f"1e-8 to 100 trained together as rows of one tensor, {steps} steps; raw = descend.data.load(..., "
        "standardize=False), standardized = training mean 0, std 1. Condition number of 0.25·AᵀA/n (the "
        "Hessian at zero weights, A = [X, 1]).",
        caption="Left: the best run of each version. Right: where each version's usable learning rates lie.",
    )


# --------------------------------------------------------------------------- 12. MSE vs cross-entropy


def _mse_rows(X: torch.Tensor, y: torch.Tensor):
    def loss(W: torch.Tensor) -> torch.Tensor:
        z = X @ W[:, :-1].T + W[:, -1]
        return ((torch.sigmoid(z) - y[:, None]) ** 2).mean(0)

    return loss


def measure_mse_vs_ce(ctx: Context) -> dict[str, Any]:
    """Logistic regression on breast cancer from large random starts, by GD on cross-entropy and on MSE."""
    ds = ctx.cached(("breast_cancer", "f64"), lambda: D.load("breast_cancer", dtype=F64, seed=ctx.seed))
    X, y = ds.train
    yf = y.to(F64)
    n_init = ctx.pick(48, 16)
    lrs = [0.3, 1.0, 3.0, 10.0]
    steps = ctx.pick(300, 150)
    every = 10
    scale = 8.0
    W0 = torch.randn(n_init, X.shape[1] + 1, generator=ctx.generator(12), dtype=F64) * scale
    starts = W0.repeat(len(lrs), 1)
    lr_rows = list(np.repeat(lrs, n_init))
    res = {}
    for name, make in (("cross-entropy", _bce_rows), ("MSE on probabilities", _mse_rows)):
        loss_rows = make(X, yf)
        marks, losses, points = descend_rows(loss_rows, starts, "gd", steps, record_every=every, lr=lr_rows)
        P = torch.as_tensor(points)
        z = torch.einsum("nd,krd->krn", X, P[..., :-1]) + P[..., -1:]
        acc = ((z > 0).long() == y).double().mean(-1).numpy()  # (k, rows)
        solved = acc >= 0.95
        share = [float(solved[-1, j * n_init:(j + 1) * n_init].mean()) for j in range(len(lrs))]
        j = int(np.argmax(share))
        sl = slice(j * n_init, (j + 1) * n_init)
        first = [steps_to(-solved[:, i].astype(float), marks, -0.5) for i in range(sl.start, sl.stop)]
        Wend = torch.as_tensor(points[-1][sl]).requires_grad_(True)
        loss_rows(Wend).sum().backward()
        gnorm = Wend.grad.norm(dim=1).numpy()
        Wst = W0.clone().requires_grad_(True)
        loss_rows(Wst).sum().backward()
        g0 = Wst.grad.norm(dim=1).numpy()
        res[name] = {"share": share, "best": j, "marks": marks, "solved": solved[:, sl], "acc": acc[:, sl],
                     "first": first, "gnorm": gnorm, "g0": g0, "final_loss": losses[-1, sl], "loss_rows": loss_rows,
                     "end": points[-1][sl]}
    ce, ms = res["cross-entropy"], res["MSE on probabilities"]
    s_ce, s_ms = ce["share"][ce["best"]], ms["share"][ms["best"]]

    return {"W0": W0, "ce": ce, "ds": ds, "lrs": lrs, "ms": ms, "n_init": n_init, "res": res, "s_ce": s_ce, "s_ms": s_ms, "scale": scale, "steps": steps}


def median_steps(v: dict) -> float:
    """Median over the starts of the steps to a solution (inf for starts never solved)."""
    arr = np.array([np.inf if s is None else s for s in v["first"]], dtype=np.float64)
    return float(np.median(arr))


def judge_mse_vs_ce(s_ce: float, s_ms: float, ce: dict, ms: dict) -> str:
    """Held if cross-entropy solves at least 10 points more of the starts than MSE; depends if the shares are
    within 10 points and cross-entropy's median steps to a solution are fewer; did not hold otherwise."""
    if s_ce >= s_ms + 0.10:
        return HELD
    if abs(s_ce - s_ms) < 0.10 and median_steps(ce) < median_steps(ms):
        return DEPENDS
    return NOT_HELD


@topic("mse_vs_ce")
def mse_vs_ce(ctx: Context) -> Finding:
    """Topic ``mse_vs_ce``: measure (:func:`measure_mse_vs_ce`), judge (:func:`judge_mse_vs_ce`), write."""
    m = measure_mse_vs_ce(ctx)
    (W0, ce, ds, lrs, ms, n_init, res, s_ce, s_ms, scale, steps) = take(
        m, "W0 ce ds lrs ms n_init res s_ce s_ms scale steps")
    verdict = judge_mse_vs_ce(s_ce, s_ms, ce, ms)
    stuck = ~ms["solved"][-1]
    stuck_g = float(np.median(ms["gnorm"][stuck])) if stuck.any() else float("nan")
    solved_g = float(np.median(ce["gnorm"]))
    # loss along the straight line from the worst MSE start to the cross-entropy solution
    worst = int(np.argmin(ms["acc"][-1])) if stuck.any() else 0
    w_a = W0[worst]
    w_b = torch.as_tensor(ce["end"][worst])
    alphas = np.linspace(0.0, 1.0, 101)
    line = torch.stack([w_a + float(a) * (w_b - w_a) for a in alphas])
    slices = {}
    for name, v in res.items():
        vals = v["loss_rows"](line).detach().numpy()
        slices[name] = (vals - vals[-1]) / max(vals[0] - vals[-1], 1e-12)
    slow_start = bool(slices["MSE on probabilities"][25] > slices["cross-entropy"][25])
    ms_share = ms["solved"].mean(1)
    still_rising = bool(ms_share[-1] > ms_share[len(ms_share) // 2])
    fig = panels_figure([
        Panel(f"share of {n_init} saturated random starts with ≥ 95% training accuracy", "step",
              "share of starts solved",
              [Series(f"{n} (lr {lrs[v['best']]:g})", v["marks"], v["solved"].mean(1), color=color(i))
               for i, (n, v) in enumerate(res.items())], ylim=(-0.02, 1.05), legend="lower right"),
        Panel("the surface between a stuck start and a solution", "position on the line (0: start, 1: solution)",
              "loss, rescaled to 1 at the start and 0 at the end",
              [Series(n, alphas, slices[n], color=color(i)) for i, n in enumerate(res)], legend="upper right"),
    ], title="Breast cancer, logistic regression from large random weights: cross-entropy against MSE")
    numbers: dict[str, float | int | str] = {}
    for name, v in res.items():
        numbers[f"{name}: best lr"] = float(lrs[v["best"]])
        numbers[f"{name}: share of starts solved after {steps} steps"] = float(v["share"][v["best"]])
        numbers[f"{name}: median steps to solve"] = (
            int(median_steps(v)) if math.isfinite(median_steps(v)) else f"> {steps}")
        numbers[f"{name}: median final training accuracy"] = float(np.median(v["acc"][-1]))
        for k, lr in enumerate(lrs):
            numbers[f"{name}, lr {lr:g}: share solved"] = float(v["share"][k])
    g_ratio = float(np.median(ms["g0"] / ce["g0"]))
    numbers["at the starts: median |grad MSE| / |grad cross-entropy|"] = g_ratio
    numbers["MSE: median gradient norm of the stuck starts"] = stuck_g if math.isfinite(stuck_g) else "none stuck"
    numbers["cross-entropy: median final gradient norm"] = solved_g
    return ctx.finding(
        verdict, numbers, [fig],
        rule="each loss at its best lr of the same grid (the one that solves the most starts); a start is solved "
        "at 95% training accuracy. Held if cross-entropy solves at least 10 points more of the starts than MSE "
        "within the budget; depends if the shares are within 10 points but cross-entropy solves them in fewer "
        "steps (median); did not hold otherwise.",
        summary=f"From {n_init} large random weight vectors (std {scale:g}: most examples start confidently "
        f"wrong or right), cross-entropy solved {s_ce:.0%} within {steps} steps and MSE {s_ms:.0%}. "
        + (f"The MSE runs still below 95% sat on flat ground: their median gradient norm was {stuck_g:.1e} "
           f"(solved cross-entropy runs: {solved_g:.1e}). " if stuck.any() else "")
        + f"At the same starts MSE's gradient was {g_ratio:.2g}x the size of cross-entropy's (median): with a "
        "sigmoid, MSE's gradient carries the factor p(1 − p), which vanishes on confidently wrong examples, "
        "while cross-entropy's is p − y."
        + (" Along the line from the worst MSE start to a solution, MSE falls more slowly at first than "
           "cross-entropy." if slow_start else "")
        + (" The share of MSE runs solved was still rising at the end: these traps are flat stretches that "
           "MSE crawls across rather than true local minima, but the effect the note warns of, getting stuck, is "
           "the same." if still_rising else ""),
        setup=f"breast_cancer (standardized, float64, {ds.n_train} training examples), logistic regression; "
        f"{n_init} starts with weights ~ N(0, {scale:g}²) shared by both losses; full-batch GD "
        f"(descend.optim.SGD) with lr in {lrs}, every (start, lr) pair a row of one tensor; {steps} steps; MSE is "
        "mean((sigmoid(z) − y)²), cross-entropy is the logistic loss.",
        caption="Left: how many starts each loss solved over time. Right: each loss along the straight line from "
        "the worst MSE start to the cross-entropy solution.",
    )


# --------------------------------------------------------------------------- 13. batch normalization


def measure_batchnorm(ctx: Context) -> dict[str, Any]:
    """MLPs on digits with and without BatchNorm over two lrs; one example's output in eval and training mode."""
    ds = digits(ctx)
    lrs = ctx.pick([0.03, 0.1, 0.3, 1.0], [0.1, 1.0])
    epochs = ctx.pick(8, 3)
    hidden = (64, 64, 64)
    res: dict[bool, list[tuple[list[dict], dict | None, bool]]] = {}
    models: dict[tuple[bool, float], torch.nn.Module] = {}
    for bn in (False, True):
        res[bn] = []
        for lr in lrs:
            torch.manual_seed(ctx.seed)
            model = M.MLP(64, hidden, n_out=10, batchnorm=bn)
            res[bn].append(fit(model, ds, optimizer="sgd", lr=lr, batch_size=32, epochs=epochs, seed=ctx.seed))
            models[(bn, lr)] = model

    def final_train(run: tuple[list[dict], dict | None, bool]) -> float:
        _, final, div = run
        return math.inf if div or final is None else float(final["train_loss"])

    tl = {bn: [final_train(r) for r in res[bn]] for bn in (False, True)}
    med = {bn: float(np.median(tl[bn])) for bn in (False, True)}
    works = {bn: sum(1 for v in tl[bn] if v < 0.1) for bn in (False, True)}
    smoother = med[True] < med[False] and works[True] >= works[False]
    # prediction uses running statistics: one example alone equals the same example inside a batch
    model = copy.deepcopy(models[(True, lrs[-1])])
    Xv = ds.X_val[:64]
    with torch.no_grad():
        model.eval()
        eval_diff = float((model(Xv[:1]) - model(Xv)[:1]).abs().max())
        model.train()
        train_diff = float((model(Xv[:8])[:1] - model(Xv)[:1]).abs().max())
    try:
        with torch.no_grad():
            model(Xv[:1])
        one = "accepted"
    except ValueError as err:
        one = f"rejected by torch: {str(err).split(',')[0]}"
    return {"epochs": epochs, "eval_diff": eval_diff, "hidden": hidden, "lrs": lrs, "med": med, "one": one, "res": res, "smoother": smoother, "tl": tl, "train_diff": train_diff, "works": works}


def judge_batchnorm(smoother: bool, eval_diff: float, train_diff: float) -> tuple[str, bool]:
    """Modes: in eval mode one example's output does not depend on its batch (< 1e-5), in training mode it
    does (> 1e-4). Held if training is smoother with BatchNorm and the modes behave; depends if one of the two.
    Returns (verdict, modes)."""
    modes = eval_diff < 1e-5 and train_diff > 1e-4
    return judge(smoother and modes, partly=smoother or modes), modes


@topic("batchnorm")
def batchnorm(ctx: Context) -> Finding:
    """Topic ``batchnorm``: measure (:func:`measure_batchnorm`), judge (:func:`judge_batchnorm`), write."""
    m = measure_batchnorm(ctx)
    (epochs, eval_diff, hidden, lrs, med, one, res, smoother, tl, train_diff, works) = take(
        m, "epochs eval_diff hidden lrs med one res smoother tl train_diff works")
    verdict, modes = judge_batchnorm(smoother, eval_diff, train_diff)
    series = []
    for bn in (False, True):
        for i, (lr, (hist, _, div)) in enumerate(zip(lrs, res[bn])):
            ep = [h["epoch"] for h in hist]
            series.append(Series(f"{'BN' if bn else 'no BN'}, lr {lr:g}" + (" (diverged)" if div else ""),
                                 ep, [h["train_loss"] for h in hist], color=color(i), style="-" if bn else "--",
                                 end_marker="x" if div else None))
    finals_plot = [Series(lbl, lrs, [v if math.isfinite(v) else np.nan for v in tl[bn]], marker="o",
                          color=color(0 if bn else 1)) for bn, lbl in ((True, "with BatchNorm"), (False, "without"))]
    fig = panels_figure([
        Panel("training loss per epoch (solid: BatchNorm, dashed: none)", "epoch", "training loss (epoch mean)",
              series, ylog=True, legend="outside", integer_x=True),
        Panel(f"final training loss after {epochs} epochs", "learning rate", "training loss",
              finals_plot, xlog=True, ylog=True,
              note="missing points: the run diverged" if any(not math.isfinite(v) for v in tl[False] + tl[True]) else None),
    ], title=f"Digits, MLP {64}-{'-'.join(map(str, hidden))}-10 (ReLU), SGD with batches of 32, with and without BatchNorm")
    numbers: dict[str, float | int | str] = {}
    for bn in (False, True):
        for lr, v, (_, final, _div) in zip(lrs, tl[bn], res[bn]):
            key = f"{'BN' if bn else 'no BN'}, lr {lr:g}"
            numbers[f"{key}: final training loss"] = v if math.isfinite(v) else "diverged"
            numbers[f"{key}: validation accuracy"] = float(final["val_accuracy"]) if final else "diverged"
    numbers["eval mode: one example alone vs inside a batch (max diff)"] = eval_diff
    numbers["train mode: same example in batches of 8 and 64 (max diff)"] = train_diff
    numbers["train mode: a batch of one example"] = one
    return ctx.finding(
        verdict, numbers, [fig],
        rule="smoother: over the same lr grid the BatchNorm network's median final training loss is lower and "
        "it trains (loss below 0.1) at least as many learning rates. Modes: in eval mode an example's output does "
        "not depend on the batch (difference below 1e-5) while in training mode it does (above 1e-4). Held if "
        "both; depends if one.",
        summary=f"Median final training loss over lrs {lrs}: {med[True]:.3g} with BatchNorm, {med[False]:.3g} "
        f"without; training got below 0.1 at {works[True]} of {len(lrs)} learning rates with BatchNorm and "
        f"{works[False]} without"
        + (", and without it the largest lr diverged" if not math.isfinite(tl[False][-1]) else "")
        + f". In eval mode one example alone gave the same output as inside a batch (difference {eval_diff:.1e}: "
        f"the running statistics are used), in training mode the batch changed it by {train_diff:.2f}; a "
        f"training batch of one example was {one.split(':')[0]}.",
        setup=f"digits (standardized), descend.models.MLP with hidden layers {hidden}, ReLU, with and without "
        f"BatchNorm1d after each hidden Linear; descend.train.Trainer with SGD, batches of 32, {epochs} epochs, "
        f"lr in {lrs}, the same initial seed.",
        caption="Left: every run's loss per epoch. Right: where each network ends, against the learning rate.",
    )
