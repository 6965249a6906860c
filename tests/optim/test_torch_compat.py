"""descend's optimizers as drop-ins for torch.optim (descend.optim.compat).

torch's keywords, torch's momentum-cycling schedulers, torch's state dicts in
both directions, and state matched to parameters by name. Every trajectory is
compared with torch.optim itself in float64.
"""

import copy
import inspect
import re

import pytest
import torch
from torch import nn

import descend.optim as O
from descend.optim.base import IMPLS
from descend.spec import SpecError

TOL = 1e-12
SHAPES = [(4, 3), (3,)]


def params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in SHAPES]


def grads(t, ps):
    gen = torch.Generator().manual_seed(1000 + t)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in ps]


def run(opt, ps, steps, start=0, before_step=None, after_step=None):
    for t in range(start, start + steps):
        for p, g in zip(ps, grads(t, ps)):
            p.grad = g
        if before_step:
            before_step(t)
        opt.step()
        if after_step:
            after_step(t)


def gap(xs, ys):
    return max((x - y).abs().max().item() for x, y in zip(xs, ys))


# (torch class, torch kwargs, descend class, descend kwargs written with torch's spellings)
PAIRS = [
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99)}, "Adam", {"lr": 0.01, "betas": (0.8, 0.99)}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.1},
     "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.1, "foreach": False}),
    ("AdamW", {"lr": 0.01, "betas": (0.85, 0.995), "weight_decay": 0.1, "maximize": True},
     "AdamW", {"lr": 0.01, "betas": (0.85, 0.995), "weight_decay": 0.1, "maximize": True, "fused": False}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.95, "momentum": 0.5, "centered": True},
     "RMSprop", {"lr": 0.01, "alpha": 0.95, "momentum": 0.5, "centered": True, "eps_mode": "outside"}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10},
     "Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10,
                 "eps_mode": "outside", "differentiable": False}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
     "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01, "foreach": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1},
     "Momentum", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "nesterov": False,
                  "lr_inside": False, "first_step": "grad"}),
    ("SGD", {"lr": 0.05, "momentum": 0.9},
     "Momentum", {"lr": 0.05, "momentum": 0.9, "first_step": "grad"}),  # heavy ball: v = lr * buf
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True},
     "Nesterov", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "lr_inside": False}),
]
IDS = [f"{d}-{i}" for i, (_, _, d, _) in enumerate(PAIRS)]


def pair(i, seed=0):
    tname, tkw, dname, dkw = PAIRS[i]
    a, b = params(seed), params(seed)
    return a, getattr(torch.optim, tname)(a, **tkw), b, getattr(O, dname)(b, **dkw)


# ------------------------------------------------------------------ 1. keywords
@pytest.mark.parametrize("i", range(len(PAIRS)), ids=IDS)
def test_torch_spellings_compute_what_torch_computes(i):
    a, theirs, b, ours = pair(i)
    run(theirs, a, 40)
    run(ours, b, 40)
    assert gap(a, b) <= TOL
    assert gap(a, params()) > 1e-3


def test_torch_spellings_set_the_notes_names():
    p = params()
    adam = O.Adam(p, betas=(0.8, 0.99))
    assert (adam.param_groups[0]["beta1"], adam.param_groups[0]["beta2"]) == (0.8, 0.99)
    assert O.RMSprop(p, alpha=0.99).param_groups[0]["beta"] == 0.99
    assert O.RMSprop(p).param_groups[0]["beta"] == 0.9  # the notes' default stays
    assert O.Momentum(p, momentum=0.5).param_groups[0]["beta"] == 0.5
    assert O.Nesterov(p, momentum=0.5, nesterov=True).param_groups[0]["beta"] == 0.5
    multi = "foreach" if "foreach" in IMPLS else "auto"
    assert O.Adam(p, fused=True).impl == "fused"
    assert O.Adam(p, foreach=False).impl == "eager"
    assert O.SGD(p, fused=False).impl == multi
    assert O.SGD(p, fused=False, foreach=False).impl == "eager"
    assert O.Adam(p, foreach=True).impl == multi
    assert O.Adam(p, capturable=False, differentiable=False, decoupled_weight_decay=False).impl == "auto"
    groups = O.Adam([{"params": p[:1], "betas": (0.7, 0.9)}, {"params": p[1:]}], betas=(0.8, 0.99))
    assert [(g["beta1"], g["beta2"]) for g in groups.param_groups] == [(0.7, 0.9), (0.8, 0.99)]


