"""Tour topics on 2-D landscapes: the gradient, the learning rate, momentum, Nesterov,
Adagrad and RMSprop, Adam, Newton's method, saddles and local minima.

Each topic runs :mod:`descend.lab` (``minimize``, ``run_many``, ``race``,
``sweep``) or descend's optimizers directly, draws its figure with
:mod:`descend.plots` and judges the notes' claim by a rule stated in its
:class:`~descend.tour.core.Finding`. 2-D paths show how each rule moves;
they do not rank optimizers on real models (every race figure says so).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .. import lab, landscapes
from .. import optim as O
from ..plots.lab import race_figure, sweep_figure
from ..plots.tour import Panel, Series, basins_figure, color, gradient_figure, panels_figure, png
from ._util import as_inf, rows_optimizer, shown, steps_to
from .core import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic

F64 = torch.float64


def _grid(ctx: Context) -> np.ndarray:
    """The fair races' lr grid: 1e-4 .. 1, four per decade (the lab's default density)."""
    return np.logspace(-4, 0, 17)


# --------------------------------------------------------------------------- 1. the gradient


@topic(
    "gradient", "The gradient and note 003's worked example", note="003, 000",
    claim="The gradient is the vector of partial derivatives and points in the direction of steepest ascent, "
    "so gradient descent steps against it. For f(x, y) = 3x²y at (1, 1) the gradient is (6, 3), and one step "
    "with learning rate 0.01 gives the new weights (0.94, 0.97). The step must be small, because the gradient "
    "only describes the loss near the current point (first-order Taylor approximation).",
    quote="gredient f(1,1) = [6, 3] … Wx = 1 - 0.06 = 0.94, Wy = 1 - 0.03 = 0.97",
)
def gradient(ctx: Context) -> Finding:
    """Topic ``gradient``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    land = landscapes.note003()
    p = torch.tensor([1.0, 1.0], dtype=F64, requires_grad=True)
    f0 = land.value(p)
    (g_auto,) = torch.autograd.grad(f0, p)
    g_closed = land.grad(p.detach())
    opt = O.SGD([p], lr=0.01, impl="eager")
    p.grad = g_auto.clone()
    opt.step()
    new = p.detach().clone()
    want_g = torch.tensor([6.0, 3.0], dtype=F64)
    want = torch.tensor([0.94, 0.97], dtype=F64)
    grad_err = max(float((g_auto - want_g).abs().max()), float((g_closed - want_g).abs().max()))
    step_err = float((new - want).abs().max())
    exact = bool(torch.equal(new, want))

    g = g_auto.numpy()
    angles = np.arange(0.0, 360.0, 0.25)
    rad = np.radians(angles)
    slopes = g[0] * np.cos(rad) + g[1] * np.sin(rad)
    steepest = float(angles[np.argmin(slopes)])
    expected = math.degrees(math.atan2(-g[1], -g[0])) % 360.0
    angle_err = abs((steepest - expected + 180.0) % 360.0 - 180.0)

    p0 = np.array([1.0, 1.0])
    fv = float(f0.detach())
    gg = float(g @ g)
    lrs = np.logspace(-4, math.log10(0.3), 60)
    pts = torch.as_tensor(p0[None, :] - lrs[:, None] * g[None, :])
    true = land.value(pts).numpy()
    linear = fv - lrs * gg

    def first_order_error(lr: float) -> float:
        q = torch.as_tensor(p0 - lr * g)
        actual = fv - float(land.value(q))
        return abs(actual - lr * gg) / (lr * gg)

    e_small, e_large = first_order_error(0.01), first_order_error(0.1)
    ok = grad_err <= 1e-12 and step_err <= 1e-12 and angle_err <= 0.25 and e_small < 0.1 <= e_large
    fig = gradient_figure(
        land, p0, g, new.numpy(), 0.01, taylor_lrs=lrs, taylor_true=true, taylor_linear=linear,
        angles=angles, slopes=slopes, box=(0.78, 1.22, 0.84, 1.2),
    )
    return Finding(
        verdict=judge(ok),
        rule="held if the gradient at (1, 1) is (6, 3) (autograd and closed form, to 1e-12), one SGD step "
        "with lr 0.01 lands on (0.94, 0.97) to 1e-12, the steepest descending direction found by scanning "
        "all directions is the negative gradient (to 0.25°), and the first-order prediction of the loss "
        "after the step is within 10% at lr 0.01 but not at lr 0.1.",
        summary=f"descend's SGD moved (1, 1) to ({float(new[0])!r}, {float(new[1])!r})"
        f"{': bit for bit the doubles nearest to 0.94 and 0.97' if exact else f', {step_err:.1e} from (0.94, 0.97)'}. "
        f"The gradient was ({g[0]:g}, {g[1]:g}); the steepest way down points at {steepest:.2f}°, "
        f"the negative gradient at {expected:.2f}°. The first-order prediction of the decrease is off by "
        f"{e_small:.1%} at lr 0.01 and by {e_large:.0%} at lr 0.1: small steps are what make the gradient's "
        "picture true.",
        setup="f(x, y) = 3x²y (landscape note003) at (1, 1), float64; gradient by autograd and by the closed "
        "form; one step of descend.optim.SGD(lr=0.01); slopes g·(cos a, sin a) for a in 0..360° every 0.25°; "
        "f(p − lr·g) against f(p) − lr·|g|² for lr from 1e-4 to 0.3.",
        numbers={
            "gradient x": float(g[0]), "gradient y": float(g[1]), "new x": float(new[0]), "new y": float(new[1]),
            "distance from (0.94, 0.97)": step_err, "bit-exact (0.94, 0.97)": exact,
            "f before": fv, "f after": float(land.value(new)),
            "steepest descent direction (deg)": steepest, "negative gradient direction (deg)": expected,
            "first-order error at lr 0.01": e_small, "first-order error at lr 0.1": e_large,
        },
        figure=png(fig, ctx.dpi),
        caption="Left: the step from (1, 1) against the gradient. Middle: the loss after one step against the "
        "gradient's linear prediction. Right: the slope in every direction.",
    )


