"""Tour topics on regularization: L2 smooths the loss surface (conditioning), L1 selects
features (measured on data with known informative features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import data as D
from ..plots.tour import Panel, Series, color, panels_figure
from ._util import F64, descend_rows, rows_optimizer, shown, soft_threshold, steps_to, take
from .base import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic

# --------------------------------------------------------------------------- 14. L2


def measure_l2(ctx: Context) -> dict[str, Any]:
    """GD at lr 1/L on diabetes for every L2 penalty as one row: conditioning, steps to 1e-6, validation MSE."""
    ds = ctx.cached(("diabetes", "f64"), lambda: D.load("diabetes", dtype=F64, seed=ctx.seed))
    X, y = ds.train
    mean_y = float(y.mean())
    yc = (y[:, 0] - mean_y)
    n = len(X)
    A = torch.cat([X, torch.ones(n, 1, dtype=F64)], 1)
    H = 2.0 * A.T @ A / n
    ev = torch.linalg.eigvalsh(H)
    lams = [0.0, 0.01, 0.1, 1.0, 10.0]
    kappas = [float((ev[-1] + lam) / (ev[0] + lam)) for lam in lams]
    steps = ctx.pick(3000, 1000)

    def loss_rows(W: torch.Tensor) -> torch.Tensor:
        return ((A @ W.T - yc[:, None]) ** 2).mean(0)

    lr_rows = [1.0 / float(ev[-1] + lam) for lam in lams]
    W0 = torch.zeros(len(lams), A.shape[1], dtype=F64)
    marks, losses, points = descend_rows(loss_rows, W0, "gd", steps, record_every=1, lr=lr_rows, weight_decay=lams)
    P = torch.as_tensor(points)
    gaps, hits, val_mse = [], [], []
    Xv, yv = ds.val
    Av = torch.cat([Xv, torch.ones(len(Xv), 1, dtype=F64)], 1)
    for j, lam in enumerate(lams):
        J = losses[:, j] + 0.5 * lam * (P[:, j] ** 2).sum(-1).numpy()
        w_star = torch.linalg.solve(H + lam * torch.eye(H.shape[0], dtype=F64), 2.0 * A.T @ yc / n)
        J_star = float(loss_rows(w_star[None])[0]) + 0.5 * lam * float(w_star @ w_star)
        gap = (J - J_star) / (J[0] - J_star)
        gaps.append(gap)
        hits.append(steps_to(gap, marks, 1e-6))
        val_mse.append(float(((Av @ w_star + mean_y - yv[:, 0]) ** 2).mean()))
    return {"n": n, "lams": lams, "kappas": kappas, "steps": steps, "marks": marks, "gaps": gaps, "hits": hits, "val_mse": val_mse}


def judge_l2(kappas: list[float], hits: list[int | None]) -> str:
    """Held if the condition number falls with every larger penalty and GD needs fewer steps with the largest
    penalty than with none (``None``: never reached); depends if only the condition number falls."""
    monotone = all(a > b for a, b in zip(kappas, kappas[1:]))
    faster = (hits[-1] if hits[-1] is not None else math.inf) < (hits[0] if hits[0] is not None else math.inf)
    return judge(monotone and faster, partly=monotone)


@topic("l2")
def l2(ctx: Context) -> Finding:
    """Topic ``l2``: measure (:func:`measure_l2`), judge (:func:`judge_l2`), write."""
    m = measure_l2(ctx)
    (n, lams, kappas, steps, marks, gaps, hits, val_mse) = take(
        m, "n lams kappas steps marks gaps hits val_mse")
    verdict = judge_l2(kappas, hits)
    best_val = int(np.argmin(val_mse))
    fig = panels_figure([
        Panel("gradient descent at lr 1/L: distance to each problem's own optimum", "step",
              "(J − J*) / (J₀ − J*)", [Series(f"λ = {lam:g} (κ = {k:.3g})", marks, g, color=color(i))
                                       for i, (lam, k, g) in enumerate(zip(lams, kappas, gaps))],
              xlog="symlog", ylog=True, hlines=[(1e-6, "1e-6")], legend="lower left"),
        Panel("condition number and steps against λ", "λ (0 drawn at 1e-3)", "",
              [Series("Hessian condition number κ", [max(lam, 1e-3) for lam in lams], kappas, marker="o"),
               Series("GD steps to 1e-6", [max(lam, 1e-3) for lam in lams],
                      [h if h is not None else np.nan for h in hits], marker="s")], xlog=True, ylog=True),
        Panel("the price: validation error of the exact solution", "λ (0 drawn at 1e-3)", "validation MSE",
              [Series("ridge solution", [max(lam, 1e-3) for lam in lams], val_mse, marker="o", color=color(2))],
              xlog=True, legend=None),
    ], title="Diabetes, linear regression: L2 penalty λ/2·|w|² and the shape of the loss")
    numbers: dict[str, float | int | str] = {}
    for lam, k, h, v in zip(lams, kappas, hits, val_mse):
        numbers[f"λ={lam:g}: Hessian condition number"] = k
        numbers[f"λ={lam:g}: GD steps to 1e-6 of its optimum"] = shown(h, steps)
        numbers[f"λ={lam:g}: validation MSE of the exact solution"] = v
    return ctx.finding(
        verdict, numbers, [fig],
        rule="smoothing measured as conditioning: the penalty λ/2·|w|² adds λ to every eigenvalue of the "
        "Hessian. Held if the condition number falls as λ grows and gradient descent (lr 1/L of each problem) "
        "needs fewer steps to get within 1e-6 of its own optimum with the largest λ than with none; depends if "
        "only the condition number falls.",
        summary=f"The condition number went from {kappas[0]:.0f} (λ = 0) to {kappas[-1]:.2f} (λ = {lams[-1]:g}) "
        f"and the steps from {shown(hits[0], steps)} to {shown(hits[-1], steps)}: a rounder bowl that gradient "
        f"descent crosses quickly. The penalty changes the problem too: validation MSE was {val_mse[0]:.0f} "
        f"without it, best ({val_mse[best_val]:.0f}) at λ = {lams[best_val]:g} and {val_mse[-1]:.0f} at "
        f"λ = {lams[-1]:g}" + (", so a smoother surface is not free." if val_mse[-1] > val_mse[best_val] else ".")
        + " (L1's feature selection is the next section.)",
        setup=f"diabetes (standardized features, target centred on its training mean, float64, {n} training "
        f"examples), linear regression with bias; full-batch GD (descend.optim.SGD with weight_decay = λ, i.e. "
        f"the gradient of λ/2·|w|²) at lr 1/L, L = largest Hessian eigenvalue + λ, for λ in {lams} as rows of "
        f"one tensor; {steps} steps; optima and validation errors from the exact ridge solution.",
        caption="Left: convergence for each λ. Middle: conditioning and speed. Right: what the penalty costs on "
        "held-out data.",
    )


# --------------------------------------------------------------------------- 15. L1 selects features


@dataclass
class L1Measured:
    """What the L1 experiment measured, per method (``"L1 prox"``, ``"L1 subgradient"``, ``"L2"``)."""

    n: int
    d: int
    k: int
    noise: float
    steps: int
    tau: float
    lr: float
    smallest_informative: float
    lams: dict[str, np.ndarray]
    val: dict[str, np.ndarray]          # validation loss (half MSE) per penalty
    zeroed: dict[str, np.ndarray]       # irrelevant weights with |w| < tau, per penalty
    exact: dict[str, np.ndarray]        # irrelevant weights exactly 0, per penalty
    kept: dict[str, np.ndarray]         # informative weights with |w| >= tau and the true sign
    weights: dict[str, np.ndarray]      # (penalties, d) final weights
    informative: np.ndarray             # (d,) bool

    def best(self, method: str) -> int:
        """Index of the penalty with the lowest validation loss (the method's best)."""
        v = self.val[method]
        return int(np.argmin(np.where(np.isfinite(v), v, np.inf)))


METHODS = ("L1 prox", "L1 subgradient", "L2")


def measure_l1(ctx: Context) -> L1Measured:
    """Full-batch GD on standardized sparse linear regression, every penalty as one row of a tensor."""
    from sklearn.datasets import make_regression

    n, d, k, noise = 300, 60, 6, 10.0
    Xa, ya, coef = make_regression(n_samples=n, n_features=d, n_informative=k, noise=noise, coef=True,
                                   random_state=ctx.seed)
    ntr = 200
    mu, sd = Xa[:ntr].mean(0), Xa[:ntr].std(0)
    ym, ys = ya[:ntr].mean(), ya[:ntr].std()
    X = torch.as_tensor((Xa - mu) / sd, dtype=F64)
    y = torch.as_tensor((ya - ym) / ys, dtype=F64)
    Xt, yt, Xv, yv = X[:ntr], y[:ntr], X[ntr:], y[ntr:]
    informative = coef != 0
    w_true = coef * sd / ys  # the true weights in standardized units
    L = float(torch.linalg.eigvalsh(Xt.T @ Xt / ntr)[-1])
    lr = 1.0 / L
    tau = 1e-3
    steps = ctx.pick(2000, 500)
    grid = np.logspace(-4, 0, ctx.pick(13, 9))
    lams = {"L1 prox": grid, "L1 subgradient": grid, "L2": grid * 10}

    def half_mse(W: torch.Tensor, A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((A @ W.T - b[:, None]) ** 2).mean(0)

    out: dict[str, dict[str, np.ndarray]] = {key: {} for key in ("val", "zeroed", "exact", "kept", "weights")}
    for method in METHODS:
        lam = lams[method]
        R = len(lam)
        W = torch.zeros(R, d, dtype=F64, requires_grad=True)
        if method == "L2":
            opt = rows_optimizer("sgd", [W], lr=list(1.0 / (L + lam)), weight_decay=list(lam))
        elif method == "L1 subgradient":
            opt = rows_optimizer("sgd", [W], lr=[lr] * R, l1=list(lam))
        else:
            opt = rows_optimizer("sgd", [W], lr=[lr] * R)
        shrink = torch.as_tensor(lr * lam, dtype=F64)[:, None]
        for _ in range(steps):
            opt.zero_grad()
            half_mse(W, Xt, yt).sum().backward()
            opt.step()
            if method == "L1 prox":
                soft_threshold(W, shrink)
        Wn = W.detach().numpy()
        a = np.abs(Wn)
        out["val"][method] = half_mse(W.detach(), Xv, yv).numpy()
        out["zeroed"][method] = (a[:, ~informative] < tau).sum(1)
        out["exact"][method] = (a[:, ~informative] == 0).sum(1)
        out["kept"][method] = ((a[:, informative] >= tau) & (np.sign(Wn[:, informative]) == np.sign(
            w_true[informative]))).sum(1)
        out["weights"][method] = Wn
    return L1Measured(n=n, d=d, k=k, noise=noise, steps=steps, tau=tau, lr=lr,
                      smallest_informative=float(np.abs(w_true[informative]).min()), lams=lams,
                      informative=informative, **out)


def judge_l1(m: L1Measured) -> tuple[str, int, int]:
    """Returns (verdict, L1's matched penalty index, L2's best index).

    Matched: the largest L1 penalty whose validation loss is no worse than L2's best. Held if there L1
    (proximal step) zeroes >= 80% of the irrelevant weights and keeps every informative one, while L2 at
    its best zeroes <= 20%; depends if L1 selects that way but loses an informative weight; else did not hold.
    """
    irrelevant = m.d - m.k
    q = m.best("L2")
    ok = np.flatnonzero(m.val["L1 prox"] <= m.val["L2"][q])
    p = int(ok[-1]) if ok.size else m.best("L1 prox")
    selects = bool(ok.size) and m.zeroed["L1 prox"][p] >= 0.8 * irrelevant and m.zeroed["L2"][q] <= 0.2 * irrelevant
    verdict = judge(selects and m.kept["L1 prox"][p] == m.k, partly=selects)
    return verdict, p, q


@topic("l1")
def l1(ctx: Context) -> Finding:
    """Topic ``l1``: measure (:func:`measure_l1`), judge (:func:`judge_l1`), write."""
    m = measure_l1(ctx)
    verdict, p, q = judge_l1(m)
    irrelevant = m.d - m.k
    b = {"L1 prox": p, "L1 subgradient": p, "L2": q}
    lam_at = {meth: float(m.lams[meth][b[meth]]) for meth in METHODS}
    order = np.argsort(~m.informative, kind="stable")
    fig = panels_figure([
        Panel(f"irrelevant weights with |w| < {m.tau:g} (of {irrelevant})", "penalty λ", "count",
              [Series(meth, m.lams[meth], m.zeroed[meth], marker="o", color=color(i))
               for i, meth in enumerate(METHODS)], xlog=True, legend="upper left"),
        Panel(f"informative weights kept (of {m.k})", "penalty λ", "count",
              [Series(meth, m.lams[meth], m.kept[meth], marker="o", color=color(i))
               for i, meth in enumerate(METHODS)], xlog=True, legend=None, ylim=(-0.3, m.k + 0.3)),
        Panel("validation loss", "penalty λ", "½ MSE (standardized target)",
              [Series(meth, m.lams[meth], m.val[meth], marker="o", color=color(i)) for i, meth in enumerate(METHODS)],
              xlog=True, ylog=True, legend=None, hlines=[(float(m.val["L2"][q]), "L2's best")]),
        Panel("|w| per feature at the compared λ", f"feature (the {m.k} informative first)", "|w|",
              [Series(f"{meth} (λ = {lam_at[meth]:.2g})", np.arange(m.d), np.abs(m.weights[meth][b[meth]][order]),
                      marker=".", style="", color=color(i)) for i, meth in enumerate(METHODS)],
              vlines=[(m.k - 0.5, "")], legend="upper right"),
    ], title=f"Sparse linear regression (make_regression: {m.k} informative of {m.d} features, noise {m.noise:g}): "
       "L1 and L2 penalties across λ", width=17)
    s = p
    numbers: dict[str, float | int | str] = {"threshold τ for 'zero'": m.tau, "lr (1/L)": m.lr,
                                             "smallest informative |w| (true, standardized)": m.smallest_informative}
    for meth in METHODS:
        j = b[meth]
        numbers[f"{meth}: λ compared" + (" (L2's best)" if meth == "L2" else " (matched)")] = lam_at[meth]
        numbers[f"{meth}: validation loss there"] = float(m.val[meth][j])
        numbers[f"{meth}: irrelevant |w| < τ there (of {irrelevant})"] = int(m.zeroed[meth][j])
        numbers[f"{meth}: irrelevant exactly 0 there"] = int(m.exact[meth][j])
        numbers[f"{meth}: informative kept there (of {m.k})"] = int(m.kept[meth][j])
    most_l2 = int(m.zeroed["L2"].max())
    return ctx.finding(
        verdict, numbers, [fig],
        rule=f"a weight counts as zero when |w| < τ = {m.tau:g} (standardized units: it moves the prediction by "
        f"under {m.tau:g} target standard deviations per standard deviation of its feature; the smallest true "
        f"informative weight is {m.smallest_informative:.3f}). L2 at its best λ (lowest validation loss); L1 at a "
        "matched validation loss: the largest λ whose validation loss is no worse than L2's best. Held if there L1 "
        f"with the proximal step sets at least 80% of the {irrelevant} irrelevant weights to zero and keeps every "
        "informative weight (|w| ≥ τ, true sign) while L2 zeroes at most 20%; depends if L1 selects so but loses an "
        "informative weight; did not hold otherwise.",
        summary=f"At λ = {lam_at['L1 prox']:.2g} L1 with the proximal step set {m.zeroed['L1 prox'][p]} of "
        f"{irrelevant} irrelevant weights below τ ({m.exact['L1 prox'][p]} exactly 0) and kept "
        f"{m.kept['L1 prox'][p]} of {m.k} informative ones, at validation loss {m.val['L1 prox'][p]:.4f}. L2 at its "
        f"best λ ({lam_at['L2']:.2g}, validation loss {m.val['L2'][q]:.4f}) set {m.zeroed['L2'][q]} below τ, and "
        f"never more than {most_l2} at any λ tried: it shrinks weights without zeroing them. "
        f"The same L1 penalty through descend's l1= keyword (a subgradient, λ·sign(w) added to the gradient) set "
        f"{m.zeroed['L1 subgradient'][s]} below τ and {m.exact['L1 subgradient'][s]} exactly to 0 at the same λ, "
        f"and at most {int(m.zeroed['L1 subgradient'].max())} at any λ: each step pushes a small weight by lr·λ = {m.lr * lam_at['L1 subgradient']:.1e} "
        "past zero, so it hovers near zero instead of landing on it; the soft-threshold step lands on it. "
        + {HELD: "L1 selected the features, with the proximal step; L2 did not.",
           DEPENDS: f"L1 dropped the irrelevant features but also lost {m.k - m.kept['L1 prox'][p]} informative one(s) "
                    "(the weakest true weights are the first to go).",
           NOT_HELD: "L1 did not select the features by the rule's measure here."}[verdict],
        setup=f"scikit-learn make_regression (seed {ctx.seed}): {m.n} examples ({200} training, {m.n - 200} "
        f"validation), {m.d} features of which {m.k} informative, noise {m.noise:g}; features and target standardized "
        f"with training statistics. Linear model without bias, full-batch GD (descend.optim.SGD) for {m.steps} steps "
        f"at lr 1/L = {m.lr:.3f} (L2: 1/(L + λ)), every λ as one row of a tensor: L1 by soft-thresholding after each "
        "step (proximal gradient, ISTA), L1 by the optimizer's l1= keyword, L2 by weight_decay=λ "
        f"(λ from {m.lams['L1 prox'][0]:g} to {m.lams['L1 prox'][-1]:g} for L1, ten times that for L2).",
        caption="From the left: irrelevant weights zeroed and informative weights kept against λ, the validation loss, "
        "and every weight at the compared λ (L1 at the matched λ, L2 at its best).",
    )