TWINS = [("SGD", "SGD"), ("SGD", "Momentum"), ("SGD", "Nesterov"), ("Adagrad", "Adagrad"),
         ("RMSprop", "RMSprop"), ("Adam", "Adam"), ("AdamW", "AdamW")]


@pytest.mark.parametrize("tname,dname", TWINS)
def test_every_torch_keyword_is_accepted(tname, dname):
    sig = inspect.signature(getattr(torch.optim, tname).__init__).parameters
    kwargs = {k: v.default for k, v in sig.items() if k not in ("self", "params")}
    if dname == "Nesterov":
        kwargs.update(nesterov=True, momentum=0.9)
    opt = getattr(O, dname)(params(), **kwargs)
    group = opt.param_groups[0]
    for key in ("lr", "weight_decay", "eps", "lr_decay", "initial_accumulator_value", "centered", "amsgrad"):
        if key in kwargs and key in group:
            assert group[key] == kwargs[key], key
    if "betas" in kwargs:
        assert (group["beta1"], group["beta2"]) == kwargs["betas"]
    if "alpha" in kwargs:
        assert group["beta"] == kwargs["alpha"]


@pytest.mark.parametrize("cls,kwargs,match", [
    ("Adam", {"betas": (0.9, 0.99), "beta1": 0.8}, r"both betas=\(0.9, 0.99\).*beta1=0.8"),
    ("Adam", {"betas": 0.9}, r"betas must be a pair \(beta1, beta2\).*got 0.9"),
    ("RMSprop", {"alpha": 0.99, "beta": 0.9}, r"both alpha=0.99.*beta=0.9"),
    ("Momentum", {"momentum": 0.9, "beta": 0.8}, "both momentum=0.9"),
    ("Momentum", {"nesterov": True}, "use descend.optim.Nesterov"),
    ("Nesterov", {"nesterov": False}, "use descend.optim.Momentum"),
    ("Adam", {"decoupled_weight_decay": True}, "use descend.optim.AdamW"),
    ("Adam", {"fused": True, "impl": "eager"}, "give only impl"),
    ("SGD", {"fused": True, "foreach": True}, "cannot both be set"),
    ("RMSprop", {"capturable": True}, "capturable=True is not supported"),
    ("Adagrad", {"differentiable": True}, "differentiable=True is not supported"),
])
def test_two_spellings_or_unsupported_flags_fail_clearly(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(O, cls)(params(), **kwargs)


def test_positional_and_torch_spelling_clash():
    with pytest.raises(ValueError, match=r"both momentum=.*beta=0.7"):
        O.Momentum(params(), 0.01, 0.7, momentum=0.9)


@pytest.mark.parametrize("tname, args", [("SGD", (0.05, 0.9, 0.1)), ("RMSprop", (0.01, 0.95, 1e-6))])
def test_positional_arguments_in_torchs_order_compute_torchs_step(tname, args):
    """Where descend's positions mean what torch's do (SGD's momentum and dampening,
    RMSprop's alpha and eps), torch's positional calls run unchanged."""
    kw = {"eps_mode": "outside"} if tname == "RMSprop" else {}
    ours, theirs = params(), params()
    opt_t, opt_d = getattr(torch.optim, tname)(theirs, *args), getattr(O, tname)(ours, *args, **kw)
    run(opt_t, theirs, 5)
    run(opt_d, ours, 5)
    assert gap(ours, theirs) < TOL


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("tname, kw", [
    ("SGD", {"momentum": 1.0}), ("SGD", {"momentum": 1.5, "dampening": 0.5}),
    ("RMSprop", {"momentum": 1.0, "alpha": 0.9}),
])
def test_momentum_of_one_and_above_is_taken_as_torch_takes_it(tname, kw, impl):
    """torch.optim.SGD and RMSprop take any momentum >= 0 (1 sums the gradients undamped);
    so does the drop-in, on every path, and steps as torch does."""
    extra = {"eps_mode": "outside"} if tname == "RMSprop" else {}
    ours, theirs = params(), params()
    opt_t = getattr(torch.optim, tname)(theirs, lr=0.01, **kw)
    opt_d = getattr(O, tname)(ours, lr=0.01, impl=impl, **kw, **extra)
    run(opt_t, theirs, 12)
    run(opt_d, ours, 12)
    assert gap(ours, theirs) < TOL * 10
    with pytest.raises(ValueError, match=r"momentum must be in \[0, inf\), got -0.5"):
        getattr(O, tname)(params(), lr=0.01, momentum=-0.5)


@pytest.mark.parametrize("cls, args, shown", [
    ("Adagrad", (0.1, 0.01), "Adagrad(params, lr, eps=..."),  # torch's third is lr_decay: not eps silently
    ("Adam", (0.01, (0.8, 0.99)), "Adam(params, lr, beta1=..."),
    ("SGD", (0.01, 0.9, 0, 1e-4), "SGD(params, lr, nesterov=..."),  # torch's fifth is weight_decay
    ("RMSprop", (0.01, 0.9, 1e-8, 0, 0.5), "RMSprop(params, lr, eps_mode=..."),
])
def test_positional_arguments_where_torchs_order_differs_are_refused(cls, args, shown):
    with pytest.raises(TypeError, match=rf"{cls}\(\) takes params, lr.* by position.*differently.*"
                                        rf"{re.escape(shown)}"):
        getattr(O, cls)(params(), *args)


def test_param_group_spellings_must_agree():
    p = params()
    with pytest.raises(ValueError, match=r"gives betas=\(0.9, 0.99\) and beta1=0.8, which disagree"):
        O.Adam([{"params": p, "betas": (0.9, 0.99), "beta1": 0.8}])
    O.Adam([{"params": p, "betas": (0.9, 0.99), "beta1": 0.9}])  # the same value twice is fine


def test_registry_takes_torch_spellings():
    p = params()
    assert O.build("rmsprop:alpha=0.95", p).param_groups[0]["beta"] == 0.95
    assert O.build("adam", p, betas=(0.8, 0.9)).param_groups[0]["beta1"] == 0.8
    assert O.build("momentum:momentum=0.7,nesterov=false", p).param_groups[0]["beta"] == 0.7
    assert O.build("adam:betas=0.8/0.95", p).param_groups[0]["betas"] == (0.8, 0.95)
    with pytest.raises(SpecError, match="unknown option 'betas' for Newton"):
        O.build("newton", p, betas=(0.8, 0.9))
    with pytest.raises(SpecError, match="unknown option 'alphas'"):
        O.build("rmsprop:alphas=0.9", p)


# ------------------------------------------------------------------ 2. schedulers
def one_cycle(opt):
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=60)


