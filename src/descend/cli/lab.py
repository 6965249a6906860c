"""``descend race``, ``descend sweep`` and ``descend lr-find``.

:func:`register` adds the three commands to a Typer app; the main CLI calls
``register(app)``. Each command is a thin layer: it parses its options,
calls :mod:`descend.lab`, prints a Rich table and, with ``--out``, writes
the figure of :mod:`descend.plots.lab`. Bad input exits with code 2 and
the reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..lab._common import n_steps
from ..lab.best import BEST_RULE
from ..lab.engine import MAX_STEPS
from ..lab.lr_find import LRFindResult, lr_find
from ..lab.race import RACE_NOTE, EntryError, RaceResult, race
from ..lab.sweep import SweepResult, stretches, sweep
from ..spec import parse, parse_options
from .files import output_path

# The default line-up of `descend race` (learning rates that suit Rosenbrock, as `descend demo`).
DEFAULT_ENTRIES = ["gd:lr=1e-3", "momentum:lr=1e-4,beta=0.9", "rmsprop:lr=1e-2", "adam:lr=2e-2",
                   "newton:line_search=true"]
# Races record at most this many points per run (the figures need no more); longer runs thin out.
MAX_RECORDED = 20_000
STEPS_HELP = f"at most {MAX_STEPS:,}"
LANDSCAPE_HELP = ("A landscape: note003, bowl, rosenbrock, beale, himmelblau, saddle, saddle_plateau, two_minima, "
                  "rastrigin; or module:function (fn(x, y) or a Landscape); or an expression in x and y, "
                  "e.g. 'x**2 + 10*y**2'.")


def parse_entry(text: str) -> tuple[str, dict[str, Any]]:
    """``"adam:lr=0.02,beta1=0.8"`` -> ``("adam", {"lr": 0.02, "beta1": 0.8})`` (:func:`descend.spec.parse`)."""
    return parse(text, "--opt")


@contextmanager
def progress_bar(description: str, total_steps: int, runs: int = 1) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar on stderr (only in a terminal): yields the lab's ``progress(t, steps)`` callback.

    ``runs`` vectorized runs of ``total_steps`` each run one after the other (a fair race, a sweep with
    its heat-map); the bar covers them all.
    """
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} steps"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total_steps * runs)
        done = [0, 0]  # steps of finished runs, last t seen

        def update(t: int, steps: int) -> None:
            if t < done[1]:  # a new run started
                done[0] += steps
            done[1] = t
            bar.update(task, completed=min(done[0] + t, total_steps * runs))

        yield update


@contextmanager
def writing(what: str, path: Path) -> Iterator[None]:
    """Writing the file of option ``what``: an OSError becomes an error naming the option and the file."""
    try:
        yield
    except OSError as e:
        raise ValueError(f"{what}: cannot write {str(path)!r} ({e.strerror or e})") from None


def fail(err: Exception) -> typer.Exit:
    """Print ``err`` as the reason and give the exit (code 2) to raise."""
    Console(stderr=True).print(f"[bold red]error:[/] {err}")
    return typer.Exit(code=2)


