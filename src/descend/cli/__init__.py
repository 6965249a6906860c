"""The ``descend`` command line: each command is a thin call into the library.

Each command group lives in its own module here (``schedule.py``,
``train.py``, ``lab.py``, ``tour.py``, ``serve.py``) with a ``register(app)``
function. ``descend --help`` must answer at once, so the modules are not
imported up front: :data:`COMMANDS` lists each command with its module and
one-line help, and a command's module (with torch, scikit-learn, matplotlib)
is imported only when that command runs or shows its own help. A test
checks :data:`COMMANDS` against what the modules register.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from .. import __version__

_PACKAGE = Path(__file__).resolve().parents[1]  # descend's own files
_python_format = warnings.showwarning

# command -> (module that registers it, its one-line help as the module writes it)
COMMANDS: dict[str, tuple[str, str]] = {
    "schedule": ("descend.cli.schedule", "Print a learning-rate schedule at a few steps and plot lr against step."),
    "tour": ("descend.cli.tour", "Run every topic of the seed notes live and write one self-contained page, runs/tour/index.html."),
    "train": ("descend.cli.train", "Train a model on a data set and write a run folder (metrics, summary, checkpoint, figures)."),
    "race": ("descend.cli.lab", "Race several optimizers on one 2-D landscape: steps to tolerance, final f - f*, divergence."),
    "sweep": ("descend.cli.lab", "Final loss against learning rate, with the too small / good / too large / divergent regions."),
    "lr-find": ("descend.cli.lab", "The learning-rate range test: raise the lr exponentially, watch the loss, suggest an lr."),
    "serve": ("descend.cli.serve", "Serve the lab: pick a landscape and optimizers, click a start, watch the paths race."),
}


def load(module: str) -> dict[str, click.Command]:
    """The click commands ``module``'s ``register(app)`` adds, by name."""
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    return dict(typer.main.get_group(sub).commands)


class LazyGroup(TyperGroup):
    """A Typer group that imports a command's module only when the command is used.

    While the group's own help is drawn, the commands of :data:`COMMANDS` are
    stand-ins carrying their one-line help; otherwise :meth:`get_command`
    imports the module and returns the real command.
    """

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module, short = COMMANDS[cmd_name]
        if self._listing:
            return click.Command(cmd_name, help=short, short_help=short)
        for name, command in load(module).items():
            self.commands.setdefault(name, command)
        return self.commands.get(cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="descend",
    cls=LazyGroup,
    help="Gradient descent and its variants on PyTorch: optimizers, schedules, training and a lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Demo line-up: the notes' optimizers (class names in descend.optim) with learning rates that suit Rosenbrock.
DEMO: list[tuple[str, str, dict[str, Any]]] = [
    ("GD (SGD)", "SGD", {"lr": 1e-3}),
    ("Momentum (heavy ball)", "Momentum", {"lr": 1e-4, "beta": 0.9}),
    ("Momentum (EMA)", "Momentum", {"lr": 1e-3, "beta": 0.9, "style": "ema"}),
    ("Nesterov", "Nesterov", {"lr": 1e-4, "beta": 0.9}),
    ("Adagrad", "Adagrad", {"lr": 0.5}),
    ("RMSprop", "RMSprop", {"lr": 1e-2}),
    ("Adam", "Adam", {"lr": 2e-2}),
    ("AdamW", "AdamW", {"lr": 2e-2, "weight_decay": 0.0}),
    ("Newton + line search", "Newton", {"line_search": True}),
]


def run_demo(steps: int = 5000, tol: float = 1e-6, on_start: Any = None) -> list[dict]:
    """Every optimizer from Rosenbrock's classic start (-1.2, 1); returns one row each.

    ``on_start(i, name)``, when given, is called before the i-th optimizer runs."""
    import torch

    from .. import landscapes
    from .. import optim as O

    land = landscapes.get("rosenbrock")
    rows = []
    for index, (name, cls_name, kw) in enumerate(DEMO):
        if on_start is not None:
            on_start(index, name)
        x = torch.tensor(land.start, dtype=torch.float64, requires_grad=True)
        opt = getattr(O, cls_name)([x], **kw)
        reached = None
        t0 = time.perf_counter()
        for i in range(1, steps + 1):
            if isinstance(opt, O.Newton):
                opt.step(lambda x=x: land.value(x))
            else:
                opt.zero_grad()
                land.value(x).backward()
                opt.step()
            gap = float(land.value(x.detach())) - float(land.f_star)
            if not math.isfinite(gap):
                break
            if reached is None and gap < tol:
                reached = i
                break
        rows.append({
            "optimizer": name, "hyper": kw, "final_gap": gap, "steps": i,
            "reached": reached, "seconds": time.perf_counter() - t0,
            "end": tuple(float(v) for v in x.detach()),
        })
    return rows


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=1, help="step budget per optimizer")] = 5000,
    tol: Annotated[float, typer.Option(min=0.0, help="stop when f - f* < tol")] = 1e-6,
) -> None:
    """Run every optimizer of the notes on Rosenbrock and print final loss and steps taken.

    Example: descend demo --steps 2000
    """
    from rich.console import Console
    from rich.table import Table

    from ..lab.engine import MAX_STEPS

    if steps > MAX_STEPS:
        raise typer.BadParameter(f"at most {MAX_STEPS:,} steps per optimizer, got {steps:,}", param_hint="--steps")
    console = Console()
    status = console.status("starting")
    status.start()
    try:
        rows = run_demo(steps, tol, on_start=lambda i, name: status.update(
            f"[{i + 1}/{len(DEMO)}] {name}: up to {steps:,} steps ..."))
    finally:
        status.stop()
    table = Table(title=f"Rosenbrock from (-1.2, 1): steps to f - f* < {tol:g} (budget {steps})")
    for col in ("optimizer", "hyperparameters", "steps", "final f - f*", "end point", "time"):
        table.add_column(col, justify="left" if col in ("optimizer", "hyperparameters") else "right")
    for r in rows:
        hyper = ", ".join(f"{k}={v}" for k, v in r["hyper"].items())
        steps_txt = str(r["reached"]) if r["reached"] else f"> {r['steps']}"
        table.add_row(
            r["optimizer"], hyper, steps_txt, f"{r['final_gap']:.2e}",
            f"({r['end'][0]:.4f}, {r['end'][1]:.4f})", f"{r['seconds'] * 1e3:.0f} ms",
        )
    console.print(table)
    console.print("2-D paths show how each rule moves; they do not rank optimizers on real models.")


@app.command()
def version() -> None:
    """Print the installed version."""
    import torch

    typer.echo(f"descend {__version__} (torch {torch.__version__})")


def _one_line(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
              line: str | None = None) -> None:
    """descend's own warnings as the CLI's other messages are, ``warning: ...`` on stderr (Python's
    format adds the file, the line number and the source line of the call, which say nothing to a
    user); other packages' warnings keep Python's format."""
    if not (category.__module__.startswith("descend") or Path(filename).is_relative_to(_PACKAGE)):
        _python_format(message, category, filename, lineno, file, line)
        return
    out = file if file is not None else sys.stderr
    try:
        out.write(f"warning: {message}\n")
    except OSError:  # (stderr closed: as warnings.showwarning, nothing to do)
        pass


@app.callback()
def _cli(ctx: typer.Context) -> None:
    previous = warnings.showwarning
    warnings.showwarning = _one_line
    ctx.call_on_close(lambda: setattr(warnings, "showwarning", previous))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
