"""Tour topics on 2-D landscapes: the gradient, the learning rate, saddles and local minima.

Each topic runs :mod:`descend.lab` (``minimize``, ``run_many``, ``race``, ``sweep``) on a
2-D test function of :mod:`descend.landscapes`, draws the paths with :mod:`descend.plots`
and judges the notes' claim by a rule stated in its :class:`~descend.tour.base.Finding`.
2-D paths show how each rule moves; they do not rank optimizers on real models.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .. import lab, landscapes
from .. import optim as O
from ..plots.lab import race_figure, sweep_figure
from ..plots.tour import basins_figure, gradient_figure
from ._util import BEST_LR, F64, as_inf, race_grid, shown, steps_to, take
from .base import Context, Finding, judge, topic

# --------------------------------------------------------------------------- 1. the gradient


def measure_gradient(ctx: Context) -> dict[str, Any]:
    """Note 003's worked example: gradient, one SGD step, steepest direction and the first-order error."""
    land = landscapes.note003()
    p = torch.tensor([1.0, 1.0], dtype=F64, requires_grad=True)
    f0 = land.value(p)
    (g_auto,) = torch.autograd.grad(f0, p)
    g_closed = land.grad(p.detach())
    opt = O.build("sgd", [p], lr=0.01, impl="eager")
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
    return {"angle_err": angle_err, "angles": angles, "e_large": e_large, "e_small": e_small, "exact": exact, "expected": expected, "fv": fv, "g": g, "grad_err": grad_err, "land": land, "linear": linear, "lrs": lrs, "new": new, "p0": p0, "slopes": slopes, "steepest": steepest, "step_err": step_err, "true": true}


def judge_gradient(grad_err: float, step_err: float, angle_err: float, e_small: float, e_large: float) -> str:
    """Held if the gradient and the step are exact (1e-12), the steepest way down lies within 0.25° of the
    negative gradient, and the first-order prediction errs under 10% at lr 0.01 but at least 10% at lr 0.1."""
    return judge(grad_err <= 1e-12 and step_err <= 1e-12 and angle_err <= 0.25 and e_small < 0.1 <= e_large)


@topic("gradient")
def gradient(ctx: Context) -> Finding:
    """Topic ``gradient``: measure (:func:`measure_gradient`), judge (:func:`judge_gradient`), write."""
    m = measure_gradient(ctx)
    (angle_err, angles, e_large, e_small, exact, expected, fv, g, grad_err, land, linear, lrs, new,
     p0, slopes, steepest, step_err, true) = take(
        m, "angle_err angles e_large e_small exact expected fv g grad_err land linear lrs new p0 slopes steepest step_err true")
    verdict = judge_gradient(grad_err, step_err, angle_err, e_small, e_large)
    fig = gradient_figure(
        land, p0, g, new.numpy(), 0.01, taylor_lrs=lrs, taylor_true=true, taylor_linear=linear,
        angles=angles, slopes=slopes, box=(0.78, 1.22, 0.84, 1.2),
    )
    numbers = {
        "gradient x": float(g[0]), "gradient y": float(g[1]), "new x": float(new[0]), "new y": float(new[1]),
        "distance from (0.94, 0.97)": step_err, "bit-exact (0.94, 0.97)": exact,
        "f before": fv, "f after": float(land.value(new)),
        "steepest descent direction (deg)": steepest, "negative gradient direction (deg)": expected,
        "first-order error at lr 0.01": e_small, "first-order error at lr 0.1": e_large,
    }
    return ctx.finding(
        verdict, numbers, [fig],
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
        caption="Left: the step from (1, 1) against the gradient. Middle: the loss after one step against the "
        "gradient's linear prediction. Right: the slope in every direction.",
    )


# --------------------------------------------------------------------------- 2. learning rate


def measure_learning_rate(ctx: Context) -> dict[str, Any]:
    """A vectorized lr sweep of GD on a rotated bowl, then a race of a small, the best and a large lr."""
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
    return {"best": best, "labels": labels, "land": land, "large": large, "lrs": lrs, "race": race, "run_best": run_best, "run_large": run_large, "run_small": run_small, "small": small, "steps": steps, "sw": sw}


def judge_learning_rate(labels: list[str]) -> str:
    """Held if the sweep labels some lrs 'too small', some 'good' and some 'too large' or 'divergent'."""
    has = {name: name in labels for name in ("too small", "good", "too large", "divergent")}
    return judge(has["too small"] and has["good"] and (has["too large"] or has["divergent"]))


