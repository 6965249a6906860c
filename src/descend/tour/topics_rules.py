"""Tour topics on the update rules, raced on 2-D landscapes: momentum, Nesterov, Adagrad and
RMSprop, Adam.

Paths show how each rule moves on a test function with a known minimum; the races are
tuned fairly (each optimizer at its best lr of one grid) where speeds are compared.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .. import lab, landscapes
from ..plots.lab import race_figure
from ..plots.tour import Panel, Series, color, panels_figure
from ._util import BEST_LR, F64, as_inf, race_grid, rows_optimizer, shown, take
from .base import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic

# --------------------------------------------------------------------------- 4. momentum


def measure_momentum(ctx: Context) -> dict[str, Any]:
    """A fair race of GD and momentum on an elongated bowl, with the zig-zag counted over the first steps."""
    kappa = 100.0
    land = landscapes.bowl(kappa=kappa)
    steps = ctx.pick(3000, 1500)
    grid = race_grid()
    race = lab.race(land, ["gd", ("momentum", {"beta": 0.9})], steps=steps, tol=1e-6, fair=True, lr_grid=grid)
    gd, mom = race.runs
    n = min(40, len(gd.path) - 1, len(mom.path) - 1)  # the first 40 steps, or fewer if a run stopped sooner

    def reversals(run: lab.Run) -> float:
        """Share of the first n steps whose move across the valley (y) reverses the previous one."""
        dy = np.diff(run.path[: n + 1, 1])
        return float(np.mean(np.sign(dy[1:]) != np.sign(dy[:-1]))) if dy.size > 1 else 0.0

    def travel(run: lab.Run, k: int) -> float:
        return float(np.abs(np.diff(run.path[: n + 1, k])).sum())

    return {"gd": gd, "grid": grid, "kappa": kappa, "mom": mom, "n": n, "race": race, "reversals": reversals, "steps": steps, "travel": travel}


def judge_momentum(gd_steps: int | None, mom_steps: int | None, gd_reversals: float,
                   mom_reversals: float) -> tuple[str, bool, bool]:
    """Held if momentum reaches the tolerance in fewer steps and reverses across the valley less often than GD;
    depends if one of the two. Returns (verdict, faster, calmer)."""
    faster = as_inf(mom_steps) < as_inf(gd_steps)
    calmer = mom_reversals < gd_reversals
    return judge(faster and calmer, partly=faster or calmer), faster, calmer


@topic("momentum")
def momentum(ctx: Context) -> Finding:
    """Topic ``momentum``: measure (:func:`measure_momentum`), judge (:func:`judge_momentum`), write."""
    m = measure_momentum(ctx)
    (gd, grid, kappa, mom, n, race, reversals, steps, travel) = take(
        m, "gd grid kappa mom n race reversals steps travel")
    verdict, faster, calmer = judge_momentum(gd.steps_to_tol, mom.steps_to_tol, reversals(gd), reversals(mom))
    ratio = as_inf(gd.steps_to_tol) / as_inf(mom.steps_to_tol) if mom.steps_to_tol else float("nan")
    fig = race_figure(race, title=f"Bowl with condition number {kappa:g}: GD against momentum (β = 0.9), "
                      f"each at its best lr of {len(grid)}")
    numbers = {
        "GD steps to 1e-6": shown(gd.steps_to_tol, steps), "GD best lr": float(gd.hyper["lr"]),
        "momentum steps to 1e-6": shown(mom.steps_to_tol, steps), "momentum best lr": float(mom.hyper["lr"]),
        f"GD: share of reversals across the valley (first {n} steps)": reversals(gd),
        f"momentum: share of reversals across the valley (first {n} steps)": reversals(mom),
        f"GD: distance along the valley (first {n} steps)": travel(gd, 0),
        f"momentum: distance along the valley (first {n} steps)": travel(mom, 0),
        f"GD: distance across the valley (first {n} steps)": travel(gd, 1),
        f"momentum: distance across the valley (first {n} steps)": travel(mom, 1),
    }
    return ctx.finding(
        verdict, numbers, [fig],
        rule=f"each optimizer at its best learning rate of the same grid (lab.race with fair=True, {BEST_LR}). Held if "
        "momentum (β = 0.9) reaches f − f* < 1e-6 in fewer steps than plain gradient descent and, in the first "
        f"{n} steps, reverses its move across the valley less often (less zig-zag); depends if only one holds.",
        summary=f"GD needed {shown(gd.steps_to_tol, steps)} steps (lr {gd.hyper['lr']:.3g}), momentum "
        f"{shown(mom.steps_to_tol, steps)} (lr {mom.hyper['lr']:.3g})"
        + (f", {ratio:.1f}x fewer" if faster and math.isfinite(ratio) else "")
        + f". In the first {n} steps GD reversed its move across the valley on {reversals(gd):.0%} of the steps "
        f"(the zig-zag), momentum on {reversals(mom):.0%}; along the valley GD covered {travel(gd, 0):.2f} and "
        f"momentum {travel(mom, 0):.2f}. Over those steps momentum moved {travel(mom, 1):.2f} across the valley in all and GD "
        f"{travel(gd, 1):.2f}"
        + (": momentum still swings, but in slow arcs rather than back and forth at every step." if calmer else "."),
        setup=f"bowl(kappa={kappa:g}): f = (x² + {kappa:g}·y²)/2 from (−2.5, 1); lab.race(fair=True) over "
        f"{len(grid)} learning rates from 1e-4 to 1 for descend.optim.SGD and Momentum(beta=0.9, heavy ball); "
        f"tolerance 1e-6, {steps} steps at most.",
        caption="Paths on the bowl (left) and f − f* per step (right), each optimizer at its best lr of the grid.",
    )


# --------------------------------------------------------------------------- 5. Nesterov


def measure_nesterov(ctx: Context) -> dict[str, Any]:
    """Momentum and Nesterov over several β on a bowl: how far each overshoots and its steps to 1e-6."""
    land = landscapes.bowl(kappa=10.0)
    betas = [0.5, 0.7, 0.9, 0.95, 0.99]
    lr = 0.05
    steps = ctx.pick(2000, 1200)
    rows = {}
    for name in ("momentum", "nesterov"):
        rows[name] = lab.run_many(land, None, name, steps=steps, tol=1e-6, lr=lr, beta=betas)
    over = {k: r.paths[:, :, 0].max(axis=0) for k, r in rows.items()}  # x starts at -2.5; min at 0
    stp = {k: [shown(s, steps) for s in r.steps_to_tol] for k, r in rows.items()}
    return {"betas": betas, "land": land, "lr": lr, "over": over, "rows": rows, "steps": steps, "stp": stp}


def judge_nesterov(over: dict[str, list[float]]) -> tuple[str, list[int], list[int]]:
    """Where momentum overshoots by more than 1e-2, Nesterov must overshoot less: held if at every such β,
    depends if at some. Returns (verdict, β indices where momentum overshot, those where Nesterov was better)."""
    meaningful = [i for i in range(len(over["momentum"])) if over["momentum"][i] > 1e-2]
    better = [i for i in meaningful if over["nesterov"][i] < over["momentum"][i]]
    return judge(bool(meaningful) and len(better) == len(meaningful), partly=bool(better)), meaningful, better


@topic("nesterov")
def nesterov(ctx: Context) -> Finding:
    """Topic ``nesterov``: measure (:func:`measure_nesterov`), judge (:func:`judge_nesterov`), write."""
    m = measure_nesterov(ctx)
    betas, land, lr, over, rows, steps, stp = take(m, "betas land lr over rows steps stp")
    verdict, meaningful, better = judge_nesterov(over)
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
    return ctx.finding(
        verdict, numbers, [fig, extra],
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
        caption="Top: the two paths at β = 0.95. Bottom: overshoot and steps for every β.",
    )


# --------------------------------------------------------------------------- 6. Adagrad vs RMSprop


def _effective_lrs(land: landscapes.Landscape, name: str, lrs: list[float], steps: int,
                   key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per step and row: lr / sqrt(state + eps) (geometric mean over x, y) and f - f*."""
    R = len(lrs)
    W = torch.tensor(land.start, dtype=F64).expand(R, 2).clone().requires_grad_(True)
    opt = rows_optimizer(name, [W], lr=lrs)
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


