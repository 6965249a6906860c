"""state_dict round trips, argument validation, the non-finite policy,
tensor hyperparameters and Nesterov's two forms."""

import io

import pytest
import torch

import descend.optim as O

from .cases import STATE

ALL = {c.name: (c.cls, c.kw) for c in STATE}


def loss_fn(ps):
    w, b = ps
    return ((w - 1) ** 2).sum() + torch.sin(w).sum() + (b**2 * torch.arange(1.0, 4.0)).sum()


def fresh():
    torch.manual_seed(0)
    return [torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)]


def train(opt, ps, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(ps).backward()
        opt.step()


@pytest.mark.parametrize("name", sorted(ALL))
def test_resume_from_state_dict_is_bit_identical(name):
    cls, kw = ALL[name]
    ps = fresh()
    full = cls(ps, **kw)
    train(full, ps, 100)

    qs = fresh()
    first = cls(qs, **kw)
    train(first, qs, 50)
    buf = io.BytesIO()
    torch.save({"params": [q.detach() for q in qs], "opt": first.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    rs = [t.clone().requires_grad_() for t in saved["params"]]
    second = cls(rs, **kw)
    second.load_state_dict(saved["opt"])
    train(second, rs, 50)
    for p, r in zip(ps, rs):
        assert torch.equal(p, r)


def test_newton_resume_is_bit_identical():
    def run(x, opt, n):
        for _ in range(n):
            opt.step(lambda: ((x - 2) ** 4).sum() + (x**2).sum())

    x = torch.tensor([3.0, -1.0], dtype=torch.float64, requires_grad=True)
    run(x, O.Newton([x], line_search=True), 10)
    y = torch.tensor([3.0, -1.0], dtype=torch.float64, requires_grad=True)
    a = O.Newton([y], line_search=True)
    run(y, a, 5)
    z = y.detach().clone().requires_grad_()
    b = O.Newton([z], line_search=True)
    b.load_state_dict(a.state_dict())
    run(z, b, 5)
    assert torch.equal(x, z)
    assert b.state[z]["step"] == 10


def test_loading_another_optimizers_state_fails_clearly():
    ps = fresh()
    adam = O.Adam(ps)
    train(adam, ps, 2)
    with pytest.raises(ValueError, match=r"saved by descend.optim.Adam and cannot be loaded into descend.optim.SGD"):
        O.SGD(fresh()).load_state_dict(adam.state_dict())
    torch_sd = torch.optim.SGD(fresh()).state_dict()  # torch.optim.Adam's own state loads (compat)
    with pytest.raises(ValueError, match="not saved by a descend optimizer"):
        O.Adam(fresh()).load_state_dict(torch_sd)
    other = [torch.randn(5, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    with pytest.raises(ValueError, match=r"shape \(4, 3\), the parameter has shape \(5, 3\)"):
        O.Adam(other).load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="has 2 parameters"):
        O.Adam([torch.randn(4, 3, requires_grad=True)]).load_state_dict(adam.state_dict())
    corrupt = adam.state_dict()
    del corrupt["state"][0]["S"]
    with pytest.raises(ValueError, match=r"has keys \['V', 'step'\], expected \['S', 'V', 'step'\]"):
        O.Adam(fresh()).load_state_dict(corrupt)
    # as in torch, loading takes the saved hyperparameters along with the state
    a2 = O.Adam(fresh(), amsgrad=True)
    train(a2, a2.param_groups[0]["params"], 1)
    plain = O.Adam(fresh())
    plain.load_state_dict(a2.state_dict())
    assert plain.param_groups[0]["amsgrad"] is True


p = [torch.zeros(2, requires_grad=True)]

INVALID = [
    (O.SGD, {"lr": -0.1}, r"lr must be in \[0, inf\), got -0.1"),
    (O.SGD, {"lr": float("nan")}, "lr must be finite"),
    (O.SGD, {"lr": "fast"}, "lr must be a number"),
    (O.SGD, {"momentum": -0.1}, r"momentum must be in \[0, inf\), got -0.1"),  # (1 and above: as torch)
    (O.SGD, {"dampening": 1.5}, r"dampening must be in \[0, 1\]"),
    (O.SGD, {"nesterov": True}, "nesterov=True needs momentum > 0"),
    (O.SGD, {"weight_decay": -1.0}, "weight_decay must be in"),
    (O.SGD, {"l1": -1e-3}, "l1 must be in"),
    (O.SGD, {"maximize": 1}, "maximize must be True or False"),
    (O.SGD, {"nonfinite": "warn"}, "nonfinite must be one of 'raise', 'skip', 'ignore'; got 'warn'"),
    (O.Momentum, {"beta": 1.0}, r"beta must be in \[0, 1\), got 1.0"),
    (O.Momentum, {"beta": -0.1}, r"beta must be in \[0, 1\)"),
    (O.Momentum, {"style": "polyak"}, "style must be one of 'heavy_ball', 'ema'; got 'polyak'"),
    (O.Momentum, {"first_step": "one"}, "first_step must be one of"),
    (O.Momentum, {"lr_inside": "yes"}, "lr_inside must be True, False or None"),
    (O.Nesterov, {"lookahead": "no"}, "lookahead must be True or False"),
    (O.Adagrad, {"eps": -1e-8}, "eps must be in"),
    (O.Adagrad, {"eps_mode": "hat"}, "eps_mode must be one of 'inside', 'outside'"),
    (O.Adagrad, {"initial_accumulator_value": -0.1}, "initial_accumulator_value must be in"),
    (O.Adagrad, {"lr_decay": -1.0}, "lr_decay must be in"),
    (O.RMSprop, {"beta": 1.2}, r"beta must be in \[0, 1\)"),
    (O.RMSprop, {"momentum": -0.5}, "momentum must be in"),
    (O.RMSprop, {"centered": None}, "centered must be True or False"),
    (O.Adam, {"beta1": 1.0}, r"beta1 must be in \[0, 1\), got 1.0"),
    (O.Adam, {"beta2": -0.001}, r"beta2 must be in \[0, 1\)"),
    (O.Adam, {"eps": -1.0}, "eps must be in"),
    (O.Adam, {"eps_mode": "middle"}, "eps_mode must be one of 'outside', 'inside', 'hat'"),
    (O.Adam, {"amsgrad": "yes"}, "amsgrad must be True or False"),
    (O.AdamW, {"weight_decay": -0.01}, "weight_decay must be in"),
    (O.Adam, {"lr": torch.tensor([1, 2])}, "lr must be a floating-point tensor"),
    (O.Adam, {"lr": torch.tensor([-1.0, 2.0])}, r"lr must be in \[0, inf\)"),
    (O.Newton, {"lr": 0.0}, r"lr must be in \(0, inf\)"),
    (O.Newton, {"damping": -1.0}, "damping must be in"),
    (O.Newton, {"hessian": "bfgs"}, "hessian must be one of 'auto', 'exact', 'cg'"),
    (O.Newton, {"c1": 1.0}, r"c1 must be in \(0, 1\)"),
    (O.Newton, {"backtrack": 0.0}, r"backtrack must be in \(0, 1\)"),
    (O.Newton, {"max_backtracks": 0}, "max_backtracks must be an integer >= 1"),
    (O.Newton, {"exact_max": 2.5}, "exact_max must be an integer >= 1"),
]


@pytest.mark.parametrize("cls,kw,msg", INVALID, ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in INVALID])
def test_invalid_arguments(cls, kw, msg):
    with pytest.raises(ValueError, match=msg):
        cls(p, **kw)


@pytest.mark.parametrize("cls", [O.SGD, O.Momentum, O.Nesterov, O.Adagrad, O.RMSprop, O.Adam, O.AdamW, O.Newton])
def test_invalid_params(cls):
    with pytest.raises(ValueError, match="empty"):
        cls([])
    with pytest.raises(ValueError, match=r"params\[1\] must be a torch.Tensor"):
        cls([torch.zeros(1, requires_grad=True), 3.0])
    with pytest.raises(ValueError, match="floating-point"):
        cls([torch.zeros(2, dtype=torch.long)])
    with pytest.raises(ValueError, match="single tensor"):
        cls(torch.zeros(2, requires_grad=True))


def test_add_param_group_validates_and_rolls_back():
    opt = O.Adam([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match=r"beta1 must be in \[0, 1\), got 1.5"):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "beta1": 1.5})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="does not broadcast"):
        opt.add_param_group({"params": [torch.zeros(3, 2, requires_grad=True)], "lr": torch.ones(4, 1)})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["beta2"] == 0.999


# ---------------------------------------------------------------- non-finite
@pytest.mark.parametrize("name", sorted(ALL))
def test_nonfinite_raise_names_the_parameter_and_step(name):
    cls, kw = ALL[name]
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    opt = cls(model.named_parameters(), **kw)
    x = torch.randn(5, 3)
    for _ in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    before = [q.detach().clone() for q in model.parameters()]
    opt.zero_grad()
    model(x).sum().backward()
    model[1].bias.grad[0] = float("nan")
    with pytest.raises(O.NonFiniteGradientError, match=r"NaN gradient in parameter '1.bias' at step 4"):
        opt.step()
    for q, b in zip(model.parameters(), before):
        assert torch.equal(q, b)


@pytest.mark.parametrize("name", sorted(ALL))
def test_nonfinite_skip_leaves_everything_bitwise_unchanged(name):
    cls, kw = ALL[name]
    ps = fresh()
    opt = cls(ps, nonfinite="skip", **kw)
    train(opt, ps, 3)
    before_p = [q.detach().clone() for q in ps]
    before_state = io.BytesIO()
    torch.save(opt.state_dict(), before_state)
    opt.zero_grad()
    loss_fn(ps).backward()
    ps[0].grad[1, 1] = float("inf")
    opt.step()
    for q, b in zip(ps, before_p):
        assert torch.equal(q, b)
    before_state.seek(0)
    old = torch.load(before_state)
    new = opt.state_dict()
    for k, st in old["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, new["state"][k][key])
            else:
                assert value == new["state"][k][key]
    train(opt, ps, 1)  # and the next finite step goes through
    assert not torch.equal(ps[0], before_p[0])


def test_nonfinite_ignore_is_torch_behaviour():
    q = torch.zeros(2, requires_grad=True)
    opt = O.SGD([q], lr=0.1, nonfinite="ignore")
    q.grad = torch.tensor([float("nan"), 1.0])
    opt.step()
    assert torch.isnan(q[0]) and q[1].item() == pytest.approx(-0.1)


# ---------------------------------------------------------------- tensor hyperparameters
TENSOR_LR = {
    "sgd": (O.SGD, {"momentum": 0.9}),
    "momentum": (O.Momentum, {}),
    "nesterov": (O.Nesterov, {"style": "ema"}),
    "adagrad": (O.Adagrad, {"lr_decay": 0.01}),
    "rmsprop": (O.RMSprop, {"centered": True, "momentum": 0.3}),
    "adam": (O.Adam, {"amsgrad": True}),
    "adamw": (O.AdamW, {}),
}


def bowl_grad(xy):
    return torch.stack([2 * xy[..., 0] + torch.sin(xy[..., 1]), 20 * xy[..., 1]], dim=-1)


@pytest.mark.parametrize("name", sorted(TENSOR_LR))
def test_tensor_lr_equals_separate_runs(name):
    cls, kw = TENSOR_LR[name]
    lrs = torch.tensor([[0.001], [0.01], [0.03], [0.1]], dtype=torch.float64)
    start = torch.tensor([1.5, -0.7], dtype=torch.float64)
    X = start.repeat(4, 1).requires_grad_()
    opt = cls([X], lr=lrs, **kw)
    for _ in range(100):
        X.grad = bowl_grad(X.detach())
        opt.step()
    for i in range(4):
        x = start.clone().requires_grad_()
        single = cls([x], lr=lrs[i, 0].item(), impl="eager", **kw)  # the reference path
        for _ in range(100):
            x.grad = bowl_grad(x.detach())
            single.step()
        assert torch.equal(X[i].detach(), x.detach()), (i, X[i], x)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_a_float32_tensor_lr_equals_separate_float32_runs(name):
    """In float32 the scalar part (lr / (1 - beta1^t), AdamW's lr * decay) is computed in float64
    and rounded once, as a number's run does in Python floats; rounding it twice made the rows
    with lr 0.01 and 0.3 drift from their own runs in the last bit."""
    cls, kw = TENSOR_LR[name]
    lrs = torch.tensor([[1e-3], [3e-3], [1e-2], [0.3]])
    x0 = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))

    def run(lr, x):
        p = x.clone().requires_grad_()
        opt = cls([p], lr=lr, weight_decay=0.1, impl="eager", **kw)
        for k in range(20):
            p.grad = torch.sin(p.detach() * 3 + k)
            opt.step()
        return p.detach()

    batch = run(lrs, x0)
    for i in range(4):
        assert torch.equal(batch[i:i + 1], run(lrs[i].item(), x0[i:i + 1])), i