# --------------------------------------------------------------------------- 2. learning rate


@topic(
    "learning_rate", "Learning rate too small, about right, too large", note="003, 000",
    claim="If the learning rate is too large, the loss does not find its minimum: it bounces back and forth "
    "or jumps away (overshooting). If it is too small, it does not reach the minimum (in the time given).",
    quote="Learning Rate가 클 때 … 왔다갔다 하거나 튕기는 현상 발생(overshooting) … 작을 때, 최소 Loss에 도달하지 못하는 문제",
)
def learning_rate(ctx: Context) -> Finding:
    """Topic ``learning_rate``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    land = landscapes.bowl(kappa=10.0, angle=math.radians(30))
    lrs = np.logspace(-3, 0, ctx.pick(31, 16))
    steps = ctx.pick(200, 100)
    sw = lab.sweep(land, "gd", lrs, steps=steps, tol=1e-8)
    labels = sw.labels
    best = sw.best_lr if sw.best_lr is not None else float(lrs[0])
    small_pool = [lr for lr, lab_ in zip(sw.lrs, labels) if lab_ == "too small" and lr <= best / 8]
    small = float(max(small_pool)) if small_pool else float(sw.lrs[0])
    over = [lr for lr, lab_ in zip(sw.lrs, labels) if lab_ == "too large"]
    div = [lr for lr, lab_ in zip(sw.lrs, labels) if lab_ == "divergent"]
    large = float(min(div)) if div else (float(max(over)) if over else float(sw.lrs[-1]))
    race = lab.race(land, [("gd", {"lr": small}), ("gd", {"lr": best}), ("gd", {"lr": large})], steps=steps,
                    tol=1e-8)
    run_small, run_best, run_large = race.runs
    has = {name: name in labels for name in ("too small", "good", "too large", "divergent")}
    ok = has["too small"] and has["good"] and (has["too large"] or has["divergent"])
    good = [lr for lr, lab_ in zip(sw.lrs, labels) if lab_ == "good"]
    sign_flips = int(np.sum(np.diff(np.sign(run_large.path[: min(len(run_large.path), 40), 1])) != 0))
    fig = race_figure(race, title=f"Gradient descent on {land.title}: three learning rates, {steps} steps")
    sweep_fig = sweep_figure(sw, title=f"GD on the κ = 10 bowl: final f − f* after {steps} steps for "
                             f"{len(lrs)} learning rates (one vectorized run)")
    if good:
        usual = 1e-3 <= min(good) and max(good) <= 0.1
        range_text = (f" The good range here was {min(good):.3g}–{max(good):.3g}"
                      + (", inside note 000's usual 0.001–0.1." if usual else
                         "; note 000's usual 0.001–0.1 is a rule of thumb for scaled models, not a law of this bowl."))
    else:
        range_text = ""
    large_text = (f"diverged after {run_large.steps} steps" if run_large.diverged
                  else f"ended at f − f* = {run_large.final_gap:.2e}")
    counts = ", ".join(f"{sum(1 for x in labels if x == k)} {k}" for k in ("too small", "good", "too large", "divergent"))
    return Finding(
        verdict=judge(ok),
        rule="held if descend.lab.sweep labels some learning rates 'too small' (final gap over 10x the best "
        "gap), some 'good', and some 'too large' or 'divergent' (diverged, or ended above the starting loss).",
        summary=f"Of {len(lrs)} learning rates from 1e-3 to 1: {counts}. lr {small:.3g} ended at f − f* = "
        f"{run_small.final_gap:.2e} (still far from the minimum), lr {best:.3g} reached 1e-8 in "
        f"{shown(run_best.steps_to_tol, steps)} steps, lr {large:.3g} {large_text} (its steep coordinate changed "
        f"sign {sign_flips} times in its first 40 steps: overshooting).{range_text}",
        setup=f"Plain gradient descent (descend.optim.SGD) on a quadratic bowl with condition number 10, rotated "
        f"30°, from its start point; {len(lrs)} learning rates in one vectorized lab.sweep, {steps} steps, "
        "tolerance 1e-8; then a race of three of them.",
        numbers={
            "lr too small (shown)": small, "its final f - f*": float(run_small.final_gap),
            "best lr": best, "its steps to 1e-8": shown(run_best.steps_to_tol, steps),
            "lr too large (shown)": large, "it diverged": bool(run_large.diverged),
            "sign flips of the steep coordinate (first 40 steps)": sign_flips,
            "lrs too small": sum(1 for x in labels if x == "too small"), "lrs good": len(good),
            "lrs too large": sum(1 for x in labels if x == "too large"),
            "lrs divergent": sum(1 for x in labels if x == "divergent"),
            "good range from": float(min(good)) if good else "none", "good range to": float(max(good)) if good else "none",
        },
        figure=png(fig, ctx.dpi),
        extra_figures=[png(sweep_fig, ctx.dpi)],
        caption="Top: the three runs' paths and losses. Bottom: the whole sweep, shaded by region.",
    )


# --------------------------------------------------------------------------- 4. momentum


@topic(
    "momentum", "Zig-zag of gradient descent vs momentum on an elongated bowl", note="002, 000, 001",
    claim="On an elongated bowl plain gradient descent zig-zags across the narrow direction. Momentum, an "
    "exponential moving average of the gradients (β usually 0.9), averages the back-and-forth components "
    "towards zero and keeps the consistent one, so the oscillation shrinks and progress along the valley "
    "speeds up.",
    quote="수직방향의 진동은 줄어들고, 수평 방향의 폭은 증가하는 효과가 생긴다",
)
def momentum(ctx: Context) -> Finding:
    """Topic ``momentum``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    kappa = 100.0
    land = landscapes.bowl(kappa=kappa)
    steps = ctx.pick(3000, 1500)
    grid = _grid(ctx)
    race = lab.race(land, ["gd", ("momentum", {"beta": 0.9})], steps=steps, tol=1e-6, fair=True, lr_grid=grid)
    gd, mom = race.runs
    n = 40

    def reversals(run: lab.Run) -> float:
        """Share of the first n steps whose move across the valley (y) reverses the previous one."""
        dy = np.diff(run.path[: n + 1, 1])
        return float(np.mean(np.sign(dy[1:]) != np.sign(dy[:-1]))) if dy.size > 1 else 0.0

    def travel(run: lab.Run, k: int) -> float:
        return float(np.abs(np.diff(run.path[: n + 1, k])).sum())

    faster = as_inf(mom.steps_to_tol) < as_inf(gd.steps_to_tol)
    calmer = reversals(mom) < reversals(gd)
    ratio = as_inf(gd.steps_to_tol) / as_inf(mom.steps_to_tol) if mom.steps_to_tol else float("nan")
    fig = race_figure(race, title=f"Bowl with condition number {kappa:g}: GD against momentum (β = 0.9), "
                      f"each at its best lr of {len(grid)}")
    return Finding(
        verdict=judge(faster and calmer, partly=faster or calmer),
        rule="each optimizer at its best learning rate of the same grid (lab.race with fair=True). Held if "
        "momentum (β = 0.9) reaches f − f* < 1e-6 in fewer steps than plain gradient descent and, in the first "
        f"{n} steps, reverses its move across the valley less often (less zig-zag); depends if only one holds.",
        summary=f"GD needed {shown(gd.steps_to_tol, steps)} steps (lr {gd.hyper['lr']:.3g}), momentum "
        f"{shown(mom.steps_to_tol, steps)} (lr {mom.hyper['lr']:.3g})"
        + (f", {ratio:.1f}x fewer" if faster and math.isfinite(ratio) else "")
        + f". In the first {n} steps GD reversed its move across the valley on {reversals(gd):.0%} of the steps "
        f"(the zig-zag), momentum on {reversals(mom):.0%}; along the valley GD covered {travel(gd, 0):.2f} and "
        f"momentum {travel(mom, 0):.2f}. In total momentum moved {travel(mom, 1):.2f} across the valley and GD "
        f"{travel(gd, 1):.2f}"
        + (": momentum still swings, but in slow arcs rather than back and forth at every step." if calmer else "."),
        setup=f"bowl(kappa={kappa:g}): f = (x² + {kappa:g}·y²)/2 from (−2.5, 1); lab.race(fair=True) over "
        f"{len(grid)} learning rates from 1e-4 to 1 for descend.optim.SGD and Momentum(beta=0.9, heavy ball); "
        f"tolerance 1e-6, {steps} steps at most.",
        numbers={
            "GD steps to 1e-6": shown(gd.steps_to_tol, steps), "GD best lr": float(gd.hyper["lr"]),
            "momentum steps to 1e-6": shown(mom.steps_to_tol, steps), "momentum best lr": float(mom.hyper["lr"]),
            f"GD: share of reversals across the valley (first {n} steps)": reversals(gd),
            f"momentum: share of reversals across the valley (first {n} steps)": reversals(mom),
            f"GD: distance along the valley (first {n} steps)": travel(gd, 0),
            f"momentum: distance along the valley (first {n} steps)": travel(mom, 0),
            f"GD: distance across the valley (first {n} steps)": travel(gd, 1),
            f"momentum: distance across the valley (first {n} steps)": travel(mom, 1),
        },
        figure=png(fig, ctx.dpi),
        caption="Paths on the bowl (left) and f − f* per step (right), each optimizer at its best lr of the grid.",
    )