def measure_adagrad(ctx: Context) -> dict[str, Any]:
    """Adagrad and RMSprop at three lrs on a bowl: effective lr per step and the gap to the minimum."""
    land = landscapes.bowl(kappa=10.0)
    lrs = [0.01, 0.1, 0.5]
    steps = ctx.pick(1000, 300)
    eff_a, gap_a = _effective_lrs(land, "adagrad", lrs, steps, "G")
    eff_r, gap_r = _effective_lrs(land, "rmsprop", lrs, steps, "S")
    return {"eff_a": eff_a, "eff_r": eff_r, "gap_a": gap_a, "gap_r": gap_r, "lrs": lrs, "steps": steps}


def judge_adagrad(eff_a: np.ndarray, eff_r: np.ndarray, gap_a: np.ndarray, gap_r: np.ndarray) -> tuple:
    """Mechanism: Adagrad's effective lr never grows and ends below its start while RMSprop's ends above. Held
    if the mechanism shows and Adagrad ends behind RMSprop at every lr; depends if only the mechanism shows.
    Returns (verdict, shrink, monotone, rms_end, mechanism, slower)."""
    shrink = eff_a[-1] / eff_a[0]
    monotone = bool(np.all(np.diff(eff_a, axis=0) <= 1e-15 * eff_a[:-1]))
    rms_end = eff_r[-1] / eff_r[0]
    mechanism = monotone and bool(np.all(shrink < 1.0)) and bool(np.all(rms_end > 1.0))
    slower = [i for i in range(gap_a.shape[1]) if gap_a[-1, i] > gap_r[-1, i]]
    verdict = HELD if mechanism and len(slower) == gap_a.shape[1] else DEPENDS if mechanism else NOT_HELD
    return verdict, shrink, monotone, rms_end, mechanism, slower


