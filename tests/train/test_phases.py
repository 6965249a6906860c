"""Done-when 4: phases switch where they say with the documented hand-off; per-part optimizers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from descend import data, optim, schedules
from descend.models import cross_entropy
from descend.models.losses import binary_cross_entropy
from descend.train import PartOptimizer, Phase, TrainConfig, Trainer, build_model

DIGITS = data.load("digits")
BREAST = data.load("breast_cancer")


def model_and_copy(dataset=DIGITS, name="mlp", **kw) -> tuple[nn.Module, nn.Module]:
    model = build_model(name, dataset, kw or None, seed=0)
    return model, copy.deepcopy(model)


def reference_loop(model: nn.Module, dataset, batch_size, plan, loss_fn=cross_entropy) -> None:
    """The hand-written loop: ``plan`` is [(iterations, make_optimizer(params), schedule or None)]."""
    batches = data.Batches(dataset.X_train, dataset.y_train, batch_size, seed=0)
    stream = (b for e in range(10**6) for b in batches.iter_epoch(e))
    for iterations, make, schedule in plan:
        opt = make(list(model.named_parameters()))
        sched = schedules.Scheduler(opt, schedule) if schedule is not None else None
        for _ in range(iterations):
            xb, yb = next(stream)
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
            if sched is not None:
                sched.step()


def equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_adam_then_sgd_switches_at_the_stated_step_with_fresh_state_and_its_own_lr() -> None:
    model, ref = model_and_copy()
    cfg = TrainConfig(phases=[Phase(2, "adam", lr=1e-3), Phase(1, "momentum", lr=0.05)], batch_size=64,
                      log_every=1, progress=False, evaluate=False)
    trainer = Trainer(model, DIGITS, cfg)
    r = trainer.fit()
    # 2 epochs of 17 iterations with Adam, then a Momentum built fresh: zero buffer, lr 0.05
    assert [(p["iteration"], p["optimizer"], p["lr"]) for p in r.phases] == [(0, "Adam", 1e-3), (34, "Momentum", 0.05)]
    assert [x["lr"] for x in r.log] == [1e-3] * 34 + [0.05] * 17
    assert [x["phase"] for x in r.log] == [0] * 34 + [1] * 17
    assert isinstance(trainer.optimizer, optim.Momentum) and trainer.optimizer.state[model.net[0].weight]["step"] == 17
    reference_loop(ref, DIGITS, 64, [(34, lambda p: optim.Adam(p, lr=1e-3), None),
                                     (17, lambda p: optim.Momentum(p, lr=0.05), None)])
    assert equal(model, ref)


def test_carry_lr_starts_the_next_phase_at_the_last_lr_used_and_scales_its_schedule() -> None:
    model, ref = model_and_copy()
    first = schedules.cosine(0.01, 34)
    cfg = TrainConfig(phases=[Phase(34, "adam", first, unit="iteration"),
                              Phase(20, "sgd", schedules.linear(0.5, 20), lr=0.5, unit="iteration")],
                      carry_lr=True, batch_size=64, log_every=1, progress=False, evaluate=False)
    r = Trainer(model, DIGITS, cfg).fit()
    carried = first(33)  # the lr of Adam's last step
    assert r.phases[1]["iteration"] == 34 and r.phases[1]["lr"] == carried
    assert r.log[34]["lr"] == carried and r.log[44]["lr"] == pytest.approx(carried * schedules.linear(0.5, 20)(10) / 0.5)

    def sgd_at_carried(p):
        return optim.SGD(p, lr=carried)

    reference_loop(ref, DIGITS, 64, [(34, lambda p: optim.Adam(p, lr=0.01), first),
                                     (20, sgd_at_carried, schedules.linear(0.5, 20))])
    assert equal(model, ref)


def test_a_named_schedule_is_stretched_over_each_phase() -> None:
    model, _ = model_and_copy()
    cfg = TrainConfig(phases="adam:2:0.01,sgd:1:0.1", schedule=None, batch_size=64, log_every=1,
                      progress=False, evaluate=False)
    cfg.phases = [Phase(2, "adam", "cosine", lr=0.01), Phase(1, "sgd", "cosine", lr=0.1)]
    r = Trainer(model, DIGITS, cfg).fit()
    lrs = [x["lr"] for x in r.log]
    assert lrs[0] == 0.01 and lrs[17] == pytest.approx(schedules.cosine(0.01, 34)(17))
    assert lrs[34] == 0.1 and lrs[-1] == pytest.approx(schedules.cosine(0.1, 17)(16))


def test_phases_must_add_up_to_the_budget() -> None:
    model, _ = model_and_copy()
    with pytest.raises(ValueError, match=r"the phases add up to 6 epochs \(102 iterations\) but the budget is 10 epochs"):
        Trainer(model, DIGITS, TrainConfig(phases="adam:3,sgd:3", epochs=10))
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        TrainConfig(phases="adamm:3,sgd:3")
    with pytest.raises(ValueError, match="optimizer:duration"):
        TrainConfig(phases="adam-3")


def test_swats_switches_when_the_projected_sgd_lr_converges_and_uses_it() -> None:
    model, ref = model_and_copy(BREAST, "logistic")
    eps = 1e-3
    cfg = TrainConfig(optimizer="adam", lr=0.01, swats=True, swats_eps=eps, batch_size=100, epochs=6,
                      progress=False, evaluate=False)
    trainer = Trainer(model, BREAST, cfg)
    r = trainer.fit()
    # the criterion, computed here from the formula in descend.train.phases
    batches = data.Batches(BREAST.X_train, BREAST.y_train, 100, seed=0)
    stream = (b for e in range(100) for b in batches.iter_epoch(e))
    params = list(ref.parameters())
    adam = optim.Adam(params, lr=0.01)
    lam, k, switch = 0.0, 0, None
    while switch is None:
        xb, yb = next(stream)
        adam.zero_grad()
        binary_cross_entropy(ref(xb), yb).backward()
        before = [p.detach().clone() for p in params]
        adam.step()
        k += 1
        p_k = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(params, before)]).double()
        g_k = torch.cat([p.grad.reshape(-1) for p in params]).double()
        gamma = float(p_k @ p_k) / -float(p_k @ g_k)
        lam = 0.999 * lam + 0.001 * gamma
        if k > 1 and abs(lam / (1 - 0.999**k) - gamma) < eps:
            switch = (k, lam / (1 - 0.999**k))
    assert r.phases[1]["iteration"] == switch[0] and r.phases[1]["reason"] == "swats"
    assert r.phases[1]["lr"] == pytest.approx(switch[1], rel=1e-9)
    sgd = trainer.optimizer
    assert isinstance(sgd, optim.Momentum) and sgd.param_groups[0]["style"] == "ema"
    assert sgd.param_groups[0]["beta"] == 0.9
    # then SGD with momentum at that lr (the paper's v = b1 v + g; p -= (1 - b1) lr v)
    sgd_ref = optim.Momentum(params, lr=r.phases[1]["lr"], beta=0.9, style="ema")
    for _ in range(r.iterations - switch[0]):
        xb, yb = next(stream)
        sgd_ref.zero_grad()
        binary_cross_entropy(ref(xb), yb).backward()
        sgd_ref.step()
    for a, b in zip(model.parameters(), params):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- per-part optimizers


class TwoPart(nn.Module):
    """A 'pretrained' body and a new head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.body(x))


