"""The ``descend`` command line: each command is a thin call into the library.

Each command group lives in its own module here (``schedule.py``, ``train.py``, ...)
and is registered here, so that ``descend --help`` lists them all.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from .. import __version__, landscapes
from .. import optim as O
from .lab import register as register_lab
from .schedule import register as register_schedule
from .serve import register as register_web
from .tour import register as register_tour
from .train import register as register_train

app = typer.Typer(
    name="descend",
    help="Gradient descent and its variants on PyTorch: optimizers, schedules, training and a lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

register_schedule(app)
register_tour(app)
register_train(app)
register_lab(app)
register_web(app)

# Demo line-up: the notes' optimizers with learning rates that suit Rosenbrock.
DEMO = [
    ("GD (SGD)", O.SGD, {"lr": 1e-3}),
    ("Momentum (heavy ball)", O.Momentum, {"lr": 1e-4, "beta": 0.9}),
    ("Momentum (EMA)", O.Momentum, {"lr": 1e-3, "beta": 0.9, "style": "ema"}),
    ("Nesterov", O.Nesterov, {"lr": 1e-4, "beta": 0.9}),
    ("Adagrad", O.Adagrad, {"lr": 0.5}),
    ("RMSprop", O.RMSprop, {"lr": 1e-2}),
    ("Adam", O.Adam, {"lr": 2e-2}),
    ("AdamW", O.AdamW, {"lr": 2e-2, "weight_decay": 0.0}),
    ("Newton + line search", O.Newton, {"line_search": True}),
]


def run_demo(steps: int = 5000, tol: float = 1e-6) -> list[dict]:
    """Every optimizer from Rosenbrock's classic start (-1.2, 1); returns one row each."""
    land = landscapes.get("rosenbrock")
    rows = []
    for name, cls, kw in DEMO:
        x = torch.tensor(land.start, dtype=torch.float64, requires_grad=True)
        opt = cls([x], **kw)
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
    rows = run_demo(steps, tol)
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
    console.print(f"descend {__version__} (torch {torch.__version__})")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