@topic("adagrad")
def adagrad(ctx: Context) -> Finding:
    """Topic ``adagrad``: measure (:func:`measure_adagrad`), judge (:func:`judge_adagrad`), write."""
    m = measure_adagrad(ctx)
    eff_a, eff_r, gap_a, gap_r, lrs, steps = take(m, "eff_a eff_r gap_a gap_r lrs steps")
    verdict, shrink, monotone, rms_end, mechanism, slower = judge_adagrad(eff_a, eff_r, gap_a, gap_r)
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
    return ctx.finding(
        verdict, numbers, [fig],
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
        caption="Left: the step size each rule actually used. Right: the loss it reached.",
    )


# --------------------------------------------------------------------------- 7. Adam


def measure_adam(ctx: Context) -> dict[str, Any]:
    """Adam with β1 = 0 against RMSprop (identity), and fair races of momentum, RMSprop and Adam."""
    steps_id = ctx.pick(300, 100)
    a = lab.minimize("rosenbrock", optimizer="adam", lr=0.01, beta1=0.0, beta2=0.9, eps=1e-8, eps_mode="inside",
                     bias_correction=False, steps=steps_id, tol=None)
    r = lab.minimize("rosenbrock", optimizer="rmsprop", lr=0.01, beta=0.9, eps=1e-8, steps=steps_id, tol=None)
    identity = float(np.abs(a.path - r.path).max())
    grid = race_grid()
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
    return {"grid": grid, "identity": identity, "lines": lines, "numbers": numbers, "races": races, "steps": steps, "steps_id": steps_id, "wins": wins}


def judge_adam(identity: float, wins: int, races: int) -> tuple[str, bool]:
    """Held if Adam with β1 = 0 retraces RMSprop (1e-12) and Adam wins every race; depends if only the
    structure holds. Returns (verdict, same)."""
    same = identity <= 1e-12
    return judge(same and wins == races, partly=same), same


@topic("adam")
def adam(ctx: Context) -> Finding:
    """Topic ``adam``: measure (:func:`measure_adam`), judge (:func:`judge_adam`), write."""
    m = measure_adam(ctx)
    (grid, identity, lines, numbers, races, steps, steps_id, wins) = take(
        m, "grid identity lines numbers races steps steps_id wins")
    verdict, same = judge_adam(identity, wins, len(races))
    fig = race_figure(races["Rosenbrock"], title=f"Rosenbrock: momentum, RMSprop and Adam, each at its best lr of {len(grid)}")
    fig2 = race_figure(races["rotated bowl"], title=f"Bowl (κ = 100, rotated 30°): the same three, best lr of {len(grid)}")
    return ctx.finding(
        verdict, numbers, [fig, fig2],
        rule="two parts. Structure: Adam with β1 = 0 (no momentum), no bias correction and ε inside the root must "
        f"retrace RMSprop's path exactly (max difference ≤ 1e-12). Speed: in fair races (same lr grid, {BEST_LR}) on "
        "Rosenbrock and on a rotated κ = 100 bowl, Adam must reach f − f* < 1e-6 in fewer steps than both "
        "momentum and RMSprop. Held if both parts hold; depends if only the structure does.",
        summary=f"With its momentum switched off Adam retraced RMSprop's path with a largest difference of "
        f"{identity:.1e}: " + ("the RMSprop half is exactly RMSprop." if same else "not exactly RMSprop.")
        + f" In the races {'; '.join(lines)}. Adam was the fastest on {wins} of {len(races)} "
        "landscapes"
        + (": it combines the two rules, but on these 2-D problems combining them did not always beat the better "
           "parent." if wins < len(races) else ": combining the two rules beat both parents here."),
        setup=f"Structure: lab.minimize on Rosenbrock, {steps_id} steps, Adam(lr 0.01, β1 0, β2 0.9, eps_mode "
        f"'inside', bias_correction False) against RMSprop(lr 0.01, β 0.9). Speed: lab.race(fair=True) over "
        f"{len(grid)} lrs from 1e-4 to 1, {steps} steps, tolerance 1e-6; Momentum β 0.9, RMSprop β 0.9, Adam "
        "β1 0.9, β2 0.999.",
        caption="Fair races: each optimizer at the lr of the grid that reached the tolerance first.",
    )