def make_two_part() -> tuple[TwoPart, TwoPart]:
    torch.manual_seed(0)
    m = TwoPart()
    return m, copy.deepcopy(m)


def test_per_part_optimizers_equal_separate_optimizers_on_their_parts() -> None:
    model, ref = make_two_part()
    parts = PartOptimizer(model, {"body.0": ("sgd", {"lr": 1e-3}), "body.2": None,
                                  "head": ("adam", {"lr": 1e-2})})
    assert parts.names == {"body.0": ["body.0.weight", "body.0.bias"], "body.2": ["body.2.weight", "body.2.bias"],
                           "head": ["head.weight", "head.bias"]}
    assert parts.frozen == ["body.2.weight", "body.2.bias"] and not model.body[2].weight.requires_grad
    frozen_before = model.body[2].weight.detach().clone()
    body_before = model.body[0].weight.detach().clone()
    r = Trainer(model, DIGITS, TrainConfig(optimizer=lambda m: parts, batch_size=64, epochs=2, progress=False)).fit()
    assert r.phases[0]["optimizer"] == "PartOptimizer(body.0: SGD, head: Adam)"

    ref.body[2].requires_grad_(False)
    sgd = optim.SGD(ref.body[0].parameters(), lr=1e-3)
    adam = optim.Adam(ref.head.parameters(), lr=1e-2)
    batches = data.Batches(DIGITS.X_train, DIGITS.y_train, 64, seed=0)
    for e in range(2):
        for xb, yb in batches.iter_epoch(e):
            sgd.zero_grad()
            adam.zero_grad()
            cross_entropy(ref(xb), yb).backward()
            sgd.step()
            adam.step()
    assert equal(model, ref)
    assert torch.equal(model.body[2].weight, frozen_before)
    assert not torch.equal(model.body[0].weight, body_before)  # the gentle part did move


