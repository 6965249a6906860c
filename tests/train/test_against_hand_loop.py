"""The Trainer against the loop a user writes by hand with torch.optim, on setups no one chose.

Beside each Trainer run, the hand loop (``hand_loop``: seed, then ``for epoch: for xb, yb: zero_grad;
backward; step; scheduler``) with the same seed, data order and model, in float64: the same final
parameters and buffers bit for bit, the same per-epoch training losses and counts. (test_phases.py and
test_loaders.py do this for plain models; here BatchNorm, dropout, frozen and free parameters, tuple and
dict outputs, parts without gradients, schedules, masks, loaders evaluated on.)
"""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from descend import data, models, optim, schedules
from descend.train import PartOptimizer, Phase, TrainConfig, Trainer, build_model, read_metrics
from tests.cli_app import descend

gen = torch.Generator().manual_seed(0)
X = torch.randn(50, 6, generator=gen, dtype=torch.float64)
Y = (X[:, 0] + X[:, 1] > 0).long()
XV = torch.randn(20, 6, generator=gen, dtype=torch.float64)
YV = (XV[:, 0] + XV[:, 1] > 0).long()


class Net(nn.Module):
    """BatchNorm, dropout and a learnable scale that belongs to no layer."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.bn, self.drop, self.b = nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.3), nn.Linear(8, 2)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.drop(torch.relu(self.bn(self.a(x))))) * self.scale


def net() -> Net:
    torch.manual_seed(1)
    return Net().double()


def same(a: nn.Module, b: nn.Module) -> None:
    """Every parameter and buffer bit for bit (running BatchNorm statistics and counts included)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs by {(sa[k] - sb[k]).abs().max().item():.3g}"


def hand_loop(model: nn.Module, opt: torch.optim.Optimizer, epochs: int, batches: Callable[[int], object],
              loss_fn=F.cross_entropy, after_step=lambda: None, after_epoch=lambda e: None, seed: int = 0,
              lrs: list[float] | None = None):
    """The loop of the brief; returns each epoch's mean training loss over its examples (``lrs``:
    gets the lr of every step)."""
    torch.manual_seed(seed)
    model.train()
    losses = []
    for epoch in range(epochs):
        total, n = 0.0, 0
        for xb, yb in batches(epoch):
            if lrs is not None:
                lrs.append(opt.param_groups[0]["lr"])
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            after_step()
            total += loss.item() * len(yb)
            n += len(yb)
        losses.append(total / n)
        after_epoch(epoch)
    return losses


class Holding:
    """The hand loop's ``opt``: the optimizers held now (a phase's one, or one per part), stepped together."""

    def __init__(self, *opts: torch.optim.Optimizer) -> None:
        self.opts, self.steps = list(opts), 0

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.opts for g in o.param_groups]

    def zero_grad(self) -> None:
        for o in self.opts:
            o.zero_grad()

    def step(self) -> None:
        for o in self.opts:
            o.step()
        self.steps += 1


def descend_order(batch_size, shuffle=True, drop_last=False):
    """The Trainer's order for an (X, y) pair: descend.data.Batches with the run's seed."""
    b = data.Batches(X, Y, batch_size, shuffle=shuffle, seed=0, drop_last=drop_last)
    return b.iter_epoch


def held_out(model: nn.Module, loss: Callable = F.cross_entropy) -> float:
    """The validation loss of ``model`` in eval mode, as the Trainer evaluates it; back to train mode after."""
    model.eval()
    with torch.no_grad():
        value = loss(model(XV), YV).item()
    model.train()
    return value


def losses_of(r) -> list[float]:
    return [h["train_loss"] for h in r.history]


OPTIMIZERS = {
    "SGD momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "Adam": lambda p: torch.optim.Adam(p, lr=0.01),
}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@pytest.mark.parametrize(("shuffle", "drop_last"), [(True, False), (False, False), (True, True)],
                         ids=["shuffled", "in order", "drop_last"])
