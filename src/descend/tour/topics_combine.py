"""Tour topic: two optimizers updating the same parameters in one step, against one optimizer
and against phases (note 000's "do not combine optimizers in one step").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .. import data as D
from ..plots.tour import Panel, Series, color, panels_figure
from ._util import MLPRows, digits, rows_optimizer, set_row_lrs
from .base import DEPENDS, HELD, NOT_HELD, Context, Finding, judge, topic

FAMILIES = ("Adam", "SGD", "Adam + SGD in one step", "Adam, then SGD (phases)")


@dataclass
class CombineMeasured:
    """Final validation loss of every run: ``val[family]`` has shape (lr settings, seeds)."""

    adam_lrs: list[float]
    sgd_lrs: list[float]
    settings: dict[str, list[tuple[float, float]]]   # family -> (Adam lr, SGD lr) of each row
    val: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]                    # family -> (epochs, settings) mean validation loss
    hidden: tuple[int, ...]
    epochs: int
    batch: int
    seeds: list[int]
    tol: float

    def mean(self, family: str) -> np.ndarray:
        v = self.val[family]
        return np.where(np.isfinite(v).all(1), v.mean(1), np.inf)

    def best(self, family: str) -> int:
        """The setting with the lowest mean final validation loss."""
        return int(np.argmin(self.mean(family)))

    def worse_than_parts(self) -> list[tuple[float, float]]:
        """Pairs (a, s) where one-step Adam(a) + SGD(s) ended worse than both Adam(a) and SGD(s) alone."""
        adam = dict(zip(self.adam_lrs, self.mean("Adam")))
        sgd = dict(zip(self.sgd_lrs, self.mean("SGD")))
        return [(a, s) for (a, s), v in zip(self.settings[FAMILIES[2]], self.mean(FAMILIES[2]))
                if v > (1 + self.tol) * max(adam[a], sgd[s])]


def measure_combine(ctx: Context) -> CombineMeasured:
    """Every (family, lr setting, seed) as one row of a stacked MLP, trained on the same batches."""
    ds = digits(ctx)
    X, y = ds.train
    Xv, yv = ds.val
    adam_lrs, sgd_lrs = [1e-3, 3e-3, 1e-2], [0.03, 0.1, 0.3]
    pairs = list(itertools.product(adam_lrs, sgd_lrs))
    settings = {"Adam": [(a, 0.0) for a in adam_lrs], "SGD": [(0.0, s) for s in sgd_lrs],
                FAMILIES[2]: pairs, FAMILIES[3]: pairs}
    rows = [(fam, a, s) for fam in FAMILIES for a, s in settings[fam]]
    seeds = list(range(ctx.seed, ctx.seed + ctx.pick(2, 1)))
    hidden, epochs, batch = (64, 64), ctx.pick(8, 3), 32
    val = {fam: np.zeros((len(settings[fam]), len(seeds))) for fam in FAMILIES}
    curves = {fam: np.zeros((epochs, len(settings[fam]))) for fam in FAMILIES}
    for si, seed in enumerate(seeds):
        net = MLPRows((X.shape[1], *hidden, 10), 1, torch.Generator().manual_seed(seed), repeat=len(rows))
        # Two optimizers over the same tensors: a row's Adam lr or SGD lr is 0 where that optimizer is off.
        adam = rows_optimizer("adam", net.params, lr=[a for _, a, _ in rows])
        sgd = rows_optimizer("sgd", net.params, lr=[s for _, _, s in rows])
        batches = D.Batches(X, y, batch, seed=seed)
        switch = epochs // 2
        for e in range(epochs):
            if e in (0, switch):  # phases: Adam's lr before the switch, SGD's after
                set_row_lrs(adam, [0.0 if fam == FAMILIES[3] and e >= switch else a for fam, a, _ in rows])
                set_row_lrs(sgd, [0.0 if fam == FAMILIES[3] and e < switch else s for fam, _, s in rows])
            for xb, yb in batches.iter_epoch(e):
                adam.zero_grad()
                net.losses(xb, yb).nan_to_num(0.0, 0.0, 0.0).sum().backward()
                adam.step()   # both optimizers step on the same gradient: their updates add up
                sgd.step()
            with torch.no_grad():
                v = net.losses(Xv, yv).numpy()
            start = 0
            for fam in FAMILIES:
                k = len(settings[fam])
                curves[fam][e] += v[start:start + k] / len(seeds)
                start += k
        start = 0
        for fam in FAMILIES:
            k = len(settings[fam])
            val[fam][:, si] = np.where(np.isfinite(v[start:start + k]), v[start:start + k], np.inf)
            start += k
    return CombineMeasured(adam_lrs=adam_lrs, sgd_lrs=sgd_lrs, settings=settings, val=val, curves=curves,
                           hidden=hidden, epochs=epochs, batch=batch, seeds=seeds, tol=0.05)


def judge_combine(m: CombineMeasured) -> tuple[str, bool, bool]:
    """(verdict, worse at its best, unstable): held if both, depends if one, did not hold if neither."""
    best = {fam: float(m.mean(fam)[m.best(fam)]) for fam in FAMILIES}
    rival = min(best["Adam"], best["SGD"], best[FAMILIES[3]])
    worse_best = best[FAMILIES[2]] > (1 + m.tol) * rival
    unstable = len(m.worse_than_parts()) >= len(m.settings[FAMILIES[2]]) / 3
    return judge(worse_best and unstable, partly=worse_best or unstable), worse_best, unstable


@topic("combine")
def combine(ctx: Context) -> Finding:
    """Topic ``combine``: measure (:func:`measure_combine`), judge (:func:`judge_combine`), write."""
    m = measure_combine(ctx)
    verdict, worse_best, unstable = judge_combine(m)
    best = {fam: m.best(fam) for fam in FAMILIES}
    loss = {fam: float(m.mean(fam)[best[fam]]) for fam in FAMILIES}
    lr_of = {fam: m.settings[fam][best[fam]] for fam in FAMILIES}
    bad = m.worse_than_parts()
    ctx.facts["combine"] = {"verdict": verdict, "worse_best": worse_best, "unstable": unstable}

    def lrs_text(fam: str) -> str:
        a, s = lr_of[fam]
        join = ", then " if fam == FAMILIES[3] else " + "
        return join.join(t for t in (f"Adam {a:g}" if a else "", f"SGD {s:g}" if s else "") if t)

    ep = np.arange(1, m.epochs + 1)
    grid = np.array([[m.mean(FAMILIES[2])[i * len(m.sgd_lrs) + j] for j in range(len(m.sgd_lrs))]
                     for i in range(len(m.adam_lrs))])
    fig = panels_figure([
        Panel("validation loss per epoch, each at its best lr", "epoch", "validation cross-entropy",
              [Series(f"{fam} ({lrs_text(fam)})", ep, m.curves[fam][:, best[fam]], marker="o", color=color(i),
                      style="--" if i >= 2 else "-") for i, fam in enumerate(FAMILIES)],
              ylog=True, integer_x=True, vlines=[(m.epochs // 2 + 0.5, "phase switch")]),
        Panel("one-step sum against its parts alone", "SGD lr", "final validation cross-entropy",
              [Series(f"Adam {a:g} + SGD (one step)", m.sgd_lrs, grid[i], marker="o", color=color(i))
               for i, a in enumerate(m.adam_lrs)]
              + [Series(f"Adam {a:g} alone", m.sgd_lrs, [m.mean("Adam")[i]] * len(m.sgd_lrs), style=":",
                        color=color(i)) for i, a in enumerate(m.adam_lrs)]
              + [Series("SGD alone", m.sgd_lrs, m.mean("SGD"), marker="s", color="black", style="--")],
              xlog=True, ylog=True, xticks=m.sgd_lrs, legend="outside"),
    ], title=f"Digits, MLP 64-{'-'.join(map(str, m.hidden))}-10: Adam's and SGD's updates summed in every step, "
       f"against each alone and against phases (mean of {len(m.seeds)} seed{'s' if len(m.seeds) > 1 else ''})",
        width=14)
    numbers: dict[str, float | int | str] = {}
    for fam in FAMILIES:
        numbers[f"{fam}: best lr"] = lrs_text(fam)
        numbers[f"{fam}: final validation loss there"] = loss[fam]
    numbers["one-step pairs worse than both parts alone"] = f"{len(bad)} of {len(m.settings[FAMILIES[2]])}"
    numbers["those pairs (Adam lr, SGD lr)"] = ", ".join(f"({a:g}, {s:g})" for a, s in bad) or "none"
    rival = min(("Adam", "SGD", FAMILIES[3]), key=lambda f: loss[f])
    return ctx.finding(
        verdict, numbers, [fig],
        rule=f"two parts, each on the mean over the seeds of the final validation loss. Worse at its best: the "
        f"one-step sum's best setting ends more than {m.tol:.0%} above the best of Adam alone, SGD alone and the "
        f"phases. Unstable: in at least a third of the (Adam lr, SGD lr) pairs the sum ends more than {m.tol:.0%} "
        "above both of its parts run alone. Held if both; depends if one; did not hold if neither.",
        summary=f"At the best lr of each: Adam alone {loss['Adam']:.4f} ({lrs_text('Adam')}), SGD alone "
        f"{loss['SGD']:.4f} ({lrs_text('SGD')}), phases {loss[FAMILIES[3]]:.4f} ({lrs_text(FAMILIES[3])}), and both "
        f"in one step {loss[FAMILIES[2]]:.4f} ({lrs_text(FAMILIES[2])}): "
        + (f"more than {m.tol:.0%} worse than the best other way ({rival}, {loss[rival]:.4f}). " if worse_best else
           f"within {m.tol:.0%} of the best other way or better ({rival}, {loss[rival]:.4f}). ")
        + f"In {len(bad)} of {len(m.settings[FAMILIES[2]])} lr pairs the sum ended worse than both of its parts "
        "alone" + (f" ({', '.join(f'Adam {a:g} + SGD {s:g}' for a, s in bad)}): the two updates add up to a larger "
                   "step than either takes alone. " if bad else ". ")
        + {HELD: "Combining in one step hurt on both counts, as the note warns.",
           NOT_HELD: "Combining in one step did no harm here: the note's warning did not show at this scale.",
           DEPENDS: "The warning held in part: " + ("the best one-step run was worse, but the sum was not unstable "
                                                   "across the lr pairs." if worse_best else
                                                   "the sum was less stable across lr pairs, but at its best lr it "
                                                   "was as good as the alternatives.")}[verdict],
        setup=f"digits (standardized), MLP 64-{'-'.join(map(str, m.hidden))}-10 (ReLU, He initialization), batches "
        f"of {m.batch}, {m.epochs} epochs, seeds {m.seeds}. Adam lrs {m.adam_lrs}, SGD lrs {m.sgd_lrs}: each alone, "
        "every pair summed in one step (two descend optimizers over the same tensors, both stepping on the same "
        f"gradient) and every pair as phases (Adam for {m.epochs // 2} epochs, then SGD); all runs are rows of one "
        "stacked network on the same batches. Best lr of each: the lowest mean final validation loss.",
        caption="Left: each way at its best lr. Right: every one-step pair (solid) against its Adam part (dotted) "
        "and SGD (dashed) run alone.",
    )
