"""A checkpoint with a valid checksum but the wrong structure (types, missing or extra entries,
tensors of another shape or dtype, the state of another optimizer or model) is refused in plain
words, by the API and by ``descend train --resume``, before anything changes: no traceback."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from descend import data
from descend.train import CheckpointError, TrainConfig, Trainer, build_model, load_checkpoint, train
from descend.train import checkpoint as ckpt
from tests.cli_app import descend

IRIS = data.load("iris")
RUN = dict(lr=0.1, epochs=2, batch_size=32, schedule="cosine", progress=False, plots=False, tensorboard=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A softmax run on iris with a cosine schedule (a Scheduler state), and a momentum run's state."""
    base = tmp_path_factory.mktemp("runs")
    train("iris", "softmax", optimizer="adam", out=base / "adam", **RUN)
    train("iris", "softmax", optimizer="momentum", out=base / "momentum", **RUN)
    return base / "adam", load_checkpoint(base / "adam" / "checkpoint.pt"), load_checkpoint(
        base / "momentum" / "checkpoint.pt")


def first(d: dict) -> str:
    return next(iter(d))


def put(*keys: Any, value: Any) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        for k in keys[:-1]:
            state = state[k]
        state[keys[-1]] = value
    return change


def drop(*keys: Any) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        for k in keys[:-1]:
            state = state[k]
        del state[keys[-1]]
    return change


def each_state(change: Callable[[dict], None]) -> Callable[[dict], None]:
    return lambda s: [change(st) for st in s["optimizer"]["state"].values()]


# (what is changed in the saved state, the words the refusal must say)
CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("iteration as text", put("iteration", value="6"), r"is corrupt: its iteration is '6' \(str\), where a whole "
                                                        r"number >= 0 belongs"),
    ("a negative epoch", put("epoch", value=-1), "its epoch is -1 .*whole number >= 0"),
    ("an unknown entry", put("extra", value=1), r"it has entries no descend run writes \(extra\)"),
    ("no running sums", drop("running", "ev"), "its running lacks ev"),
    ("running sums as text", put("running", value="x"), "its running is 'x'"),
    ("history of numbers", put("history", value=[1, 2]), r"its history\[0\] is 1"),
    ("a loss as text", lambda s: s["log"].append({"type": "iteration", "iteration": 1, "loss": "low"}),
     r"its log\[\d+\]\.loss is 'low'"),
    ("no phase record", put("phase_log", value=[]), "its phase_log .*at least the record of the first phase"),
    ("rng of another size", put("rng", "torch", value=torch.zeros(3, dtype=torch.uint8)),
     "its rng.torch .*not a state of torch's CPU generator"),
    ("no numpy rng", drop("rng", "numpy"), "its rng lacks numpy"),
    ("model as a list", put("model", value=[1, 2]), "its model is a list of 2 items, where a model state dict"),
    ("model tensor of another shape", lambda s: s["model"].__setitem__(first(s["model"]), torch.zeros(2, 2)),
     r"its model tensors do not match its own signature \(names and shapes; weight\)"),
    ("an extra model tensor", lambda s: s["model"].__setitem__("extra", torch.zeros(1)), "extra"),
    ("optimizer as text", put("optimizer", value="adam"), "its optimizer is 'adam'"),
    ("optimizer step as text", each_state(put("step", value="x")), r"optimizer.state\[0\].step is 'x'"),
    ("scheduler as text", put("scheduler", value="cosine"), "its scheduler is 'cosine'"),
    ("a changed metrics digest type", put("metrics_sha256", value=5), "its metrics_sha256 is 5"),
    ("config as text", put("config", value="x"), "its config is 'x'"),
    # against this run: refused as not fitting it
    ("phase past the last", put("phase", value=7), r"does not fit this run: its phase is 7 .*below 1"),
    ("a position no run reaches", put("batch_in_epoch", value=10**6),
     r"its position \(iteration 6, epoch 2, 1000000 batches into the epoch\) is not one of this run"),
    ("model tensor of another dtype",
     lambda s: s["model"].__setitem__(first(s["model"]), s["model"][first(s["model"])].double()),
     r"other dtypes than this model's \(weight: torch.float64 saved, torch.float32 here\)"),
    ("moments of another dtype", each_state(lambda st: st.__setitem__("V", st["V"].to(torch.int32))),
     r"optimizer state 'V' of parameter 0 is a torch.int32 tensor .*floating-point tensor belongs"),
    ("lr as text", lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", "fast"),
     r"optimizer's lr of param group 0 is 'fast' \(str\), where a number"),
    ("beta1 out of range", lambda s: s["optimizer"]["param_groups"][0].__setitem__("beta1", 7.0),
     r"holds a value Adam refuses: beta1 must be in \[0, 1\), got 7.0"),
    ("scheduler base lr as text", put("scheduler", "base_lrs", value=["a"]), "base_lrs must be numbers"),
]