@topic("learning_rate")
def learning_rate(ctx: Context) -> Finding:
    """Topic ``learning_rate``: measure (:func:`measure_learning_rate`), judge (:func:`judge_learning_rate`), write."""
    m = measure_learning_rate(ctx)
    (best, labels, land, large, lrs, race, run_best, run_large, run_small, small, steps, sw) = take(
        m, "best labels land large lrs race run_best run_large run_small small steps sw")
    verdict = judge_learning_rate(labels)
    good = [lr for lr, lab_ in zip(sw.lrs, labels) if lab_ == "good"]
    # Overshooting: the component along the steep axis (top Hessian eigenvector) changing sign, counted over
    # the first 40 steps, or over every step the run made if it stopped sooner.
    x_star = torch.tensor(land.global_minima[0].point, dtype=F64)
    steep = torch.linalg.eigh(land.hessian(x_star).to(F64)).eigenvectors[:, -1].numpy()
    window = min(40, len(run_large.path) - 1)
    along = (np.asarray(run_large.path[: window + 1], dtype=np.float64) - x_star.numpy()) @ steep
    sign_flips = int(np.sum(np.diff(np.sign(along)) != 0))
    window_text = "its first 40 steps" if window == 40 else f"the {window} steps it made"
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
    large_text = (f"was stopped as diverged at step {run_large.steps}" if run_large.diverged
                  else f"ended at f − f* = {run_large.final_gap:.2e}")
    counts = ", ".join(f"{sum(1 for x in labels if x == k)} {k}" for k in ("too small", "good", "too large", "divergent"))
    numbers = {
        "lr too small (shown)": small, "its final f - f*": float(run_small.final_gap),
        "best lr": best, "its steps to 1e-8": shown(run_best.steps_to_tol, steps),
        "lr too large (shown)": large, "it diverged": bool(run_large.diverged),
        f"sign flips along the steep axis ({window_text})": sign_flips,
        "lrs too small": sum(1 for x in labels if x == "too small"), "lrs good": len(good),
        "lrs too large": sum(1 for x in labels if x == "too large"),
        "lrs divergent": sum(1 for x in labels if x == "divergent"),
        "good range from": float(min(good)) if good else "none", "good range to": float(max(good)) if good else "none",
    }
    return ctx.finding(
        verdict, numbers, [fig, sweep_fig],
        rule="held if descend.lab.sweep labels some learning rates 'too small' (final gap over 10x the best "
        "gap), some 'good', and some 'too large' or 'divergent' (diverged, or ended above the starting loss). "
        f"The best lr shown is the sweep's, by {BEST_LR}.",
        summary=f"Of {len(lrs)} learning rates from 1e-3 to 1: {counts}. lr {small:.3g} ended at f − f* = "
        f"{run_small.final_gap:.2e} (still far from the minimum), lr {best:.3g} reached 1e-8 in "
        f"{shown(run_best.steps_to_tol, steps)} steps, lr {large:.3g} {large_text} (its position along the steep "
        f"axis changed sign {sign_flips} times in {window_text}: overshooting).{range_text}",
        setup=f"Plain gradient descent (descend.optim.SGD) on a quadratic bowl with condition number 10, rotated "
        f"30°, from its start point; {len(lrs)} learning rates in one vectorized lab.sweep, {steps} steps, "
        "tolerance 1e-8; then a race of three of them.",
        caption="Top: the three runs' paths and losses. Bottom: the whole sweep, shaded by region.",
    )


# --------------------------------------------------------------------------- 9. saddle


def measure_saddle(ctx: Context) -> dict[str, Any]:
    """A fair race of GD, RMSprop and Adam from just off a saddle's stable line: escape and convergence steps."""
    land = landscapes.saddle_plateau()
    grid = race_grid()
    steps = ctx.pick(3000, 1500)
    race = lab.race(land, ["gd", "rmsprop", "adam"], steps=steps, tol=1e-6, fair=True, lr_grid=grid)
    ystar = max(m.y for m in land.minima)

    def escape(run: lab.Run) -> int | None:
        return steps_to(-np.abs(run.path[:, 1]), run.record_steps, -0.5 * ystar)

    esc = {r.optimizer: escape(r) for r in race.runs}
    tol_steps = {r.optimizer: r.steps_to_tol for r in race.runs}
    return {"esc": esc, "grid": grid, "race": race, "steps": steps, "tol_steps": tol_steps}


def judge_saddle(esc: dict[str, int | None], tol_steps: dict[str, int | None]) -> str:
    """Held if RMSprop and Adam both leave the plateau and reach the tolerance in fewer steps than GD
    (``None``: never); depends if one of them does."""
    def beats(name: str) -> bool:
        return as_inf(esc[name]) < as_inf(esc["GD"]) and as_inf(tol_steps[name]) < as_inf(tol_steps["GD"])

    return judge(beats("RMSprop") and beats("Adam"), partly=beats("RMSprop") or beats("Adam"))


