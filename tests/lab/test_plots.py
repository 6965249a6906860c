"""Figures of lab results: what they show, where they keep their axes, and the files they write."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from PIL import Image

import descend.plots.lab as plab
import descend.plots.landscape as pland
from descend import data, landscapes, models
from descend.lab import RACE_NOTE, REGIONS, lr_find, race, sweep
from tests.plot_checks import text_problems

PNG = b"\x89PNG\r\n\x1a\n"
LONG = "x**2 + 10*y**2 + 0.3*sin(5*x)*cos(3*y) + 0.01*x**4 + 0.001*y**4 + 0.05*x*y"  # a long title


@pytest.fixture(scope="module")
def bowl_race():
    # one diverging run (lr > 2 / kappa) must not stretch the axes
    return race("bowl", [("gd", {"lr": 0.05}), ("gd", {"lr": 0.25}), ("momentum", {"lr": 0.05, "beta": 0.9}),
                         ("adam", {"lr": 0.3})], steps=200)


def test_contour_levels_are_log_spaced_when_the_landscape_asks() -> None:
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rosen = landscapes.get("rosenbrock")
    cs = pland.contour(ax, rosen, resolution=80)
    ratios = np.asarray(cs.levels[1:]) / np.asarray(cs.levels[:-1])
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    assert ratios[0] > 1.3 and ax.get_xlim() == rosen.box[:2] and ax.get_ylim() == rosen.box[2:]
    ax2 = fig.add_subplot(2, 1, 2)
    flat = pland.contour(ax2, landscapes.get("two_minima"), resolution=80)
    steps = np.diff(np.asarray(flat.levels))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
    marks = [line for line in ax2.get_lines() if line.get_marker() in ("*", "D")]
    assert sorted(m.get_marker() for m in marks) == ["*", "D"]  # the global and the local minimum


def test_race_figure_paths_stay_in_view_and_carry_the_note(bowl_race, tmp_path) -> None:
    out = tmp_path / "race.png"
    fig = plab.race_figure(bowl_race, out)
    assert out.read_bytes().startswith(PNG)
    ax, bx = fig.axes[:2]
    assert ax.get_xlim() == (-3.0, 3.0) and ax.get_ylim() == (-3.0, 3.0)
    assert RACE_NOTE in fig._suptitle.get_text()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "GD (lr=0.05): 191 steps" and labels[1].startswith("GD (lr=0.25): diverged at step")
    assert "Adam (lr=0.3)" in labels[3]
    notes = [c for c in ax.get_children() if isinstance(c, Annotation) and c.get_text() == "diverged"]
    assert len(notes) == 1
    lo, hi = bx.get_ylim()
    assert bx.get_yscale() == "log" and hi < 1e6  # the diverging curve leaves the top, the axis stays put
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        assert np.all(np.abs(xy) <= 9.0 + 1e-9)  # clipped to the box (plus one box for excursions)


def test_race_gif_has_frames(bowl_race, tmp_path) -> None:
    out = plab.race_gif(bowl_race, tmp_path / "race.gif", frames=8, fps=4, dpi=40)
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames >= 6


def test_sweep_and_heatmap_figures(tmp_path) -> None:
    result = sweep("bowl", "momentum", np.logspace(-3, 0.3, 24), steps=80, betas=[0.0, 0.5, 0.9])
    fig = plab.sweep_figure(result, tmp_path / "sweep.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    spans = [p for p in ax.patches]
    assert len(spans) == len(result.regions())
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert result.runs.steps_to_tol[result.best_index] is None  # (80 steps: no run reached tol)
    assert names == [n for n in REGIONS if n in result.labels] + [
        "diverged (off the scale)", f"best lr {result.best_lr:.3g}:\nlowest final loss\n(none reached tol)"]
    lo, hi = ax.get_xlim()
    assert lo < result.lrs[0] and hi > result.lrs[-1]
    heat = plab.heatmap_figure(result, tmp_path / "heat.png")
    mesh = heat.axes[0].collections[0]
    assert mesh.get_array().shape == (3, 24)
    assert (tmp_path / "heat.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="no lr x beta grid"):
        plab.heatmap_figure(sweep("bowl", "gd", [0.1, 0.2], steps=10))


def test_lr_find_figure(tmp_path) -> None:
    ds = data.load("digits")
    torch.manual_seed(0)
    model = models.MLP(64, 32, n_out=10)
    result = lr_find(model, models.cross_entropy, data.Batches(ds.X_train, ds.y_train, 64), "adam", num_iter=60)
    fig = plab.lr_find_figure(result, tmp_path / "lr.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_ylim()
    k = int(np.argmin(result.smoothed)) + 1
    assert lo <= result.losses[:k].min() and hi >= result.smoothed[0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("min_over_10") and t.endswith("(best)") for t in labels)


def test_figures_use_the_agg_canvas_not_pyplot() -> None:
    for module in (plab, pland):
        source = inspect.getsource(module)
        assert "import pyplot" not in source and "matplotlib.pyplot" not in source


def test_race_figure_of_plain_functions(tmp_path) -> None:
    shift = torch.tensor([1.0, -0.5], dtype=torch.float64)

    def f2(x: torch.Tensor) -> torch.Tensor:  # a function of one point: drawn through vmap
        return ((x - shift) ** 2).sum() + 0.3 * torch.sin(3 * x[0])

    two = race(f2, [("gd", {"lr": 0.05}), ("adam", {"lr": 0.1})], x0=[-1.5, 1.0], steps=100)
    fig = plab.race_figure(two, tmp_path / "f2.png")
    ax = fig.axes[0]
    x0, x1 = ax.get_xlim()
    assert x0 < -1.5 and x1 > 1.0 and len(ax.collections) >= 2  # a box around the paths, with contours
    three = race(lambda x: ((x - 1) ** 2).sum(), ["gd", "adam"], x0=[0.0, 0.0, 0.0], steps=50)
    fig = plab.race_figure(three, tmp_path / "f3.png")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "loss against step"
    with pytest.raises(ValueError, match="race_gif draws 2-D paths; these runs have 3 coordinates"):
        plab.race_gif(three, tmp_path / "f3.gif")


def test_sweep_best_lr_is_named_in_the_legend_at_either_edge() -> None:
    """The best lr's label once sat in the axes, on the curve (and near the right edge ran past the
    axes, squeezing the plot and cutting the title): the legend beside the axes names it now."""
    for lr_min, lr_max in ((1e-4, 1.0), (0.5, 50.0)):
        result = sweep("rosenbrock", "adam", np.logspace(np.log10(lr_min), np.log10(lr_max), 16), steps=300)
        fig = plab.sweep_figure(result)
        ax = fig.axes[0]
        assert not [t for t in ax.texts if "best lr" in t.get_text()]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert f"best lr {result.best_lr:.3g}:\nlowest final loss\n(none reached tol)" in labels, labels
        assert text_problems(fig) == [], (lr_min, text_problems(fig))


def test_a_run_that_overflows_at_once_still_shows_its_start_loss() -> None:
    """exp(x**2) from (3, 3) with lr 0.5 is inf after one step: its one finite loss is a marker
    (a one-point line drew nothing, leaving the loss panel empty)."""
    result = race("exp(x**2) + y**2", [("gd", {"lr": 0.5})], steps=50, x0=(3.0, 3.0))
    assert result.runs[0].diverged and result.runs[0].steps == 1
    fig = plab.race_figure(result)
    loss_ax = fig.axes[1]
    (line,) = [ln for ln in loss_ax.lines if len(ln.get_xdata()) == 1 and ln.get_marker() == "o"]
    assert float(line.get_ydata()[0]) == pytest.approx(np.exp(9.0) + 9.0)


def test_long_titles_wrap_inside_the_figure_and_clear_the_legends() -> None:
    """A sweep's title ran into the legend beside the axes, and a long landscape cut titles off at the
    canvas edge: every title now wraps to its figure, above the legends."""
    result = sweep(LONG, "adamw", np.logspace(-3, 0, 16), steps=50, x0=[2.0, 1.0], betas=[0.5, 0.9])
    for fig in (plab.sweep_figure(result), plab.heatmap_figure(result)):
        assert text_problems(fig) == []
        assert "\n" in fig._suptitle.get_text() and LONG in fig._suptitle.get_text().replace("\n", " ")
    # the plain sweep's line ran at AdamW's own beta1: the title says which
    assert "AdamW (beta1=0.9, its default) on " in plab.sweep_figure(result)._suptitle.get_text()
    runs = race(LONG, [("gd", {"lr": 0.05}), ("adam", {"lr": 0.1})], x0=[2.0, 1.0], steps=50)
    assert text_problems(plab.race_figure(runs)) == []
    small = race("bowl", ["gd", "adam"], steps=20)
    assert text_problems(plab.race_figure(small, title="x" * 40 + " " + "y " * 120)) == []


def test_lr_find_legend_hides_no_part_of_the_curve() -> None:
    """The legend sat in the upper left, over the start of the curve (where the loss is highest)."""
    ds = data.load("breast_cancer")
    torch.manual_seed(0)
    model = models.build_for(ds, "logistic")
    result = lr_find(model, models.loss_for_model(ds, model), data.Batches(ds.X_train, ds.y_train, 64), "gd",
                     start_lr=1e-5, end_lr=100)
    fig = plab.lr_find_figure(result)
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    FigureCanvasAgg(fig).draw()
    legend, axes = fig.legends[0].get_window_extent(), fig.axes[0].get_window_extent()
    assert legend.y1 < axes.y0  # below the axes
    assert text_problems(fig) == []


def test_a_sweep_that_falls_without_limit_is_not_drawn_as_blowing_up() -> None:
    """On the saddle x^2 - y^2 large lrs leave the bound with f falling towards -inf: their marks sat on
    the top edge, as if the loss had blown up."""
    result = sweep("saddle", "gd", np.logspace(-3, 0, 16), steps=100)
    down = [i for i, lab in enumerate(result.labels) if lab == "divergent"]
    assert down and all(result.final_losses[i] < result.initial_loss for i in down)
    fig = plab.sweep_figure(result)
    ax = fig.axes[0]
    marks = {ln.get_marker(): ln for ln in ax.lines if ln.get_linestyle() == "None"}
    assert "x" not in marks and list(marks["v"].get_ydata()) == [0.04] * len(down)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "left the bound, f falling\nwithout limit (off the scale)" in labels
    assert "diverged (off the scale)" not in labels


def test_a_race_run_that_falls_without_limit_ends_on_the_bottom_edge_and_one_step_is_singular() -> None:
    result = race("saddle", [("gd", {"lr": 0.1}), ("gd", {"lr": 1e10})], steps=200)
    falls, blows = result.runs
    assert falls.diverged and blows.diverged and falls.losses[-1] < falls.losses[0]
    loss_ax = plab.race_figure(result).axes[1]
    crosses = [ln for ln in loss_ax.lines if ln.get_marker() == "x"]
    # (f -> -inf: the cross sat on the top edge, as if the loss had blown up; lr 1e10 overflows: top)
    assert [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in crosses] == [(falls.steps, 0.0), (blows.steps, 1.0)]
    one = race("bowl", [("newton", {})], steps=1)
    fig = plab.race_figure(one)
    assert "Race on bowl: 1 step, tol" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Newton (lr=1): 1 step"]
