"""A practitioner's own models in the Trainer: outputs that are not one tensor, parameters frozen midway."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from descend.train import Trainer

torch.manual_seed(0)
X = torch.randn(60, 5)
Y = (X[:, 0] > 0).long()


class TupleNet(nn.Module):
    """Returns (logits, an auxiliary value), as many research models do."""

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lin, self.as_dict = nn.Linear(5, 2), as_dict

    def forward(self, x: torch.Tensor):
        logits = self.lin(x)
        return {"logits": logits} if self.as_dict else (logits, x.sum())


def logits_of(out):
    return out["logits"] if isinstance(out, dict) else out[0]


@pytest.mark.parametrize("as_dict", [False, True], ids=["tuple", "dict"])
def test_a_model_returning_a_tuple_or_dict_needs_a_loss_and_trains_with_one(as_dict: bool) -> None:
    with pytest.raises(ValueError, match=f"returns a {'dict' if as_dict else 'tuple'}, not a tensor.*loss="):
        Trainer(TupleNet(as_dict), (X, Y), epochs=1)
    model = TupleNet(as_dict)
    r = Trainer(model, (X, Y), epochs=3, batch_size=20, optimizer="sgd", lr=0.5,
                loss=lambda out, y: F.cross_entropy(logits_of(out), y), eval_data=(X, Y)).fit()
    with torch.no_grad():
        expected = float(F.cross_entropy(model.lin(X), Y))
    assert r.status == "completed" and r.iterations == 9
    assert r.final["train_loss"] == pytest.approx(expected, rel=1e-6)
    assert r.history[-1]["val_loss"] == pytest.approx(expected, rel=1e-6)
    # which part of the output holds the logits is the loss's business: no accuracy is claimed
    assert "train_accuracy" not in r.final and "val_accuracy" not in r.history[-1]


def two_layers() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))


def unfreeze_at(model: nn.Module, iteration: int):
    """A callback that unfreezes the first layer after ``iteration`` steps."""

    def callback(tr: Trainer) -> None:
        if tr.iteration == iteration:
            model[0].requires_grad_(True)

    return callback


def test_unfreezing_in_a_callback_trains_the_layer_as_the_hand_loop_does() -> None:
    model = two_layers()
    model[0].requires_grad_(False)
    Trainer(model, (X, Y), iterations=6, batch_size=20, shuffle=False, clip_norm=0.1, callback=unfreeze_at(model, 2),
            optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.5)).fit()
    hand = two_layers()
    hand[0].requires_grad_(False)
    opt = torch.optim.SGD(hand.parameters(), lr=0.5)
    for step in range(6):
        xb, yb = X[step % 3 * 20 : step % 3 * 20 + 20], Y[step % 3 * 20 : step % 3 * 20 + 20]
        opt.zero_grad()
        F.cross_entropy(hand(xb), yb).backward()
        torch.nn.utils.clip_grad_norm_(hand.parameters(), 0.1)  # the unfrozen layer's gradient counts too
        opt.step()
        if step + 1 == 2:
            hand[0].requires_grad_(True)
    assert not torch.equal(model[0].weight, two_layers()[0].weight)  # the layer trained after its unfreezing
    for a, b in zip(model.state_dict().values(), hand.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_unfreezing_a_layer_the_optimizer_lacks_is_refused_not_ignored() -> None:
    model = two_layers()
    model[0].requires_grad_(False)
    trainer = Trainer(model, (X, Y), iterations=6, batch_size=20, optimizer="sgd", lr=0.5,
                      callback=unfreeze_at(model, 2))
    with pytest.raises(ValueError, match=r"parameters 0\.weight, 0\.bias were unfrozen .* at iteration 2.*never train"):
        trainer.fit()
    assert trainer.iteration == 2


def test_ctrl_c_leaves_a_summary_saying_where_the_run_stopped_and_the_run_resumes(tmp_path) -> None:
    def stop_at_3(tr: Trainer) -> None:
        if tr.iteration == 3:
            raise KeyboardInterrupt

    drawn = []
    with pytest.raises(KeyboardInterrupt):
        Trainer(two_layers(), (X, Y), iterations=6, batch_size=20, out=tmp_path, checkpoint_every=2,
                callback=stop_at_3, on_end=drawn.append).fit()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["status"], summary["iterations"], summary["budget"]) == ("interrupted", 3, 6)
    assert summary["error"] == ("interrupted (KeyboardInterrupt) after 3 of 6 iterations; resume=True (--resume) "
                                "continues from its checkpoint of iteration 2")
    assert drawn == []  # no figures drawn on the way out
    r = Trainer(two_layers(), (X, Y), iterations=6, batch_size=20, out=tmp_path, checkpoint_every=2).fit(resume=True)
    assert (r.status, r.iterations) == ("completed", 6)


def test_an_optimizer_built_on_another_model_is_refused_not_reported_as_a_run() -> None:
    model = two_layers()
    stray = torch.optim.SGD(two_layers().parameters(), lr=0.1)  # a copy, as after a re-instantiation
    with pytest.raises(ValueError, match=r"holds none of the model's parameters \(its 4 are another model's"):
        Trainer(model, (X, Y), epochs=1, optimizer=stray)
    with pytest.raises(ValueError, match="holds none of the model's"):  # a factory that ignores its argument
        Trainer(model, (X, Y), epochs=1, optimizer=lambda m: torch.optim.SGD(two_layers().parameters(), lr=0.1))
    own = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model[0].weight.clone()
    assert Trainer(model, (X, Y), epochs=1, optimizer=own).fit().status == "completed"
    assert not torch.equal(before, model[0].weight)
    # a parameter of the user's own beside the model's (a learnable loss temperature) trains with it
    temperature = torch.nn.Parameter(torch.ones(()))
    both = torch.optim.SGD([*model.parameters(), temperature], lr=0.1)
    Trainer(model, (X, Y), epochs=1, optimizer=both, loss=lambda out, y: F.cross_entropy(out / temperature, y)).fit()
    assert temperature.item() != 1.0


@pytest.mark.parametrize(("loss", "got"), [
    (lambda out, y: F.cross_entropy(out, y, reduction="none"), r"a tensor of shape \(60,\)"),
    (lambda out, y: 1.0, "float"),
])
def test_a_loss_that_is_not_one_number_is_named(loss, got: str) -> None:
    with pytest.raises(ValueError, match=f"loss must return one number as a tensor.*got {got}; reduce it"):
        Trainer(two_layers(), (X, Y), epochs=1, batch_size=None, loss=loss).fit()


def test_hooks_and_options_are_checked_when_the_trainer_is_built() -> None:
    with pytest.raises(ValueError, match="callback must be a function or None, got 3"):
        Trainer(two_layers(), (X, Y), epochs=1, callback=3)
    with pytest.raises(ValueError, match="unknown training option 'epoch'; did you mean 'epochs'\\?"):
        Trainer(two_layers(), (X, Y), epoch=1)


@pytest.mark.parametrize(("data", "got"), [
    ([{"x": X, "y": Y}], r"a dict with keys \['x', 'y'\]"),
    ([(X, Y, Y)], "a tuple of 3 items"),
    ([X, Y], r"a tensor of shape \(60, 5\) \(for the whole data set at once pass the tuple \(X, y\)\)"),
], ids=["dicts", "triples", "list [X, y]"])
def test_batches_that_are_not_input_target_pairs_are_named(data, got: str) -> None:
    with pytest.raises(ValueError, match=f"each batch of data must be an \\(inputs, targets\\) pair, got {got}"):
        Trainer(two_layers(), data, epochs=1, loss=F.cross_entropy)


def test_a_stream_of_dicts_is_named_at_its_first_step() -> None:
    stream = ({"x": X[i : i + 20], "y": Y[i : i + 20]} for i in (0, 20, 40))
    with pytest.raises(ValueError, match=r"must be an \(inputs, targets\) pair, got a dict with keys \['x', 'y'\]"):
        Trainer(two_layers(), stream, iterations=3, loss=F.cross_entropy).fit()


class Casting(nn.Module):
    """A float64 model that casts its inputs itself."""

    def __init__(self) -> None:
        super().__init__()
        self.net = two_layers().double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.double())


def test_a_float64_model_on_float32_inputs_is_named_unless_it_casts_them() -> None:
    with pytest.raises(ValueError, match=r"parameters are torch.float64 but the data's inputs are torch.float32"):
        Trainer(two_layers().double(), (X, Y), epochs=1)
    model = two_layers().double()
    r = Trainer(model, (X.double(), Y), epochs=2, batch_size=None, optimizer="sgd", lr=0.5).fit()
    hand = two_layers().double()
    opt = torch.optim.SGD(hand.parameters(), lr=0.5)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(hand(X.double()), Y).backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), hand.state_dict().values()))
    with torch.no_grad():
        assert r.final["train_loss"] == pytest.approx(F.cross_entropy(hand(X.double()), Y).item(), rel=1e-12)
    assert Trainer(Casting(), (X, Y), epochs=1).fit().status == "completed"


def test_a_callback_stops_the_run_early_and_the_summary_says_so(tmp_path) -> None:
    def stop_at_4(tr: Trainer) -> None:
        if tr.iteration == 4:
            tr.stop("validation loss stopped improving")

    model = two_layers()
    r = Trainer(model, (X, Y), iterations=9, batch_size=20, shuffle=False, optimizer="sgd", lr=0.5, out=tmp_path,
                callback=stop_at_4).fit()
    hand = two_layers()
    opt = torch.optim.SGD(hand.parameters(), lr=0.5)
    for step in range(4):
        opt.zero_grad()
        F.cross_entropy(hand(X[step % 3 * 20 : step % 3 * 20 + 20]), Y[step % 3 * 20 : step % 3 * 20 + 20]).backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), hand.state_dict().values()))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (r.status, r.iterations, summary["status"], summary["iterations"]) == ("stopped", 4, "stopped", 4)
    assert r.hints[0] == "stopped early after 4 of the 9 iterations of the budget: validation loss stopped improving"
    with torch.no_grad():
        assert r.final["train_loss"] == pytest.approx(F.cross_entropy(hand(X), Y).item(), rel=1e-6)
    assert (tmp_path / "checkpoint.pt").exists()


def test_a_one_example_last_batch_under_batchnorm_points_to_drop_last() -> None:
    def bn() -> nn.Sequential:
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

    with pytest.raises(ValueError, match=r"a training batch of 1 example reached the model's BatchNorm at iteration 3 "
                                         r"\(epoch 1\).*use drop_last=True"):
        Trainer(bn(), (X[:41], Y[:41]), epochs=1, batch_size=20).fit()
    r = Trainer(bn(), (X[:41], Y[:41]), epochs=2, batch_size=20, drop_last=True).fit()
    assert (r.status, r.iterations) == ("completed", 4)
