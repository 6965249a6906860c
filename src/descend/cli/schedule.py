"""``descend schedule SPEC [options] --steps N --plot out.png``: print and plot a schedule.

``SPEC`` is the one spec syntax (``multi-step:milestones=30/60/90,gamma=0.1``);
the flags (``--gamma``, ``--milestones 30,60,90``, ...) are the same options
spelled as flags, and override the spec's. :func:`schedule_command` is the
plain function, :func:`schedule_cmd` the Typer command around it;
:func:`register` adds it to an app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..schedules.registry import LIST_OPTIONS, SCHEDULES, WARMUP_OPTIONS, build, names

if TYPE_CHECKING:
    from rich.console import Console

    from ..schedules import Schedule

__all__ = ["LIST_OPTIONS", "SCHEDULES", "WARMUP_OPTIONS", "register", "sample_steps", "schedule_cmd", "schedule_command"]


def sample_steps(steps: int, count: int = 9) -> list[int]:
    """A few steps to print: 0, 1, evenly spaced ones and the last."""
    picks = {0, min(1, steps - 1), steps - 1}
    picks.update(round(i * (steps - 1) / (count - 1)) for i in range(count))
    return sorted(picks)


def schedule_command(
    spec: str,
    steps: int,
    plot: Path | None = None,
    *,
    lr: float = 0.1,
    log: bool = False,
    console: Console | None = None,
    **options: Any,
) -> Schedule:
    """Build schedule ``spec``, print its lr at a few steps (Rich table) and plot it if ``plot``.

    ``options`` are the schedule's options by name (None means not given); they
    override the spec's. Raises ValueError (a :class:`~descend.spec.SpecError`)
    on bad input. Returns the schedule.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ..schedules.combine import Warmup

    schedule = build(spec, steps=steps, lr=lr, **options)
    console = console or Console()
    table = Table()
    table.add_column("step", justify="right")
    table.add_column("lr", justify="right")
    picks = set(sample_steps(steps))
    if isinstance(schedule, Warmup):
        picks.update(n for n in (schedule.steps - 1, schedule.steps) if n < steps)
    changes = getattr(schedule, "milestones", None) or getattr(schedule, "boundaries", None) or ()
    picks.update(n for n in changes[:6] if n < steps)
    for n in sorted(picks):
        table.add_row(str(n), f"{schedule(n):.6g}")
    console.print(Text(repr(schedule), style="bold"))
    console.print(table)
    if plot is not None:
        from ..plots.schedules import plot_schedules

        plot.parent.mkdir(parents=True, exist_ok=True)
        plot_schedules({repr(schedule): schedule}, steps, plot, log=log)
        console.print(f"wrote {plot}")
    return schedule