def test_batchnorm_dropout_and_a_free_parameter_with_a_partial_last_batch(make, shuffle, drop_last) -> None:
    model = net()
    r = Trainer(model, (X, Y), epochs=3, batch_size=16, shuffle=shuffle, drop_last=drop_last, loss=F.cross_entropy,
                optimizer=lambda m: make(m.parameters()), progress=False).fit()
    hand = net()
    losses = hand_loop(hand, make(hand.parameters()), 3, descend_order(16, shuffle, drop_last))
    same(model, hand)
    assert losses_of(r) == losses
    per_epoch = 3 if drop_last else 4  # 50 = 3 * 16 + 2
    assert (r.iterations, r.epochs) == (3 * per_epoch, 3)
    assert [h["iteration"] for h in r.history] == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    assert int(model.bn.num_batches_tracked) == 3 * per_epoch
    assert model.scale.item() != 1.0  # the parameter outside any layer trained


def test_a_frozen_layer_with_clipping_and_an_optimizer_by_name() -> None:
    model = net()
    model.a.requires_grad_(False)
    Trainer(model, (X, Y), epochs=3, batch_size=16, optimizer="sgd", lr=0.5, optimizer_options={"momentum": 0.9},
            clip_norm=0.05, loss=F.cross_entropy, progress=False).fit()
    hand = net()
    hand.a.requires_grad_(False)

    class Clipped(Holding):
        def step(self) -> None:
            torch.nn.utils.clip_grad_norm_(hand.parameters(), 0.05)
            super().step()

    # frozen parameters have no gradient: the optimizer skips them
    hand_loop(hand, Clipped(torch.optim.SGD(hand.parameters(), lr=0.5, momentum=0.9)), 3, descend_order(16))
    same(model, hand)
    assert torch.equal(model.a.weight, net().a.weight)


@pytest.mark.parametrize("as_dict", [False, True], ids=["tuple", "dict"])
def test_tuple_and_dict_outputs_with_an_auxiliary_loss(as_dict: bool) -> None:
    class TwoOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(3)
            self.lin, self.drop = nn.Linear(6, 2), nn.Dropout(0.2)

        def forward(self, x):
            z = self.lin(self.drop(x))
            return {"logits": z, "aux": z.pow(2).mean()} if as_dict else (z, z.pow(2).mean())

    def loss(out, y):
        z, aux = (out["logits"], out["aux"]) if as_dict else out
        return F.cross_entropy(z, y) + 0.01 * aux

    model = TwoOut().double()
    r = Trainer(model, (X, Y), epochs=3, batch_size=16, optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=0.01),
                loss=loss, eval_data=(XV, YV), progress=False).fit()
    hand = TwoOut().double()
    opt = torch.optim.Adam(hand.parameters(), lr=0.01)
    val: list[float] = []

    def evaluate(epoch: int) -> None:
        val.append(held_out(hand, loss))

    losses = hand_loop(hand, opt, 3, descend_order(16), loss, after_epoch=evaluate)
    same(model, hand)
    assert losses_of(r) == losses and [h["val_loss"] for h in r.history] == val
    assert r.final["val_loss"] == val[-1] and "val_accuracy" not in r.final


def test_phases_switch_at_an_iteration_inside_an_epoch() -> None:
    model = net()
    cfg = TrainConfig(phases=[Phase(5, torch.optim.Adam, lr=0.01, unit="iteration"),
                              Phase(None, torch.optim.SGD, lr=0.1)],
                      iterations=12, batch_size=16, log_every=1, progress=False)
    r = Trainer(model, (X, Y), cfg, loss=F.cross_entropy).fit()
    hand = net()
    held = Holding(torch.optim.Adam(hand.parameters(), lr=0.01))
    lrs: list[float] = []

    def batches(epoch):
        for batch in descend_order(16)(epoch):
            if held.steps == 5:  # the hand-off: a fresh optimizer, no state carried
                held.opts = [torch.optim.SGD(hand.parameters(), lr=0.1)]
            yield batch

    losses = hand_loop(hand, held, 3, batches, lrs=lrs)
    same(model, hand)
    assert losses_of(r) == losses
    assert [(p["iteration"], p["optimizer"], p["lr"]) for p in r.phases] == [(0, "Adam", 0.01), (5, "SGD", 0.1)]
    assert [x["lr"] for x in r.log] == lrs and [x["phase"] for x in r.log] == [0] * 5 + [1] * 7
    assert [h["phase"] for h in r.history] == [0, 1, 1]  # epoch 2 ended in the second phase


