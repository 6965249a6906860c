"""``descend train DATA ...``: train a model from the command line.

:func:`register` adds the command to a Typer app (the main CLI calls it).

``DATA`` is a bundled data set's name or your own ``.csv`` (with ``--target``)
or ``.npz`` (arrays ``X``, ``y``). The command draws what the Trainer
reports through its hooks: a Rich progress bar on a terminal, plain progress
lines when stdout is not one (piped to a file), the summary table, hints, the
SWATS switch, and the figures (``figures/{loss,accuracy,lr}.png``).

``--resume`` with ``--out`` alone continues with the run's saved settings; a
larger ``--epochs``/``--iterations`` extends it; other options given with
``--resume`` that differ from the saved ones are refused with the list of
differences unless ``--apply-changes`` (then recorded in ``changes.jsonl``).

Bad input prints one line ``error: ...`` and exits with code 2 before
anything is written; a diverging run prints its ``error: training diverged
...`` line and exits with code 3.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .. import data, models, optim, spec
from ..train.checkpoint import NAME as CHECKPOINT
from ..train.checkpoint import load as load_checkpoint
from ..train.config import TrainConfig, parse_phases
from ..train.errors import CheckpointError, TrainingDiverged
from .files import check_folder

# CLI option -> TrainConfig field (the model options are gathered separately)
FIELDS = ("model", "optimizer", "lr", "schedule", "schedule_unit", "warmup", "epochs", "iterations", "batch_size",
          "phases", "carry_lr", "swats", "weight_decay", "l1", "clip_norm", "clip_value", "accumulate", "seed",
          "checkpoint_every", "log_every", "progress", "device", "target", "task")
MODEL_OPTIONS = ("hidden", "batchnorm", "dropout")


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


# ---------------------------------------------------------------------------- what the run shows


class Show:
    """Draws the Trainer's ``on_progress`` records: a Rich bar, plain lines (at most ~20), or nothing."""

    def __init__(self, console: Console, mode: str) -> None:
        self.console, self.mode = console, mode
        self.bar: Progress | None = None
        self.next_mark = 0
        self.last_epoch: dict[str, Any] = {}

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev["type"]
        if kind == "phase" and ev["iteration"] > 0:
            self.say(_phase_line(ev))
        if kind in ("epoch", "eval"):
            self.last_epoch = ev
        if self.mode == "bar":
            self._bar(ev)
        elif self.mode == "lines" and kind == "iteration" and (ev["iteration"] >= self.next_mark or ev["iteration"] == ev["total"]):
            self.next_mark = ev["iteration"] + max(1, ev["total"] // 20)
            self.console.print(self._line(ev), markup=False, highlight=False, soft_wrap=True)
        elif self.mode == "lines" and kind == "start" and ev.get("resumed"):
            self.console.print(f"resumed at iteration {ev['iteration']} of {ev['total']}", markup=False)
        if kind == "start" and ev.get("data"):  # your own file: what was read from it
            self.say(f"data: {ev['data']}")
        if kind == "start" and self.mode != "off":  # (printed again with the hints at the end, always)
            for note in ev.get("notes") or ():
                self.say(f"note: {note}")

    def say(self, text: str) -> None:
        (self.bar.console if self.bar is not None else self.console).print(text, markup=False, highlight=False,
                                                                           soft_wrap=True)

    def _line(self, ev: dict[str, Any]) -> str:
        parts = [f"iteration {ev['iteration']}/{ev['total']}"]
        if ev.get("epoch") is not None and ev.get("epochs"):
            parts.append(f"epoch {_epoch(ev)}/{ev['epochs']}")
        parts += [f"train loss {ev['loss']:.4g}", f"lr {ev['lr']:.3g}"]
        if self.last_epoch.get("val_loss") is not None:
            parts.append(f"validation loss {self.last_epoch['val_loss']:.4g}")
        if self.last_epoch.get("val_accuracy") is not None:
            parts.append(f"validation accuracy {100 * self.last_epoch['val_accuracy']:.1f}%")
        parts.append(f"{ev['examples_per_s']:,.0f} ex/s")
        return "  ".join(parts)

    def _bar(self, ev: dict[str, Any]) -> None:
        if self.bar is None:
            self.bar = Progress(
                TextColumn("[bold]{task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("it  loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]} ex/s"),
                TimeRemainingColumn(), console=self.console, transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=ev["total"], epoch="", loss="-", lr="-", speed="-")
        epoch, epochs = ev.get("epoch"), ev.get("epochs")
        shown = "" if epoch is None or not epochs else f"epoch {_epoch(ev)}/{epochs}"
        fields: dict[str, Any] = {"completed": ev["iteration"]}
        if ev["type"] in ("iteration", "start"):
            fields["epoch"] = shown
            fields["lr"] = "-" if ev.get("lr") is None else f"{ev['lr']:.3g}"
        if ev["type"] == "iteration":
            fields.update(loss=f"{ev['loss']:.4g}", speed=f"{ev['examples_per_s']:,.0f}")
        self.bar.update(self.task, **fields)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _epoch(ev: dict[str, Any]) -> int:
    """The epoch an iteration belongs to, 1-based (iteration 17 of 17 per epoch is in epoch 1)."""
    per = ev["total"] / ev["epochs"]
    return max(1, min(ev["epochs"], math.ceil(ev["iteration"] / per - 1e-9)))