def parse_numbers(text: str, what: str) -> list[float]:
    """``"0.5,0.9,0.99"`` -> floats; ``"1e-5:1:21"`` -> 21 log-spaced values from 1e-5 to 1."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            low, high, count = float(lo), float(hi), int(n)
            if not (low > 0 and high > 0 and math.isfinite(low * high) and count >= 1):
                raise ValueError(f"{what} LOW:HIGH:COUNT is log-spaced: LOW and HIGH must be finite numbers > 0 and "
                                 f"COUNT an integer >= 1, got {text!r}")
            return [float(v) for v in np.logspace(math.log10(low), math.log10(high), count)]
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        if str(e).startswith(what):
            raise
        raise ValueError(f"{what} must be numbers separated by commas or LOW:HIGH:COUNT (log-spaced), got {text!r}") from None


def parse_point(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 2 or not all(math.isfinite(v) and abs(v) <= 1e12 for v in values):
        raise ValueError(f"--start must be a point x,y of two finite numbers (|x|, |y| <= 1e12), got {text!r}")
    return values


def _fmt(x: float | None, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    return format(x, spec) if math.isfinite(x) else str(x)


# ----------------------------------------------------------------------------- race


def race_command(
    landscape: str,
    entries: list[str] | None = None,
    *,
    steps: int = 2000,
    tol: float = 1e-8,
    fair: bool = False,
    lr_grid: str | None = None,
    start: str | None = None,
    out: Path | None = None,
    gif: Path | None = None,
    console: Console | None = None,
) -> RaceResult:
    """Run the race, print its table, write the figure and GIF if asked. Raises ValueError on bad input."""
    console = console or Console()
    out = output_path(out, "--out")
    gif = output_path(gif, "--gif", ("gif",))
    parsed = [parse_entry(e) for e in (entries or DEFAULT_ENTRIES)]
    grid = parse_numbers(lr_grid, "--lr-grid") if lr_grid else None
    if steps > MAX_STEPS:
        raise ValueError(f"--steps must be at most {MAX_STEPS:,}, got {steps:,}")
    every = max(1, math.ceil(steps / MAX_RECORDED))
    with progress_bar(f"race on {landscape}", steps, len(parsed) if fair else 1) as progress:
        result = race(landscape, parsed, steps=steps, tol=tol, fair=fair, lr_grid=grid, x0=parse_point(start),
                      record_every=every, progress=progress)
    gap = "final f - f*" if result.f_star is not None else "final f"
    name = result.landscape.name if result.landscape is not None else landscape
    title = f"{name} from {tuple(round(float(v), 4) for v in result.x0)}: {n_steps(steps)}, tol {tol:g}"
    if result.f_star is None:
        title += " on the gradient norm (f* unknown)"
    if fair:
        title += f", each optimizer's best lr of {len(result.lr_grid)}"
    table = Table(title=title)
    for col in ("optimizer", "outcome", "steps", gap, "end point"):
        table.add_column(col, justify="left" if col in ("optimizer", "outcome") else "right")
    for run in result.runs:
        final = run.final_gap if result.f_star is not None else run.final_loss
        end = run.end
        table.add_row(run.label, run.outcome, str(run.steps), _fmt(final, ".2e"),
                      f"({_fmt(float(end[0]), '.4f')}, {_fmt(float(end[1]), '.4f')})")
    console.print(table)
    # (the runs advance together in lockstep: one time for all, not a time per optimizer)
    n = len(result.runs)
    console.print(f"{n} run{'' if n == 1 else 's'} computed together in {result.wall_time * 1e3:.0f} ms", highlight=False)
    if every > 1:
        console.print(f"(paths recorded every {every} steps)")
    console.print(RACE_NOTE)
    if out is not None or gif is not None:
        from descend.plots.lab import race_figure, race_gif

        if out is not None:
            with writing("--out", out):
                fig = race_figure(result, out)
            console.print(f"wrote {out}")
            for line in getattr(fig, "descend_notes", []):
                console.print(line)
        if gif is not None:
            with writing("--gif", gif):
                race_gif(result, gif)
            console.print(f"wrote {gif}")
    return result


def race_cmd(
    landscape: Annotated[str, typer.Argument(help=LANDSCAPE_HELP)] = "rosenbrock",
    opt: Annotated[list[str] | None, typer.Option("--opt", "-o", help="NAME[:key=value,...], repeatable: gd, sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, newton.")] = None,
    steps: Annotated[int, typer.Option(min=1, help=f"Step budget of every optimizer ({STEPS_HELP}; paths of long runs are recorded every few steps).")] = 2000,
    tol: Annotated[float, typer.Option(min=0.0, help="Converged when f - f* < tol (gradient norm < tol when f* is unknown).")] = 1e-8,
    fair: Annotated[bool, typer.Option("--fair", help="Give every optimizer the same lr grid and horizon and keep its best lr.")] = False,
    lr_grid: Annotated[str | None, typer.Option(help="The --fair grid: LOW:HIGH:COUNT (log-spaced) or a comma list (default 1e-5:1:21).")] = None,
    start: Annotated[str | None, typer.Option(help="Start point x,y (default: the landscape's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the race figure (contour with paths, loss vs step) here, e.g. race.png.")] = None,
    gif: Annotated[Path | None, typer.Option("--gif", help="Also write an animated GIF of the paths here.")] = None,
) -> None:
    """Race several optimizers on one 2-D landscape: steps to tolerance, final f - f*, divergence.

    Examples:

      descend race rosenbrock --out race.png

      descend race rosenbrock -o gd:lr=1e-3 -o adam:lr=0.02 -o newton:line_search=true --steps 3000

      descend race bowl -o gd -o momentum -o adam --fair --steps 300 --out fair.png --gif fair.gif

      descend race himmelblau -o adam:lr=0.1 -o rmsprop:lr=0.05 --start 0,0

      descend race "x**2 + 10*y**2" -o gd:lr=0.05 -o adam:lr=0.1 --start 2,1

    2-D paths show how each method moves; they do not rank optimizers on real models.
    """
    try:
        race_command(landscape, opt, steps=steps, tol=tol, fair=fair, lr_grid=lr_grid, start=start, out=out, gif=gif)
    except EntryError as e:  # name the -o option as typed
        raise fail(ValueError(f"-o {(opt or DEFAULT_ENTRIES)[e.index]}: {e.reason}")) from None
    except (ValueError, OSError) as e:
        raise fail(e) from None


# ----------------------------------------------------------------------------- sweep


def sweep_command(
    landscape: str,
    optimizer: str = "gd",
    *,
    lr_min: float = 1e-3,
    lr_max: float = 1.0,
    num: int = 64,
    steps: int = 100,
    tol: float = 1e-8,
    betas: str | None = None,
    beta_name: str | None = None,
    hyper: str | None = None,
    start: str | None = None,
    out: Path | None = None,
    heatmap: Path | None = None,
    console: Console | None = None,
) -> SweepResult:
    """Run the sweep, print the regions, write the figures if asked. Raises ValueError on bad input."""
    console = console or Console()
    out = output_path(out, "--out")
    heatmap = output_path(heatmap, "--heatmap")
    if not (lr_min > 0 and lr_max > lr_min):
        raise ValueError(f"--lr-min and --lr-max must satisfy 0 < lr-min < lr-max, got {lr_min!r} and {lr_max!r}")
    if num < 2:
        raise ValueError(f"--num must be an integer >= 2, got {num!r}")
    if steps > MAX_STEPS:
        raise ValueError(f"--steps must be at most {MAX_STEPS:,}, got {steps:,}")
    lrs = np.logspace(math.log10(lr_min), math.log10(lr_max), num)
    extra = parse_options(hyper, "--set") if hyper else {}
    beta_values = parse_numbers(betas, "--betas") if betas else None
    if heatmap is not None and beta_values is None:
        raise ValueError("--heatmap needs --betas (the beta values of the grid)")
    with progress_bar(f"sweep on {landscape}", steps, 1 if beta_values is None else 2) as progress:
        result = sweep(landscape, optimizer, lrs, steps=steps, tol=tol, betas=beta_values, beta_name=beta_name,
                       x0=parse_point(start), progress=progress, **extra)
    # (with --betas the plain lr sweep runs at the optimizer's own value of the swept keyword: named)
    at = "" if result.beta_default is None else f" at {result.beta_name}={result.beta_default:g} (its default)"
    table = Table(title=f"{result.optimizer} on {landscape}{at}: {num} lrs from {lr_min:g} to {lr_max:g}, "
                  f"{n_steps(steps)}, one vectorized run")
    for col in ("region", "lrs from", "lrs to", "count"):
        table.add_column(col, justify="left" if col == "region" else "right")
    # one row per stretch of neighbouring lrs with one label, in lr order: a region that the grid
    # enters twice (rastrigin's divergent lrs between good ones) gets a row per stretch, so no two
    # rows' ranges overlap
    for label, first, stop in stretches(result.labels):
        table.add_row(label, f"{result.lrs[first]:.3g}", f"{result.lrs[stop - 1]:.3g}", str(stop - first))
    console.print(table)
    what = "f - f*" if result.f_star is not None else "f"
    if result.best_index is not None:
        how, gap = _outcome(result, result.runs, result.best_index)
        console.print(f"best lr {result.best_lr:.4g}{at}: {how}final {what} {gap:.3g} ({BEST_RULE})")
    if beta_values is not None:
        _print_grid(result, steps, console)
    if out is not None or heatmap is not None:
        from descend.plots.lab import heatmap_figure, sweep_figure

        if out is not None:
            with writing("--out", out):
                sweep_figure(result, out)
            console.print(f"wrote {out}")
        if beta_values is not None:
            path = heatmap or (out.with_name(out.stem + "_heatmap" + out.suffix) if out is not None else None)
            if path is not None:
                with writing("--heatmap" if heatmap is not None else "--out", path):
                    heatmap_figure(result, path)
                console.print(f"wrote {path}")
    return result


def _outcome(result: SweepResult, runs: Any, i: int) -> tuple[str, float]:
    """(``"N steps to tol, "`` or ``""``, the final gap or loss) of row ``i`` of ``runs``."""
    reached = runs.steps_to_tol[i]
    final = float(runs.final_losses[i]) - (result.f_star or 0.0)
    return (f"{n_steps(reached)} to tol, " if reached is not None else ""), final


def _print_grid(result: SweepResult, steps: int, console: Console) -> None:
    """The lr x beta grid: each swept value's best lr and outcome, then the best cell."""
    name, betas, n = result.beta_name, result.betas, len(result.lrs)
    assert betas is not None and result.grid_runs is not None and result.grid_labels is not None
    what = "f - f*" if result.f_star is not None else "f"
    table = Table(title=f"lr x {name}: {len(betas)} values of {name} x {n} lrs, {n_steps(steps)}, one vectorized run")
    for col in (name, "best lr", "steps to tol", f"final {what}", "good lrs", "divergent lrs"):
        table.add_column(col, justify="right")
    for j, b in enumerate(betas):
        best = (result.grid_row_best or [None] * len(betas))[j]
        labels = result.grid_labels[j]
        if best is None:
            cells = ["-", "-", "-"]
        else:
            reached = result.grid_runs.steps_to_tol[j * n + best]
            cells = [f"{result.lrs[best]:.4g}", "-" if reached is None else str(reached),
                     _fmt(_outcome(result, result.grid_runs, j * n + best)[1], ".3g")]
        table.add_row(f"{b:g}", *cells, str(labels.count("good")), str(labels.count("divergent")))
    console.print(table)
    if result.grid_best is not None:
        j, i = result.grid_best
        how, gap = _outcome(result, result.grid_runs, j * n + i)
        console.print(f"best cell: {name}={betas[j]:g}, lr {result.lrs[i]:.4g}: {how}final {what} {gap:.3g} "
                      f"({BEST_RULE})")
    else:
        console.print(f"every cell of the lr x {name} grid diverged")