def test_a_crafted_state_with_a_valid_checksum_is_refused_clearly(saved, tmp_path: Path) -> None:
    folder, good, _ = saved
    for name, change, words in CASES:
        state = copy.deepcopy(good)
        change(state)
        path = tmp_path / "crafted.pt"
        path.write_bytes(ckpt.serialize(state))
        model = build_model("softmax", IRIS, seed=0)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = Trainer(model, IRIS,
                          TrainConfig(dataset="iris", model="softmax", optimizer="adam", **{k: v for k, v in RUN.items() if k != "plots"}))
        with pytest.raises(CheckpointError, match=words) as err:
            trainer.fit(resume=path)
        assert str(path) in str(err.value), name
        assert "Traceback" not in str(err.value) and "weights_only" not in str(err.value), name
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), name  # nothing changed


def test_another_optimizers_or_models_state_is_refused(saved, tmp_path: Path) -> None:
    folder, good, momentum = saved
    state = copy.deepcopy(good)
    state["optimizer"] = momentum["optimizer"]
    path = tmp_path / "other.pt"
    path.write_bytes(ckpt.serialize(state))
    with pytest.raises(CheckpointError, match="saved by descend.optim.Momentum and cannot be loaded into "
                                              "descend.optim.Adam"):
        train("iris", "softmax", optimizer="adam", resume=path, **RUN)
    mlp = build_model("mlp", IRIS, {"hidden": (8,)}, seed=0).state_dict()
    state = copy.deepcopy(good)
    state["model"] = mlp  # the tensors of another model, under the signature of this one
    path.write_bytes(ckpt.serialize(state))
    with pytest.raises(CheckpointError, match=r"is corrupt: its model tensors do not match its own signature"):
        train("iris", "softmax", optimizer="adam", resume=path, **RUN)


def test_descend_train_resume_refuses_a_crafted_checkpoint_in_one_line(saved, tmp_path: Path) -> None:
    """The real command: exit code 2, one 'error:' line naming the entry, no traceback, nothing changed."""
    folder, good, _ = saved
    for name, change, words in [  # (one case: the command starts in seconds, the API test above has the rest)
        ("model", lambda s: s["model"].__setitem__(first(s["model"]), torch.zeros(2, 2)),
         "its model tensors do not match its own signature"),
    ]:
        run = tmp_path / name
        run.mkdir()
        for f in ("metrics.jsonl", "summary.json"):
            (run / f).write_bytes((folder / f).read_bytes())
        state = copy.deepcopy(good)
        change(state)
        (run / "checkpoint.pt").write_bytes(ckpt.serialize(state))
        before = snapshot(run)
        proc = descend("train", "--out", str(run), "--resume", "--no-progress")
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        line = " ".join(proc.stderr.split())
        assert line.startswith(f"error: checkpoint {run / 'checkpoint.pt'} is corrupt: {words}"), line
        assert snapshot(run) == before