def test_phases_at_an_epoch_with_per_epoch_descend_schedules_equal_torch_steplr() -> None:
    model = net()
    cfg = TrainConfig(phases=[Phase(2, torch.optim.Adam, schedules.step(0.01, 1, 0.5)),
                              Phase(2, torch.optim.SGD, schedules.step(0.2, 1, 0.5))],
                      schedule_unit="epoch", batch_size=16, log_every=1, progress=False)
    r = Trainer(model, (X, Y), cfg, loss=F.cross_entropy).fit()
    hand = net()
    held = Holding(torch.optim.Adam(hand.parameters(), lr=0.01))
    scheds = [torch.optim.lr_scheduler.StepLR(held.opts[0], 1, 0.5)]
    lrs: list[float] = []

    def after_epoch(epoch: int) -> None:
        scheds[-1].step()
        if epoch == 1:
            held.opts = [torch.optim.SGD(hand.parameters(), lr=0.2)]
            scheds.append(torch.optim.lr_scheduler.StepLR(held.opts[0], 1, 0.5))

    losses = hand_loop(hand, held, 4, descend_order(16), after_epoch=after_epoch, lrs=lrs)
    same(model, hand)
    assert losses_of(r) == losses and [x["lr"] for x in r.log] == lrs
    assert lrs == [0.01] * 4 + [0.005] * 4 + [0.2] * 4 + [0.1] * 4


