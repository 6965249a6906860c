"""``descend schedule SPEC [options] --steps N --plot out.png``: print and plot a schedule.

``SPEC`` is the one spec syntax (``multi-step:milestones=30/60/90,gamma=0.1``),
as in ``descend train --schedule``; its help lists every schedule's options
from :func:`descend.schedules.describe`. :func:`schedule_command` is the plain
function, :func:`schedule_cmd` the Typer command around it; :func:`register`
adds it to an app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..schedules.registry import build, describe, names
from .files import output_path

if TYPE_CHECKING:
    from rich.console import Console

    from ..schedules import Schedule

__all__ = ["register", "sample_steps", "schedule_cmd", "schedule_command"]


def sample_steps(steps: int, count: int = 9) -> list[int]:
    """A few steps to print: 0, 1, evenly spaced ones and the last; every step when there are few."""
    if steps <= count + 1:  # (as many rows as the spaced picks would give: none left out)
        return list(range(steps))
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

    plot = output_path(plot, "--plot")  # (before the table: a path that cannot be written fails first)

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

        plot_schedules({repr(schedule): schedule}, steps, plot, log=log)
        console.print(f"wrote {plot}")
    return schedule


def _options_help() -> str:
    """One line per schedule with its options (from :func:`descend.schedules.describe`)."""
    lines = []
    for info in describe().values():
        opts = [
            o.name if o.required else f"{o.name}={'auto' if o.default is None else o.default}"
            for o in info.options
            if not o.warmup
        ]
        lines.append(f"  {info.shown}: {', '.join(opts) or '(no options)'}")
    return "\n\n".join(lines)


def schedule_cmd(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help=f"NAME or NAME:key=value,... with NAME one of {', '.join(names())}.", show_default=False)],
    steps: Annotated[int, typer.Option("--steps", "-n", help="Number of steps to show and plot.")] = 100,
    lr: Annotated[float, typer.Option(help="Base lr (alpha0): the first argument of every schedule.")] = 0.1,
    warmup: Annotated[int | None, typer.Option(help="Linear warmup steps in front of the schedule (< --steps), as in descend train.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the lr curve to this image (.png, .svg, .pdf).")] = None,
    log: Annotated[bool, typer.Option("--log", help="Logarithmic lr axis in the plot.")] = False,
) -> None:
    try:
        schedule_command(spec, steps, plot, lr=lr, log=log, warmup=warmup)
    except (ValueError, OSError) as e:
        message = str(e)
        # the run length and base lr come from --steps and --lr here, not from SPEC
        if getattr(e, "field", None) in ("steps", "lr") and message.startswith(f"{e.field} must"):
            message = f"--{message}"
        elif getattr(e, "field", None) == "warmup" and warmup is not None and message.startswith("warmup must"):
            message = f"--{message}"
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(code=2) from None


schedule_cmd.__doc__ = f"""Print a learning-rate schedule at a few steps and plot lr against step.

    SPEC is the schedule with the Python schedule's options (lists joined by /),
    the same spec as descend train --schedule. Every schedule also takes warmup,
    warmup_start and warmup_shape (linear, cosine or constant). A horizon
    (decay_steps) defaults to --steps minus the warmup.

    Examples:

      descend schedule cosine --lr 0.1 --steps 1000 --warmup 100 --plot cosine.png

      descend schedule multi-step:milestones=30/60/90,gamma=0.1 --steps 100 --log --plot step.png

      descend schedule exponential:gamma=0.95 --lr 0.2 --steps 50

      descend schedule inverse-time:rate=1 --lr 0.2 --steps 10

      descend schedule one-cycle:pct_start=0.25 --lr 1.0 --steps 1000 --plot one_cycle.png

      descend schedule cyclic:max_lr=0.1,steps_up=200,mode=triangular2 --lr 0.001 --steps 1000

    Options of each schedule (= a default, bare = required):

{_options_help()}
    """


def register(app: typer.Typer) -> None:
    """Add the ``schedule`` command to ``app``."""
    app.command("schedule")(schedule_cmd)