def schedule_cmd(
    name: Annotated[str, typer.Argument(metavar="SPEC", help=f"NAME or NAME:key=value,... with NAME one of {', '.join(names())}.", show_default=False)],
    steps: Annotated[int, typer.Option("--steps", "-n", help="Number of steps to show and plot.")] = 100,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the lr curve to this image (.png, .svg, .pdf).")] = None,
    lr: Annotated[float, typer.Option(help="Base lr (alpha0): the first argument of every schedule.")] = 0.1,
    gamma: Annotated[float | None, typer.Option(help="Decay factor in (0, 1]: step, multi-step, exponential, cyclic exp-range.")] = None,
    every: Annotated[int | None, typer.Option(help="step: decay every N steps; inverse-time: time scale.")] = None,
    milestones: Annotated[str | None, typer.Option(help="multi-step: increasing steps, e.g. 30,60,90.")] = None,
    rate: Annotated[float | None, typer.Option(help="inverse-time: r in alpha0 / (1 + r n).")] = None,
    staircase: Annotated[bool | None, typer.Option("--staircase", help="inverse-time: change only every --every steps.", show_default=False)] = None,
    k: Annotated[float | None, typer.Option(help="inverse-sqrt: k in min(1, k / sqrt(n)) alpha0.")] = None,
    final_lr: Annotated[float | None, typer.Option(help="linear, polynomial, cosine, cosine-restarts: the floor.")] = None,
    power: Annotated[float | None, typer.Option(help="polynomial: the exponent.")] = None,
    decay_steps: Annotated[int | None, typer.Option(help="linear, polynomial, cosine, one-cycle: horizon (default: steps minus warmup).")] = None,
    period: Annotated[int | None, typer.Option(help="cosine-restarts: first cycle length.")] = None,
    mult: Annotated[int | None, typer.Option(help="cosine-restarts: cycle length multiplier.")] = None,
    max_lr: Annotated[float | None, typer.Option(help="cyclic: upper lr.")] = None,
    steps_up: Annotated[int | None, typer.Option(help="cyclic: steps going up.")] = None,
    steps_down: Annotated[int | None, typer.Option(help="cyclic: steps going down (default --steps-up).")] = None,
    mode: Annotated[str | None, typer.Option(help="cyclic: triangular, triangular2 or exp_range.")] = None,
    pct_start: Annotated[float | None, typer.Option(help="one-cycle: fraction of steps going up.")] = None,
    anneal: Annotated[str | None, typer.Option(help="one-cycle: cos or linear.")] = None,
    div_factor: Annotated[float | None, typer.Option(help="one-cycle: start at lr / div-factor.")] = None,
    final_div_factor: Annotated[float | None, typer.Option(help="one-cycle: end at lr / div-factor / final-div-factor.")] = None,
    three_phase: Annotated[bool | None, typer.Option("--three-phase", help="one-cycle: the paper's three phases.", show_default=False)] = None,
    boundaries: Annotated[str | None, typer.Option(help="piecewise: increasing steps, e.g. 100,200.")] = None,
    values: Annotated[str | None, typer.Option(help="piecewise: lr from each boundary, e.g. 0.05,0.01.")] = None,
    warmup_steps: Annotated[int | None, typer.Option("--warmup", help="Warmup steps in front of the schedule (< --steps).")] = None,
    warmup_start: Annotated[float | None, typer.Option(help="Warmup's first lr (default 0).")] = None,
    warmup_shape: Annotated[str | None, typer.Option(help="linear, cosine or constant.")] = None,
    log: Annotated[bool, typer.Option("--log", help="Logarithmic lr axis in the plot.")] = False,
) -> None:
    """Print a learning-rate schedule at a few steps and plot lr against step.

    SPEC takes the options of the Python schedule (lists joined by /); each
    flag below is the same option and overrides the spec's.

    Examples:

      descend schedule cosine --lr 0.1 --steps 1000 --warmup 100 --plot cosine.png

      descend schedule multi-step:milestones=30/60/90,gamma=0.1 --steps 100 --log --plot step.png

      descend schedule exponential:gamma=0.95 --lr 0.2 --steps 50

      descend schedule inverse-time:rate=1 --lr 0.2 --steps 10

      descend schedule one-cycle --lr 1.0 --steps 1000 --plot one_cycle.png

      descend schedule cyclic:max_lr=0.1,steps_up=200,mode=triangular2 --lr 0.001 --steps 1000
    """
    options = dict(
        gamma=gamma, every=every, milestones=milestones, rate=rate, staircase=staircase, k=k,
        final_lr=final_lr, power=power, decay_steps=decay_steps, period=period, mult=mult,
        max_lr=max_lr, steps_up=steps_up, steps_down=steps_down, mode=mode, pct_start=pct_start,
        anneal=anneal, div_factor=div_factor, final_div_factor=final_div_factor,
        three_phase=three_phase, boundaries=boundaries, values=values, warmup=warmup_steps,
        warmup_start=warmup_start, warmup_shape=warmup_shape,
    )
    try:
        schedule_command(name, steps, plot, lr=lr, log=log, **options)
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from None


def register(app: typer.Typer) -> None:
    """Add the ``schedule`` command to ``app``."""
    app.command("schedule")(schedule_cmd)
