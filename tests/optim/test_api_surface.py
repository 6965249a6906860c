"""The torch.optim.Optimizer API as training code and libraries use it, held to torch.optim.

Hooks (step, state-dict, load-state-dict, global), param groups added, edited and
extended mid-run, zero_grad, frozen and gradient-less parameters, copies, pickles,
checkpoints on a fresh model, GradScaler with clip_grad_norm_, and the patterns of
Lightning (a class made on the fly over the optimizer's), Accelerate (``step``
patched on the instance) and optimizer_to_device (state entries replaced). Every
trajectory is compared with the torch.optim twin in float64.
"""

import copy
import functools
import io
import pickle

import pytest
import torch
import torch.optim.optimizer as torch_optimizer
from torch import nn

import descend.optim as O

from .cases import BY_NAME

TOL = 1e-12
IMPLS = ["eager", "foreach", "fused"]
# the twins: descend optimizers (GD, SGD, Momentum, Nesterov included) set up to compute torch's step
TWINS = ["sgd", "sgd_as_torch", "momentum_torch_form", "nesterov_torch_form", "adagrad_torch_form",
         "rmsprop_centered_momentum", "adam", "adamw"]
# one hyperparameter per twin, changed mid-run in param_groups under torch's spelling
CHANGES = {
    "sgd": {"lr": 0.2},
    "sgd_as_torch": {"momentum": 0.5, "dampening": 0.0, "weight_decay": 0.2, "nesterov": True},
    "momentum_torch_form": {"momentum": 0.5, "weight_decay": 0.2},
    "nesterov_torch_form": {"momentum": 0.5},
    "adagrad_torch_form": {"lr_decay": 0.2, "weight_decay": 0.0},
    "rmsprop_centered_momentum": {"alpha": 0.5, "momentum": 0.1, "weight_decay": 0.2},
    "adam": {"betas": (0.5, 0.9), "weight_decay": 0.1, "eps": 1e-3},
    "adamw": {"betas": (0.5, 0.9), "weight_decay": 0.3},
}


def pair(name, params_d, params_t, impl="auto"):
    case = BY_NAME[name]
    cls, kw = case.torch
    return case.make(params_d, impl=impl), cls(params_t, **kw)


def params(seed=0, n=2):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 2)][:n]
    return [torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes]


def set_grads(ps, t):
    gen = torch.Generator().manual_seed(1000 + t)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)


def step_both(d, t, ds, ts, s):
    """One step of descend's ``d`` and torch's ``t`` on the same gradients (those of step ``s``)."""
    set_grads(ds, s)
    set_grads(ts, s)
    d.step()
    t.step()


def gap(xs, ys):
    return max((x - y).abs().max().item() for x, y in zip(xs, ys, strict=True))


def model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()


