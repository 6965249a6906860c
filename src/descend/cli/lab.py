"""``descend race``, ``descend sweep`` and ``descend lr-find``.

:func:`register` adds the three commands to a Typer app; the main CLI calls
``register(app)``. Each command is a thin layer: it parses its options,
calls :mod:`descend.lab`, prints a Rich table and, with ``--out``, writes
the figure of :mod:`descend.plots.lab`. Bad input exits with code 2 and
the reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..lab.lr_find import LRFindResult, lr_find
from ..lab.race import RACE_NOTE, RaceResult, race
from ..lab.sweep import REGIONS, SweepResult, sweep

# The default line-up of `descend race` (learning rates that suit Rosenbrock, as `descend demo`).
DEFAULT_ENTRIES = ["gd:lr=1e-3", "momentum:lr=1e-4,beta=0.9", "rmsprop:lr=1e-2", "adam:lr=2e-2",
                   "newton:line_search=true"]


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(text) if all(c.isdigit() or c in "+-" for c in text.strip()) else float(text)
    except ValueError:
        return text.strip()


def parse_assignments(text: str, what: str) -> dict[str, Any]:
    """``"lr=0.1,beta=0.9"`` -> ``{"lr": 0.1, "beta": 0.9}``."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ValueError(f"{what} must be key=value pairs separated by commas, e.g. lr=0.01,beta=0.9; got {part!r}")
        key, value = part.split("=", 1)
        out[key.strip().replace("-", "_")] = _value(value)
    return out


def parse_entry(text: str) -> tuple[str, dict[str, Any]]:
    """``"adam:lr=0.02,beta1=0.8"`` -> ``("adam", {"lr": 0.02, "beta1": 0.8})``."""
    name, _, rest = text.partition(":")
    if not name.strip():
        raise ValueError(f"--opt must look like NAME or NAME:key=value,..., e.g. adam:lr=0.02; got {text!r}")
    return name.strip(), parse_assignments(rest, "--opt hyperparameters")


