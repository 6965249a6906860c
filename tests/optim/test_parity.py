"""Parity with torch.optim on the same gradient stream, 200 steps.

float64: max abs difference <= 1e-12; float32: <= 1e-5 relative.
The descend arguments are those of the conventions table.
"""

import copy

import pytest
import torch
from sklearn.datasets import load_digits

import descend.optim as O

from .cases import TORCH

CASES = {c.name: (c.torch[0], c.torch[1], c.cls, c.kw) for c in TORCH}


def make_params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(7, 3, generator=g, dtype=dtype), torch.randn(5, generator=g, dtype=dtype)]


def stream(step, shapes, dtype):
    g = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(*s, generator=g, dtype=dtype) * (1 + step % 7) for s in shapes]


def run_pair(theirs, ours, dtype, groups=None, lr_change=None, steps=200, impl="auto"):
    pa = [p.clone().requires_grad_() for p in make_params(dtype)]
    pb = [p.clone().requires_grad_() for p in make_params(dtype)]
    t_cls, t_kw, o_cls, o_kw = theirs[0], theirs[1], ours[0], ours[1]
    if groups:
        ta = t_cls([{"params": [pa[0]], **groups[0][0]}, {"params": [pa[1]], **groups[1][0]}], **t_kw)
        ob = o_cls([{"params": [pb[0]], **groups[0][1]}, {"params": [pb[1]], **groups[1][1]}], **o_kw)
    else:
        ta, ob = t_cls(pa, **t_kw), o_cls(pb, impl=impl, **o_kw)
    for step in range(steps):
        if lr_change and step == lr_change:
            for gt, go in zip(ta.param_groups, ob.param_groups):
                gt["lr"] *= 0.3
                go["lr"] *= 0.3
        for a, b, g in zip(pa, pb, stream(step, [p.shape for p in pa], dtype)):
            a.grad, b.grad = g.clone(), g.clone()
        ta.step()
        ob.step()
    return pa, pb


@pytest.mark.parametrize("impl", ["eager", "foreach"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_random_stream(case, impl):
    t_cls, t_kw, o_cls, o_kw = CASES[case]
    pa, pb = run_pair((t_cls, t_kw), (o_cls, o_kw), torch.float64, impl=impl)
    for a, b in zip(pa, pb):
        assert (a - b).abs().max().item() <= 1e-12


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_random_stream(case):
    t_cls, t_kw, o_cls, o_kw = CASES[case]
    pa, pb = run_pair((t_cls, t_kw), (o_cls, o_kw), torch.float32)
    for a, b in zip(pa, pb):
        rel = ((a - b).abs().max() / a.abs().max()).item()  # relative to the parameter scale
        assert rel <= 1e-5


@pytest.mark.parametrize("case", ["momentum_torch_form", "adagrad_torch_form", "rmsprop_centered_momentum",
                                  "adam_amsgrad_wd", "adamw"])
def test_lr_change_mid_run(case):
    t_cls, t_kw, o_cls, o_kw = CASES[case]
    pa, pb = run_pair((t_cls, t_kw), (o_cls, o_kw), torch.float64, lr_change=100)
    for a, b in zip(pa, pb):
        assert (a - b).abs().max().item() <= 1e-12


@pytest.mark.parametrize(
    "theirs,ours,groups",
    [
        ((torch.optim.Adam, {"lr": 0.01}), (O.Adam, {"lr": 0.01}),
         [({"lr": 0.03, "betas": (0.8, 0.9)}, {"lr": 0.03, "beta1": 0.8, "beta2": 0.9}),
          ({"weight_decay": 0.1}, {"weight_decay": 0.1})]),
        ((torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}), (O.SGD, {"lr": 0.05, "momentum": 0.9}),
         [({"lr": 0.01, "nesterov": True}, {"lr": 0.01, "nesterov": True}),
          ({"momentum": 0.5, "dampening": 0.5}, {"momentum": 0.5, "dampening": 0.5})]),
        ((torch.optim.RMSprop, {"lr": 0.01}), (O.RMSprop, {"lr": 0.01, "beta": 0.99, "eps_mode": "outside"}),
         [({"centered": True}, {"centered": True}), ({"lr": 0.001, "momentum": 0.9}, {"lr": 0.001, "momentum": 0.9})]),
    ],
    ids=["adam", "sgd", "rmsprop"],
)
def test_two_param_groups(theirs, ours, groups):
    pa, pb = run_pair(theirs, ours, torch.float64, groups=groups)
    for a, b in zip(pa, pb):
        assert (a - b).abs().max().item() <= 1e-12


def _digits():
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X[:512] / 16.0, dtype=torch.float64)
    return X, torch.tensor(y[:512])


REAL = {
    **{k: CASES[k] for k in ("sgd_nesterov", "adagrad_torch_form", "adam_amsgrad_wd", "adamw_amsgrad")},
    "rmsprop_centered_momentum": (
        torch.optim.RMSprop, {"lr": 0.001, "alpha": 0.9, "centered": True, "momentum": 0.7},
        O.RMSprop, {"lr": 0.001, "beta": 0.9, "eps_mode": "outside", "centered": True, "momentum": 0.7},
    ),
}


@pytest.mark.parametrize("case", sorted(REAL))
def test_real_model_gradients(case):
    """An MLP on digits: two copies trained side by side on the same mini-batches."""
    t_cls, t_kw, o_cls, o_kw = REAL[case]
    X, y = _digits()
    torch.manual_seed(0)
    net_a = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10)).double()
    net_b = copy.deepcopy(net_a)
    ta, ob = t_cls(net_a.parameters(), **t_kw), o_cls(net_b.parameters(), **o_kw)
    for step in range(200):
        idx = torch.arange(step * 32, step * 32 + 32) % len(X)
        for net, opt in ((net_a, ta), (net_b, ob)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert (a - b).abs().max().item() <= 1e-12


def test_torch_lr_scheduler_drives_descend():
    pa = [p.clone().requires_grad_() for p in make_params(torch.float64)]
    pb = [p.clone().requires_grad_() for p in make_params(torch.float64)]
    ta, ob = torch.optim.SGD(pa, lr=0.1, momentum=0.9), O.SGD(pb, lr=0.1, momentum=0.9)
    sa = torch.optim.lr_scheduler.StepLR(ta, step_size=30, gamma=0.5)
    sb = torch.optim.lr_scheduler.StepLR(ob, step_size=30, gamma=0.5)
    for step in range(100):
        for a, b, g in zip(pa, pb, stream(step, [p.shape for p in pa], torch.float64)):
            a.grad, b.grad = g.clone(), g.clone()
        ta.step()
        ob.step()
        sa.step()
        sb.step()
    assert ob.param_groups[0]["lr"] == ta.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    for a, b in zip(pa, pb):
        assert (a - b).abs().max().item() <= 1e-12