def sweep_cmd(
    landscape: Annotated[str, typer.Argument(help=LANDSCAPE_HELP)] = "bowl",
    optimizer: Annotated[str, typer.Option("--optimizer", "-o", help="gd, sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw.")] = "gd",
    lr_min: Annotated[float, typer.Option(help="Smallest lr.")] = 1e-3,
    lr_max: Annotated[float, typer.Option(help="Largest lr.")] = 1.0,
    num: Annotated[int, typer.Option(help="Number of log-spaced lrs (all in one vectorized run).")] = 64,
    steps: Annotated[int, typer.Option(min=1, help=f"Step budget of every run ({STEPS_HELP}).")] = 100,
    tol: Annotated[float, typer.Option(min=0.0, help="Runs stop once f - f* < tol.")] = 1e-8,
    betas: Annotated[str | None, typer.Option(help="Beta values for the lr x beta heat-map, e.g. 0,0.5,0.9,0.99.")] = None,
    beta_name: Annotated[str | None, typer.Option(help="The keyword --betas sets (default: momentum, beta or beta1).")] = None,
    hyper: Annotated[str | None, typer.Option("--set", help="Other fixed hyperparameters, e.g. style=ema or beta2=0.99.")] = None,
    start: Annotated[str | None, typer.Option(help="Start point x,y (default: the landscape's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the final-loss-vs-lr figure here, e.g. sweep.png.")] = None,
    heatmap: Annotated[Path | None, typer.Option("--heatmap", help="Write the lr x beta heat-map here (default with --betas: OUT_heatmap.png).")] = None,
) -> None:
    """Final loss against learning rate, with the too small / good / too large / divergent regions.

    Examples:

      descend sweep bowl --optimizer gd --num 64 --steps 60 --out sweep.png

      descend sweep rosenbrock -o adam --lr-min 1e-4 --lr-max 1 --steps 500 --out adam.png

      descend sweep bowl -o momentum --betas 0,0.5,0.8,0.9,0.95,0.99 --steps 200 --out m.png --heatmap m_heat.png

      descend sweep bowl -o momentum --set style=ema --steps 200
    """
    try:
        sweep_command(landscape, optimizer, lr_min=lr_min, lr_max=lr_max, num=num, steps=steps, tol=tol, betas=betas,
                      beta_name=beta_name, hyper=hyper, start=start, out=out, heatmap=heatmap)
    except (ValueError, OSError) as e:
        raise fail(e) from None