def test_tensor_beta_sweeps_too():
    betas = torch.tensor([[0.0], [0.5], [0.9]], dtype=torch.float64)
    X = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
    opt = O.Momentum([X], lr=0.01, beta=betas)
    for _ in range(50):
        X.grad = bowl_grad(X.detach())
        opt.step()
    for i, b in enumerate([0.0, 0.5, 0.9]):
        x = torch.ones(2, dtype=torch.float64, requires_grad=True)
        single = O.Momentum([x], lr=0.01, beta=b, impl="eager")
        for _ in range(50):
            x.grad = bowl_grad(x.detach())
            single.step()
        assert torch.equal(X[i].detach(), x.detach())


def test_a_tensor_sgd_momentum_with_a_zero_row_is_torchs_momentum_zero():
    """torch's SGD with momentum=0 keeps no buffer, so dampening does not apply; a row at 0 of a
    tensor momentum must do the same (it had stepped by (1 - dampening) * g)."""
    moms = torch.tensor([[0.9], [0.0]], dtype=torch.float64)
    X = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    opt = O.SGD([X], lr=0.1, momentum=moms, dampening=0.5)
    for _ in range(5):
        X.grad = bowl_grad(X.detach())
        opt.step()
    for i, m in enumerate([0.9, 0.0]):
        x, y = (torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in range(2))
        single = O.SGD([x], lr=0.1, momentum=m, dampening=0.5, impl="eager")
        ref = torch.optim.SGD([y], lr=0.1, momentum=m, dampening=0.5)
        for _ in range(5):
            x.grad, y.grad = bowl_grad(x.detach()), bowl_grad(y.detach())
            single.step()
            ref.step()
        assert torch.equal(X[i].detach(), x.detach()), i
        assert torch.allclose(x, y, rtol=0, atol=1e-12), i