def parse_numbers(text: str, what: str) -> list[float]:
    """``"0.5,0.9,0.99"`` -> floats; ``"1e-5:1:21"`` -> 21 log-spaced values from 1e-5 to 1."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            return [float(v) for v in np.logspace(math.log10(float(lo)), math.log10(float(hi)), int(n))]
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be numbers separated by commas or LOW:HIGH:COUNT (log-spaced), got {text!r}") from None


def parse_point(text: str | None) -> list[float] | None:
    if text is None:
        return None
    values = parse_numbers(text, "--start")
    if len(values) != 2:
        raise ValueError(f"--start must be a point x,y, got {text!r}")
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
    parsed = [parse_entry(e) for e in (entries or DEFAULT_ENTRIES)]
    grid = parse_numbers(lr_grid, "--lr-grid") if lr_grid else None
    result = race(landscape, parsed, steps=steps, tol=tol, fair=fair, lr_grid=grid, x0=parse_point(start))
    gap = "final f - f*" if result.f_star is not None else "final f"
    title = f"{landscape} from {tuple(round(float(v), 4) for v in result.x0)}: {steps} steps, tol {tol:g}"
    if fair:
        title += f", each optimizer's best lr of {len(result.lr_grid)}"
    table = Table(title=title)
    for col in ("optimizer", "steps to tol", gap, "diverged", "end point", "time"):
        table.add_column(col, justify="left" if col == "optimizer" else "right")
    for row in result.table():
        final = row["final_gap"] if result.f_star is not None else row["final_loss"]
        end = row["end"]
        table.add_row(
            row["label"], str(row["steps_to_tol"]) if row["steps_to_tol"] is not None else f"> {row['steps']}"
            if not row["diverged"] else "-", _fmt(final, ".2e"), "yes" if row["diverged"] else "no",
            f"({_fmt(end[0], '.4f')}, {_fmt(end[1], '.4f')})", f"{row['wall_time'] * 1e3:.0f} ms",
        )
    console.print(table)
    console.print(RACE_NOTE)
    if out is not None or gif is not None:
        from descend.plots.lab import race_figure, race_gif

        if out is not None:
            race_figure(result, out)
            console.print(f"wrote {out}")
        if gif is not None:
            race_gif(result, gif)
            console.print(f"wrote {gif}")
    return result


def race_cmd(
    landscape: Annotated[str, typer.Argument(help="A landscape: note003, bowl, rosenbrock, beale, himmelblau, saddle, saddle_plateau, two_minima, rastrigin.")] = "rosenbrock",
    opt: Annotated[list[str] | None, typer.Option("--opt", "-o", help="NAME[:key=value,...], repeatable: gd, sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, newton.")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Step budget of every optimizer.")] = 2000,
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

    2-D paths show how each method moves; they do not rank optimizers on real models.
    """
    try:
        race_command(landscape, opt, steps=steps, tol=tol, fair=fair, lr_grid=lr_grid, start=start, out=out, gif=gif)
    except ValueError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}")
        raise typer.Exit(code=2) from None


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
    if not (lr_min > 0 and lr_max > lr_min):
        raise ValueError(f"--lr-min and --lr-max must satisfy 0 < lr-min < lr-max, got {lr_min!r} and {lr_max!r}")
    if num < 2:
        raise ValueError(f"--num must be an integer >= 2, got {num!r}")
    lrs = np.logspace(math.log10(lr_min), math.log10(lr_max), num)
    extra = parse_assignments(hyper, "--set") if hyper else {}
    beta_values = parse_numbers(betas, "--betas") if betas else None
    if heatmap is not None and beta_values is None:
        raise ValueError("--heatmap needs --betas (the beta values of the grid)")
    result = sweep(landscape, optimizer, lrs, steps=steps, tol=tol, betas=beta_values, beta_name=beta_name,
                   x0=parse_point(start), **extra)
    table = Table(title=f"{result.optimizer} on {landscape}: {num} lrs from {lr_min:g} to {lr_max:g}, "
                  f"{steps} steps, one vectorized run")
    for col in ("region", "lrs from", "lrs to", "count"):
        table.add_column(col, justify="left" if col == "region" else "right")
    for name in REGIONS:
        idx = [i for i, lab in enumerate(result.labels) if lab == name]
        if idx:
            table.add_row(name, f"{result.lrs[idx[0]]:.3g}", f"{result.lrs[idx[-1]]:.3g}", str(len(idx)))
    console.print(table)
    best = result.best_index
    if best is not None:
        gap = result.final_gaps[best] if result.final_gaps is not None else result.final_losses[best]
        what = "f - f*" if result.f_star is not None else "f"
        console.print(f"best lr {result.best_lr:.4g}: final {what} {gap:.3g}")
    if out is not None or heatmap is not None:
        from descend.plots.lab import heatmap_figure, sweep_figure

        if out is not None:
            sweep_figure(result, out)
            console.print(f"wrote {out}")
        if beta_values is not None:
            path = heatmap or (out.with_name(out.stem + "_heatmap" + out.suffix) if out is not None else None)
            if path is not None:
                heatmap_figure(result, path)
                console.print(f"wrote {path}")
    return result