# ----------------------------------------------------------------------------- lr-find


def lr_find_command(
    data_name: str = "digits",
    model_name: str = "mlp",
    optimizer: str = "adam",
    *,
    hidden: str = "64",
    batchnorm: bool = False,
    batch_size: int = 64,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    seed: int = 0,
    target: str | None = None,
    task: str | None = None,
    out: Path | None = None,
    console: Console | None = None,
) -> LRFindResult:
    """Build the model on the data set, run the range test, print and plot the suggestions."""
    from descend import data, models

    console = console or Console()
    out = output_path(out, "--out")
    file_options = {k: v for k, v in (("target", target), ("task", task)) if v is not None}
    ds = data.load(data_name, seed=seed, **file_options)
    key = model_name.strip().lower()
    kw: dict[str, Any] = {}
    if key == "mlp":
        widths = [int(v) for v in parse_numbers(hidden, "--hidden")]
        kw = {"hidden": widths, "batchnorm": batchnorm}
    elif batchnorm or hidden != "64":
        raise ValueError(f"--hidden and --batchnorm apply to the mlp only, got model {model_name!r}")
    model = models.build_for(ds, key, seed=seed, **kw)
    loss_fn = models.loss_for_model(ds, model)
    if isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    used, clamped = data.fit_batch_size(batch_size, ds.n_train)  # as descend train does
    batches = data.Batches(ds.X_train, ds.y_train, used, seed=seed)
    try:
        result = lr_find(model, loss_fn, batches, optimizer, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter)
    except ValueError as e:  # (named as the options the user typed: --num-iter, not num_iter)
        raise ValueError(re.sub(r"\b(start_lr|end_lr|num_iter)\b", lambda m: "--" + m[1].replace("_", "-"),
                                str(e))) from None
    batch = f"batch {used}" if used == batch_size else f"batch {used} (the whole training set)"
    table = Table(title=f"lr range test: {model_name} on {data_name}, {result.optimizer}, {batch}, "
                  f"{n_steps(len(result.lrs))} ({result.stop_reason})")
    table.add_column("suggestion")
    table.add_column("lr", justify="right")
    for name, lr in result.suggestions.items():
        table.add_row(name + (" (best)" if name == result.best_rule else ""), _fmt(lr, ".3g"))
    console.print(table)
    for note in filter(None, [clamped, *result.notes]):
        console.print(f"note: {note}", markup=False, highlight=False)
    if out is not None:
        from descend.plots.lab import lr_find_figure

        with writing("--out", out):
            lr_find_figure(result, out)
        console.print(f"wrote {out}")
    return result