def cyclic(opt):
    return torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.005, max_lr=0.05, step_size_up=7)


@pytest.mark.parametrize("make", [one_cycle, cyclic], ids=["OneCycleLR", "CyclicLR"])
@pytest.mark.parametrize("i", [0, 3, 5, 6, 8], ids=[IDS[i] for i in (0, 3, 5, 6, 8)])
def test_momentum_cycling_schedulers_run_unchanged(make, i):
    """Same trajectory as torch's optimizer under the same scheduler (lr and momentum cycled)."""
    a, theirs, b, ours = pair(i)
    s_theirs, s_ours = make(theirs), make(ours)
    run(theirs, a, 45, after_step=lambda t: s_theirs.step())
    run(ours, b, 45, after_step=lambda t: s_ours.step())
    assert gap(a, b) <= TOL
    key = "betas" if "betas" in ours.defaults else "momentum"
    assert ours.param_groups[0][key] == theirs.param_groups[0][key]


def test_one_cycle_on_the_fused_path():
    a = [torch.randn(300, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)]
    b = [a[0].detach().clone().requires_grad_()]
    theirs, ours = torch.optim.Adam(a, lr=0.01), O.Adam(b, lr=0.01, fused=True)
    s_theirs, s_ours = one_cycle(theirs), one_cycle(ours)
    for t in range(30):
        for opt, ps, sched in ((theirs, a, s_theirs), (ours, b, s_ours)):
            opt.zero_grad()
            (ps[0] * grads(t, ps)[0]).sum().backward()
            opt.step()
            sched.step()
    assert gap(a, b) <= TOL