class Gated(nn.Module):
    """An auxiliary branch that takes part in every other training forward only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.body, self.aux, self.head = nn.Linear(6, 4), nn.Linear(4, 2), nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x):
        h = torch.tanh(self.body(x))
        if self.training:
            self.calls += 1
            if self.calls % 2 == 0:
                return self.head(h) + self.aux(h)
        return self.head(h)


@pytest.mark.parametrize("aux", [(torch.optim.Adam, {"lr": 0.05}), (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9})],
                         ids=["Adam", "SGD momentum"])
def test_per_part_optimizers_where_a_part_has_no_gradient_every_other_step(aux) -> None:
    model = Gated().double()
    parts = {"body": (torch.optim.SGD, {"lr": 0.1}), "aux": aux, "head": (torch.optim.SGD, {"lr": 0.1})}
    r = Trainer(model, (X, Y), epochs=3, batch_size=16, optimizer=lambda m: PartOptimizer(m, parts),
                loss=F.cross_entropy, progress=False).fit()
    hand = Gated().double()
    opts = [torch.optim.SGD(hand.body.parameters(), lr=0.1), aux[0](hand.aux.parameters(), **aux[1]),
            torch.optim.SGD(hand.head.parameters(), lr=0.1)]
    losses = hand_loop(hand, Holding(*opts), 3, descend_order(16))
    same(model, hand)
    assert losses_of(r) == losses and hand.calls == model.calls == 12
    assert opts[1].state[hand.aux.weight]["step" if aux[0] is torch.optim.Adam else "momentum_buffer"] is not None


def test_a_descend_schedule_per_iteration_equals_a_torch_scheduler() -> None:
    model = net()
    r = Trainer(model, (X, Y), epochs=3, batch_size=16, optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
                schedule=schedules.step(0.1, 2, 0.5), loss=F.cross_entropy, log_every=1, progress=False).fit()
    hand = net()
    opt = torch.optim.SGD(hand.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    lrs: list[float] = []

    losses = hand_loop(hand, opt, 3, descend_order(16), after_step=sched.step, lrs=lrs)
    same(model, hand)
    assert losses_of(r) == losses and [x["lr"] for x in r.log] == lrs == [0.1 * 0.5 ** (i // 2) for i in range(12)]


def plateau_pair(**options: object) -> tuple:
    """A Trainer run of 6 epochs under a plateau on a constant 0.5 (SGD), and the hand loop's model,
    torch SGD and ReduceLROnPlateau with the same settings, not yet run."""
    model = net()
    r = Trainer(model, (X, Y), epochs=6, batch_size=16, optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.5),
                schedule=schedules.plateau(schedules.constant(0.5), factor=0.5, patience=0), schedule_unit="epoch",
                loss=F.cross_entropy, eval_data=(XV, YV), progress=False, **options).fit()
    hand = net()
    opt = torch.optim.SGD(hand.parameters(), lr=0.5)
    return r, model, hand, opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)


def test_a_plateau_schedule_on_the_validation_loss_equals_reduce_lr_on_plateau() -> None:
    r, model, hand, opt, sched = plateau_pair()
    val: list[float] = []
    lrs: list[float] = []

    def after_epoch(epoch: int) -> None:
        val.append(held_out(hand, F.cross_entropy))
        lrs.append(opt.param_groups[0]["lr"])  # the lr this epoch trained with
        sched.step(val[-1])

    losses = hand_loop(hand, opt, 6, descend_order(16), after_epoch=after_epoch)
    same(model, hand)
    assert losses_of(r) == losses and [h["val_loss"] for h in r.history] == val
    assert [h["lr"] for h in r.history] == lrs and lrs[-1] < 0.5  # it did reduce


def test_weight_decay_masked_by_decay_groups_equals_two_torch_groups() -> None:
    model = net()
    Trainer(model, (X, Y), epochs=3, batch_size=16, loss=F.cross_entropy, progress=False,
            optimizer=lambda m: torch.optim.AdamW(optim.decay_groups(m, 0.1), lr=0.01)).fit()
    hand = net()
    mask = optim.decay_mask(hand)
    assert [n for n, d in mask.items() if d] == ["a.weight", "b.weight"]  # ndim >= 2: no scale, bias, BatchNorm
    opt = torch.optim.AdamW([
        {"params": [p for n, p in hand.named_parameters() if mask[n]], "weight_decay": 0.1},
        {"params": [p for n, p in hand.named_parameters() if not mask[n]], "weight_decay": 0.0},
    ], lr=0.01)
    hand_loop(hand, opt, 3, descend_order(16))
    same(model, hand)


def test_gradient_accumulation_with_a_partial_last_group() -> None:
    """Batches of 8, 3 per step: 7 batches an epoch (the last of 2 examples), groups of 24, 24 and 2."""
    model = net()
    r = Trainer(model, (X, Y), epochs=2, batch_size=8, accumulate=3, loss=F.cross_entropy, log_every=1,
                optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), progress=False).fit()
    hand = net()
    opt = torch.optim.SGD(hand.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(0)
    losses = []
    for epoch in range(2):
        batches, total = list(descend_order(8)(epoch)), 0.0
        for g in range(0, len(batches), 3):
            group = batches[g : g + 3]
            examples = sum(len(yb) for _, yb in group)
            opt.zero_grad()
            for xb, yb in group:  # the group's loss is the mean over its examples
                loss = F.cross_entropy(hand(xb), yb)
                (loss * (len(yb) / examples)).backward()
                total += loss.item() * len(yb)
            opt.step()
        losses.append(total / 50)
    same(model, hand)
    assert losses_of(r) == losses and (r.iterations, len(r.log)) == (6, 6)


def test_full_batch_regression_with_the_default_loss() -> None:
    y = (X @ torch.arange(1.0, 7.0, dtype=torch.float64) + 0.5)[:, None]
    torch.manual_seed(4)
    model = nn.Linear(6, 1).double()
    hand = nn.Linear(6, 1).double()
    hand.load_state_dict(model.state_dict())
    r = Trainer(model, (X, y), iterations=30, batch_size=None, optimizer="gd", lr=0.1, progress=False).fit()
    losses = hand_loop(hand, torch.optim.SGD(hand.parameters(), lr=0.1), 30, lambda e: [(X, y)],
                       loss_fn=F.mse_loss)
    same(model, hand)
    assert losses_of(r) == losses and (r.iterations, r.epochs) == (30, 30)
    assert r.final["train_loss"] == F.mse_loss(hand(X), y).item() and "train_accuracy" not in r.final


def shuffling_loader() -> DataLoader:
    return DataLoader(TensorDataset(X, Y), batch_size=16, shuffle=True)  # draws its order from torch's RNG


@pytest.mark.parametrize("val", ["loader", "tensors", None])
def test_evaluating_on_a_loader_leaves_the_training_as_the_hand_loop_has_it(val) -> None:
    """A validation DataLoader is iterated every epoch; iterating a loader draws a seed from torch's
    generator, which moved the next epoch's order and dropout masks: the run differed from the same run
    without validation, and from the hand loop (0.28 in the parameters after 3 epochs)."""
    eval_data = {"loader": DataLoader(TensorDataset(XV, YV), batch_size=10), "tensors": (XV, YV), None: None}[val]
    model = net()
    r = Trainer(model, shuffling_loader(), epochs=3, eval_data=eval_data, loss=F.cross_entropy, progress=False,
                optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)).fit()
    hand = net()
    loader = shuffling_loader()
    losses = hand_loop(hand, torch.optim.SGD(hand.parameters(), lr=0.1), 3, lambda e: loader)
    same(model, hand)
    assert losses_of(r) == losses
    if val is not None:
        hand.eval()
        with torch.no_grad():
            assert r.history[-1]["val_loss"] == pytest.approx(F.cross_entropy(hand(XV), YV).item(), rel=1e-15)


def test_an_iteration_budget_ending_inside_an_epoch_counts_what_ran(tmp_path) -> None:
    model = net()
    r = Trainer(model, (X, Y), iterations=10, batch_size=16, loss=F.cross_entropy, out=tmp_path, log_every=3,
                optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1), progress=False).fit()
    hand = net()
    steps = [b for e in range(3) for b in descend_order(16)(e)][:10]
    hand_loop(hand, torch.optim.SGD(hand.parameters(), lr=0.1), 1, lambda e: steps)
    same(model, hand)
    assert (r.iterations, r.epochs, len(r.history)) == (10, 2, 2)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["iterations"], summary["epochs"], summary["budget"], summary["iterations_per_epoch"]) == (10, 2, 10, 4)
    lines = read_metrics(tmp_path / "metrics.jsonl")
    assert [x["iteration"] for x in lines if x["type"] == "epoch"] == [4, 8]
    assert [x["iteration"] for x in lines if x["type"] == "iteration"] == [3, 6, 9]


def test_descend_train_on_a_csv_records_what_the_hand_loop_computes(tmp_path) -> None:
    """The real command on a user's CSV (float32, dropout, momentum SGD, whose rule is torch's): the
    epoch losses in metrics.jsonl, the final metrics and counts in summary.json."""
    rng = torch.Generator().manual_seed(5)
    feats = torch.randn(83, 4, generator=rng)
    label = (feats[:, 0] - feats[:, 2] > 0).long()
    csv = tmp_path / "mine.csv"
    csv.write_text("a,b,c,d,label\n" + "".join(
        ",".join(f"{v:.4f}" for v in row) + f",{int(t)}\n" for row, t in zip(feats.tolist(), label)))
    out = tmp_path / "run"
    p = descend("train", csv, "--target", "label", "--model", "mlp", "--dropout", "0.2", "-o", "sgd:momentum=0.9",
                "--lr", "0.1", "--epochs", "3", "--batch-size", "16", "--out", out, "--no-progress")
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "summary.json").read_text())
    ds = data.load(csv, seed=0, target="label")
    hand = build_model("mlp", ds, summary["config"]["model_options"], seed=0)
    loss_fn = models.losses.binary_cross_entropy  # one logit for two classes
    b = data.Batches(ds.X_train, ds.y_train, 16, seed=0)
    losses = hand_loop(hand, torch.optim.SGD(hand.parameters(), lr=0.1, momentum=0.9), 3, b.iter_epoch, loss_fn)
    assert [x["train_loss"] for x in read_metrics(out / "metrics.jsonl") if x["type"] == "epoch"] == losses
    assert (summary["iterations"], summary["epochs"], summary["iterations_per_epoch"]) == (12, 3, 4)
    hand.eval()
    with torch.no_grad():
        for split in ("train", "val", "test"):
            xs, ys = ds.part(split)
            logits = hand(xs)
            assert summary[f"{split}_loss"] == pytest.approx(loss_fn(logits, ys).item(), rel=1e-6)
            assert summary[f"{split}_accuracy"] == float((models.losses.predictions(logits) == ys).double().mean())


def test_summary_json_of_a_loader_run_says_the_loaders_batches(tmp_path) -> None:
    """The run's batch_size, shuffle and drop_last (64, True, False by default) apply to tensors; the
    loader's own made the batches, and summary.json's data says so (it said nothing of them)."""
    loader = DataLoader(TensorDataset(X, Y), batch_size=16, shuffle=False, drop_last=True)
    model = net()
    r = Trainer(model, loader, epochs=2, out=tmp_path, loss=F.cross_entropy, progress=False,
                optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)).fit()
    hand = net()
    losses = hand_loop(hand, torch.optim.SGD(hand.parameters(), lr=0.1), 2, lambda e: loader)
    same(model, hand)
    assert losses_of(r) == losses
    s = json.loads((tmp_path / "summary.json").read_text())
    assert {k: s["data"][k] for k in ("kind", "batch_size", "shuffle", "drop_last", "batches_per_epoch")} == {
        "kind": "loader", "batch_size": 16, "shuffle": False, "drop_last": True, "batches_per_epoch": 3}
    assert (s["iterations"], s["epochs"], s["iterations_per_epoch"]) == (6, 2, 3)
    shuffled = Trainer(net(), shuffling_loader(), epochs=1, out=tmp_path / "b", loss=F.cross_entropy,
                       progress=False).fit()
    s = json.loads((shuffled.summary).read_text())
    assert (s["data"]["batch_size"], s["data"]["shuffle"], s["data"]["drop_last"]) == (16, True, False)


@pytest.mark.parametrize(("options", "optimizer", "message"), [
    ({"weight_decay": 0.5}, lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
     r"weight_decay=0.5 is passed only to an optimizer given by name or class .* is a function"),
    ({"weight_decay": 0.5, "l1": 0.1}, {"a": "sgd", "bn": "sgd", "b": "sgd", "scale": "sgd"},
     r"weight_decay=0.5, l1=0.1 are passed only .* is a mapping of parts"),
    ({"optimizer_options": {"momentum": 0.9}}, "instance",
     r"optimizer_options \{'momentum': 0.9\} are passed only .* an optimizer instance \(SGD\)"),
], ids=["weight_decay beside a factory", "weight_decay and l1 beside parts", "options beside an instance"])
def test_options_no_optimizer_receives_are_refused_not_recorded(options, optimizer, message) -> None:
    """They were dropped while summary.json recorded them as the run's settings: the run trained
    without the weight decay it listed."""
    model = net()
    if optimizer == "instance":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=message):
        Trainer(model, (X, Y), epochs=1, optimizer=optimizer, loss=F.cross_entropy, **options)
    # where some phase takes them by name, they go to that phase only (as documented)
    cfg = TrainConfig(phases=[Phase(1, "sgd", lr=0.1), Phase(1, lambda m: torch.optim.SGD(m.parameters(), lr=0.1))],
                      weight_decay=0.5, batch_size=16, progress=False)
    trainer = Trainer(model, (X, Y), cfg, loss=F.cross_entropy)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.5


@pytest.mark.parametrize("per", ["iteration", "epoch"])
def test_a_torch_scheduler_stepped_from_the_callback_equals_the_hand_loop(per: str) -> None:
    """A torch scheduler is not a descend schedule: given as schedule= it is refused, saying how to
    drive it (it was refused with only its repr); the way it names gives the hand loop's run."""
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [2, 5], 0.5)
    with pytest.raises(ValueError, match=r"got torch's MultiStepLR, .*optimizer=opt.*callback=lambda tr: sched.step\(\)"):
        Trainer(model, (X, Y), epochs=3, optimizer=opt, schedule=sched, loss=F.cross_entropy)

    def callback(tr: Trainer) -> None:
        if per == "iteration" or tr.batch_in_epoch == 0:
            sched.step()

    r = Trainer(model, (X, Y), epochs=3, batch_size=16, optimizer=opt, callback=callback, loss=F.cross_entropy,
                log_every=1, progress=False).fit()
    hand = net()
    hopt = torch.optim.SGD(hand.parameters(), lr=0.2)
    hsched = torch.optim.lr_scheduler.MultiStepLR(hopt, [2, 5], 0.5)
    lrs: list[float] = []

    steps = {"after_step": hsched.step} if per == "iteration" else {"after_epoch": lambda e: hsched.step()}
    losses = hand_loop(hand, hopt, 3, descend_order(16), lrs=lrs, **steps)
    same(model, hand)
    assert losses_of(r) == losses and [x["lr"] for x in r.log] == lrs
    assert lrs[-1] == (0.05 if per == "iteration" else 0.1)