def lr_find_cmd(
    data_name: Annotated[str, typer.Option("--data", help="digits, breast_cancer, wine, iris, diabetes, moons, circles, blobs, or a FILE.csv (with --target) or FILE.npz (arrays X, y).")] = "digits",
    model: Annotated[str, typer.Option("--model", help="mlp, softmax, logistic, linear or cnn.")] = "mlp",
    optimizer: Annotated[str, typer.Option("--optimizer", "-o", help="gd, sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw.")] = "adam",
    hidden: Annotated[str, typer.Option(help="mlp: hidden widths, e.g. 64 or 128,64.")] = "64",
    batchnorm: Annotated[bool, typer.Option("--batchnorm", help="mlp: BatchNorm after every hidden layer.")] = False,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    start_lr: Annotated[float, typer.Option(help="First lr of the exponential ramp.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last lr of the ramp.")] = 10.0,
    num_iter: Annotated[int, typer.Option(help="Steps of the ramp (at least 10).")] = 100,
    seed: Annotated[int, typer.Option(help="Seeds the split, the model and the batches.")] = 0,
    target: Annotated[str | None, typer.Option("--target", help="--data FILE.csv: the column to predict.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="--data FILE: classification or regression (default: inferred from the target).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the loss-vs-lr figure here, e.g. lr_find.png.")] = None,
) -> None:
    """The learning-rate range test: raise the lr exponentially, watch the loss, suggest an lr.

    The model and optimizer are left exactly as they were.

    Examples:

      descend lr-find --data digits --model mlp --optimizer adam --out lr_find.png

      descend lr-find --data digits --model mlp --batchnorm --hidden 128,64 -o momentum

      descend lr-find --data breast_cancer --model logistic -o gd --start-lr 1e-5 --end-lr 100

      descend lr-find --data wine.csv --target target --model softmax
    """
    try:
        lr_find_command(data_name, model, optimizer, hidden=hidden, batchnorm=batchnorm, batch_size=batch_size,
                        start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, seed=seed, target=target, task=task,
                        out=out)
    except (ValueError, OSError) as e:
        raise fail(e) from None


def register(app: typer.Typer) -> None:
    """Add ``race``, ``sweep`` and ``lr-find`` to ``app``."""
    app.command("race")(race_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("lr-find")(lr_find_cmd)


__all__ = ["register", "race_command", "sweep_command", "lr_find_command", "race_cmd", "sweep_cmd", "lr_find_cmd",
           "parse_entry", "parse_numbers", "output_path", "progress_bar", "DEFAULT_ENTRIES"]