def test_one_cycle_really_cycles_adams_beta1():
    """beta1 recovered from V (V_t = b1 V_{t-1} + (1 - b1) g) is the scheduled value, step by step."""
    p = [torch.zeros(5, dtype=torch.float64, requires_grad=True)]
    opt = O.Adam(p, lr=0.01, betas=(0.9, 0.999))
    sched = one_cycle(opt)
    scheduled, used, prev = [], [], torch.zeros(5, dtype=torch.float64)
    for t in range(60):
        g = grads(t, p)[0]
        p[0].grad = g
        scheduled.append(opt.param_groups[0]["betas"][0])
        assert opt.param_groups[0]["beta1"] == scheduled[-1]
        opt.step()
        V = opt.state[p[0]]["V"]
        used.append(((V - g) / (prev - g)).mean().item())
        prev = V.clone()
        sched.step()
    assert max(abs(u - s) for u, s in zip(used, scheduled)) < 1e-9
    assert max(used) - min(used) > 0.09  # it went 0.95 -> 0.85 -> 0.95
    assert used[0] == pytest.approx(0.95) and min(used) == pytest.approx(0.85, abs=1e-3)


def test_cyclic_lr_really_cycles_momentums_beta():
    """beta recovered from the heavy ball's v (v_t = beta v_{t-1} + lr g) is the scheduled value."""
    p = [torch.zeros(5, dtype=torch.float64, requires_grad=True)]
    opt = O.Momentum(p, lr=0.01, beta=0.9)
    sched = cyclic(opt)
    scheduled, used, prev = [], [], None
    for t in range(30):
        g = grads(t, p)[0]
        p[0].grad = g
        group = opt.param_groups[0]
        scheduled.append(group["momentum"])
        assert group["beta"] == group["momentum"]
        lr = group["lr"]
        opt.step()
        v = opt.state[p[0]]["v"].clone()
        if prev is not None:
            used.append(((v - lr * g) / prev).mean().item())
        prev = v
        sched.step()
    assert max(abs(u - s) for u, s in zip(used, scheduled[1:])) < 1e-9
    assert max(used) - min(used) > 0.09  # CyclicLR's momentum goes 0.9 -> 0.8 and back


# ------------------------------------------------------------------ 3. torch state dicts
@pytest.mark.parametrize("i", range(len(PAIRS)), ids=IDS)
def test_torch_state_loads_and_continues_as_torch(i):
    a, theirs, _, _ = pair(i)
    run(theirs, a, 25)
    saved = copy.deepcopy(theirs.state_dict())  # as if through a checkpoint file
    b = [p.detach().clone().requires_grad_() for p in a]
    ours = getattr(O, PAIRS[i][2])(b, **PAIRS[i][3])
    ours.load_state_dict(saved)
    run(theirs, a, 25, start=25)
    run(ours, b, 25, start=25)
    assert gap(a, b) <= TOL


@pytest.mark.parametrize("i", range(len(PAIRS)), ids=IDS)
def test_descend_state_exports_and_resumes_under_torch(i):
    _, _, b, ours = pair(i)
    run(ours, b, 25)
    exported = copy.deepcopy(ours.state_dict(format="torch"))
    assert "descend" not in exported
    a = [p.detach().clone().requires_grad_() for p in b]
    theirs = getattr(torch.optim, PAIRS[i][0])(a, **PAIRS[i][1])
    theirs.load_state_dict(exported)
    run(ours, b, 25, start=25)
    run(theirs, a, 25, start=25)
    assert gap(a, b) <= TOL


