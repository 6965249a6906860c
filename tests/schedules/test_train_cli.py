"""All 13 schedules through ``descend train --schedule NAME:key=value,...`` (the real CLI).

Each run is a tiny one on iris (12 iterations, lr 0.1); the lr each step used
(the ``iteration`` lines of metrics.jsonl) must equal the Python schedule
built by hand with the same arguments, or hand-computed values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from descend import schedules as ds
from descend.cli import app

N, LR = 12, 0.1

# spec on the command line -> the same schedule written in Python by hand
CASES = {
    "constant": ds.constant(LR),
    "step:every=2,gamma=0.5": ds.step(LR, 2, gamma=0.5),
    "multi-step:milestones=3/6/9,gamma=0.1": ds.multi_step(LR, [3, 6, 9], gamma=0.1),
    "exponential:gamma=0.9": ds.exponential(LR, 0.9),
    "inverse-time:rate=0.5": ds.inverse_time(LR, 0.5),
    "inverse_sqrt:k=2": ds.inverse_sqrt(LR, 2.0),
    "linear:final_lr=0.01": ds.linear(LR, N, final_lr=0.01),
    "polynomial:power=2": ds.polynomial(LR, N, power=2.0),
    "cosine:final_lr=0.001,warmup=2": ds.warmup(ds.cosine(LR, N - 2, final_lr=0.001), 2),
    "cosine-restarts:period=4,mult=2": ds.cosine_restarts(LR, 4, mult=2),
    "one_cycle:pct_start=0.25,anneal=linear": ds.one_cycle(LR, N, pct_start=0.25, anneal="linear"),
    "cyclic:max_lr=0.5,steps_up=3,mode=triangular2": ds.cyclic(LR, 0.5, 3, mode="triangular2"),
    "piecewise:boundaries=4/8,values=0.05/0.01": ds.piecewise(LR, [4, 8], [0.05, 0.01]),
}


def train(out: Path, *args: str):
    return CliRunner().invoke(
        app,
        ["train", "iris", "--model", "softmax", "--optimizer", "sgd", "--lr", str(LR), "--iterations", str(N),
         "--log-every", "1", "--no-progress", "--out", str(out), *args],
    )


def step_lrs(out: Path) -> list[float]:
    """The lr each optimizer step used, in order."""
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [d["lr"] for d in lines if d["type"] == "iteration"]


def test_the_thirteen_cases_are_every_schedule() -> None:
    assert sorted({spec.split(":")[0].replace("_", "-") for spec in CASES}) == sorted(ds.names())
    assert len(CASES) == 13


@pytest.mark.parametrize("spec", list(CASES))
def test_every_schedule_trains_from_the_cli(tmp_path, spec) -> None:
    r = train(tmp_path / "run", "--schedule", spec)
    assert r.exit_code == 0, r.output
    assert step_lrs(tmp_path / "run") == pytest.approx([CASES[spec](n) for n in range(N)], rel=1e-12, abs=1e-15)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations"] == N


def test_hand_values_of_the_issue_examples(tmp_path) -> None:
    r = train(tmp_path / "ms", "--schedule", "multi-step:milestones=3/6/9,gamma=0.1")
    assert r.exit_code == 0, r.output
    assert step_lrs(tmp_path / "ms") == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 3 + [1e-4] * 3, rel=1e-12)
    r = train(tmp_path / "st", "--schedule", "step:every=2,gamma=0.5")
    assert r.exit_code == 0, r.output
    assert step_lrs(tmp_path / "st") == pytest.approx([0.1 * 0.5 ** (n // 2) for n in range(N)], rel=1e-12)
    r = train(tmp_path / "it", "--schedule", "inverse-time:rate=0.5", "--warmup", "2")
    assert r.exit_code == 0, r.output
    assert step_lrs(tmp_path / "it") == pytest.approx([0.0, 0.05] + [0.1 / (1 + 0.5 * n) for n in range(N - 2)])
    r = train(tmp_path / "ex", "--schedule", "exponential:gamma=0.9")
    assert r.exit_code == 0, r.output
    assert step_lrs(tmp_path / "ex") == pytest.approx([0.1 * 0.9**n for n in range(N)], rel=1e-12)
    cos = [0.1 * (1 + math.cos(math.pi * n / N)) / 2 for n in range(N)]
    r = train(tmp_path / "cos", "--schedule", "cosine")
    assert r.exit_code == 0, r.output
    assert step_lrs(tmp_path / "cos") == pytest.approx(cos, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sine", "unknown schedule 'sine'; choose one of constant, step, multi-step, exponential, inverse-time"),
        ("multi_step", "multi-step needs milestones, e.g. multi-step:milestones=30/60/90"),
        ("step:every=2,gama=0.5", "gama does not apply to step; it takes every, gamma, warmup"),
        ("multi-step:milestones=6/3", "milestones must be strictly increasing integers >= 1, got [6, 3]"),
        ("exponential:gamma=1.5", "gamma must be in (0, 1], got 1.5"),
        ("step:every", "schedule must be key=value pairs"),
        ("plateau", "plateau observes a metric"),
        ("cosine:lr=0.5", "lr is not an option of cosine"),
    ],
)
def test_bad_schedules_are_one_line_and_exit_2(tmp_path, spec, message) -> None:
    r = train(tmp_path / "bad", "--schedule", spec)
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert text.startswith("error: ") and message in text, text
    assert "Traceback" not in r.output
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()


def test_train_help_shows_a_schedule_spec() -> None:
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "multi-step:milestones=30/60/90,gamma=0.1" in " ".join(r.output.split())