def test_part_optimizer_is_one_optimizer_for_a_scheduler_and_for_checkpoints() -> None:
    model, _ = make_two_part()
    parts = PartOptimizer(model, [("body", ("momentum", {"lr": 1e-3})), ("head", ("adam", {"lr": 1e-2}))])
    sched = schedules.Scheduler(parts, schedules.cosine(1e-2, 10))
    assert [g["lr"] for g in parts.param_groups] == [1e-3, 1e-2]
    x, y = DIGITS.X_train[:32], DIGITS.y_train[:32]
    for _ in range(5):
        parts.zero_grad()
        cross_entropy(model(x), y).backward()
        parts.step()
        sched.step()
    lr5 = schedules.cosine(1e-2, 10)(5)
    assert [g["lr"] for g in parts.param_groups] == pytest.approx([lr5 / 10, lr5])  # ratios kept
    sd = parts.state_dict()
    other_model = copy.deepcopy(model)
    other = PartOptimizer(other_model, [("body", "momentum"), ("head", "adam")])
    other.load_state_dict(sd)
    assert other.state_dict()["parts"]["head"]["state"][0]["step"] == 5
    wrong = PartOptimizer(copy.deepcopy(model), [("body", "sgd"), ("head", "adam")])
    with pytest.raises(ValueError, match="parts"):
        wrong.load_state_dict(sd)


def test_a_step_is_applied_to_all_parts_or_to_none() -> None:
    model, _ = make_two_part()
    parts = PartOptimizer(model, {"body": "sgd", "head": "sgd"})
    before = copy.deepcopy(model.state_dict())
    x, y = DIGITS.X_train[:8], DIGITS.y_train[:8]
    cross_entropy(model(x), y).backward()
    model.head.bias.grad[0] = float("nan")
    with pytest.raises(optim.NonFiniteGradientError, match="part 'head'"):
        parts.step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_part_patterns_are_checked() -> None:
    model, _ = make_two_part()
    with pytest.raises(ValueError, match="parameters head.weight, head.bias match no part"):
        PartOptimizer(model, {"body": "sgd"})
    with pytest.raises(ValueError, match=r"\['neck'\] match no parameter"):
        PartOptimizer(model, {"body": "sgd", "neck": "adam", "head": "adam"})
    with pytest.raises(ValueError, match="every part is frozen"):
        PartOptimizer(model, {"body": None}, rest="frozen")
    glob = PartOptimizer(model, {"*.bias": ("sgd", {"lr": 0.0})}, rest="adam")
    assert glob.names["*.bias"] == ["body.0.bias", "body.2.bias", "head.bias"]
    assert glob.names["rest"] == ["body.0.weight", "body.2.weight", "head.weight"]


def test_per_part_optimizers_as_a_mapping_in_a_phase() -> None:
    model, _ = make_two_part()
    cfg = TrainConfig(phases=[Phase(1, "adam", lr=1e-3), Phase(1, {"body": ("sgd", {"lr": 1e-4}), "head": "adam"})],
                      batch_size=64, progress=False, evaluate=False)
    trainer = Trainer(model, DIGITS, cfg)
    r = trainer.fit()
    assert r.phases[1]["optimizer"] == "PartOptimizer(body: SGD, head: Adam)" and r.phases[1]["iteration"] == 17
    assert isinstance(trainer.optimizer, PartOptimizer)
