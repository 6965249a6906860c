"""The tour's panels label their reference lines outside the axes, where no curve runs."""

from __future__ import annotations

import numpy as np

from descend.plots.tour import Panel, Series, panels_figure
from tests.plot_checks import text_problems


def test_reference_lines_are_named_outside_the_axes_at_their_values() -> None:
    x = np.arange(1, 91)
    climbing = Series("run", x, np.linspace(0.5, 9.0, 90))  # crosses both lines near where labels sat
    fig = panels_figure([Panel("two references", series=[climbing], ylog=True,
                               hlines=[(6.0, "2× the first loss")], vlines=[(30, "warmup ends"), (60, "")])])
    ax = fig.axes[0]
    assert not ax.texts  # (inside the axes, the labels covered the curve where it crossed them)
    right, top = ax.child_axes
    fig.canvas.draw()
    assert [t.get_text() for t in right.get_yticklabels()] == ["2× the first loss"]
    assert list(right.get_yticks()) == [6.0]
    assert [t.get_text() for t in top.get_xticklabels()] == ["warmup ends"] and list(top.get_xticks()) == [30]
    box = ax.get_window_extent()
    assert right.get_yticklabels()[0].get_window_extent().x0 >= box.x1 - 1
    assert top.get_xticklabels()[0].get_window_extent().y0 >= box.y1 - 1
    assert [ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == ":" and ln.get_xdata()[0] == ln.get_xdata()[1]] == [30, 60]
    assert text_problems(fig) == []