X = torch.randn(8, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
Y = torch.randn(8, 1, generator=torch.Generator().manual_seed(6), dtype=torch.float64)


def loss_of(m):
    return ((m(X) - Y) ** 2).mean()


def _closure(opt, m):
    opt.zero_grad()
    loss = loss_of(m)
    loss.backward()
    return loss


# ------------------------------------------------------------------ hooks
def _hooked_run(opt, ps):
    """Four steps: with instance hooks, with global hooks, with none, with a pre-hook that
    replaces the closure; the calls seen and the losses returned."""
    calls = []
    pre = opt.register_step_pre_hook(lambda o, a, k: calls.append(("pre", len(a), sorted(k))))
    post = opt.register_step_post_hook(lambda o, a, k: calls.append(("post", len(a), sorted(k))))
    set_grads(ps, 0)
    first = opt.step(closure=lambda: torch.tensor(3.0))
    pre.remove()
    post.remove()
    gpre = torch_optimizer.register_optimizer_step_pre_hook(lambda o, a, k: calls.append(("gpre", type(o).__name__)))
    gpost = torch_optimizer.register_optimizer_step_post_hook(lambda o, a, k: calls.append(("gpost",)))
    set_grads(ps, 1)
    opt.step()
    gpre.remove()
    gpost.remove()
    set_grads(ps, 2)
    opt.step()  # (no hooks left: nothing recorded)
    swap = opt.register_step_pre_hook(lambda o, a, k: (a[:1], {"closure": lambda: torch.tensor(7.0)}))
    set_grads(ps, 3)
    replaced = opt.step()
    swap.remove()
    return calls, first.item(), replaced.item()


@pytest.mark.parametrize("name", TWINS)
def test_step_hooks_global_hooks_and_a_pre_hook_that_replaces_the_arguments(name):
    ds, ts = params(), params()
    d, t = pair(name, ds, ts)
    seen = {"d": _hooked_run(d, ds), "t": _hooked_run(t, ts)}
    d_calls, t_calls = seen["d"][0], seen["t"][0]
    assert [c[:1] for c in d_calls] == [c[:1] for c in t_calls] == [("pre",), ("post",), ("gpre",), ("gpost",)]
    assert d_calls[0] == t_calls[0] == ("pre", 1, ["closure"])
    assert seen["d"][1:] == seen["t"][1:] == (3.0, 7.0)
    assert gap(ds, ts) < TOL


@pytest.mark.parametrize("fmt,keys", [("descend", ["S", "V", "step"]), ("torch", ["exp_avg", "exp_avg_sq", "step"])])
def test_state_dict_post_hooks_see_and_replace_the_finished_dict(fmt, keys):
    ps = params()
    opt = O.Adam(ps, lr=0.01)
    set_grads(ps, 0)
    opt.step()
    calls = []
    opt.register_state_dict_pre_hook(lambda o: calls.append("pre"))

    def post(o, sd):
        calls.append(("post", sorted(sd), [sorted(st) for st in sd["state"].values()]))
        return {**sd, "saved_by": "post-hook"}

    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict(format=fmt)
    top = ["descend", "param_groups", "state"] if fmt == "descend" else ["param_groups", "state"]
    assert calls == ["pre", ("post", top, [keys, keys])]  # (torch.optim's own post-hook sees its keys)
    assert sd["saved_by"] == "post-hook"
    fresh = O.Adam(params(1), lr=0.01)
    fresh.load_state_dict(sd)  # (the extra entry is carried, as torch.optim carries it)
    assert torch.equal(fresh.state[fresh.param_groups[0]["params"][0]]["V"], opt.state[ps[0]]["V"])


def _repaired(name, side):
    ps, head = params(), torch.randn(5, dtype=torch.float64, requires_grad=True)
    d, t = pair(name, [{"params": ps}, {"params": [head]}], [{"params": ps}, {"params": [head]}])
    opt = d if side == "d" else t
    set_grads(ps + [head], 0)
    opt.step()
    sd = opt.state_dict()
    ps2 = params(1)
    d2, t2 = pair(name, ps2, ps2)
    fresh = d2 if side == "d" else t2
    given, after = [], []

    def drop_head(o, sd):
        given.append(len(sd["param_groups"]))
        keep = set(sd["param_groups"][0]["params"])
        return {**sd, "param_groups": sd["param_groups"][:1],
                "state": {k: v for k, v in sd["state"].items() if k in keep}}

    fresh.register_load_state_dict_pre_hook(drop_head)
    fresh.register_load_state_dict_post_hook(lambda o: after.append(len(o.state)))
    fresh.load_state_dict(sd)
    set_grads(ps2, 1)
    fresh.step()
    return given, after, ps2


@pytest.mark.parametrize("name", ["adam", "sgd_as_torch"])
def test_a_load_pre_hook_repairs_a_checkpoint_before_it_is_read(name):
    """A pre-hook gets the dict as given (torch: before anything reads it): here it drops
    the param group of a head the new model no longer has."""
    results = [_repaired(name, side) for side in "dt"]
    (dg, da, dps), (tg, ta, tps) = results
    assert dg == tg == [2]
    assert da == ta == [2]
    assert gap(dps, tps) < TOL


def test_load_hooks_see_torchs_dict_as_given_and_the_loaded_hyperparameters_under_both_spellings():
    src = torch.optim.Adam(params(), lr=0.01, betas=(0.5, 0.9))
    set_grads(src.param_groups[0]["params"], 0)
    src.step()
    opt = O.Adam(params(1), lr=0.01)
    seen = []
    opt.register_load_state_dict_pre_hook(lambda o, sd: seen.append(sorted(sd["state"][0])))
    opt.register_load_state_dict_post_hook(lambda o: seen.append((o.param_groups[0]["beta1"],
                                                                   o.param_groups[0]["betas"])))
    opt.load_state_dict(src.state_dict())
    assert seen == [["exp_avg", "exp_avg_sq", "step"], (0.5, (0.5, 0.9))]  # (the pre-hook: torch's dict as given)


# ------------------------------------------------------------------ param groups
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["sgd_as_torch", "adagrad_torch_form", "rmsprop_centered_momentum", "adamw"])
def test_a_group_added_after_some_steps_steps_as_torchs(name, impl):
    ds, ts = params(), params()
    d, t = pair(name, ds, ts, impl)
    for s in range(3):
        step_both(d, t, ds, ts, s)
    d_new, t_new = params(7, 3), params(7, 3)
    d.add_param_group({"params": d_new, "lr": 0.02, "tag": "head"})
    t.add_param_group({"params": t_new, "lr": 0.02, "tag": "head"})
    for s in range(3, 6):
        step_both(d, t, ds + d_new, ts + t_new, s)
    assert gap(ds + d_new, ts + t_new) < TOL
    assert d.state[d_new[0]]["step"] == 3
    assert d.param_groups[1]["tag"] == d.state_dict()["param_groups"][1]["tag"] == "head"