def sweep_cmd(
    landscape: Annotated[str, typer.Argument(help="A landscape name, e.g. bowl, rosenbrock, beale.")] = "bowl",
    optimizer: Annotated[str, typer.Option("--optimizer", "-o", help="gd, sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw.")] = "gd",
    lr_min: Annotated[float, typer.Option(help="Smallest lr.")] = 1e-3,
    lr_max: Annotated[float, typer.Option(help="Largest lr.")] = 1.0,
    num: Annotated[int, typer.Option(help="Number of log-spaced lrs (all in one vectorized run).")] = 64,
    steps: Annotated[int, typer.Option(min=1, help="Step budget of every run.")] = 100,
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
    except ValueError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}")
        raise typer.Exit(code=2) from None


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
    out: Path | None = None,
    console: Console | None = None,
) -> LRFindResult:
    """Build the model on the data set, run the range test, print and plot the suggestions."""
    import torch

    from descend import data, models

    console = console or Console()
    ds = data.load(data_name, seed=seed)
    key = model_name.strip().lower()
    if ds.task == "regression":
        n_out = ds.y_train.shape[1]
    else:
        n_out = 1 if key == "logistic" else int(ds.n_classes)
    kw: dict[str, Any] = {}
    if key == "mlp":
        widths = [int(v) for v in parse_numbers(hidden, "--hidden")]
        kw = {"hidden": widths, "batchnorm": batchnorm}
    elif batchnorm or hidden != "64":
        raise ValueError(f"--hidden and --batchnorm apply to the mlp only, got model {model_name!r}")
    torch.manual_seed(seed)
    model = models.build(key, ds.n_features, n_out, **kw)
    loss_fn = models.loss_for(ds.task, ds.n_classes, n_outputs=None if ds.task == "regression" else n_out)
    if isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    batches = data.Batches(ds.X_train, ds.y_train, min(batch_size, ds.n_train), seed=seed)
    result = lr_find(model, loss_fn, batches, optimizer, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter)
    table = Table(title=f"lr range test: {model_name} on {data_name}, {result.optimizer}, batch {batch_size}, "
                  f"{len(result.lrs)} steps ({result.stop_reason})")
    table.add_column("suggestion")
    table.add_column("lr", justify="right")
    for name, lr in result.suggestions.items():
        table.add_row(name + (" (best)" if name == result.best_rule else ""), _fmt(lr, ".3g"))
    console.print(table)
    if out is not None:
        from descend.plots.lab import lr_find_figure

        lr_find_figure(result, out)
        console.print(f"wrote {out}")
    return result


def lr_find_cmd(
    data_name: Annotated[str, typer.Option("--data", help="digits, breast_cancer, wine, iris, diabetes, moons, circles or blobs.")] = "digits",
    model: Annotated[str, typer.Option("--model", help="mlp, softmax, logistic, linear or cnn.")] = "mlp",
    optimizer: Annotated[str, typer.Option("--optimizer", "-o", help="gd, sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw.")] = "adam",
    hidden: Annotated[str, typer.Option(help="mlp: hidden widths, e.g. 64 or 128,64.")] = "64",
    batchnorm: Annotated[bool, typer.Option("--batchnorm", help="mlp: BatchNorm after every hidden layer.")] = False,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    start_lr: Annotated[float, typer.Option(help="First lr of the exponential ramp.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last lr of the ramp.")] = 10.0,
    num_iter: Annotated[int, typer.Option(help="Steps of the ramp.")] = 100,
    seed: Annotated[int, typer.Option(help="Seeds the split, the model and the batches.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Write the loss-vs-lr figure here, e.g. lr_find.png.")] = None,
) -> None:
    """The learning-rate range test: raise the lr exponentially, watch the loss, suggest an lr.

    The model and optimizer are left exactly as they were.

    Examples:

      descend lr-find --data digits --model mlp --optimizer adam --out lr_find.png

      descend lr-find --data digits --model mlp --batchnorm --hidden 128,64 -o momentum

      descend lr-find --data breast_cancer --model logistic -o gd --start-lr 1e-5 --end-lr 100
    """
    try:
        lr_find_command(data_name, model, optimizer, hidden=hidden, batchnorm=batchnorm, batch_size=batch_size,
                        start_lr=start_lr, end_lr=end_lr, num_iter=num_iter, seed=seed, out=out)
    except ValueError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}")
        raise typer.Exit(code=2) from None


def register(app: typer.Typer) -> None:
    """Add ``race``, ``sweep`` and ``lr-find`` to ``app``."""
    app.command("race")(race_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("lr-find")(lr_find_cmd)


__all__ = ["register", "race_command", "sweep_command", "lr_find_command", "race_cmd", "sweep_cmd", "lr_find_cmd",
           "parse_entry", "parse_assignments", "parse_numbers", "DEFAULT_ENTRIES"]
