"""torch.optim's names of optimizer state in descend.

* A torch-format state dict whose per-parameter state holds a wrapper's keys (timm's
  ``Lookahead`` keeps ``lookahead_slow_buff`` in the wrapped optimizer's state) loads into
  the wrapper around descend's twin and continues as torch; a key that another torch.optim
  optimizer writes is still refused.
* Reading ``opt.state[p]`` by torch's names (``exp_avg``, ``momentum_buffer``, ...) raises a
  KeyError naming descend's key, its scaling and ``state_dict(format="torch")``; the state
  itself stays a dict that copies, pickles and saves as before.
"""

import copy
import functools
import io
import pickle
import statistics
import time
from collections import defaultdict

import pytest
import torch

import descend.optim as O
from descend.optim.torchnames import torch_state_keys


class Lookahead(torch.optim.Optimizer):
    """timm.optim.Lookahead (timm 1.0), as written there: its slow weights live in the base
    optimizer's state, its counters in the base optimizer's param groups and defaults."""

    def __init__(self, base_optimizer, alpha=0.5, k=3):
        defaults = dict(lookahead_alpha=alpha, lookahead_k=k, lookahead_step=0)
        self._base_optimizer = base_optimizer
        self.param_groups = base_optimizer.param_groups
        self.defaults = base_optimizer.defaults
        self.defaults.update(defaults)
        self.state = defaultdict(dict)
        for name, default in defaults.items():
            for group in self._base_optimizer.param_groups:
                group.setdefault(name, default)

    @torch.no_grad()
    def update_slow(self, group):
        for fast_p in group["params"]:
            if fast_p.grad is None:
                continue
            param_state = self._base_optimizer.state[fast_p]
            if "lookahead_slow_buff" not in param_state:
                param_state["lookahead_slow_buff"] = torch.empty_like(fast_p)
                param_state["lookahead_slow_buff"].copy_(fast_p)
            slow = param_state["lookahead_slow_buff"]
            slow.add_(fast_p - slow, alpha=group["lookahead_alpha"])
            fast_p.copy_(slow)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._base_optimizer.step(closure)
        for group in self._base_optimizer.param_groups:
            group["lookahead_step"] += 1
            if group["lookahead_step"] % group["lookahead_k"] == 0:
                self.update_slow(group)
        return loss

    def state_dict(self):
        return self._base_optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self._base_optimizer.load_state_dict(state_dict)
        self.param_groups = self._base_optimizer.param_groups


def params():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True),
            torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)]


def clone(ps):
    return [p.detach().clone().requires_grad_() for p in ps]


def train(opt, ps, start, steps):
    for t in range(start, start + steps):
        gen = torch.Generator().manual_seed(100 + t)
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        opt.step()


def through_file(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_a_torch_state_saved_under_timms_lookahead_loads_into_descends_adam_and_continues_as_torch(impl):
    a = params()
    theirs = Lookahead(torch.optim.Adam(a, lr=0.05, betas=(0.8, 0.99), amsgrad=True))
    train(theirs, a, 0, 4)  # (one slow update at step 3: every state holds lookahead_slow_buff)
    saved = through_file(theirs.state_dict())
    assert "lookahead_slow_buff" in saved["state"][0] and "exp_avg" in saved["state"][0]
    b = clone(a)
    ours = Lookahead(O.Adam(b, lr=0.05, betas=(0.8, 0.99), amsgrad=True, impl=impl))
    ours.load_state_dict(saved)
    assert torch.equal(ours._base_optimizer.state[b[0]]["lookahead_slow_buff"], saved["state"][0]["lookahead_slow_buff"])
    assert ours.param_groups[0]["lookahead_step"] == 4
    train(theirs, a, 4, 8)  # (slow updates at steps 6, 9 and 12)
    train(ours, b, 4, 8)
    for x, y in zip(a, b):
        assert (x - y).abs().max().item() <= 1e-12
    mine = ours._base_optimizer.state[b[1]]["lookahead_slow_buff"]
    assert torch.allclose(mine, theirs._base_optimizer.state[a[1]]["lookahead_slow_buff"], rtol=0, atol=1e-12)


def test_descends_torch_format_export_under_lookahead_loads_into_torch_and_continues_as_descend():
    b = params()
    ours = Lookahead(O.Adam(b, lr=0.05))
    train(ours, b, 0, 4)
    exported = through_file(ours._base_optimizer.state_dict(format="torch"))
    assert exported["param_groups"][0]["lookahead_step"] == 4
    assert sorted(exported["state"][0]) == ["exp_avg", "exp_avg_sq", "lookahead_slow_buff", "step"]
    a = clone(b)
    theirs = Lookahead(torch.optim.Adam(a, lr=0.05))
    theirs.load_state_dict(exported)
    train(theirs, a, 4, 5)
    train(ours, b, 4, 5)
    for x, y in zip(a, b):
        assert (x - y).abs().max().item() <= 1e-12


def test_the_refused_keys_are_collected_from_torchs_own_optimizers():
    keys = torch_state_keys()
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "exp_inf", "mu_product", "square_avg", "grad_avg",
                "momentum_buffer", "sum", "acc_delta", "prev", "step_size", "eta", "ax", "row_var"):
        assert key in keys, key
    assert "lookahead_slow_buff" not in keys


def stepped(cls, **kw):
    ps = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True)]
    opt = cls(ps, **kw)
    for _ in range(2):
        ps[0].grad = torch.ones_like(ps[0])
        opt.step()
    return opt.state_dict()


RMSPROP = functools.partial(O.RMSprop, eps_mode="outside")  # (torch's eps: no warning)


@pytest.mark.parametrize("theirs, ours, key", [
    (lambda: stepped(torch.optim.Adamax), O.Adam, "exp_inf"),
    (lambda: stepped(torch.optim.NAdam, decoupled_weight_decay=True), O.AdamW, "mu_product"),
    (lambda: stepped(torch.optim.RMSprop, momentum=0.9, centered=True), O.Adam, "square_avg"),
    (lambda: stepped(torch.optim.Adagrad), RMSPROP, "sum"),
    (lambda: stepped(torch.optim.SGD, momentum=0.9), O.Adam, "momentum_buffer"),
    (lambda: stepped(torch.optim.Adadelta), RMSPROP, "acc_delta"),
], ids=["Adamax-Adam", "NAdam-AdamW", "RMSprop-Adam", "Adagrad-RMSprop", "SGD-Adam", "Adadelta-RMSprop"])
def test_a_key_of_another_torch_optimizer_is_refused_even_under_the_twins_group_keys(theirs, ours, key):
    """(the group markers let the dict through: only the state key tells it is another optimizer's)"""
    sd = theirs()
    opt = ours([torch.randn(4, 3, dtype=torch.float64, requires_grad=True)])
    marker = {"betas": (0.9, 0.999), "alpha": 0.99}
    sd["param_groups"][0].update({k: v for k, v in marker.items() if k not in sd["param_groups"][0]})
    with pytest.raises(ValueError, match=f"has key '{key}', which torch.optim.{opt.__class__.__name__} does not "
                                         r"write \(another torch.optim optimizer does\)"):
        opt.load_state_dict(sd)
    assert not opt.state
