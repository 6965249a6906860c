"""torch.optim state dicts in and out of descend with options no one chose together.

Each twin runs with two param groups of different options over a matrix, a 0-d, an empty
and a frozen parameter, and one that first steps after the interchange. A state saved by
torch after k steps loads into descend (and descend's, exported in torch's format, into
torch.optim), then both take N more steps: float64 trajectories agree to 1e-12, and the
state dicts survive torch -> descend -> torch bitwise. Then the edges: torch's forms of
``step``, torch's implementation switches, dicts of another optimizer or another layout,
named parameters across groups, and ``torch.save``/``torch.load(weights_only=True)``.
"""

import copy
import io

import pytest
import torch
from torch import nn

import descend.optim as O

from .cases import stepped

K, N = 6, 8  # steps before the interchange, steps after

# (torch class, torch defaults, the second group's options, descend class, descend-only keywords):
# defaults written out where descend's differ from torch's (RMSprop's alpha, Adagrad's eps)
CASES = [
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99)},
     {"lr": 0.02, "amsgrad": True, "weight_decay": 0.1, "maximize": True}, "Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True},
     {"betas": (0.5, 0.9), "amsgrad": False, "eps": 1e-6}, "Adam", {}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1},
     {"lr": 0.03, "amsgrad": True, "betas": (0.7, 0.95), "maximize": True}, "AdamW", {}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
     {"lr": 0.1, "maximize": True, "momentum": 0.5, "dampening": 0.0}, "SGD", {}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True},
     {"lr": 0.1, "weight_decay": 0.1, "maximize": True}, "SGD", {}),
    ("SGD", {"lr": 0.05}, {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.1}, "SGD", {}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.5, "maximize": True},
     "Momentum", {"first_step": "grad"}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.2}, {"lr": 0.1, "momentum": 0.5},
     "Momentum", {"first_step": "grad", "lr_inside": False}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, {"lr": 0.1, "momentum": 0.7, "weight_decay": 0.1},
     "Nesterov", {"lr_inside": False}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.95, "momentum": 0.5, "centered": True},
     {"lr": 0.02, "centered": False, "momentum": 0.0, "weight_decay": 0.1, "maximize": True},
     "RMSprop", {"eps_mode": "outside"}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.99}, {"alpha": 0.8, "momentum": 0.9, "centered": True},
     "RMSprop", {"eps_mode": "outside"}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10},
     {"lr": 0.2, "weight_decay": 0.1, "maximize": True, "initial_accumulator_value": 0.5, "eps": 1e-6},
     "Adagrad", {"eps_mode": "outside"}),
]
IDS = [f"{c[3]}-{i}" for i, c in enumerate(CASES)]
DTYPES = [torch.float64, torch.float32]
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}  # float32: descend's kernels round as torch's within ulps


def model(dtype):
    """Two groups: [matrix, 0-d, empty, frozen] and [vector, one that first steps after the interchange]."""
    gen = torch.Generator().manual_seed(0)

    def new(*shape, grad=True):
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(grad)

    return [[new(4, 3), new(), new(0, 3), new(2, grad=False)], [new(3), new(5)]]


def clone(ps):
    return [[p.detach().clone().requires_grad_(p.requires_grad) for p in g] for g in ps]


def groups(ps, over):
    return [{"params": ps[0]}, {"params": ps[1], **over}]


def train(opt, ps, start, steps):
    for t in range(start, start + steps):
        gen = torch.Generator().manual_seed(1000 + t)
        late = [ps[1][1]] if t >= K else []  # never stepped before the interchange
        for p in [*ps[0][:3], ps[1][0], *late]:
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        opt.step()


def torch_opt(case, ps):
    tname, tkw, over, _, _ = case
    return getattr(torch.optim, tname)(groups(ps, over), **tkw)


def descend_opt(case, ps):
    _, tkw, over, dname, extra = case
    return getattr(O, dname)(groups(ps, over), **tkw, **extra)