# --------------------------------------------------------------------------- 5. Nesterov


@topic(
    "nesterov", "Nesterov's look-ahead vs momentum's overshoot", note="001",
    claim="If the momentum is too high the algorithm may miss the minimum and jump past it. Nesterov's "
    "accelerated gradient evaluates the gradient after the momentum step, at θ − γv, so it corrects before "
    "it overshoots.",
    quote="momentum이 너무 높으면 알고리즘이 minima를 놓치고 건너뛰어버릴 우려가 있다",
)
def nesterov(ctx: Context) -> Finding:
    """Topic ``nesterov``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    land = landscapes.bowl(kappa=10.0)
    betas = [0.5, 0.7, 0.9, 0.95, 0.99]
    lr = 0.05
    steps = ctx.pick(2000, 1200)
    rows = {}
    for name in ("momentum", "nesterov"):
        rows[name] = lab.run_many(land, None, name, steps=steps, tol=1e-6, lr=lr, beta=betas)
    over = {k: r.paths[:, :, 0].max(axis=0) for k, r in rows.items()}  # x starts at -2.5; min at 0
    stp = {k: [shown(s, steps) for s in r.steps_to_tol] for k, r in rows.items()}
    meaningful = [i for i in range(len(betas)) if over["momentum"][i] > 1e-2]
    better = [i for i in meaningful if over["nesterov"][i] < over["momentum"][i]]
    verdict = judge(bool(meaningful) and len(better) == len(meaningful), partly=bool(better))
    hi = betas.index(0.95)
    race = lab.race(land, [("momentum", {"lr": lr, "beta": betas[hi]}), ("nesterov", {"lr": lr, "beta": betas[hi]})],
                    steps=steps, tol=1e-6)
    fig = race_figure(race, title=f"Bowl (κ = 10): momentum and Nesterov with the same lr {lr:g} and β = {betas[hi]:g}")
    extra = panels_figure([
        Panel("how far past the minimum (x > 0) the path swings", "β (momentum coefficient)", "largest x (start −2.5, minimum 0)",
              [Series("momentum (heavy ball)", betas, over["momentum"], marker="o"),
               Series("Nesterov", betas, over["nesterov"], marker="s", style="--")], hlines=[(0.0, "the minimum")]),
        Panel("steps to f − f* < 1e-6", "β", "steps",
              [Series("momentum", betas, [as_inf(s) for s in rows["momentum"].steps_to_tol], marker="o"),
               Series("Nesterov", betas, [as_inf(s) for s in rows["nesterov"].steps_to_tol], marker="s", style="--")],
              ylog=True),
    ], title=f"Overshoot against β (lr {lr:g}, same start)")
    numbers: dict[str, float | int | str] = {}
    for i, b in enumerate(betas):
        numbers[f"β={b:g}: momentum overshoot"] = float(over["momentum"][i])
        numbers[f"β={b:g}: Nesterov overshoot"] = float(over["nesterov"][i])
        numbers[f"β={b:g}: momentum / Nesterov steps"] = f"{stp['momentum'][i]} / {stp['nesterov'][i]}"
    return Finding(
        verdict=verdict,
        rule="overshoot = the largest x the path reaches past the minimum (it starts at x = −2.5). Held if, for "
        "every β where momentum overshoots by more than 0.01, Nesterov's overshoot is smaller (same lr, same "
        "β); depends if only for some.",
        summary=f"Momentum overshot at {len(meaningful)} of {len(betas)} β values; Nesterov swung less far at "
        f"{len(better)} of them. At β = 0.95 momentum swung to x = {over['momentum'][hi]:.2f}, Nesterov to "
        f"{over['nesterov'][hi]:.2f}, and they needed {stp['momentum'][hi]} and {stp['nesterov'][hi]} steps "
        f"to 1e-6; at β = 0.99, {stp['momentum'][-1]} and {stp['nesterov'][-1]}.",
        setup=f"bowl(kappa=10) from (−2.5, 1); descend.optim.Momentum and Nesterov (heavy ball, look-ahead stored "
        f"in the parameter), lr {lr:g}, β in {betas}, one lab.run_many per optimizer (a row per β), "
        f"tolerance 1e-6, {steps} steps at most.",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        extra_figures=[png(extra, ctx.dpi)],
        caption="Top: the two paths at β = 0.95. Bottom: overshoot and steps for every β.",
    )


# --------------------------------------------------------------------------- 6. Adagrad vs RMSprop


def _effective_lrs(land: landscapes.Landscape, cls: type[O.Optimizer], lrs: list[float], steps: int,
                   key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per step and row: lr / sqrt(state + eps) (geometric mean over x, y) and f - f*."""
    R = len(lrs)
    W = torch.tensor(land.start, dtype=F64).expand(R, 2).clone().requires_grad_(True)
    opt = rows_optimizer(cls, [W], lr=lrs)
    eff = np.empty((steps, R))
    gap = np.empty((steps + 1, R))
    lr_col = torch.as_tensor(lrs, dtype=F64).view(R, 1)
    with torch.no_grad():
        gap[0] = (land.f(W) - land.f_star).numpy()
    for t in range(steps):
        W.grad = land.grad(W.detach())
        opt.step()
        with torch.no_grad():
            acc = opt.state[W][key]
            e = lr_col / torch.sqrt(acc + opt.param_groups[0]["eps"])
            eff[t] = torch.exp(torch.log(e).mean(1)).numpy()
            gap[t + 1] = (land.f(W) - land.f_star).numpy()
    return eff, gap


