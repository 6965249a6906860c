"""The loop's options against hand computations; what a run shows and records."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console

from descend import data, optim
from descend.cli.train import Show
from descend.models import cross_entropy
from descend.plots.training import plot_training
from descend.train import TrainConfig, Trainer, build_model, read_metrics, train
from descend.train.observe import TensorBoard

DIGITS = data.load("digits")
PNG = b"\x89PNG\r\n\x1a\n"


def one_step(**kw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parameters before and after one full-batch SGD step (lr 1), and the raw gradient."""
    model = build_model("softmax", DIGITS, seed=0)
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
    probe = build_model("softmax", DIGITS, seed=0)
    cross_entropy(probe(DIGITS.X_train), DIGITS.y_train).backward()
    grad = torch.cat([p.grad.reshape(-1) for p in probe.parameters()])
    cfg = TrainConfig(optimizer="sgd", lr=1.0, batch_size=None, iterations=1, progress=False, evaluate=False, **kw)
    Trainer(model, DIGITS, cfg).fit()
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return before, after, grad


def test_clipping_by_norm_and_by_value() -> None:
    before, after, grad = one_step(clip_norm=0.01)
    assert grad.norm() > 0.01
    assert (before - after).norm().item() == pytest.approx(0.01, rel=1e-5)
    torch.testing.assert_close(before - after, grad * (0.01 / grad.norm()), rtol=1e-4, atol=1e-7)
    before, after, grad = one_step(clip_value=1e-3)
    torch.testing.assert_close(before - after, grad.clamp(-1e-3, 1e-3), rtol=0, atol=1e-7)
    assert (grad.abs() > 1e-3).any()


def test_gradient_accumulation_equals_the_larger_batch() -> None:
    """Two batches of 32 accumulated make one step on the 64 examples (every epoch, last group 32 + 22)."""
    results = []
    for b, k in ((64, 1), (32, 2)):
        model = build_model("mlp", DIGITS, seed=0)
        cfg = TrainConfig(optimizer="momentum", lr=0.05, batch_size=b, accumulate=k, shuffle=False, epochs=2,
                          progress=False, evaluate=False)
        r = Trainer(model, DIGITS, cfg).fit()
        results.append((model, r))
    (m1, r1), (m2, r2) = results
    assert r1.iterations == r2.iterations == 34
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert r1.history[-1]["train_loss"] == pytest.approx(r2.history[-1]["train_loss"], rel=1e-6)


def test_weight_decay_and_l1_reach_the_optimizer() -> None:
    model = build_model("softmax", DIGITS, seed=0)
    trainer = Trainer(model, DIGITS, TrainConfig(optimizer="sgd", weight_decay=1e-3, l1=1e-4, epochs=1))
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, optim.SGD) and group["weight_decay"] == 1e-3 and group["l1"] == 1e-4
    assert group["lr"] == 0.01  # SGD's default lr: no lr given


def test_metric_lines_hold_the_running_losses_and_the_lr() -> None:
    model = build_model("softmax", DIGITS, seed=0)
    losses: list[float] = []

    def loss(out, y):
        value = cross_entropy(out, y)
        if torch.is_grad_enabled():
            losses.append((value.item(), len(y)))
        return value

    cfg = TrainConfig(optimizer="sgd", lr=0.1, schedule="linear", batch_size=100, epochs=2, log_every=4,
                      progress=False)
    r = Trainer(model, DIGITS, cfg, loss=loss).fit()  # 11 iterations per epoch
    assert [x["iteration"] for x in r.log] == [4, 8, 12, 16, 20]
    window = losses[4:8]
    assert r.log[1]["loss"] == pytest.approx(sum(v * n for v, n in window) / sum(n for _, n in window), rel=1e-12)
    assert r.log[1]["lr"] == pytest.approx(0.1 * (1 - 7 / 22))  # the lr of iteration 8 (step 7 of 22)
    epoch1 = losses[:11]
    assert r.history[0]["train_loss"] == pytest.approx(sum(v * n for v, n in epoch1) / 1078, rel=1e-12)
    assert r.history[0]["lr"] == pytest.approx(0.1 * (1 - 11 / 22))
    assert set(r.history[0]) == {"type", "epoch", "iteration", "phase", "train_loss", "val_loss", "val_accuracy",
                                 "lr", "elapsed"}
    assert r.log[0]["examples_per_s"] > 0


def test_progress_reaches_the_hook_and_the_cli_bar_draws_it() -> None:
    events: list[dict] = []
    r = train("iris", "softmax", optimizer="sgd", lr=0.1, epochs=3, batch_size=30, log_every=1, on_progress=events.append)
    assert [e["type"] for e in events[:3]] == ["phase", "start", "iteration"]
    lines = [e for e in events if e["type"] == "iteration"]
    assert [e["iteration"] for e in lines] == list(range(1, 10)) and {e["total"] for e in events} == {9}
    assert [e["loss"] for e in lines] == [x["loss"] for x in r.log] and {e["epochs"] for e in events} == {3}
    assert len([e for e in events if e["type"] == "epoch"]) == 3
    buf = io.StringIO()
    show = Show(Console(file=buf, force_terminal=True, width=140, color_system=None), "bar")
    train("iris", "softmax", optimizer="sgd", lr=0.1, epochs=3, batch_size=30, log_every=1, on_progress=show)
    show.close()
    text = buf.getvalue()
    assert "epoch 3/3" in text and "9/9" in text and "loss" in text and "lr 0.1" in text and "ex/s" in text
    quiet: list[dict] = []
    train("iris", "softmax", epochs=1, on_progress=quiet.append, progress=False)
    assert quiet == []