def _phase_line(ev: dict[str, Any]) -> str:
    if ev.get("reason") == "swats":
        return (f"SWATS switched from Adam to SGD with momentum at iteration {ev['iteration']}, "
                f"lr {ev['lr']:.4g} (the projected SGD lr)")
    return f"phase {ev['phase'] + 1}: {ev['optimizer']} from iteration {ev['iteration']}, lr {ev['lr']:.4g}"


def summary_table(summary: dict[str, Any]) -> Table:
    """The end-of-run table: final losses and accuracies, iterations, time, run folder."""
    title = (f"{summary.get('status', 'run')}: {summary.get('iterations')} iterations, "
             f"{summary.get('epochs')} epochs, {summary.get('seconds', 0.0):.1f} s")
    caption = f"run folder: {summary['run_dir']}" if summary.get("run_dir") else None
    # wide enough for the title and the caption: a caption wider than the table wrapped at its width,
    # which split the folder's path over two lines
    table = Table(title=title, caption=caption, min_width=max(len(title) + 4, len(caption or "")))
    table.add_column("split")
    table.add_column("loss", justify="right")
    table.add_column("accuracy", justify="right")
    for split, label in (("train", "train"), ("val", "validation"), ("test", "test")):
        loss = summary.get(f"{split}_loss")
        if loss is None:
            continue
        acc = summary.get(f"{split}_accuracy")
        table.add_row(label, f"{loss:.6g}", "-" if acc is None else f"{100 * acc:.2f}%")
    return table


def _figures(result: Any) -> list[Path]:
    if not result.config.get("plots", True) or result.run_dir is None or not (result.log or result.history):
        return []
    from ..plots.training import plot_training

    return plot_training(result.metrics, result.run_dir / "figures")


def _swats_note(result: Any) -> str | None:
    if not result.config.get("swats"):
        return None
    switched = [p for p in result.phases if p.get("reason") == "swats"]
    if switched:
        p = switched[0]
        return f"SWATS: switched from Adam to SGD at iteration {p['iteration']} of {result.iterations}, lr {p['lr']:.4g}"
    return (f"SWATS: did not switch in {result.iterations} iterations (the criterion was never met); "
            f"the run used Adam throughout")


# ---------------------------------------------------------------------------- settings


def _given(ctx: typer.Context, names: tuple[str, ...]) -> set[str]:
    """The options the user typed (not defaults)."""
    return {n for n in names if getattr(ctx.get_parameter_source(n), "name", None) == "COMMANDLINE"}


def _settings(values: dict[str, Any], given: set[str], resume_from: dict[str, Any] | None) -> TrainConfig:
    """A TrainConfig from the options, or from the saved settings with the given options on top."""
    conv = dict(values)
    conv["batch_size"] = _batch_size(values["batch_size"])
    unit = "iteration" if values["iterations"] else "epoch"
    conv["phases"] = parse_phases(values["phases"], unit) if values["phases"] else None
    model_key = str(values["model"]).strip().lower()
    options = {"hidden": _hidden(values["hidden"]), "batchnorm": values["batchnorm"], "dropout": values["dropout"]}
    if resume_from is None:
        cfg = {k: conv[k] for k in FIELDS}
        cfg["model_options"] = options if model_key == "mlp" else {}
        return TrainConfig(dataset=values["dataset"], **cfg)
    over = {k: conv[k] for k in FIELDS if k in given or k == "progress"}  # progress: this terminal's
    if "phases" in given and resume_from.get("iterations"):
        over["phases"] = parse_phases(values["phases"], "iteration")
    if "epochs" in given:
        over.setdefault("iterations", None)
    if "iterations" in given:
        over.setdefault("epochs", None)
    if given & set(MODEL_OPTIONS):
        saved = dict(resume_from.get("model_options") or {})
        over["model_options"] = {**saved, **{k: options[k] for k in MODEL_OPTIONS if k in given}}
    if values["dataset"] is not None:
        over["dataset"] = values["dataset"]
    return TrainConfig.from_resolved(resume_from, **over)