def test_a_parameter_in_two_groups_is_torchs_error():
    a, b = params()
    for cls in (O.Adam, torch.optim.Adam):
        with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
            cls([{"params": [a]}, {"params": [a, b]}])
        opt = cls([a])
        with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
            opt.add_param_group({"params": [a]})
        assert len(opt.param_groups) == 1


def test_a_set_of_parameters_in_a_group_is_refused_as_torch_refuses_it():
    a = params()[0]
    for cls in (O.Adam, torch.optim.Adam):
        with pytest.raises(TypeError, match="set"):
            cls([{"params": {a}}])
    with pytest.raises(TypeError, match=r"'params' is a set of 1 tensors.*pass a list"):
        O.SGD([a], lr=0.1).add_param_group({"params": {params(1)[0]}})


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("lr", [0.003, 1, "tensor"], ids=["float", "int", "0-d tensor"])
@pytest.mark.parametrize("name", ["sgd_as_torch", "adam", "rmsprop_centered_momentum"])
def test_lr_set_in_param_groups_as_float_int_or_tensor(name, lr, impl):
    ds, ts = params(), params()
    d, t = pair(name, [{"params": ds, "note": [1, 2]}], [{"params": ts, "note": [1, 2]}], impl)
    for s in range(5):
        if s == 2:
            for opt in (d, t):
                opt.param_groups[0]["lr"] = torch.tensor(0.003, dtype=torch.float64) if lr == "tensor" else lr
        step_both(d, t, ds, ts, s)
    assert gap(ds, ts) < TOL * 10
    assert d.state_dict()["param_groups"][0]["note"] == t.state_dict()["param_groups"][0]["note"] == [1, 2]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", TWINS)
def test_hyperparameters_changed_in_param_groups_mid_run_take_effect_as_in_torch(name, impl):
    ds, ts = params(), params()
    d, t = pair(name, ds, ts, impl)
    for s in range(6):
        if s == 2:
            for opt in (d, t):
                opt.param_groups[0].update(CHANGES[name])
        step_both(d, t, ds, ts, s)
    assert gap(ds, ts) < TOL
    # (the change really changed the trajectory: without it the parameters end elsewhere)
    unchanged = params()
    u = BY_NAME[name].make(unchanged, impl=impl)
    for s in range(6):
        set_grads(unchanged, s)
        u.step()
    assert gap(ds, unchanged) > 1e-6


# ------------------------------------------------------------------ gradients and state
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", TWINS)
def test_zero_grad_frozen_and_gradient_less_parameters_as_torch(name, impl):
    ds, ts = params(n=3), params(n=3)
    d_frozen, t_frozen = (torch.ones(2, dtype=torch.float64) for _ in range(2))  # requires_grad=False
    d, t = pair(name, ds + [d_frozen], ts + [t_frozen], impl)
    for s in range(5):
        for opt, ps in ((d, ds), (t, ts)):
            set_grads(ps, s)
            if s in (1, 2):
                ps[2].grad = None  # no gradient in these steps: torch skips it, its state untouched
            if s == 3:
                opt.zero_grad(set_to_none=False)
                assert all(p.grad is not None and not p.grad.any() for p in ps)
                set_grads(ps, s)
            if s == 1:
                before = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[ps[2]].items()}
            opt.step()
            if s == 1:
                after = {k: v for k, v in opt.state[ps[2]].items()}
                assert before.keys() == after.keys()
                assert all(torch.equal(torch.as_tensor(before[k]), torch.as_tensor(after[k])) for k in before)
        assert gap(ds, ts) < TOL
    d.zero_grad()
    assert all(p.grad is None for p in ds)
    assert torch.equal(d_frozen, torch.ones(2, dtype=torch.float64))
    if "step" in t.state[ts[2]]:  # torch counts only the steps the parameter took: 5 - 2
        assert int(d.state[ds[2]]["step"]) == int(t.state[ts[2]]["step"]) == 3
    assert sorted(d.state_dict()["state"]) == [0, 1, 2]  # (the frozen parameter, 3, has no state)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["momentum_torch_form", "adam", "rmsprop_centered_momentum"])