# ---------------------------------------------------------------- Nesterov's two forms
def test_nesterov_lookahead_and_reformulation_evaluate_the_same_points():
    def f(x):
        return (x[0] - 1) ** 2 + 10 * (x[1] + 0.5) ** 2 + 0.3 * torch.sin(3 * x[0])

    pts_a, pts_b = [], []
    a = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt_a = O.Nesterov([a], lr=0.02, beta=0.9, lookahead=True)

    def closure_a():
        opt_a.zero_grad()
        pts_a.append(a.detach().clone())
        loss = f(a)
        loss.backward()
        return loss

    b = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt_b = O.Nesterov([b], lr=0.02, beta=0.9)
    for _ in range(60):
        opt_a.step(closure_a)
        opt_b.zero_grad()
        pts_b.append(b.detach().clone())
        f(b).backward()
        opt_b.step()
    for pa, pb in zip(pts_a, pts_b):
        assert torch.allclose(pa, pb, atol=1e-12, rtol=0)
    assert (pts_a[-1] - pts_a[0]).norm() > 1.0
    with pytest.raises(ValueError, match="needs a closure"):
        opt_a.step()


def test_nesterov_overshoots_less_than_momentum():
    """Note 001: with the look-ahead, the path past the minimum is shorter."""
    def run(cls):
        x = torch.tensor([5.0], dtype=torch.float64, requires_grad=True)
        opt = cls([x], lr=0.05, beta=0.9)
        lowest = 5.0
        for _ in range(200):
            x.grad = 2 * x.detach()
            opt.step()
            lowest = min(lowest, x.item())
        return lowest

    assert run(O.Nesterov) > run(O.Momentum)  # both start at 5 and overshoot below 0
    assert run(O.Momentum) < 0