@topic(
    "adagrad", "Adagrad's shrinking step vs RMSprop", note="001, 000",
    claim="Adagrad divides each parameter's step by the root of the sum of all its past squared gradients, "
    "so the learning rate only shrinks as training goes on, and this aggressive decay can slow it down. "
    "RMSprop uses an exponentially weighted moving average instead, so recent gradients count more and the "
    "step does not vanish.",
    quote="학습을 진행하면 진행할 수록 학습률이 줄어든다",
)
def adagrad(ctx: Context) -> Finding:
    """Topic ``adagrad``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    land = landscapes.bowl(kappa=10.0)
    lrs = [0.01, 0.1, 0.5]
    steps = ctx.pick(1000, 300)
    eff_a, gap_a = _effective_lrs(land, O.Adagrad, lrs, steps, "G")
    eff_r, gap_r = _effective_lrs(land, O.RMSprop, lrs, steps, "S")
    shrink = eff_a[-1] / eff_a[0]
    monotone = bool(np.all(np.diff(eff_a, axis=0) <= 1e-15 * eff_a[:-1]))
    rms_end = eff_r[-1] / eff_r[0]
    mechanism = monotone and bool(np.all(shrink < 1.0)) and bool(np.all(rms_end > 1.0))
    slower = [i for i in range(len(lrs)) if gap_a[-1, i] > gap_r[-1, i]]
    if mechanism and len(slower) == len(lrs):
        verdict = HELD
    elif mechanism:
        verdict = DEPENDS
    else:
        verdict = NOT_HELD
    x = np.arange(1, steps + 1)
    panels = [
        Panel("effective learning rate lr / √(accumulator + ε)", "step", "effective lr (geometric mean of x, y)",
              [Series(f"Adagrad, lr {lr:g}", x, eff_a[:, i], color=color(i)) for i, lr in enumerate(lrs)]
              + [Series(f"RMSprop, lr {lr:g}", x, eff_r[:, i], color=color(i), style="--") for i, lr in enumerate(lrs)],
              xlog=True, ylog=True, legend="lower left"),
        Panel("f − f*", "step", "f − f*",
              [Series(f"Adagrad, lr {lr:g}", np.arange(steps + 1), gap_a[:, i], color=color(i)) for i, lr in enumerate(lrs)]
              + [Series(f"RMSprop, lr {lr:g}", np.arange(steps + 1), gap_r[:, i], color=color(i), style="--")
                 for i, lr in enumerate(lrs)],
              xlog="symlog", ylog=True, legend="lower left"),
    ]
    fig = panels_figure(panels, title="Bowl (κ = 10): Adagrad (solid) and RMSprop (dashed) with the same learning rates")
    numbers: dict[str, float | int | str] = {}
    for i, lr in enumerate(lrs):
        numbers[f"lr {lr:g}: Adagrad effective lr, last / first step"] = float(shrink[i])
        numbers[f"lr {lr:g}: RMSprop effective lr, last / first step"] = float(rms_end[i])
        numbers[f"lr {lr:g}: Adagrad final f - f*"] = float(gap_a[-1, i])
        numbers[f"lr {lr:g}: RMSprop final f - f*"] = float(gap_r[-1, i])
    return Finding(
        verdict=verdict,
        rule="the mechanism: at every lr Adagrad's effective lr never increases and ends below its first value, "
        "while RMSprop's ends above its first value (its average forgets the large early gradients). Held if the mechanism holds and Adagrad "
        "ends with a larger f − f* than RMSprop at every lr; depends if it is slower only at some lrs; did not "
        "hold if the mechanism fails.",
        summary=f"Adagrad's effective lr {'only shrank' if monotone else 'did not only shrink'} (it ended at "
        f"{', '.join(f'{s:.2g}x' for s in shrink)} of its first value at lr {', '.join(f'{lr:g}' for lr in lrs)}); "
        f"RMSprop's ended at {', '.join(f'{s:.3g}x' for s in rms_end)} of its first value"
        + (" (its average forgets the large early gradients, so the step grows again as they shrink)" if
           bool(np.all(rms_end > 1.0)) else "")
        + ". Final f − f*, Adagrad against RMSprop: "
        + "; ".join(f"lr {lr:g}: {gap_a[-1, i]:.2e} against {gap_r[-1, i]:.2e}" for i, lr in enumerate(lrs))
        + f". Adagrad was behind at {len(slower)} of {len(lrs)} learning rates"
        + (": the shrinking is as the notes say, but whether it hurts depends on the learning rate (with a large "
           "lr Adagrad's decay is a virtue, and RMSprop's steady step of about lr keeps it hovering)."
           if 0 < len(slower) < len(lrs) else "."),
        setup=f"bowl(kappa=10) from (−2.5, 1); descend.optim.Adagrad and RMSprop (β 0.9, ε 1e-8 inside the root) "
        f"at lr {lrs}, each as one (3, 2) tensor of rows; {steps} steps; effective lr read from the optimizers' "
        "state (G and S).",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Left: the step size each rule actually used. Right: the loss it reached.",
    )


# --------------------------------------------------------------------------- 7. Adam


@topic(
    "adam", "Adam = momentum + RMSprop", note="001, 002, 000",
    claim="Adam combines momentum (an EMA of the gradients) with RMSprop (an EMA of the squared gradients), "
    "with bias correction; it converges quickly to the minimum of the loss and is an effective, stable "
    "optimizer.",
    quote="Adam = RMSProp + Momentum … loss의 최솟값으로의 빠른 수렴",
)
def adam(ctx: Context) -> Finding:
    """Topic ``adam``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    steps_id = ctx.pick(300, 100)
    a = lab.minimize("rosenbrock", optimizer="adam", lr=0.01, beta1=0.0, beta2=0.9, eps=1e-8, eps_mode="inside",
                     bias_correction=False, steps=steps_id, tol=None)
    r = lab.minimize("rosenbrock", optimizer="rmsprop", lr=0.01, beta=0.9, eps=1e-8, steps=steps_id, tol=None)
    identity = float(np.abs(a.path - r.path).max())
    grid = _grid(ctx)
    steps = ctx.pick(2500, 1200)
    entries = [("momentum", {"beta": 0.9}), ("rmsprop", {}), ("adam", {})]
    races = {
        "Rosenbrock": lab.race("rosenbrock", entries, steps=steps, tol=1e-6, fair=True, lr_grid=grid),
        "rotated bowl": lab.race(landscapes.bowl(kappa=100.0, angle=math.radians(30)), entries, steps=steps,
                                 tol=1e-6, fair=True, lr_grid=grid),
    }
    wins = 0
    numbers: dict[str, float | int | str] = {"max |Adam(β1=0) − RMSprop| over the path": identity}
    lines = []
    for name, race in races.items():
        m, rm, ad = race.runs
        best_parent = min(as_inf(m.steps_to_tol), as_inf(rm.steps_to_tol))
        win = as_inf(ad.steps_to_tol) < best_parent or (ad.steps_to_tol is not None and best_parent == math.inf)
        wins += int(win)
        for run in race.runs:
            numbers[f"{name}: {run.optimizer} steps to 1e-6 (best lr)"] = (
                f"{shown(run.steps_to_tol, steps)} (lr {run.hyper['lr']:.3g})")
        lines.append(f"on {'the ' if name == 'rotated bowl' else ''}{name} Adam took {shown(ad.steps_to_tol, steps)} steps against momentum's "
                     f"{shown(m.steps_to_tol, steps)} and RMSprop's {shown(rm.steps_to_tol, steps)}")
    same = identity <= 1e-12
    verdict = judge(same and wins == len(races), partly=same)
    fig = race_figure(races["Rosenbrock"], title=f"Rosenbrock: momentum, RMSprop and Adam, each at its best lr of {len(grid)}")
    fig2 = race_figure(races["rotated bowl"], title=f"Bowl (κ = 100, rotated 30°): the same three, best lr of {len(grid)}")
    return Finding(
        verdict=verdict,
        rule="two parts. Structure: Adam with β1 = 0 (no momentum), no bias correction and ε inside the root must "
        "retrace RMSprop's path exactly (max difference ≤ 1e-12). Speed: in fair races (same lr grid) on "
        "Rosenbrock and on a rotated κ = 100 bowl, Adam must reach f − f* < 1e-6 in fewer steps than both "
        "momentum and RMSprop. Held if both parts hold; depends if only the structure does.",
        summary=f"With its momentum switched off Adam retraced RMSprop to {identity:.1e}: the RMSprop half is "
        f"exactly RMSprop. In the races {'; '.join(lines)}. Adam was the fastest on {wins} of {len(races)} "
        "landscapes"
        + (": it combines the two rules, but on these 2-D problems combining them did not always beat the better "
           "parent." if wins < len(races) else ": combining the two rules beat both parents here."),
        setup=f"Structure: lab.minimize on Rosenbrock, {steps_id} steps, Adam(lr 0.01, β1 0, β2 0.9, eps_mode "
        f"'inside', bias_correction False) against RMSprop(lr 0.01, β 0.9). Speed: lab.race(fair=True) over "
        f"{len(grid)} lrs from 1e-4 to 1, {steps} steps, tolerance 1e-6; Momentum β 0.9, RMSprop β 0.9, Adam "
        "β1 0.9, β2 0.999.",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        extra_figures=[png(fig2, ctx.dpi)],
        caption="Fair races: each optimizer at the lr of the grid that reached the tolerance first.",
    )