def test_adam_state_keys_map_to_torchs():
    _, theirs, b, ours = pair(1)
    run(ours, b, 3)
    sd = ours.state_dict(format="torch")
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert torch.equal(sd["state"][0]["exp_avg"], ours.state[b[0]]["V"])
    assert sd["state"][0]["step"].item() == 3.0
    assert sd["param_groups"][0]["betas"] == (0.8, 0.99) and sd["param_groups"][0]["amsgrad"] is True


def test_wrong_torch_state_fails_clearly():
    a = params()
    torch_sgd = torch.optim.SGD(a, lr=0.1, momentum=0.9)
    run(torch_sgd, a, 2)
    with pytest.raises(ValueError, match=r"not saved by a descend optimizer .* nor by torch.optim.Adam"):
        O.Adam(params()).load_state_dict(torch_sgd.state_dict())
    torch_adamw = torch.optim.AdamW(a)
    with pytest.raises(ValueError, match=r"decoupled_weight_decay=True.*use descend.optim.AdamW"):
        O.Adam(params()).load_state_dict(torch_adamw.state_dict())
    other = [torch.randn(5, 3, dtype=torch.float64, requires_grad=True), torch.randn(3, dtype=torch.float64)]
    with pytest.raises(ValueError, match=r"shape \(4, 3\), the parameter has shape \(5, 3\)"):
        O.Momentum(other, momentum=0.9).load_state_dict(torch_sgd.state_dict())
    with pytest.raises(ValueError, match="Newton has no torch.optim twin"):
        O.Newton(params()).load_state_dict(torch_sgd.state_dict())


def test_convention_torch_cannot_express_warns():
    a = params()
    torch_rms = torch.optim.RMSprop(a)
    run(torch_rms, a, 2)
    with pytest.warns(UserWarning, match=r"eps_mode='inside', torch.optim.RMSprop always computes eps_mode='outside'"):
        O.RMSprop(params()).load_state_dict(torch_rms.state_dict())
    with pytest.warns(UserWarning, match="l1=0.1"):
        O.Adam(params(), l1=0.1).state_dict(format="torch")
    with pytest.raises(ValueError, match="format must be one of 'descend', 'torch'; got 'jax'"):
        O.Adam(params()).state_dict(format="jax")


# ------------------------------------------------------------------ 4. names
class Twins(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))).square().sum()


def train_model(model, opt, steps, start=0):
    for t in range(start, start + steps):
        opt.zero_grad()
        gen = torch.Generator().manual_seed(t)
        model(torch.randn(8, 3, generator=gen, dtype=torch.float64)).backward()
        opt.step()


@pytest.mark.parametrize("source", ["descend", "torch"])
def test_state_is_matched_by_name_not_position(source):
    torch.manual_seed(0)
    model = Twins().double()
    clone = Twins().double()
    clone.load_state_dict(model.state_dict())
    first = (torch.optim.Adam if source == "torch" else O.Adam)(model.named_parameters(), lr=0.01)
    train_model(model, first, 10)
    saved = first.state_dict()
    assert saved["param_groups"][0]["param_names"] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    clone.load_state_dict(model.state_dict())
    named = list(clone.named_parameters())
    reordered = named[2:] + named[:2]  # b.weight, b.bias, a.weight, a.bias: equal shapes swapped
    second = O.Adam(reordered, lr=0.01)
    second.load_state_dict(copy.deepcopy(saved))
    for name, p in clone.named_parameters():
        q = dict(model.named_parameters())[name]
        key = "V" if source == "descend" else "exp_avg"
        assert torch.equal(second.state[p]["V"], (first.state[q][key]))
    # matched by position (no names, torch's way), a's and b's moments are silently swapped
    by_position = O.Adam([p for _, p in reordered], lr=0.01)
    plain = {**saved, "param_groups": [{k: v for k, v in g.items() if k != "param_names"}
                                       for g in saved["param_groups"]]}
    by_position.load_state_dict(plain)
    assert torch.equal(by_position.state[clone.a.weight]["V"], second.state[clone.b.weight]["V"])
    assert not torch.equal(by_position.state[clone.a.weight]["V"], second.state[clone.a.weight]["V"])
    reference = O.Adam(model.named_parameters(), lr=0.01)
    reference.load_state_dict(copy.deepcopy(saved))
    train_model(model, reference, 10, start=10)
    train_model(clone, second, 10, start=10)
    assert gap(list(model.parameters()), list(clone.parameters())) <= TOL