def test_tensorboard_is_installed_and_writes_event_files(tmp_path) -> None:
    """tensorboard is a dependency of the logging extra (make test installs it); see test_checkpoint_files."""
    assert TensorBoard.available()
    r = train("iris", "softmax", epochs=1, out=tmp_path / "run", progress=False)
    assert r.status == "completed" and list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    train("iris", "softmax", epochs=1, out=tmp_path / "off", progress=False, tensorboard=False)
    assert not (tmp_path / "off" / "tensorboard").exists()


def test_summary_and_figures(tmp_path) -> None:
    def draw(result) -> list:
        return plot_training(result.metrics, result.run_dir / "figures")

    r = train("diabetes", "linear", optimizer="sgd", lr=0.1, batch_size=None, epochs=30, out=tmp_path, log_every=5,
              progress=False, on_end=draw)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["train_loss"] == r.final["train_loss"] and "test_accuracy" not in s
    assert s["data"] == {"task": "regression", "n_classes": None, "name": "diabetes", "n_train": 265, "n_val": 89,
                         "n_test": 88, "n_features": 10, "batch_size": 265, "world_size": 1, "kind": "batches"}
    assert s["model"] == {"class": "Linear", "parameters": 11}
    assert s["config"]["batch_size"] is None and s["config"]["epochs"] == 30
    assert sorted(p.name for p in r.figures) == ["loss.png", "lr.png"]  # no accuracy for regression
    assert all(p.read_bytes().startswith(PNG) for p in r.figures)
    assert s["figures"] == [str(p) for p in r.figures]
    assert not list(tmp_path.glob("other/figures"))
    # the plots read records from memory as well as from the file
    again = plot_training(read_metrics(tmp_path / "metrics.jsonl"), tmp_path / "again", title="diabetes")
    assert [p.name for p in again] == ["loss.png", "lr.png"]


def test_bad_configurations_are_rejected_before_anything_runs() -> None:
    model = build_model("softmax", DIGITS)
    for kw, message in [
        (dict(epochs=2, iterations=3), "give epochs or iterations, not both"),
        (dict(accumulate=0), "accumulate must be an integer >= 1"),
        (dict(clip_norm=-1.0), "clip_norm must be None or a number > 0"),
        (dict(batch_size=0), "batch size must be an integer >= 1"),
        (dict(schedule_unit="step"), "schedule_unit must be 'iteration' or 'epoch'"),
        (dict(swats=True, phases="adam:1,sgd:1"), "give phases or swats, not both"),
    ]:
        with pytest.raises(ValueError, match=message):
            Trainer(model, DIGITS, TrainConfig(**kw))
    with pytest.raises(ValueError, match="swats starts from Adam or AdamW"):
        Trainer(model, DIGITS, TrainConfig(optimizer="sgd", swats=True))
    with pytest.raises(ValueError, match="Newton takes full steps"):
        Trainer(model, DIGITS, TrainConfig(optimizer="newton", accumulate=2))
    with pytest.raises(ValueError, match="data must be a descend.data.Dataset"):
        Trainer(model, 42, TrainConfig())


def test_batchnorm_uses_running_statistics_at_evaluation() -> None:
    model = build_model("mlp", DIGITS, {"hidden": (32,), "batchnorm": True}, seed=0)
    trainer = Trainer(model, DIGITS, TrainConfig(optimizer="adam", lr=1e-2, epochs=3, progress=False))
    r = trainer.fit()
    assert model.training  # evaluations switch to eval mode and back
    bn = model.net[1]
    assert int(bn.num_batches_tracked) == 3 * 17  # the running statistics moved once per training batch
    X, y = DIGITS.test
    model.eval()
    with torch.no_grad():
        expected = cross_entropy(model(X), y).item()
    model.train()
    with torch.no_grad():
        batch_stats = cross_entropy(model(X), y).item()  # what evaluating in training mode would give
    assert r.final["test_loss"] == pytest.approx(expected, rel=1e-6)
    assert abs(batch_stats - expected) > 1e-4


def test_the_per_iteration_loss_is_labelled_as_the_mean_of_its_window():
    from descend.plots.training import loss_figure, window_label

    assert window_label([10, 20, 30]) == "train loss (mean of each 10 steps)"
    assert window_label([1, 2, 3]) == "train loss (each step)"
    assert window_label([10, 20, 25]) == "train loss (mean since the previous point)"
    records = [{"type": "iteration", "iteration": i, "loss": 1.0 / i} for i in (5, 10, 15)]
    fig = loss_figure(records)
    assert [line.get_label() for line in fig.axes[0].lines] == ["train loss (mean of each 5 steps)"]