# --------------------------------------------------------------------------- 8. Newton


def _logistic(X: torch.Tensor, y: torch.Tensor, wd: float):
    def loss(w: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(X @ w[:-1] + w[-1], y) + 0.5 * wd * (w * w).sum()

    return loss


def _newton_vs_gd(X: torch.Tensor, y: torch.Tensor, wd: float, tol: float, gd_steps: int) -> dict[str, object]:
    """Newton (exact Hessian, line search) and GD at lr 1/L until the gradient norm < tol."""
    loss = _logistic(X, y, wd)
    d = X.shape[1] + 1
    A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    L = 0.25 * float(torch.linalg.eigvalsh(A.T @ A / len(X))[-1]) + wd
    out: dict[str, object] = {"L": L}
    for name in ("newton", "gd"):
        w = torch.zeros(d, dtype=X.dtype, requires_grad=True)
        opt = O.Newton([w], line_search=True) if name == "newton" else O.SGD([w], lr=1.0 / L, impl="eager")
        curve = []
        t0 = time.perf_counter()
        clock = 0.0
        reached = None
        budget = 60 if name == "newton" else gd_steps
        for k in range(budget + 1):
            w.grad = None
            v = loss(w)
            (g,) = torch.autograd.grad(v, w)
            gn = float(g.norm())
            clock = time.perf_counter() - t0
            curve.append((k, clock, float(v.detach())))
            if gn < tol:
                reached = k
                break
            if k == budget:
                break
            if name == "newton":
                opt.step(lambda w=w: loss(w))
            else:
                w.grad = g
                opt.step()
        out[name] = {"steps": reached, "seconds": clock, "curve": np.asarray(curve), "budget": budget}
    return out


def _per_step_seconds(d: int, gen: torch.Generator, reps_newton: int, reps_gd: int) -> tuple[float, float]:
    X = torch.randn(4 * d, d, generator=gen, dtype=F64)
    y = (torch.rand(4 * d, generator=gen, dtype=F64) < 0.5).to(F64)
    loss = _logistic(X, y, 1e-2)
    times = []
    for cls, reps in ((O.Newton, reps_newton), (O.SGD, reps_gd)):
        w = torch.zeros(d + 1, dtype=F64, requires_grad=True)
        opt = cls([w], hessian="exact") if cls is O.Newton else cls([w], lr=0.1, impl="eager")
        t0 = time.perf_counter()
        for _ in range(reps):
            if cls is O.Newton:
                opt.step(lambda w=w: loss(w))
            else:
                opt.zero_grad()
                loss(w).backward()
                opt.step()
        times.append((time.perf_counter() - t0) / reps)
    return times[0], times[1]


@topic(
    "newton", "Newton's method vs gradient descent, in steps and in time", note="000",
    claim="Newton's method uses the second derivatives (the Hessian) as well as the gradient; it needs no "
    "learning rate (with a line search it has one). It can look more efficient than plain gradient descent, "
    "but because of its high computational cost it is rarely used in practice.",
    quote="뉴턴의 방법이 바닐라 경사 하강보다 효율적으로 보일 수 있지만, 높은 계산 요구로 인해 실무에서는 일반적으로 사용되지 않습니다",
)
def newton(ctx: Context) -> Finding:
    """Topic ``newton``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    from .. import data as D

    steps = ctx.pick(5000, 2000)
    grid = _grid(ctx)
    race2d = lab.race("rosenbrock", [("newton", {"line_search": True})], steps=steps, tol=1e-6)
    gd2d = lab.race("rosenbrock", ["gd"], steps=steps, tol=1e-6, fair=True, lr_grid=grid)
    race2d.runs.append(gd2d.runs[0])
    nt, gd = race2d.runs
    ds = ctx.cached(("breast_cancer", "f64"), lambda: D.load("breast_cancer", dtype=F64))
    X, y = ds.train
    lr_res = _newton_vs_gd(X, y.to(F64), 1e-2, 1e-6, ctx.pick(20000, 4000))
    nts, gds = lr_res["newton"], lr_res["gd"]
    dims = ctx.pick([8, 32, 128, 256], [8, 32, 128])
    gen = ctx.generator(8)
    cost = [_per_step_seconds(d, gen, 3, 30) for d in dims]
    ratio = [a / b for a, b in cost]
    fewer = as_inf(nt.steps_to_tol) < as_inf(gd.steps_to_tol) and as_inf(nts["steps"]) < as_inf(gds["steps"])
    grows = ratio[-1] >= 10 * ratio[0]
    newton_time_win = nts["seconds"] < gds["seconds"] if gds["steps"] is not None else True
    verdict = judge(fewer and grows, partly=fewer or grows)
    fig = race_figure(race2d, title="Rosenbrock: Newton with a line search (no lr to tune) against GD at its best lr")
    nc, gc = nts["curve"], gds["curve"]
    f_ref = min(float(nc[:, 2].min()), float(gc[:, 2].min()))
    extra = panels_figure([
        Panel("logistic regression (breast cancer, 31 weights): loss − best", "step", "loss − best loss seen",
              [Series(f"Newton: {shown(nts['steps'], nts['budget'])} steps", nc[:, 0], nc[:, 2] - f_ref + 1e-16),
               Series(f"GD, lr 1/L: {shown(gds['steps'], gds['budget'])} steps", gc[:, 0], gc[:, 2] - f_ref + 1e-16)],
              xlog="symlog", ylog=True),
        Panel("the same against wall time", "seconds", "loss − best loss seen",
              [Series(f"Newton: {nts['seconds'] * 1e3:.1f} ms", nc[:, 1], nc[:, 2] - f_ref + 1e-16),
               Series(f"GD: {gds['seconds'] * 1e3:.1f} ms", gc[:, 1], gc[:, 2] - f_ref + 1e-16)],
              xlog=True, ylog=True),
        Panel("cost of one step as the model grows", "parameters", "seconds per step",
              [Series("Newton (exact Hessian)", [d + 1 for d in dims], [c[0] for c in cost], marker="o"),
               Series("GD", [d + 1 for d in dims], [c[1] for c in cost], marker="s")], xlog=True, ylog=True,
              legend="upper left"),
    ], title="Newton against GD: steps, seconds, and the price of a step")
    numbers: dict[str, float | int | str] = {
        "Rosenbrock: Newton steps to 1e-6": shown(nt.steps_to_tol, steps),
        "Rosenbrock: GD steps to 1e-6 (best lr)": shown(gd.steps_to_tol, steps),
        "Rosenbrock: GD best lr": float(gd.hyper["lr"]),
        "Rosenbrock: Newton seconds": float(nt.wall_time), "Rosenbrock: GD seconds": float(gd.wall_time),
        "logistic: Newton steps to |grad| < 1e-6": shown(nts["steps"], nts["budget"]),
        "logistic: GD steps to |grad| < 1e-6": shown(gds["steps"], gds["budget"]),
        "logistic: Newton seconds": float(nts["seconds"]), "logistic: GD seconds": float(gds["seconds"]),
    }
    for d, (tn, tg) in zip(dims, cost):
        numbers[f"{d + 1} parameters: seconds per step, Newton / GD"] = f"{tn:.2e} / {tg:.2e} ({tn / tg:.0f}x)"
    return Finding(
        verdict=verdict,
        rule="held if Newton needs fewer steps than GD on both problems (Rosenbrock to f − f* < 1e-6, GD at its "
        "best lr of the grid; logistic regression to a gradient norm below 1e-6, GD at lr 1/L) and one Newton "
        "step costs at least 10x more, relative to a GD step, at the largest model than at the smallest (the "
        "cost that keeps it out of practice); depends if only one of the two holds.",
        summary=f"Steps: on Rosenbrock Newton needed {shown(nt.steps_to_tol, steps)} steps, GD "
        f"{shown(gd.steps_to_tol, steps)}; on the logistic regression {shown(nts['steps'], nts['budget'])} against "
        f"{shown(gds['steps'], gds['budget'])}. Time: on these small problems Newton "
        f"{'also won' if newton_time_win else 'lost'} in seconds ({nts['seconds'] * 1e3:.1f} ms against "
        f"{gds['seconds'] * 1e3:.1f} ms on the logistic regression). Cost: a Newton step cost "
        f"{ratio[0]:.0f}x a GD step with {dims[0] + 1} parameters and {ratio[-1]:.0f}x with {dims[-1] + 1}: a "
        "Newton step needs the whole Hessian (one Hessian-vector product per parameter) and a linear solve, so "
        "its price grows much faster than the model, which is why models with millions of weights do not use it.",
        setup=f"Rosenbrock from (−1.2, 1): descend.optim.Newton(line_search=True) against GD (lab.race fair=True, "
        f"{len(grid)} lrs), {steps} steps. Breast cancer (standardized, float64) logistic regression with L2 "
        "0.01: Newton (exact Hessian, Armijo line search) against GD at lr 1/L (L from the data). Seconds per "
        f"step on random logistic problems with {', '.join(str(d + 1) for d in dims)} parameters.",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        extra_figures=[png(extra, ctx.dpi)],
        caption="Top: Rosenbrock. Bottom: a real logistic regression in steps and in seconds, and the cost of a "
        "step against the number of parameters.",
    )


# --------------------------------------------------------------------------- 9. saddle


@topic(
    "saddle", "Escaping a saddle: SGD vs RMSprop and Adam", note="002, 000",
    claim="Near a saddle point the gradient stays close to zero for a long time (a plateau), which slows "
    "learning badly; RMSprop and Adam help with this problem.",
    quote="안장지대에서는 기울기가 아주 오랫동안 0에 가깝게 유지된다 … RMSprop이나 Adam 최적화 알고리즘은 안장지대의 문제를 해결하는 데 도움을 준다",
)
def saddle(ctx: Context) -> Finding:
    """Topic ``saddle``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    land = landscapes.saddle_plateau()
    grid = _grid(ctx)
    steps = ctx.pick(3000, 1500)
    race = lab.race(land, ["gd", "rmsprop", "adam"], steps=steps, tol=1e-6, fair=True, lr_grid=grid)
    ystar = max(m.y for m in land.minima)

    def escape(run: lab.Run) -> int | None:
        return steps_to(-np.abs(run.path[:, 1]), run.record_steps, -0.5 * ystar)

    esc = {r.optimizer: escape(r) for r in race.runs}
    tol_steps = {r.optimizer: r.steps_to_tol for r in race.runs}
    gd_esc = as_inf(esc["GD"])
    ok_r = as_inf(esc["RMSprop"]) < gd_esc and as_inf(tol_steps["RMSprop"]) < as_inf(tol_steps["GD"])
    ok_a = as_inf(esc["Adam"]) < gd_esc and as_inf(tol_steps["Adam"]) < as_inf(tol_steps["GD"])
    fig = race_figure(race, title=f"A saddle with a plateau: GD (the SGD rule, exact gradients), RMSprop and Adam, "
                      f"each at its best lr of {len(grid)}")
    numbers: dict[str, float | int | str] = {}
    for r in race.runs:
        numbers[f"{r.optimizer}: steps to leave the plateau (|y| > y*/2)"] = shown(esc[r.optimizer], steps)
        numbers[f"{r.optimizer}: steps to f - f* < 1e-6"] = shown(r.steps_to_tol, steps)
        numbers[f"{r.optimizer}: best lr"] = float(r.hyper["lr"])
    return Finding(
        verdict=judge(ok_r and ok_a, partly=ok_r or ok_a),
        rule="held if both RMSprop and Adam leave the plateau (|y| above half the minimum's y*) and reach "
        "f − f* < 1e-6 in fewer steps than GD, each optimizer at its best lr of the same grid; depends if only "
        "one of them does.",
        summary=f"Started 0.01 off the saddle's stable line, GD needed {shown(esc['GD'], steps)} steps to leave "
        f"the plateau (its step there is lr times a gradient of about 0.01·y), RMSprop {shown(esc['RMSprop'], steps)} "
        f"and Adam {shown(esc['Adam'], steps)}: dividing by the gradient's own running size makes the step "
        f"about lr even where the gradient is tiny. To the minimum: GD {shown(tol_steps['GD'], steps)}, RMSprop "
        f"{shown(tol_steps['RMSprop'], steps)}, Adam {shown(tol_steps['Adam'], steps)} steps.",
        setup=f"saddle_plateau: f = x²/2 + y⁶/6 − y⁴/4 − 0.01·y²/2 from (1.5, 0.01); lab.race(fair=True) over "
        f"{len(grid)} lrs from 1e-4 to 1 for GD (descend.optim.SGD), RMSprop and Adam with their defaults; "
        f"tolerance 1e-6, {steps} steps at most.",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Paths from just off the saddle's stable line (left) and f − f* per step (right).",
    )


# --------------------------------------------------------------------------- 10. local minima


@topic(
    "minima", "Local vs global minimum", note="003, 000, 002",
    claim="Gradient descent takes a point that is lower than its neighbours as the lowest loss, so it can "
    "settle in a local minimum that is not the ideal (global) one; it cannot tell the two apart, and the note "
    "adds that there is no way to solve this.",
    quote="이상적인 최저 Loss와는 다른 값이 최저 Loss로 선정된다. 하지만, 이를 해결할 수 있는 방법은 없다.",
)
def minima(ctx: Context) -> Finding:
    """Topic ``minima``: run the experiment, draw the figure, judge the claim (see the decorator)."""
    land = landscapes.two_minima()
    g_min = land.global_minima[0]
    l_min = [m for m in land.minima if m.kind == "local"][0]
    nx, ny = ctx.pick((33, 25), (17, 13))
    xs = np.linspace(land.box[0] + 0.05, land.box[1] - 0.05, nx)
    ys = np.linspace(land.box[2] + 0.05, land.box[3] - 0.05, ny)
    XX, YY = np.meshgrid(xs, ys)
    starts = np.stack([XX.ravel(), YY.ravel()], 1)
    steps = ctx.pick(800, 500)
    lr = 0.02
    setups = [("GD", "gd", {"lr": lr}), ("Momentum (β = 0.9)", "momentum", {"lr": lr, "beta": 0.9})]
    panels = []
    numbers: dict[str, float | int | str] = {}
    ends = {}
    for title, name, hyper in setups:
        many = lab.run_many(land, starts, name, steps=steps, tol=None, record_every=steps, **hyper)
        end = many.final_points
        at_g = np.hypot(end[:, 0] - g_min.x, end[:, 1] - g_min.y) < 0.05
        at_l = np.hypot(end[:, 0] - l_min.x, end[:, 1] - l_min.y) < 0.05
        outcome = np.where(at_g, 0, np.where(at_l, 1, 2)).reshape(ny, nx)
        one = lab.minimize(land, None, name, steps=steps, tol=None, **hyper)
        ends[name] = one
        share = float(at_g.mean())
        panels.append((f"{title}, lr {lr:g}, {steps} steps", outcome, one.path, share))
        where = "global" if abs(one.end[0] - g_min.x) < 0.05 else ("local" if abs(one.end[0] - l_min.x) < 0.05 else "neither")
        numbers[f"{title}: from the start, ends in"] = f"{where} minimum at ({one.end[0]:.3f}, {one.end[1]:.3f})"
        numbers[f"{title}: final f"] = float(one.final_loss)
        numbers[f"{title}: share of starts reaching the global minimum"] = share
        numbers[f"{title}: share of starts ending in the local minimum"] = float(at_l.mean())
    gd_local = abs(ends["gd"].end[0] - l_min.x) < 0.05
    mom_local = abs(ends["momentum"].end[0] - l_min.x) < 0.05
    local_share = numbers["GD: share of starts ending in the local minimum"]
    stuck = gd_local and float(local_share) >= 0.25
    verdict = judge(stuck and mom_local, partly=stuck)
    if mom_local:
        mom_text = "Momentum with the same lr stopped there too."
    else:
        mom_text = (f"Momentum with the same lr rolled over the barrier to x = {ends['momentum'].end[0]:.3f} "
                    f"(f = {ends['momentum'].final_loss:.3f}): GD cannot tell local from global, but 'no way to "
                    "solve it' is too strong; momentum (note 000) and gradient noise (note 003's SGD) are ways "
                    "out, though not guarantees.")
    fig = basins_figure(land, xs, ys, panels, start=land.start)
    return Finding(
        verdict=verdict,
        rule="GD is stuck if, from the landscape's start (1.6, 1), it ends in the local minimum and at least a "
        "quarter of a grid of starts ends there too. Held if GD is stuck and momentum (same lr) from the same "
        "start ends in the local minimum as well (no remedy); depends if GD is stuck but momentum reaches the "
        "global minimum (a remedy exists); did not hold if GD is not stuck.",
        summary=f"From (1.6, 1) GD settled in the local minimum at x = {ends['gd'].end[0]:.3f} with f = "
        f"{ends['gd'].final_loss:.3f}, although f* = {land.f_star:.3f} lies across the barrier; "
        f"{float(local_share):.0%} of all starts did the same. {mom_text}",
        setup=f"two_minima: f = (x² − 1)² + 0.3x + y²; {nx}x{ny} starts over the box in one lab.run_many per "
        f"optimizer, {steps} steps; GD lr {lr:g}; Momentum lr {lr:g}, β 0.9 (heavy ball); an end within 0.05 of a "
        "minimum counts as reaching it.",
        numbers=numbers,
        figure=png(fig, ctx.dpi),
        caption="Each cell is a start, coloured by the minimum it ended in; the line is the path from the white start.",
    )
