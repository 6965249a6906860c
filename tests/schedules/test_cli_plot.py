"""``descend schedule`` and ``plot_schedules``."""

from __future__ import annotations

import typer
from matplotlib.figure import Figure
from typer.testing import CliRunner

from descend import schedules as ds
from descend.cli.schedule import sample_steps, schedule_cmd, schedule_command
from descend.plots.schedules import plot_schedules
from descend.schedules.registry import build_schedule
from tests.cli_app import app_with

PNG = b"\x89PNG\r\n\x1a\n"


def make_app() -> typer.Typer:
    return app_with(lambda app: app.command("schedule")(schedule_cmd))


def table_rows(output: str) -> dict[str, str]:
    """{step: lr} from the Rich table the command prints."""
    rows = [line.split("│") for line in output.splitlines() if line.count("│") == 3]
    return {cells[1].strip(): cells[2].strip() for cells in rows}


def test_cli_prints_values_and_writes_the_plot(tmp_path) -> None:
    out = tmp_path / "cosine.png"
    result = CliRunner().invoke(
        make_app(), ["schedule", "cosine", "--lr", "0.1", "--steps", "1000", "--warmup", "100", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "warmup(cosine(0.1, 900), 100)" in result.output
    lines = table_rows(result.output)
    assert lines["0"] == "0" and lines["1"] == "0.001" and lines["99"] == "0.099" and lines["100"] == "0.1"
    assert lines["500"] == "0.0586824" and lines["999"] == "3.04617e-07"
    assert out.read_bytes().startswith(PNG)


def test_cli_step_decay_of_note_003() -> None:
    result = CliRunner().invoke(make_app(), ["schedule", "multi-step:milestones=30/60/90", "--steps", "100"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["0"] == "0.1" and rows["30"] == "0.01" and rows["60"] == "0.001" and rows["99"] == "0.0001"


def test_cli_bad_input_exits_2_with_the_reason() -> None:
    runner = CliRunner()
    for args, message in [
        (["schedule", "cosine:gamma=0.5"], "gamma does not apply to cosine; it takes decay_steps, final_lr, warmup"),
        (["schedule", "step"], "step needs every, e.g. step:every=30"),
        (["schedule", "step:every=10,gamma=1.5"], "gamma must be in (0, 1], got 1.5"),
        (["schedule", "cosine", "--steps", "100", "--warmup", "100"], "warmup must be an integer in [1, steps - 1]"),
        (["schedule", "multi-step:milestones=60/30"], "milestones must be strictly increasing"),
            (["schedule", "cosine", "--gamma", "0.5"], "No such option: --gamma"),
        (["schedule", "sine"], "unknown schedule 'sine'"),
        (["schedule", "cosine", "--steps", "0"], "steps must be an integer >= 1, got 0"),
    ]:
        result = runner.invoke(make_app(), args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)


def test_cli_help_has_examples_and_every_schedule_with_its_options() -> None:
    result = CliRunner().invoke(make_app(), ["schedule", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "descend schedule cosine --lr 0.1 --steps 1000 --warmup 100 --plot" in text
    assert "descend schedule multi-step:milestones=30/60/90,gamma=0.1 --steps 100" in text
    for line in ("multi-step: milestones, gamma=0.1", "inverse-time: rate, every=1, staircase=False",
                 "cyclic: max_lr, steps_up, steps_down=auto, mode=triangular, gamma=1.0", "piecewise: boundaries, values"):
        assert line in text, line


def test_build_schedule_maps_names_and_options() -> None:
    assert build_schedule("cosine", 500) == ds.cosine(0.1, 500)
    assert build_schedule("cosine", 500, warmup=50, warmup_start=0.01) == ds.warmup(ds.cosine(0.1, 450), 50, start=0.01)
    assert build_schedule("one-cycle", 300, lr=1.0, decay_steps=200) == ds.one_cycle(1.0, 200)
    assert build_schedule("piecewise", 10, boundaries="3,6", values="0.05,0.01") == ds.piecewise(0.1, [3, 6], [0.05, 0.01])
    assert build_schedule("cyclic", 10, lr=0.01, max_lr=0.1, steps_up=5, mode="exp_range", gamma=0.9) == ds.cyclic(
        0.01, 0.1, 5, mode="exp_range", gamma=0.9
    )
    assert build_schedule("inverse_time", 10, lr=0.2, rate=1.0) == ds.inverse_time(0.2, 1.0)
    assert sample_steps(100) == [0, 1, 12, 25, 37, 50, 62, 74, 87, 99]
    assert sample_steps(1) == [0]


def test_schedule_command_returns_the_schedule(tmp_path, capsys) -> None:
    s = schedule_command("exponential", 50, tmp_path / "e.svg", lr=0.2, gamma=0.95)
    assert s == ds.exponential(0.2, 0.95)
    assert "0.19" in capsys.readouterr().out
    assert (tmp_path / "e.svg").read_text().lstrip().startswith("<?xml")


def test_plot_schedules_draws_what_the_schedules_return(tmp_path) -> None:
    a, b = ds.cosine(0.1, 50), ds.step(0.1, 10, gamma=0.5)
    fig = plot_schedules({"cosine": a, "step": b}, 50, tmp_path / "both.png", title="two", log=True)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["cosine", "step"]
    assert list(lines[0].get_ydata()) == [a(n) for n in range(50)]
    assert list(lines[1].get_ydata()) == [b(n) for n in range(50)]
    assert ax.get_yscale() == "log" and ax.get_title() == "two"
    assert (tmp_path / "both.png").read_bytes().startswith(PNG)
    single = plot_schedules(a, 10)
    assert single.axes[0].get_lines()[0].get_label() == "cosine(0.1, 50)"


def test_cli_takes_a_spec_and_creates_plot_folders(tmp_path) -> None:
    out = tmp_path / "new" / "dir" / "ms.png"  # folders are created
    result = CliRunner().invoke(
        make_app(), ["schedule", "multi-step:milestones=30/60/90,gamma=0.5", "--steps", "100", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["25"] == "0.1" and rows["30"] == "0.05" and rows["60"] == "0.025" and rows["99"] == "0.0125"
    assert out.read_bytes().startswith(PNG)
    result = CliRunner().invoke(make_app(), ["schedule", "multi_step:milestones=60/30"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: milestones must be strictly increasing integers >= 1, got [60, 30]" in result.output