def test_missing_and_unexpected_names_are_reported():
    model = Twins().double()
    opt = O.Adam(model.named_parameters())
    train_model(model, opt, 2)
    saved = opt.state_dict()
    renamed = [(n.replace("a.", "c."), p) for n, p in model.named_parameters()]
    with pytest.raises(ValueError, match=r"missing from the state_dict: \['c.weight', 'c.bias'\].*"
                                         r"unexpected in the state_dict: \['a.weight', 'a.bias'\]"):
        O.Adam(renamed).load_state_dict(saved)
    loose = O.Adam(renamed)
    with pytest.warns(UserWarning, match=r"missing from the state_dict: \['c.weight', 'c.bias'\]"):
        loose.load_state_dict(saved, strict=False)
    assert model.a.weight not in loose.state or not loose.state[model.a.weight]
    assert torch.equal(loose.state[model.b.weight]["V"], opt.state[model.b.weight]["V"])


@pytest.mark.parametrize("wrapper", ["_orig_mod.", "module."])
def test_names_under_a_wrapper_match_the_bare_model(wrapper):
    """A checkpoint of torch.compile(model) or DDP(model) loads into the bare model's optimizer
    (the names differ by the wrapper's prefix only); match="position" pairs as torch does."""
    model = Twins().double()
    opt = O.Adam([(wrapper + n, p) for n, p in model.named_parameters()], lr=0.01)
    train_model(model, opt, 3)
    saved = opt.state_dict()
    bare = O.Adam(list(model.named_parameters())[::-1], lr=0.01)  # reversed: only names can pair them
    bare.load_state_dict(copy.deepcopy(saved))
    for p in model.parameters():
        assert torch.equal(bare.state[p]["V"], opt.state[p]["V"])
    renamed = O.Adam([("other." + n, p) for n, p in model.named_parameters()], lr=0.01)
    with pytest.raises(ValueError, match="match='position'"):
        renamed.load_state_dict(copy.deepcopy(saved))
    renamed.load_state_dict(copy.deepcopy(saved), match="position")
    assert torch.equal(renamed.state[model.a.weight]["V"], opt.state[model.a.weight]["V"])
    with pytest.raises(ValueError, match=r"match must be one of 'name', 'position'; got 'names'"):
        renamed.load_state_dict(saved, match="names")


def test_rmsprops_alpha_is_a_group_key_kept_in_sync():
    """torch code reads and writes group["alpha"]; descend steps with what it wrote."""
    ours, theirs = params(), params()
    opt_t, opt_d = torch.optim.RMSprop(theirs, lr=0.01), O.RMSprop(ours, lr=0.01, alpha=0.99, eps_mode="outside")
    assert opt_d.param_groups[0]["alpha"] == opt_t.param_groups[0]["alpha"] == 0.99

    def lower_alpha(opt):
        def at(t):
            if t == 2:
                opt.param_groups[0]["alpha"] = 0.5
        return at

    run(opt_t, theirs, 5, before_step=lower_alpha(opt_t))
    run(opt_d, ours, 5, before_step=lower_alpha(opt_d))
    assert opt_d.param_groups[0]["beta"] == 0.5
    assert gap(ours, theirs) < TOL


@pytest.mark.parametrize("cls, kwargs, shown", [
    ("RMSprop", {"alpha": 1.5}, "alpha must be in [0, 1), got 1.5"),
    ("Momentum", {"momentum": 1.5}, "momentum must be in [0, 1), got 1.5"),
    ("Adam", {"betas": (0.9, 1.0)}, "betas[1] (beta2) must be in [0, 1), got 1.0"),
])
def test_a_torch_spelling_out_of_range_is_named_as_written(cls, kwargs, shown):
    with pytest.raises(ValueError, match=re.escape(shown)):
        getattr(O, cls)(params(), **kwargs)


