"""Learning rate against step for one or several schedules.

The figure is drawn on matplotlib's Agg canvas (no display, no pyplot
global state) from the values the schedules return; nothing else is
computed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LrFunction = Callable[[int], float]


def _labelled(
    schedules: LrFunction | Sequence[LrFunction] | Mapping[str, LrFunction],
) -> list[tuple[str, LrFunction]]:
    if isinstance(schedules, Mapping):
        return [(str(k), v) for k, v in schedules.items()]
    if callable(schedules):
        return [(repr(schedules), schedules)]
    return [(repr(s), s) for s in schedules]


def plot_schedules(
    schedules: LrFunction | Sequence[LrFunction] | Mapping[str, LrFunction],
    steps: int,
    path: str | Path | None = None,
    *,
    title: str | None = None,
    log: bool = False,
    unit: str = "step",
) -> Figure:
    """Plot ``schedule(n)`` for ``n = 0 .. steps - 1``; save to ``path`` if given.

    Args:
        schedules: one schedule, a list (labelled by their repr) or a
            ``{label: schedule}`` mapping.
        steps: how many steps to draw (>= 1).
        path: where to write the figure (format from the suffix, e.g. ``.png``).
        title: figure title.
        log: logarithmic lr axis (useful for step and exponential decay).
        unit: x-axis label ("step", "iteration" or "epoch").

    Returns:
        The matplotlib ``Figure``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    items = _labelled(schedules)
    if not items:
        raise ValueError("schedules must hold at least one schedule, got none")
    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(steps)
    for label, schedule in items:
        # the lr is constant during a step: draw it as a staircase
        ax.plot(xs, [schedule(n) for n in xs], label=label, linewidth=1.6, drawstyle="steps-post")
    ax.set_xlabel(unit)
    ax.set_ylabel("learning rate")
    ax.set_xlim(0, max(steps - 1, 1))
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    if title:
        ax.set_title(title)
    if path is not None:
        fig.savefig(Path(path), dpi=120)
    return fig
