"""The training figures name each phase above the axes, where it starts: the name never covers a curve."""

from __future__ import annotations

from descend.plots.training import loss_figure, lr_figure
from tests.plot_checks import text_problems


def records() -> list[dict]:
    out = [{"type": "phase", "phase": 0, "iteration": 0, "optimizer": "Adam", "lr": 0.001, "reason": "start"}]
    for it in range(10, 201, 10):
        if it == 110:
            out.append({"type": "phase", "phase": 1, "iteration": 100, "optimizer": "SGD", "lr": 0.05,
                        "reason": "planned"})
        out.append({"type": "iteration", "iteration": it, "loss": 2.0 / it ** 0.5, "lr": 0.001 if it <= 100 else 0.05})
    return out


def test_phase_names_sit_above_the_axes_from_where_each_phase_starts() -> None:
    for fig in (loss_figure(records()), lr_figure(records())):
        ax = fig.axes[0]
        assert not ax.texts  # (a rotated name sat inside the axes, left of the switch: on the old phase's side)
        (top,) = ax.child_axes
        fig.canvas.draw()
        assert list(top.get_xticks()) == [0, 100]
        names = top.get_xticklabels()
        assert [t.get_text() for t in names] == ["Adam, lr 0.001", "SGD, lr 0.05"]
        assert all(t.get_horizontalalignment() == "left" for t in names)  # each starts at its phase
        box = ax.get_window_extent()
        assert all(t.get_window_extent().y0 >= box.y1 - 1 for t in names)  # above the plot, on no curve
        assert [ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == ":"] == [100]
        assert text_problems(fig) == []


def test_a_run_of_one_phase_draws_no_phase_names() -> None:
    one = [r for r in records() if not (r["type"] == "phase" and r["iteration"] > 0)]
    fig = loss_figure(one)
    assert not fig.axes[0].child_axes and not fig.axes[0].texts