def test_an_empty_group_is_accepted_and_a_repeated_tensor_refused():
    """nanoGPT-style code may build an empty no-decay group (torch accepts it); a tensor listed
    twice, which torch warns about and steps twice, is refused."""
    model = Twins().double()
    named = list(model.named_parameters())
    opt = O.AdamW([{"params": named, "weight_decay": 0.1}, {"params": [], "weight_decay": 0.0}], lr=0.01)
    train_model(model, opt, 2)
    again = O.AdamW([{"params": named, "weight_decay": 0.1}, {"params": [], "weight_decay": 0.0}], lr=0.01)
    again.load_state_dict(opt.state_dict())
    p = params()
    with pytest.raises(ValueError, match=r"params\[2\] is the same tensor as params\[0\]"):
        O.Adam([p[0], p[1], p[0]])


@pytest.mark.parametrize("cls", [O.Adam, O.AdamW, O.Momentum, O.Nesterov, O.SGD, O.RMSprop, O.Adagrad])
def test_an_unknown_keyword_names_the_optimizer_and_what_it_takes(cls):
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\(\) got an unexpected keyword argument 'bogus'; "
                                        r"it takes: lr, .*nonfinite, impl, state_dtype, state_rounding"):
        cls([torch.zeros(2, requires_grad=True)], bogus=1)


# ------------------------------------------------------------------ what code around an optimizer does
@pytest.mark.parametrize("i", range(len(PAIRS)), ids=IDS)
def test_an_optimizer_rebuilt_from_its_defaults_steps_alike(i):
    """``type(opt)(params, **opt.defaults)`` (wrappers, "reset the optimizer" recipes) works as in
    torch: the defaults hold both spellings, which agree."""
    _, _, dname, dkw = PAIRS[i]
    a, b = params(), params()
    first = getattr(O, dname)(a, **dkw)
    again = type(first)(b, **first.defaults)
    assert again.defaults == first.defaults
    run(first, a, 10)
    run(again, b, 10)
    assert gap(a, b) == 0


def test_both_spellings_are_accepted_where_they_agree():
    assert O.Adam(params(), betas=(0.9, 0.99), beta1=0.9).param_groups[0]["beta1"] == 0.9
    assert O.RMSprop(params(), 0.01, 0.99, alpha=0.99).param_groups[0]["beta"] == 0.99  # beta by position
    with pytest.raises(ValueError, match=r"both alpha=0.99 .* and beta=0.98 \(descend's\), which disagree"):
        O.RMSprop(params(), 0.01, 0.98, alpha=0.99)


def test_numpy_numbers_are_taken_as_torch_takes_them():
    np = pytest.importorskip("numpy")
    kw = dict(lr=np.float32(0.01), betas=(np.float64(0.8), np.float64(0.99)), weight_decay=np.float32(0.1),
              eps=np.float32(1e-6))
    a, b = params(), params()
    theirs, ours = torch.optim.Adam(a, **kw), O.Adam(b, **kw)
    ours.add_param_group({"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)],
                          "lr": np.int64(1), "betas": (np.float32(0.5), 0.9)})
    assert type(ours.param_groups[0]["lr"]) is float and ours.param_groups[1]["lr"] == 1
    assert ours.param_groups[1]["beta1"] == 0.5
    run(theirs, a, 20)
    run(ours, b, 20)
    assert gap(a, b) <= TOL
    assert O.SGD(params(), lr=np.array(0.1)).defaults["lr"] == 0.1  # (a 0-d array: torch's step refuses it)
    with pytest.raises(ValueError, match=r"lr must be a number .* got array\(\[0.1, 0.2\]\)"):
        O.SGD(params(), lr=np.array([0.1, 0.2]))