def test_batchnorm_without_running_statistics_and_the_default_loss() -> None:
    """Such a BatchNorm normalizes by the batch also in eval mode; the Trainer's one-example probe
    of the output size (for the default loss) failed on it with torch's 'more than 1 value per channel'."""

    def batch_stats_net() -> nn.Sequential:
        torch.manual_seed(6)
        return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8, track_running_stats=False), nn.ReLU(),
                             nn.Linear(8, 2)).double()

    model = batch_stats_net()
    r = Trainer(model, (X, Y), epochs=2, batch_size=16, optimizer="sgd", lr=0.1, eval_data=(XV, YV),
                progress=False).fit()
    hand = batch_stats_net()
    losses = hand_loop(hand, torch.optim.SGD(hand.parameters(), lr=0.1), 2, descend_order(16))
    same(model, hand)
    assert losses_of(r) == losses
    hand.eval()
    with torch.no_grad():
        assert r.final["val_loss"] == pytest.approx(F.cross_entropy(hand(XV), YV).item(), rel=1e-15)


def test_a_plateau_with_validation_every_other_epoch_sees_only_validation_losses() -> None:
    """With eval_every=2 the plateau was fed the training loss on the epochs without validation and the
    validation loss on the others, and compared one with the other: reductions that no loss called for."""
    r, model, hand, opt, sched = plateau_pair(eval_every=2)
    val: list[float] = []
    lrs: list[float] = []

    def after_epoch(epoch: int) -> None:
        lrs.append(opt.param_groups[0]["lr"])
        if epoch % 2 == 1:
            val.append(held_out(hand, F.cross_entropy))
            sched.step(val[-1])

    losses = hand_loop(hand, opt, 6, descend_order(16), after_epoch=after_epoch)
    same(model, hand)
    assert losses_of(r) == losses and [h["val_loss"] for h in r.history if "val_loss" in h] == val
    assert [h["lr"] for h in r.history] == lrs