def test_deepcopy_pickle_repr_and_defaults_against_torch(name, impl):
    ds, ts = params(), params()
    d, t = pair(name, ds, ts, impl)
    for s in range(2):
        step_both(d, t, ds, ts, s)
    d_copy, t_copy = copy.deepcopy(d), copy.deepcopy(t)
    d_pickled, t_pickled = pickle.loads(pickle.dumps(d)), pickle.loads(pickle.dumps(t))
    for dd, tt in ((d_copy, t_copy), (d_pickled, t_pickled), (d, t)):
        dps, tps = dd.param_groups[0]["params"], tt.param_groups[0]["params"]
        for s in range(2, 4):
            set_grads(dps, s)
            set_grads(tps, s)
            dd.step()
            tt.step()
        assert gap(dps, tps) < TOL
    assert d_copy.param_groups[0]["params"][0] is not ds[0]
    assert repr(d).splitlines()[:2] == [f"{type(d).__name__} (", "Parameter Group 0"]
    assert f"    lr: {d.param_groups[0]['lr']}" in repr(d).splitlines()
    for key in set(t.defaults) & set(d.defaults):
        assert d.defaults[key] == t.defaults[key], key


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["sgd_as_torch", "adagrad_torch_form", "adam"])
def test_checkpoint_loaded_into_a_fresh_optimizer_on_a_fresh_model_continues_as_torch(name, impl):
    ends = []
    for side in "dt":
        m = model(0)
        d, t = pair(name, m.parameters(), m.parameters(), impl)
        opt = d if side == "d" else t
        for _ in range(3):
            opt.zero_grad()
            loss_of(m).backward()
            opt.step()
        buf = io.BytesIO()
        torch.save({"model": m.state_dict(), "optim": opt.state_dict()}, buf)
        buf.seek(0)
        ck = torch.load(buf, weights_only=True)
        m2 = model(1)
        m2.load_state_dict(ck["model"])
        d2, t2 = pair(name, m2.parameters(), m2.parameters(), impl)
        opt2 = d2 if side == "d" else t2
        opt2.load_state_dict(ck["optim"])

        losses = [opt2.step(functools.partial(_closure, opt2, m2)).item() for _ in range(3)]
        ends.append((list(m2.parameters()), losses))
    assert gap(ends[0][0], ends[1][0]) < TOL
    assert ends[0][1] == pytest.approx(ends[1][1], abs=TOL)


# ------------------------------------------------------------------ mixed precision, libraries
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["sgd_as_torch", "adam", "rmsprop_centered_momentum"])
def test_grad_scaler_with_clip_grad_norm_skips_the_overflowing_step_as_torch(name, impl):
    out = []
    for side in "dt":
        m = model(0).float()
        d, t = pair(name, m.parameters(), m.parameters(), impl)
        opt = d if side == "d" else t
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        norms, scales = [], []
        for s in range(5):
            opt.zero_grad()
            loss = ((m(X.float()) - Y.float()) ** 2).mean()
            if s == 2:
                loss = loss * float("inf")
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            norms.append(torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5).item())
            scaler.step(opt)
            scaler.update()
            scales.append(scaler.get_scale())
        p0 = next(m.parameters())
        out.append((list(m.parameters()), norms, scales, int(opt.state[p0].get("step", 4))))
    (dp, dn, ds, dsteps), (tp, tn, ts, tsteps) = out
    assert gap(dp, tp) < 1e-6
    assert dn[:2] + dn[3:] == pytest.approx(tn[:2] + tn[3:], rel=1e-5) and not torch.isfinite(torch.tensor(dn[2]))
    assert ds == ts == [1024.0, 1024.0, 512.0, 512.0, 512.0]
    assert dsteps == tsteps == 4  # the step with infinite gradients was skipped