@pytest.mark.parametrize("tname, tkw, dname, dkw, new", [
    ("Adam", {"lr": 0.05, "betas": (0.9, 0.99)}, "Adam", {"lr": 0.05, "betas": (0.9, 0.99)}, {"betas": (0.0, 0.5)}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.99}, "RMSprop", {"lr": 0.01, "alpha": 0.99, "eps_mode": "outside"},
     {"alpha": 0.5}),
])
def test_or_assigning_a_group_writes_both_spellings(tname, tkw, dname, dkw, new):
    a, b = params(), params()
    theirs, ours = getattr(torch.optim, tname)(a, **tkw), getattr(O, dname)(b, **dkw)

    def change(opt):
        return lambda t: opt.param_groups[0].__ior__(new) if t == 3 else None

    run(theirs, a, 10, before_step=change(theirs))
    run(ours, b, 10, before_step=change(ours))
    assert gap(a, b) <= TOL


@pytest.mark.parametrize("tname, tkw, dname, dkw", [
    ("Adam", {"lr": 1e-3, "betas": (0.9, 0.99)}, "Adam", {"lr": 1e-3, "betas": (0.9, 0.99)}),
    ("SGD", {"lr": 1e-3, "momentum": 0.9}, "SGD", {"lr": 1e-3, "momentum": 0.9}),
    ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "momentum": 0.5}, "RMSprop",
     {"lr": 1e-3, "alpha": 0.9, "momentum": 0.5, "eps_mode": "outside"}),
])
def test_a_group_replaced_by_a_plain_dict_follows_torchs_momentum_cycling(tname, tkw, dname, dkw):
    """``opt.param_groups[0] = dict(...)`` drops descend's group type, so writing ``betas`` no longer
    writes ``beta1``: the step brings the two spellings back in step (the one written wins), and
    OneCycleLR's cycling of beta1 or momentum takes effect as in torch."""
    a, b = params(), params()
    out = []
    for ps, opt in ((a, getattr(torch.optim, tname)(a, **tkw)), (b, getattr(O, dname)(b, **dkw))):
        opt.param_groups[0] = dict(opt.param_groups[0])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=25)
        run(opt, ps, 25, after_step=lambda t, s=sched: s.step())
        out.append(opt)
    assert gap(a, b) <= TOL
    group = out[1].param_groups[0]
    if tname == "Adam":  # descend's spelling written into the plain dict wins the same way
        group["beta1"] = 0.5
        run(out[1], b, 1, start=25)
        assert group["betas"] == (0.5, group["beta2"])
        group["betas"] = (0.6, 0.7)
        run(out[1], b, 1, start=26)
        assert (group["beta1"], group["beta2"]) == (0.6, 0.7)


@pytest.mark.parametrize("dname, kw", [("Adam", {"lr": 0.01}), ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
                                       ("SGD", {"lr": 0.01, "momentum": 0.9}), ("RMSprop", {"lr": 0.01}),
                                       ("Adagrad", {"lr": 0.1})])
@pytest.mark.parametrize("full", [False, True], ids=["sharded-form", "full"])
def test_distributed_checkpoints_state_dict_helpers_round_trip(dname, kw, full):
    """torch.distributed.checkpoint's get/set_optimizer_state_dict (what FSDP2 and torchtitan-style
    checkpointing call) rebuild the dict from 'state' and 'param_groups' alone, without descend's
    marker: the state still loads as descend's, and the run continues exactly."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )
    options = StateDictOptions(full_state_dict=full)
    torch.manual_seed(0)
    model = Twins().double()
    opt = getattr(O, dname)(model.parameters(), **kw)
    train_model(model, opt, 5)
    saved = copy.deepcopy(get_optimizer_state_dict(model, opt, options=options))
    assert "descend" not in saved
    via = copy.deepcopy(model)
    via_opt = getattr(O, dname)(via.parameters(), **kw)
    set_optimizer_state_dict(via, via_opt, saved, options=options)
    ref = copy.deepcopy(model)
    ref_opt = getattr(O, dname)(ref.parameters(), **kw)
    ref_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    train_model(via, via_opt, 5, start=5)
    train_model(ref, ref_opt, 5, start=5)
    assert gap(list(via.parameters()), list(ref.parameters())) == 0
    assert gap(list(via.parameters()), list(model.parameters())) > 1e-4