@topic("saddle")
def saddle(ctx: Context) -> Finding:
    """Topic ``saddle``: measure (:func:`measure_saddle`), judge (:func:`judge_saddle`), write."""
    m = measure_saddle(ctx)
    esc, grid, race, steps, tol_steps = take(m, "esc grid race steps tol_steps")
    verdict = judge_saddle(esc, tol_steps)
    fig = race_figure(race, title=f"A saddle with a plateau: GD (the SGD rule, exact gradients), RMSprop and Adam, "
                      f"each at its best lr of {len(grid)}")
    numbers: dict[str, float | int | str] = {}
    for r in race.runs:
        numbers[f"{r.optimizer}: steps to leave the plateau (|y| > y*/2)"] = shown(esc[r.optimizer], steps)
        numbers[f"{r.optimizer}: steps to f - f* < 1e-6"] = shown(r.steps_to_tol, steps)
        numbers[f"{r.optimizer}: best lr"] = float(r.hyper["lr"])
    return ctx.finding(
        verdict, numbers, [fig],
        rule="held if both RMSprop and Adam leave the plateau (|y| above half the minimum's y*) and reach "
        f"f − f* < 1e-6 in fewer steps than GD, each optimizer at its best lr of the same grid ({BEST_LR}); depends if only "
        "one of them does.",
        summary=f"Started 0.01 off the saddle's stable line, GD needed {shown(esc['GD'], steps)} steps to leave "
        f"the plateau (its step there is lr times a gradient of about 0.01·y), RMSprop {shown(esc['RMSprop'], steps)} "
        f"and Adam {shown(esc['Adam'], steps)}: dividing by the gradient's own running size makes the step "
        f"about lr even where the gradient is tiny. To the minimum: GD {shown(tol_steps['GD'], steps)}, RMSprop "
        f"{shown(tol_steps['RMSprop'], steps)}, Adam {shown(tol_steps['Adam'], steps)} steps.",
        setup=f"saddle_plateau: f = x²/2 + y⁶/6 − y⁴/4 − 0.01·y²/2 from (1.5, 0.01); lab.race(fair=True) over "
        f"{len(grid)} lrs from 1e-4 to 1 for GD (descend.optim.SGD), RMSprop and Adam with their defaults; "
        f"tolerance 1e-6, {steps} steps at most.",
        caption="Paths from just off the saddle's stable line (left) and f − f* per step (right).",
    )


# --------------------------------------------------------------------------- 10. local minima


def measure_minima(ctx: Context) -> dict[str, Any]:
    """GD and momentum on a double well from one start and from a grid of starts: where each settles."""
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
    return {"ends": ends, "l_min": l_min, "land": land, "lr": lr, "numbers": numbers, "nx": nx, "ny": ny, "panels": panels, "steps": steps, "xs": xs, "ys": ys}


def judge_minima(gd_end_x: float, mom_end_x: float, local_x: float, local_share: float) -> tuple[str, bool, bool]:
    """Stuck: GD from the start ends in the local minimum (within 0.05 in x) and at least a quarter of all starts
    do. Held if stuck and momentum with the same lr ends there too (no way out); depends if only stuck.
    Returns (verdict, stuck, momentum ended local)."""
    stuck = abs(gd_end_x - local_x) < 0.05 and local_share >= 0.25
    mom_local = abs(mom_end_x - local_x) < 0.05
    return judge(stuck and mom_local, partly=stuck), stuck, mom_local


@topic("minima")
def minima(ctx: Context) -> Finding:
    """Topic ``minima``: measure (:func:`measure_minima`), judge (:func:`judge_minima`), write."""
    m = measure_minima(ctx)
    (ends, l_min, land, lr, numbers, nx, ny, panels, steps, xs, ys) = take(
        m, "ends l_min land lr numbers nx ny panels steps xs ys")
    local_share = numbers["GD: share of starts ending in the local minimum"]
    verdict, stuck, mom_local = judge_minima(ends["gd"].end[0], ends["momentum"].end[0], l_min.x, float(local_share))
    if mom_local:
        mom_text = "Momentum with the same lr stopped there too."
    else:
        mom_text = (f"Momentum with the same lr rolled over the barrier to x = {ends['momentum'].end[0]:.3f} "
                    f"(f = {ends['momentum'].final_loss:.3f}): GD cannot tell local from global, but 'no way to "
                    "solve it' is too strong; momentum (note 000) and gradient noise (note 003's SGD) are ways "
                    "out, though not guarantees.")
    fig = basins_figure(land, xs, ys, panels, start=land.start)
    return ctx.finding(
        verdict, numbers, [fig],
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
        caption="Each cell is a start, coloured by the minimum it ended in; the line is the path from the white start.",
    )