def test_a_stream_feeds_a_plateau_its_validation_losses() -> None:
    """A stream has no epochs; its evaluations (eval_interval) were recorded but never reached a
    plateau schedule, whose lr then stayed where it started."""
    order = [b for e in range(3) for b in descend_order(16)(e)]
    model = net()
    trainer = Trainer(model, iter(order), iterations=12, eval_interval=3, eval_data=(XV, YV), loss=F.cross_entropy,
                      optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.5), log_every=1, progress=False,
                      schedule=schedules.plateau(schedules.constant(0.5), factor=0.5, patience=0))
    r = trainer.fit()
    hand = net()
    opt = torch.optim.SGD(hand.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    torch.manual_seed(0)
    lrs, val = [], []
    for i, (xb, yb) in enumerate(order, 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        F.cross_entropy(hand(xb), yb).backward()
        opt.step()
        if i % 3 == 0:
            val.append(held_out(hand, F.cross_entropy))
            sched.step(val[-1])
    same(model, hand)
    assert [h["val_loss"] for h in r.history] == val and [x["lr"] for x in r.log] == lrs
    assert val[-1] > val[-2] and trainer.optimizer.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.25


def test_the_final_train_metrics_of_a_shuffling_drop_last_loader_cover_every_example() -> None:
    """They were one more pass over the training loader, which dropped 2 of the 50 examples (a random
    2: it shuffles), so the final train loss was that of a random subset."""
    loader = DataLoader(TensorDataset(X, Y), batch_size=16, shuffle=True, drop_last=True)
    model = net()
    r = Trainer(model, loader, epochs=2, loss=F.cross_entropy, progress=False,
                optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1)).fit()
    hand = net()
    losses = hand_loop(hand, torch.optim.SGD(hand.parameters(), lr=0.1), 2, lambda e: loader)
    same(model, hand)
    assert losses_of(r) == losses and r.iterations == 6
    hand.eval()
    with torch.no_grad():  # in order, in the loader's batches of 16, the last one of 2 kept
        total = sum(F.cross_entropy(hand(X[i : i + 16]), Y[i : i + 16]).item() * len(Y[i : i + 16])
                    for i in range(0, 50, 16))
        correct = int((hand(X).argmax(1) == Y).sum())
    assert r.final["train_loss"] == total / 50 and r.final["train_accuracy"] == correct / 50