@pytest.mark.parametrize("impl", ["eager", "foreach", "fused"])
def test_deepcopy_and_pickle_give_an_optimizer_that_steps_as_the_original(impl):
    import copy

    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(300, 200, generator=gen).requires_grad_(), torch.randn(7, generator=gen).requires_grad_()]
    opt = O.Adam(ps, lr=0.01, impl=impl, nonfinite="skip", state_dtype=torch.bfloat16, state_rounding="nearest")
    for _ in range(3):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    buf = io.BytesIO()
    torch.save(opt, buf)
    buf.seek(0)
    copies = [copy.deepcopy(opt), torch.load(buf, weights_only=False)]
    for other in copies:
        assert (other.nonfinite, other.impl, other.state_dtype, other.state_rounding) == \
            ("skip", impl, torch.bfloat16, "nearest")
        theirs = other.param_groups[0]["params"]
        assert all(torch.equal(a, b) and a is not b for a, b in zip(ps, theirs))
        for a, b in zip(ps, theirs):
            b.grad = a.grad.clone()
        other.step()
        assert not any(torch.equal(a, b) for a, b in zip(ps, theirs))  # the copy moved, the original not
    opt.step()
    for other in copies:
        for a, b in zip(ps, other.param_groups[0]["params"]):
            assert torch.equal(a, b)
            assert all(torch.equal(opt.state[a][k], other.state[b][k]) for k in ("V", "S"))