def gap(xs, ys):
    return max(((x - y).abs().max().item() for gx, gy in zip(xs, ys) for x, y in zip(gx, gy) if x.numel()))


def through_file(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def saved_size(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    return len(buf.getvalue())


def assert_same_dict(ours, theirs, exact=True):
    """Two torch.optim state dicts alike: groups equal, state tensors bitwise with torch's dtypes
    (or to the last bit or two, ``exact=False``: a buffer descend holds scaled by lr)."""
    assert ours["param_groups"] == theirs["param_groups"]
    assert list(ours["state"]) == list(theirs["state"])
    for pid, st in theirs["state"].items():
        assert list(ours["state"][pid]) == list(st), pid
        for key, value in st.items():
            mine = ours["state"][pid][key]
            assert mine.dtype == value.dtype, (pid, key)
            assert torch.equal(mine, value) if exact else \
                torch.allclose(mine, value, rtol=4 * torch.finfo(mine.dtype).eps, atol=0), (pid, key)


# ------------------------------------------------------------------ trajectories
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_torch_state_loads_into_descend_and_continues_as_torch(case, dtype):
    a = model(dtype)
    theirs = torch_opt(case, a)
    train(theirs, a, 0, K)
    saved = through_file(copy.deepcopy(theirs.state_dict()))
    b = clone(a)
    ours = descend_opt(case, b)
    ours.load_state_dict(saved)
    train(theirs, a, K, N)
    train(ours, b, K, N)
    assert gap(a, b) <= TOL[dtype]
    assert torch.equal(a[0][3], b[0][3])  # the frozen parameter did not move


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_descends_export_loads_into_torch_and_continues_as_descend(case, dtype):
    """Adagrad: torch keeps a state for every parameter from the start; the export must too, or
    torch's step starts the late parameter's sum at 0 instead of initial_accumulator_value."""
    b = model(dtype)
    ours = descend_opt(case, b)
    train(ours, b, 0, K)
    exported = through_file(copy.deepcopy(ours.state_dict(format="torch")))
    a = clone(b)
    theirs = torch_opt(case, a)
    theirs.load_state_dict(exported)
    train(ours, b, K, N)
    train(theirs, a, K, N)
    assert gap(a, b) <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_torch_to_descend_to_torch_is_bitwise_and_as_large_as_torchs(case, dtype):
    """The export is torch's own dict: same state entries and tensors, same group values, and the
    same size on disk (torch writes weight_decay=0, not 0.0, and shares one betas tuple)."""
    a = model(dtype)
    theirs = torch_opt(case, a)
    train(theirs, a, 0, K)
    saved = theirs.state_dict()
    ours = descend_opt(case, clone(a))
    ours.load_state_dict(copy.deepcopy(saved))
    exported = ours.state_dict(format="torch")
    heavy_ball = case[3] == "Momentum" and "lr_inside" not in case[4]  # holds v = lr * torch's buffer
    assert_same_dict(exported, saved, exact=not heavy_ball)
    assert saved_size(exported) == saved_size(saved)
    # and descend's own run exports a dict of torch's size too
    b = model(dtype)
    fresh = descend_opt(case, b)
    train(fresh, b, 0, K)
    assert saved_size(fresh.state_dict(format="torch")) == saved_size(saved)


# ------------------------------------------------------------------ torch's forms of a state dict
def adam_state(**group):
    a = model(torch.float64)
    theirs = torch.optim.Adam(groups(a, {"lr": 0.02}), lr=0.01)
    train(theirs, a, 0, K)
    saved = copy.deepcopy(theirs.state_dict())
    for g in saved["param_groups"]:
        g.update(group)
    return a, theirs, saved


@pytest.mark.parametrize("step", [lambda s: int(s), lambda s: torch.tensor(int(s)),
                                  lambda s: s.double(), lambda s: s.float()],
                         ids=["int", "int-tensor", "float64-tensor", "float32-tensor"])
def test_every_form_of_torchs_step_continues_alike(step):
    a, theirs, saved = adam_state()
    for st in saved["state"].values():
        st["step"] = step(st["step"])
    b = clone(a)
    ours = O.Adam(groups(b, {"lr": 0.02}), lr=0.01)
    ours.load_state_dict(saved)
    assert ours.state[b[0][0]]["step"] == K
    train(theirs, a, K, N)
    train(ours, b, K, N)
    assert gap(a, b) <= 1e-12


@pytest.mark.parametrize("step, shown", [
    (torch.tensor([3.0, 4.0]), r"step must be a number or a one-element tensor, got a tensor of shape \(2,\)"),
    (torch.tensor(3.5), "step must be a whole number of steps >= 0, got 3.5"),
    (-1, "step must be a whole number of steps >= 0, got -1"),
    (float("nan"), "step must be a whole number of steps >= 0, got nan"),
], ids=["vector", "fraction", "negative", "nan"])
def test_a_step_that_is_no_count_is_refused_naming_the_parameter(step, shown):
    _, _, saved = adam_state()
    saved["state"][1]["step"] = step
    with pytest.raises(ValueError, match="state of parameter 1: " + shown):
        O.Adam(groups(model(torch.float64), {"lr": 0.02}), lr=0.01).load_state_dict(saved)


@pytest.mark.parametrize("flags", [
    {"foreach": None, "fused": None, "capturable": False, "differentiable": False},
    {"foreach": True}, {"fused": True}, {"foreach": False, "fused": False},
])
def test_torchs_implementation_switches_in_its_groups_change_nothing(flags):
    a, theirs, saved = adam_state(**flags)
    b = clone(a)
    ours = O.Adam(groups(b, {"lr": 0.02}), lr=0.01)
    ours.load_state_dict(saved)
    train(theirs, a, K, N)
    train(ours, b, K, N)
    assert gap(a, b) <= 1e-12


@pytest.mark.parametrize("flag, why", [("capturable", "captured in a CUDA graph"),
                                       ("differentiable", "runs under torch.no_grad")])
def test_an_option_descend_cannot_honour_is_named_with_its_group(flag, why):
    _, _, saved = adam_state()
    saved["param_groups"][1][flag] = True
    ours = O.Adam(groups(model(torch.float64), {"lr": 0.02}), lr=0.01)
    with pytest.raises(ValueError, match=rf"param group 1 of the state_dict has {flag}=True, which "
                                         rf"descend.optim.Adam cannot honour \(.*{why}\)"):
        ours.load_state_dict(saved)
    assert not ours.state  # nothing was loaded


@pytest.mark.parametrize("theirs, ours, shown", [  # (ids: torch's optimizer -> descend's)
    (lambda: stepped(torch.optim.Adagrad), O.RMSprop, r"nor by torch.optim.RMSprop \(its param groups have no 'alpha'\)"),
    (lambda: stepped(torch.optim.RMSprop), O.SGD, r"nor by torch.optim.SGD \(its param groups have no 'nesterov'\)"),
    (lambda: stepped(torch.optim.Adamax), O.Adam, "has key 'exp_inf', which torch.optim.Adam does not write"),
    (lambda: stepped(torch.optim.NAdam), O.Adam, "has key 'mu_product', which torch.optim.Adam does not write"),
], ids=["Adagrad-RMSprop", "RMSprop-SGD", "Adamax-Adam", "NAdam-Adam"])
def test_a_dict_of_another_optimizer_is_refused_naming_both(theirs, ours, shown):
    with pytest.raises(ValueError, match=shown):
        ours([torch.randn(4, 3, dtype=torch.float64, requires_grad=True)]).load_state_dict(theirs())


def test_groups_of_another_count_size_or_shape_are_named():
    _, _, saved = adam_state()
    flat = [p for g in model(torch.float64) for p in g]
    with pytest.raises(ValueError, match="state_dict has 2 param groups, this optimizer has 1"):
        O.Adam(flat).load_state_dict(copy.deepcopy(saved))
    with pytest.raises(ValueError, match="param group 0 of state_dict has 4 parameters, this optimizer's has 3"):
        O.Adam([{"params": flat[:3]}, {"params": flat[3:]}]).load_state_dict(copy.deepcopy(saved))
    swapped = [{"params": [flat[4], *flat[1:4]]}, {"params": [flat[0], flat[5]]}]  # (3,) and (4, 3) swapped
    with pytest.raises(ValueError, match=r"state 'V' of parameter 0 \(shape \(3,\)\) in param group 0 has "
                                         r"shape \(4, 3\), the parameter has shape \(3,\)"):
        O.Adam(swapped).load_state_dict(copy.deepcopy(saved))


@pytest.mark.parametrize("edit, shown", [
    (lambda sd: sd.update(state=[]), r"state_dict\['state'\] must be a dict \(parameter id -> its state\), got list"),
    (lambda sd: sd["state"].update({0: 3}), r"state_dict\['state'\]\[0\] must be a dict .*, got int"),
    (lambda sd: sd.update(param_groups={}), r"state_dict\['param_groups'\] must be a list of dicts, got dict"),
    (lambda sd: sd["param_groups"][1].pop("params"),
     r"state_dict\['param_groups'\]\[1\] must be a dict with a list 'params' .*, got a dict with keys \['amsgrad'"),
    (lambda sd: sd["param_groups"].__setitem__(0, None), r"state_dict\['param_groups'\]\[0\] must be .*, got NoneType"),
], ids=["state-list", "entry-int", "groups-dict", "group-without-params", "group-none"])
def test_a_dict_of_another_layout_is_refused_naming_the_entry(edit, shown):
    _, _, saved = adam_state()
    edit(saved)
    with pytest.raises(ValueError, match=shown):
        O.Adam(groups(model(torch.float64), {"lr": 0.02}), lr=0.01).load_state_dict(saved)


# ------------------------------------------------------------------ named parameters, files
class Three(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 1)

    def forward(self, x):
        return self.c(torch.tanh(self.b(torch.tanh(self.a(x))))).square().sum()


def named_groups(net, order=1):
    named = list(net.named_parameters())
    return [{"params": named[:4][::order]}, {"params": named[4:][::order], "lr": 0.05, "amsgrad": True}]


def fit(net, opt, start, steps):
    for t in range(start, start + steps):
        opt.zero_grad()
        net(torch.randn(8, 3, generator=torch.Generator().manual_seed(t), dtype=torch.float64)).backward()
        opt.step()


@pytest.mark.parametrize("source", ["torch", "descend"])
def test_named_groups_reordered_within_each_group_load_both_ways(source):
    torch.manual_seed(0)
    first, second = Three().double(), Three().double()
    make = {"torch": torch.optim.Adam, "descend": O.Adam}
    saver = make[source](named_groups(first), lr=0.01)
    fit(first, saver, 0, K)
    saved = saver.state_dict(**({"format": "torch"} if source == "descend" else {}))
    assert saved["param_groups"][1]["param_names"] == ["c.weight", "c.bias"]
    second.load_state_dict(first.state_dict())
    loader = make["descend" if source == "torch" else "torch"](named_groups(second, -1 if source == "torch" else 1),
                                                                lr=0.01)
    loader.load_state_dict(through_file(copy.deepcopy(saved)))
    fit(first, saver, K, N)
    fit(second, loader, K, N)
    assert max((p - q).abs().max().item() for p, q in zip(first.parameters(), second.parameters())) <= 1e-12


def test_a_torch_dicts_names_missing_here_are_reported():
    net = Three().double()
    saver = torch.optim.Adam(named_groups(net), lr=0.01)
    fit(net, saver, 0, 2)
    renamed = named_groups(net)
    renamed[1]["params"] = [("head." + n.split(".")[1], p) for n, p in renamed[1]["params"]]
    with pytest.raises(ValueError, match=r"missing from the state_dict: \['head.weight', 'head.bias'\].*"
                                         r"unexpected in the state_dict: \['c.weight', 'c.bias'\]"):
        O.Adam(renamed, lr=0.01).load_state_dict(saver.state_dict())
