"""``descend schedule NAME [options] --steps N --plot out.png``: print and plot a schedule.

:func:`schedule_command` is the plain function (build the schedule from a
name and options, print a table of values, write the plot);
:func:`schedule_cmd` is the Typer command around it. The main CLI registers it
with one line::

    app.command("schedule")(schedule_cmd)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import (
    Schedule,
    constant,
    cosine,
    cosine_restarts,
    cyclic,
    exponential,
    inverse_sqrt,
    inverse_time,
    linear,
    multi_step,
    one_cycle,
    piecewise,
    polynomial,
    step,
    warmup,
)
from .combine import Warmup

# name -> (schedule, options it takes, options it needs); "decay_steps" is the schedule's `steps`.
SCHEDULES: dict[str, tuple[type[Schedule], tuple[str, ...], tuple[str, ...]]] = {
    "constant": (constant, (), ()),
    "step": (step, ("every", "gamma"), ("every",)),
    "multi_step": (multi_step, ("milestones", "gamma"), ("milestones",)),
    "exponential": (exponential, ("gamma",), ("gamma",)),
    "inverse_time": (inverse_time, ("rate", "every", "staircase"), ("rate",)),
    "inverse_sqrt": (inverse_sqrt, ("k",), ("k",)),
    "linear": (linear, ("decay_steps", "final_lr"), ()),
    "polynomial": (polynomial, ("decay_steps", "power", "final_lr"), ()),
    "cosine": (cosine, ("decay_steps", "final_lr"), ()),
    "cosine_restarts": (cosine_restarts, ("period", "mult", "final_lr"), ("period",)),
    "one_cycle": (
        one_cycle,
        ("decay_steps", "pct_start", "anneal", "div_factor", "final_div_factor", "three_phase"),
        (),
    ),
    "cyclic": (cyclic, ("max_lr", "steps_up", "steps_down", "mode", "gamma"), ("max_lr", "steps_up")),
    "piecewise": (piecewise, ("boundaries", "values"), ("boundaries", "values")),
}
HORIZON = ("linear", "polynomial", "cosine", "one_cycle")
WARMUP_OPTIONS = ("warmup", "warmup_start", "warmup_shape")
LIST_OPTIONS = {"milestones": int, "boundaries": int, "values": float}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _as_list(name: str, value: Any) -> list:
    convert = LIST_OPTIONS[name]
    if isinstance(value, str):
        try:
            return [convert(v) for v in value.replace(" ", "").split(",") if v]
        except ValueError:
            raise ValueError(f"{_flag(name)} must be comma-separated numbers, e.g. 30,60,90; got {value!r}") from None
    return list(value)


def build_schedule(name: str, steps: int, *, lr: float = 0.1, **options: Any) -> Schedule:
    """The schedule ``NAME`` with ``options`` (None means not given), shown over ``steps`` steps.

    Schedules with a horizon (linear, polynomial, cosine, one_cycle) span the
    ``steps`` left after the warmup unless ``decay_steps`` is given.
    """
    key = name.strip().lower().replace("-", "_")
    if key == "plateau":
        raise ValueError("plateau needs a metric to observe; the CLI shows time-based schedules only")
    if key not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(n.replace('_', '-') for n in SCHEDULES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    factory, takes, needs = SCHEDULES[key]
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(takes) - set(WARMUP_OPTIONS))
    if unknown:
        allowed = ", ".join(_flag(t) for t in takes + WARMUP_OPTIONS)
        raise ValueError(
            f"{', '.join(_flag(u) for u in unknown)} does not apply to {key.replace('_', '-')}; "
            f"it takes --lr, {allowed}"
        )
    missing = [n for n in needs if n not in given]
    if missing:
        raise ValueError(f"{key.replace('_', '-')} needs {', '.join(_flag(m) for m in missing)}")

    n_warmup = given.pop("warmup", None)
    start = given.pop("warmup_start", None)
    shape = given.pop("warmup_shape", None)
    if n_warmup is None and (start is not None or shape is not None):
        raise ValueError("--warmup-start and --warmup-shape need --warmup")
    if n_warmup is not None and (isinstance(n_warmup, bool) or not isinstance(n_warmup, int) or not 1 <= n_warmup < steps):
        raise ValueError(f"warmup must be an integer in [1, steps - 1] = [1, {steps - 1}], got {n_warmup!r}")
    for list_name in LIST_OPTIONS:
        if list_name in given:
            given[list_name] = _as_list(list_name, given[list_name])
    if key in HORIZON:
        given["steps"] = given.pop("decay_steps", steps - (n_warmup or 0))
    schedule = factory(lr, **given)
    if n_warmup is not None:
        schedule = warmup(schedule, n_warmup, start=start or 0.0, shape=shape or "linear")
    return schedule


def sample_steps(steps: int, count: int = 9) -> list[int]:
    """A few steps to print: 0, 1, evenly spaced ones and the last."""
    picks = {0, min(1, steps - 1), steps - 1}
    picks.update(round(i * (steps - 1) / (count - 1)) for i in range(count))
    return sorted(picks)


def schedule_command(
    name: str,
    steps: int,
    plot: Path | None = None,
    *,
    log: bool = False,
    console: Console | None = None,
    **options: Any,
) -> Schedule:
    """Build schedule ``name``, print its lr at a few steps (Rich table) and plot it if ``plot``.

    ``options`` are the schedule's arguments by name (``lr``, ``gamma``,
    ``every``, ``milestones``, ``rate``, ``k``, ``final_lr``, ``power``,
    ``decay_steps``, ``period``, ``mult``, ``max_lr``, ``steps_up``,
    ``steps_down``, ``mode``, ``pct_start``, ``anneal``, ``div_factor``,
    ``final_div_factor``, ``three_phase``, ``boundaries``, ``values``,
    ``staircase``) plus ``warmup``, ``warmup_start``, ``warmup_shape``; None
    means not given. Raises ValueError on bad input. Returns the schedule.
    """
    schedule = build_schedule(name, steps, **options)
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
        from descend.plots.schedules import plot_schedules

        plot_schedules({repr(schedule): schedule}, steps, plot, log=log)
        console.print(f"wrote {plot}")
    return schedule


def schedule_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="constant, step, multi-step, exponential, inverse-time, inverse-sqrt, linear, polynomial, cosine, cosine-restarts, one-cycle, cyclic or piecewise.", show_default=False)],
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

    Examples:

      descend schedule cosine --lr 0.1 --steps 1000 --warmup 100 --plot cosine.png

      descend schedule multi-step --milestones 30,60,90 --steps 100 --log --plot step.png

      descend schedule exponential --lr 0.2 --gamma 0.95 --steps 50

      descend schedule inverse-time --lr 0.2 --rate 1 --steps 10

      descend schedule one-cycle --lr 1.0 --steps 1000 --plot one_cycle.png

      descend schedule cyclic --lr 0.001 --max-lr 0.1 --steps-up 200 --mode triangular2 --steps 1000
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
        schedule_command(name, steps, plot, log=log, lr=lr, **options)
    except ValueError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}")
        raise typer.Exit(code=2) from None
