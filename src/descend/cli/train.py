"""``descend train DATASET ...``: train a model from the command line.

:func:`register` adds the command to a Typer app (the main CLI calls it)::

    from descend.cli.train import register
    register(app)

Bad input (unknown data set, model, optimizer or schedule; a bad batch size;
a missing, truncated or foreign checkpoint; a run folder that already holds a
run) prints one line ``error: ...`` and exits with code 2 before anything is
written; a diverging run prints its ``error: training diverged ...`` line and
exits with code 3.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .. import data, models, optim
from ..train.config import TrainConfig, parse_phases
from ..train.errors import CheckpointError, TrainingDiverged
from ..train.observe import summary_table


def _batch_size(text: str) -> int | None:
    if text.strip().lower() in ("full", "none", "n"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"batch size must be an integer >= 1 or 'full', got {text!r}") from None
    if value < 1:
        raise ValueError(f"batch size must be an integer >= 1 or 'full' (full-batch gradient descent), got {value}")
    return value


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated widths such as 128,64, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"--hidden must be comma-separated widths >= 1 such as 128,64, got {text!r}")
    return widths


def train_cmd(
    dataset: Annotated[str, typer.Argument(metavar="DATASET", help=f"One of {', '.join(data.names())}.", show_default=False)],
    model: Annotated[str, typer.Option(help=f"{', '.join(models.names())}.")] = "mlp",
    optimizer: Annotated[str, typer.Option(help=f"{', '.join(optim.OPTIMIZERS)}.")] = "adam",
    lr: Annotated[float | None, typer.Option(help="Learning rate of every phase without its own (default: the optimizer's, adam 1e-3, sgd 0.01).")] = None,
    schedule: Annotated[str | None, typer.Option(help="NAME or NAME:key=value,... with the Python schedule's arguments, e.g. multi-step:milestones=30/60/90,gamma=0.1 or cosine (see descend schedule); stretched over each phase.")] = None,
    schedule_unit: Annotated[str, typer.Option(help="iteration or epoch: when the schedule steps.")] = "iteration",
    warmup: Annotated[int, typer.Option(help="Linear warmup steps in front of --schedule.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Epochs to train (default 10, or the phases' total).")] = None,
    iterations: Annotated[int | None, typer.Option(help="Iteration (optimizer step) budget instead of epochs.")] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Examples per step: 'full' for gradient descent, 1 for pure SGD.")] = "64",
    phases: Annotated[str | None, typer.Option(help="optimizer:duration[:lr],... e.g. adam:10,sgd:10 (epochs; iterations with --iterations).")] = None,
    carry_lr: Annotated[bool, typer.Option("--carry-lr", help="Each phase starts at the lr the previous one ended with.")] = False,
    swats: Annotated[bool, typer.Option("--swats", help="Adam, then SGD when the SWATS criterion says so.")] = False,
    hidden: Annotated[str, typer.Option(help="mlp: hidden widths, e.g. 128,64.")] = "64",
    batchnorm: Annotated[bool, typer.Option("--batchnorm", help="mlp: BatchNorm after each hidden layer.")] = False,
    dropout: Annotated[float, typer.Option(help="mlp: dropout probability.")] = 0.0,
    weight_decay: Annotated[float, typer.Option(help="L2 regularization (added to the gradient).")] = 0.0,
    l1: Annotated[float, typer.Option(help="L1 regularization (l1 * sign(w) added to the gradient).")] = 0.0,
    clip_norm: Annotated[float | None, typer.Option(help="Clip the global gradient norm to this value.")] = None,
    clip_value: Annotated[float | None, typer.Option(help="Clip every gradient entry to [-v, v].")] = None,
    accumulate: Annotated[int, typer.Option(help="Batches per optimizer step (gradient accumulation).")] = 1,
    seed: Annotated[int, typer.Option(help="Model initialization, data order, dropout.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/DATASET-MODEL-OPTIMIZER-TIME).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over in an --out that holds a run.")] = False,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N iterations (always at the end).")] = None,
    log_every: Annotated[int, typer.Option(help="Iterations between metric lines.")] = 10,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Rich progress bar.")] = True,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, mps ...")] = "cpu",
) -> None:
    """Train a model on a data set and write a run folder (metrics, summary, checkpoint, figures).

    Examples:

      descend train digits --model mlp --optimizer adam --lr 1e-3 --epochs 20 --batch-size 64

      descend train digits --phases adam:10,sgd:10:0.05 --out runs/digits-switch

      descend train breast_cancer --model logistic --optimizer sgd --lr 0.1 --schedule cosine

      descend train diabetes --model linear --optimizer sgd --lr 0.2 --batch-size full --iterations 1000

      descend train digits --swats --epochs 30

      descend train digits --out runs/digits --resume   (continue from the last checkpoint)
    """
    console = Console()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if resume and out is None:
            raise ValueError("--resume continues the run in --out; give --out runs/NAME")
        cfg = TrainConfig(
            dataset=dataset, model=model, optimizer=optimizer, lr=lr, schedule=schedule,
            schedule_unit=schedule_unit, warmup=warmup, epochs=epochs, iterations=iterations,
            batch_size=_batch_size(batch_size),
            phases=parse_phases(phases, "iteration" if iterations else "epoch") if phases else None,
            carry_lr=carry_lr, swats=swats, weight_decay=weight_decay, l1=l1, clip_norm=clip_norm,
            clip_value=clip_value, accumulate=accumulate, seed=seed, overwrite=overwrite,
            checkpoint_every=checkpoint_every, log_every=log_every, progress=progress, device=device,
            model_options={"hidden": _hidden(hidden), "batchnorm": batchnorm, "dropout": dropout}
            if model.strip().lower() == "mlp" else {},
        )
        if schedule is not None:
            from ..schedules.registry import resolve

            resolve(schedule)  # name and options checked before any work; SpecError names the field
        if model.strip().lower() not in models.names():
            raise ValueError(f"unknown model {model!r}; valid names: {', '.join(models.names())}")
        if dataset.strip().lower() not in data.names():
            raise ValueError(f"unknown data set {dataset!r}; valid names: {', '.join(data.names())}")
        if out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out = Path("runs") / f"{dataset.strip().lower()}-{model.strip().lower()}-{optimizer.strip().lower()}-{stamp}"
        cfg.out = out
        from ..train.trainer import train

        result = train(dataset, model, cfg, resume=resume, console=console)
    except TrainingDiverged as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(code=3) from None
    except (ValueError, CheckpointError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(code=2) from None
    if not progress and int(os.environ.get("RANK", "0")) == 0:  # with the bar, the Trainer prints it
        summary = {"status": result.status, "iterations": result.iterations, "epochs": result.epochs,
                   "seconds": result.seconds, "run_dir": str(result.run_dir), **result.final}
        console.print(summary_table(summary))


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train_cmd)
