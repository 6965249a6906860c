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
from collections import defaultdict

import pytest
import torch

import descend.optim as O
from descend.optim.torchnames import torch_state_keys

from .cases import stepped


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


# ------------------------------------------------------------------ reading opt.state by torch's names
def one_step(cls, **kw):
    p = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    opt = cls([p], lr=0.1, **kw)
    p.grad = torch.ones_like(p)
    opt.step()
    return opt, p


@pytest.mark.parametrize("cls, kw, theirs, ours, scale", [
    (O.Adam, {}, "exp_avg", "V", "the same values as torch's"),
    (O.Adam, {}, "exp_avg_sq", "S", "the same values as torch's"),
    (O.AdamW, {"amsgrad": True}, "max_exp_avg_sq", "S_max", "the same values as torch's"),
    (O.SGD, {"momentum": 0.9}, "momentum_buffer", "v", "the same values as torch's"),
    (O.Momentum, {}, "momentum_buffer", "v", "lr x torch's momentum_buffer where lr sits inside the buffer"),
    (O.Nesterov, {}, "momentum_buffer", "v", "lr x torch's momentum_buffer where lr sits inside the buffer"),
    (O.RMSprop, {"centered": True}, "square_avg", "S", "the same values as torch's"),
    (O.RMSprop, {"centered": True}, "grad_avg", "mean", "the same values as torch's"),
    (O.Adagrad, {}, "sum", "G", "the same values as torch's"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_a_torch_name_read_from_descends_state_names_descends_key_and_its_scaling(cls, kw, theirs, ours, scale):
    opt, p = one_step(cls, **kw)
    st = opt.state[p]
    with pytest.raises(KeyError) as caught:
        st[theirs]
    message = caught.value.args[0]
    assert message.startswith(f"'{theirs}' is torch.optim.")
    assert f"descend.optim.{cls.__name__} keeps that state under '{ours}' ({scale}" in message
    assert f"opt.state[p]['{ours}']" in message and "state_dict(format='torch')" in message
    # not aliased: the torch name is not there, and descend's tensor is where it was
    assert theirs not in st and st.get(theirs) is None and isinstance(st[ours], torch.Tensor)
    assert set(st) == {"step", ours} | ({"S", "V"} if cls in (O.Adam, O.AdamW) else set()) | \
        ({"S_max"} if kw.get("amsgrad") else set()) | ({"S"} if ours == "mean" else {"mean"} if kw.get("centered") else set())


def test_a_torch_name_the_optimizer_does_not_keep_and_an_unknown_key_stay_clear():
    opt, p = one_step(O.Adam)
    with pytest.raises(KeyError, match="'square_avg' is torch.optim's name of a state tensor that descend.optim.Adam "
                                       r"does not keep; .*this one holds \['S', 'V', 'step'\]"):
        opt.state[p]["square_avg"]
    with pytest.raises(KeyError) as caught:
        opt.state[p]["no_such_key"]
    assert caught.value.args == ("no_such_key",)  # (a plain miss is a plain KeyError)
    opt, p = one_step(O.RMSprop)  # momentum 0: no buffer now
    with pytest.raises(KeyError, match=r"under 'buf' .*holds \['S', 'step'\] \(not 'buf': the group's options do "
                                       r"not use it now\)"):
        opt.state[p]["momentum_buffer"]


def test_torch_code_that_reads_exp_avg_gets_the_message_after_a_load_a_copy_and_a_pickle():
    opt, p = one_step(O.Adam)
    loaded = O.Adam([p], lr=0.1)
    loaded.load_state_dict(opt.state_dict())
    for o in (loaded, copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        (q,) = o.param_groups[0]["params"]
        with pytest.raises(KeyError, match="keeps that state under 'V'"):
            o.state[q]["exp_avg"]
        assert torch.equal(o.state[q]["V"], opt.state[p]["V"])


def test_the_saved_state_is_plain_dicts_and_loads_with_weights_only():
    opt, p = one_step(O.Adam)
    for fmt in ("descend", "torch"):
        sd = opt.state_dict(format=fmt)
        assert type(sd["state"][0]) is dict
        back = through_file(sd)
        assert sorted(back["state"][0]) == (["S", "V", "step"] if fmt == "descend" else ["exp_avg", "exp_avg_sq", "step"])
        assert torch.equal(back["state"][0]["V" if fmt == "descend" else "exp_avg"], opt.state[p]["V"])


def test_state_put_in_from_outside_is_kept_as_given_and_steps_on():
    """(Lightning's optimizer_to_device writes ``opt.state[p] = {...}``; the object written is the one used)"""
    ends = []
    for outside in (False, True):
        opt, p = one_step(O.Adam)
        if outside:
            given = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()}
            opt.state[p] = given
            assert opt.state[p] is given
        for _ in range(3):
            p.grad = torch.full_like(p, 0.5)
            opt.step()
        if outside:
            assert given["step"] == 4 and given["V"] is opt.state[p]["V"]
        ends.append(p.detach().clone())
    assert torch.equal(*ends)