def train_cmd(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Argument(metavar="DATA", show_default=False, help=(
        f"A data set ({', '.join(data.names())}) or your own FILE.csv (with --target; also .tsv/.txt, separated by "
        f", ; tab or |, decimal commas read) or FILE.npz (arrays X, y); "
        f"optional with --resume."))] = None,
    target: Annotated[str | None, typer.Option(help="FILE.csv: the target column (FILE.npz: the target array, default y).")] = None,
    task: Annotated[str | None, typer.Option(help="classification or regression (default: inferred from the target: integers or text are classes).")] = None,
    model: Annotated[str, typer.Option(help=f"{', '.join(models.names())}.")] = "mlp",
    optimizer: Annotated[str, typer.Option("--optimizer", "-o", help=f"NAME or NAME:key=value,... e.g. adam:lr=0.01,beta1=0.8; names: {', '.join(optim.names())}.")] = "adam",
    lr: Annotated[float | None, typer.Option(help="Learning rate of every phase without its own (default: the optimizer's, adam 1e-3, sgd 0.01).")] = None,
    schedule: Annotated[str | None, typer.Option(help="NAME or NAME:key=value,... e.g. cosine, step:every=2,gamma=0.5 or multi-step:milestones=30/60/90,gamma=0.1 (see descend schedule); stretched over each phase.")] = None,
    schedule_unit: Annotated[str, typer.Option(help="iteration or epoch: when the schedule steps.")] = "iteration",
    warmup: Annotated[int, typer.Option(help="Linear warmup steps in front of --schedule (or of the constant --lr without one).")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Epochs to train (default: 10, or more for at least 500 iterations; or the phases' total).")] = None,
    iterations: Annotated[int | None, typer.Option(help="Iteration (optimizer step) budget instead of epochs.")] = None,
    batch_size: Annotated[str, typer.Option("--batch-size", "-b", help="Examples per step: 'full' for gradient descent, 1 for pure SGD; a batch larger than the training set is the whole set (with a note).")] = "64",
    phases: Annotated[str | None, typer.Option(help="optimizer:duration[:lr],... e.g. adam:10,sgd:10 (epochs; iterations with --iterations).")] = None,
    carry_lr: Annotated[bool, typer.Option("--carry-lr", help="Each phase starts at the lr the previous one ended with.")] = False,
    swats: Annotated[bool, typer.Option("--swats", help="Adam, then SGD when the SWATS criterion says so (the run says whether and when).")] = False,
    hidden: Annotated[str, typer.Option(help="mlp: hidden widths, e.g. 128,64.")] = "64",
    batchnorm: Annotated[bool, typer.Option("--batchnorm", help="mlp: BatchNorm after each hidden layer.")] = False,
    dropout: Annotated[float, typer.Option(help="mlp: dropout probability.")] = 0.0,
    weight_decay: Annotated[float, typer.Option(help="L2 regularization (added to the gradient).")] = 0.0,
    l1: Annotated[float, typer.Option(help="L1 regularization (l1 * sign(w) added to the gradient).")] = 0.0,
    clip_norm: Annotated[float | None, typer.Option(help="Clip the global gradient norm to this value.")] = None,
    clip_value: Annotated[float | None, typer.Option(help="Clip every gradient entry to [-v, v].")] = None,
    accumulate: Annotated[int, typer.Option(help="Batches per optimizer step (gradient accumulation).")] = 1,
    seed: Annotated[int, typer.Option(help="Model initialization, data order, dropout.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/DATA-MODEL-OPTIMIZER-TIME).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out with its saved settings; a larger --epochs/--iterations extends it.")] = False,
    apply_changes: Annotated[bool, typer.Option("--apply-changes", help="With --resume: apply changed settings (lr, weight decay, dropout, ...) from the checkpoint on; recorded in changes.jsonl.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over in an --out that holds a run.")] = False,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N iterations (always at the end).")] = None,
    log_every: Annotated[int, typer.Option(help="Iterations between metric lines.")] = 10,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress: a bar on a terminal, plain lines otherwise.")] = True,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, mps ...")] = "cpu",
) -> None:
    """Train a model on a data set and write a run folder (metrics, summary, checkpoint, figures).

    DATA is a bundled data set or your own FILE.csv (--target COLUMN) or FILE.npz (arrays X, y), with the
    same seeded split, scaling on the training split only, metrics and run folder.

    Examples:

      descend train digits --model mlp -o adam:lr=1e-3 --epochs 20 --batch-size 64

      descend train wine.csv --target target --model softmax

      descend train digits --phases adam:10,sgd:10:0.05 --out runs/digits-switch

      descend train breast_cancer --model logistic -o sgd --lr 0.5 --epochs 300 --schedule step:every=100,gamma=0.5 --schedule-unit epoch

      descend train diabetes --model linear -o gd --lr 0.2 --batch-size full --iterations 1000

      descend train digits --swats --epochs 30

      descend train --out runs/digits --resume   (continue with the saved settings)

      descend train --out runs/digits --resume --epochs 40   (extend the run)
    """
    console = Console()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    values = dict(locals())
    values.pop("ctx"), values.pop("console"), values.pop("err")
    show: Show | None = None
    try:
        if resume and out is None:
            raise ValueError("--resume continues the run in --out; give --out runs/NAME")
        if apply_changes and not resume:
            raise ValueError("--apply-changes applies changed settings on --resume; give --resume --out DIR")
        state = load_checkpoint(out / CHECKPOINT) if resume else None
        saved = state["config"] if state is not None else None
        if dataset is None and saved is None:
            raise ValueError("give the data: a data set name or FILE.csv/FILE.npz (or --resume --out DIR)")
        given = _given(ctx, (*FIELDS, *MODEL_OPTIONS))
        if {"phases", "optimizer"} <= given and (":" in str(optimizer) or spec.norm(str(optimizer)) != spec.norm(
                str(phases).split(",")[0].split(":")[0])):  # (the first phase's own name is only redundant)
            raise ValueError(
                f"--phases names each phase's optimizer (NAME:DURATION[:LR]), so --optimizer {optimizer} "
                f"would be ignored; leave it out and give a phase's lr in the phase (e.g. adam:10:0.01), or "
                f"--lr for every phase that gives none"
            )
        cfg = _settings(values, given, saved)
        if out is None:
            stem = Path(str(dataset)).stem.lower() if data.files.is_path(dataset) else str(dataset).strip().lower()
            name = spec.norm(str(optimizer).split(":")[0])
            out = Path("runs") / f"{stem}-{str(model).strip().lower()}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        check_folder(out, "--out")
        cfg.out = out
        cfg.overwrite = overwrite
        mode = "off" if not cfg.progress or int(os.environ.get("RANK", "0")) else "bar" if console.is_terminal else "lines"
        show = Show(console, mode)
        # --no-progress hides the bar and the lines, not what was read from your file or the phase
        # hand-offs: the Trainer calls on_progress only when progress is not False
        cfg.progress = None
        from ..train.run import train

        result = train(cfg.dataset, cfg.model, cfg, resume=resume, apply_changes=apply_changes,
                       on_progress=show, on_end=_figures)
    except TrainingDiverged as e:
        if show is not None:
            show.close()
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(code=3) from None
    except (ValueError, CheckpointError, OSError) as e:
        if show is not None:
            show.close()
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(code=2) from None
    show.close()
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {"status": result.status, "iterations": result.iterations, "epochs": result.epochs,
                   "seconds": result.seconds, "run_dir": str(result.run_dir), **result.final}
        console.print(summary_table(summary))
        if state is not None and state["iteration"] == result.budget:
            console.print(f"the run was already complete at iteration {result.budget}; give a larger --epochs or "
                          f"--iterations with --resume to extend it", markup=False, highlight=False)
        for line in filter(None, [_swats_note(result), *(f"hint: {h}" for h in result.hints)]):
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train_cmd)