@pytest.mark.parametrize("cls,twin", [(O.SGD, torch.optim.SGD), (O.Adagrad, torch.optim.Adagrad)])
def test_sparse_gradients_that_torch_takes_are_refused_clearly(cls, twin):
    emb = nn.Embedding(5, 2, sparse=True)
    twin(emb.parameters(), lr=0.1)  # (torch steps these)
    opt = cls(emb.parameters(), lr=0.1)
    emb(torch.tensor([1, 3])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(ValueError, match=r"parameter 0 \(shape \(5, 2\)\) has a sparse gradient.*dense gradients only"):
        opt.step()
    assert torch.equal(emb.weight, before)


def _patched(step, called):
    def patched_step(*args, **kwargs):  # (accelerate.optimizer.patch_optimizer_step)
        called.append(1)
        return step(*args, **kwargs)
    return patched_step


@pytest.mark.parametrize("impl", IMPLS)
def test_lightning_and_accelerate_wrappers_step_as_torch(impl):
    """Lightning's LightningOptimizer makes a class on the fly over the optimizer's and
    shares its __dict__; Accelerate patches ``step`` on the instance; Lightning's
    optimizer_to_device replaces each state tensor with a moved one."""

    class Wrapper:  # (LightningOptimizer, cut down)
        def __init__(self, opt):
            self.__dict__ = {k: v for k, v in opt.__dict__.items() if k not in ("step", "__del__")}
            self._optimizer = opt
            self.__class__ = type("Lightning" + type(opt).__name__, (type(self), type(opt)), {})

        def step(self, closure=None):
            return self._optimizer.step(closure)

    ends = []
    for side in "dt":
        ps = params()
        d, t = pair("adam", ps, ps, impl)
        opt = d if side == "d" else t
        called = []
        opt.step = _patched(opt.step, called)  # (Accelerate)
        wrapped = Wrapper(opt)
        for s in range(4):
            set_grads(ps, s)
            wrapped.step()
            if s == 1:  # (optimizer_to_device)
                for st in opt.state.values():
                    for k, v in st.items():
                        if k != "step" and torch.is_tensor(v):
                            st[k] = v.to(torch.float64, copy=True)
        ends.append((ps, len(called), isinstance(wrapped, type(opt)), wrapped.param_groups[0]["lr"]))
    assert gap(ends[0][0], ends[1][0]) < TOL
    assert ends[0][1:] == ends[1][1:] == (4, True, 0.01)


class Lookahead(torch.optim.Optimizer):
    """timm.optim.Lookahead, cut down: it keeps its slow weights in the base optimizer's
    state and its counters in the base optimizer's param groups."""

    def __init__(self, base, alpha=0.5, k=2):
        self.base, self.param_groups, self.defaults = base, base.param_groups, base.defaults
        self.state = {}
        for group in base.param_groups:
            group.update(lookahead_alpha=alpha, lookahead_k=k, lookahead_step=0)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.base.step(closure)
        for group in self.base.param_groups:
            group["lookahead_step"] += 1
            if group["lookahead_step"] % group["lookahead_k"] == 0:
                for p in group["params"]:
                    slow = self.base.state[p].setdefault("lookahead_slow_buff", p.detach().clone())
                    slow.add_(p - slow, alpha=group["lookahead_alpha"])
                    p.copy_(slow)
        return loss

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict):
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["sgd_as_torch", "adam"])
def test_a_wrapper_that_keeps_its_own_state_in_the_optimizers_resumes_as_torch(name, impl):
    ends = []
    for side in "dt":
        ps = params()
        d, t = pair(name, ps, ps, impl)
        opt = Lookahead(d if side == "d" else t)
        for s in range(3):
            set_grads(ps, s)
            opt.step()
        sd = opt.state_dict()
        assert "lookahead_slow_buff" in sd["state"][0] and sd["param_groups"][0]["lookahead_step"] == 3
        ps2 = [p.detach().clone().requires_grad_() for p in ps]
        d2, t2 = pair(name, ps2, ps2, impl)
        fresh = Lookahead(d2 if side == "d" else t2)
        fresh.load_state_dict(sd)
        for s in range(3, 6):
            set_grads(ps2, s)
            fresh.step()
        ends.append(ps2)
    assert gap(*ends) < TOL


def test_state_that_does_not_fit_its_options_is_still_refused_by_name():
    """(only keys of no option pass through: a state of amsgrad under amsgrad=False, or one
    without its second moment, is refused as before)"""
    ps = params()
    src = O.Adam(ps, lr=0.01, amsgrad=True)
    set_grads(ps, 0)
    src.step()
    sd = src.state_dict()
    sd["param_groups"][0]["amsgrad"] = False
    with pytest.raises(ValueError, match=r"has keys \['S', 'S_max', 'V', 'step'\], expected \['S', 'V', 'step'\]"):
        O.Adam(params(1), lr=0.01).load_state_dict(sd)
    sd = src.state_dict()
    del sd["state"][0]["S"]
    with pytest.raises(ValueError, match=r"has keys \['S_max', 'V', 'step'\], expected \['S', 'S_max', 'V', 'step'\]"):
        O.Adam(params(1), lr=0.01).load_state_dict(sd)
