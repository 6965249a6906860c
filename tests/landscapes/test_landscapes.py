"""Landscapes: closed forms against autograd, minima, vectorization, the registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import grad as func_grad
from torch.func import jacrev, vmap

from descend import landscapes
from descend.landscapes import Landscape, Minimum

ALL = [*landscapes.all_landscapes(), landscapes.bowl(kappa=100.0, angle=0.7),
       landscapes.bowl(kappa=3.0, angle=-2.0), landscapes.saddle_plateau(eps=0.0),
       landscapes.saddle_plateau(eps=0.5)]
IDS = [f"{L.name}-{i}" for i, L in enumerate(ALL)]
BOUNDED = [L for L in ALL if L.f_star is not None]
BOUNDED_IDS = [f"{L.name}-{i}" for i, L in enumerate(BOUNDED)]


def random_points(L: Landscape, n: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` uniform points in the landscape's box, float64."""
    g = torch.Generator().manual_seed(seed)
    xmin, xmax, ymin, ymax = L.box
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    lo = torch.tensor([xmin, ymin], dtype=torch.float64)
    hi = torch.tensor([xmax, ymax], dtype=torch.float64)
    return lo + u * (hi - lo)


def reference_grad(L: Landscape, pts: torch.Tensor) -> torch.Tensor:
    """Autograd of ``f`` alone, independent of the closed form."""
    return vmap(func_grad(L.f))(pts)


def reference_hessian(L: Landscape, pts: torch.Tensor) -> torch.Tensor:
    return vmap(jacrev(func_grad(L.f)))(pts)


def test_names_and_registry() -> None:
    assert landscapes.names() == [
        "note003", "bowl", "rosenbrock", "beale", "himmelblau",
        "saddle", "saddle_plateau", "two_minima", "rastrigin",
    ]
    for name in landscapes.names():
        L = landscapes.get(name)
        assert L.name == name
        assert L.title and L.note
    assert landscapes.get(" Rosenbrock ").name == "rosenbrock"


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown landscape 'nope'.*rosenbrock.*rastrigin"):
        landscapes.get("nope")


@pytest.mark.parametrize("L", ALL, ids=IDS)
def test_closed_form_gradient_equals_autograd(L: Landscape) -> None:
    assert L.grad_fn is not None
    pts = random_points(L)
    torch.testing.assert_close(L.grad(pts), reference_grad(L, pts), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("L", ALL, ids=IDS)
def test_closed_form_hessian_equals_autograd(L: Landscape) -> None:
    assert L.hessian_fn is not None
    pts = random_points(L, seed=1)
    H = L.hessian(pts)
    assert H.shape == (64, 2, 2)
    torch.testing.assert_close(H, reference_hessian(L, pts), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(H, H.transpose(-1, -2), rtol=0, atol=0)


@pytest.mark.parametrize("L", ALL, ids=IDS)
def test_minima_are_stationary_with_psd_hessian(L: Landscape) -> None:
    for m in L.minima:
        p = torch.tensor(m.point, dtype=torch.float64)
        assert L.grad(p).norm().item() < 1e-8, m
        eig = torch.linalg.eigvalsh(L.hessian(p))
        assert eig.min().item() > 0.0, (m, eig)


@pytest.mark.parametrize("L", ALL, ids=IDS)
def test_saddles_are_stationary_and_not_minima(L: Landscape) -> None:
    for s in L.saddles:
        p = torch.tensor(s, dtype=torch.float64)
        assert L.grad(p).norm().item() < 1e-8
        assert torch.linalg.eigvalsh(L.hessian(p)).min().item() <= 0.0
        # f decreases somewhere next to a saddle point
        step = 1e-2 * torch.tensor([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=torch.float64)
        assert (L.value(p + step) < L.value(p)).any()


@pytest.mark.parametrize("L", BOUNDED, ids=BOUNDED_IDS)
def test_f_star_is_the_value_at_the_global_minima_and_below_the_box(L: Landscape) -> None:
    assert L.global_minima, "a bounded landscape lists its global minima"
    for m in L.global_minima:
        assert L.value(torch.tensor(m.point, dtype=torch.float64)).item() == pytest.approx(
            L.f_star, abs=1e-12
        )
    for m in L.minima:
        if m.kind == "local":
            assert L.value(torch.tensor(m.point, dtype=torch.float64)).item() > L.f_star + 1e-3
    xmin, xmax, ymin, ymax = L.box
    xs = torch.linspace(xmin, xmax, 201, dtype=torch.float64)
    ys = torch.linspace(ymin, ymax, 201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), dim=-1)
    assert L.value(grid).min().item() >= L.f_star - 1e-12


@pytest.mark.parametrize("L", ALL, ids=IDS)
def test_vectorization_matches_pointwise(L: Landscape) -> None:
    pts = random_points(L, n=12, seed=2)
    grid = pts.reshape(3, 4, 2)
    for method, tail in ((L.value, ()), (L.grad, (2,)), (L.hessian, (2, 2))):
        flat = method(pts)
        assert flat.shape == (12, *tail)
        batched = method(grid)
        assert batched.shape == (3, 4, *tail)
        pointwise = torch.stack([method(p) for p in pts])
        assert pointwise.shape == (12, *tail)
        torch.testing.assert_close(flat, pointwise, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(batched.reshape(12, *tail), pointwise, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("L", ALL, ids=IDS)
def test_float32_in_float32_out(L: Landscape) -> None:
    pts = random_points(L, n=8, seed=3)
    p32 = pts.float()
    for method in (L.value, L.grad, L.hessian):
        out = method(p32)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), method(p32.double()), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("L", ALL, ids=IDS)
def test_box_and_start(L: Landscape) -> None:
    xmin, xmax, ymin, ymax = L.box
    assert xmin < xmax and ymin < ymax
    x0, y0 = L.start
    assert xmin <= x0 <= xmax and ymin <= y0 <= ymax
    for m in L.minima:
        assert xmin <= m.x <= xmax and ymin <= m.y <= ymax
    assert torch.isfinite(L.value(L.start))


def test_note003_gradient_at_one_one_is_exactly_six_three() -> None:
    L = landscapes.get("note003")
    for dtype in (torch.float32, torch.float64):
        g = L.grad(torch.tensor([1.0, 1.0], dtype=dtype))
        assert torch.equal(g, torch.tensor([6.0, 3.0], dtype=dtype))
    assert L.value((1.0, 1.0)).item() == 3.0
    # gradient (6xy, 3x^2) at another point, by hand
    assert L.grad((2.0, -0.5)).tolist() == [-6.0, 12.0]
    assert L.minima == () and L.f_star is None
    assert L.value((1.0, -1e6)).item() == -3e6  # unbounded below


def test_bowl_condition_number_and_rotation() -> None:
    L = landscapes.bowl(kappa=100.0)
    eig = torch.linalg.eigvalsh(L.hessian((0.3, -0.2)))
    assert eig.tolist() == pytest.approx([1.0, 100.0], rel=1e-12)
    assert (eig[1] / eig[0]).item() == pytest.approx(100.0, rel=1e-12)
    a = 0.7
    R = landscapes.bowl(kappa=100.0, angle=a)
    eig, vec = torch.linalg.eigh(R.hessian((0.0, 0.0)))
    assert eig.tolist() == pytest.approx([1.0, 100.0], rel=1e-12)
    # the flat direction is the rotated x-axis (cos a, sin a)
    assert abs(vec[:, 0] @ torch.tensor([math.cos(a), math.sin(a)], dtype=torch.float64)).item() == (
        pytest.approx(1.0, abs=1e-12)
    )
    # f = 1/2 (u^2 + kappa v^2): along the steep axis (-sin a, cos a), f(t) = 50 t^2
    p = torch.tensor([-math.sin(a), math.cos(a)], dtype=torch.float64) * 0.5
    assert R.value(p).item() == pytest.approx(50.0 * 0.25, rel=1e-12)
    assert landscapes.get("bowl").hessian((0.0, 0.0)).tolist() == [[1.0, 0.0], [0.0, 10.0]]


@pytest.mark.parametrize("kappa", [0.5, 0.0, -3.0, float("inf"), float("nan")])
def test_bowl_rejects_bad_kappa(kappa: float) -> None:
    with pytest.raises(ValueError, match="kappa"):
        landscapes.bowl(kappa=kappa)


def test_rosenbrock_facts() -> None:
    L = landscapes.get("rosenbrock")
    assert L.start == (-1.2, 1.0) and L.box == (-2.0, 2.0, -1.0, 3.0)
    assert L.minima == (Minimum(1.0, 1.0, "global"),)
    assert L.hessian((1.0, 1.0)).tolist() == [[802.0, -400.0], [-400.0, 200.0]]
    # f(-1.2, 1) = 2.2^2 + 100 (1 - 1.44)^2 = 4.84 + 19.36
    assert L.value((-1.2, 1.0)).item() == pytest.approx(24.2, rel=1e-14)


def test_beale_and_himmelblau_minima() -> None:
    assert landscapes.get("beale").minima == (Minimum(3.0, 0.5, "global"),)
    H = landscapes.get("himmelblau")
    assert len(H.minima) == 4 and all(m.kind == "global" for m in H.minima)
    pts = torch.tensor([m.point for m in H.minima], dtype=torch.float64)
    assert H.value(pts).abs().max().item() < 1e-25
    # the four minima are distinct, one per quadrant
    signs = {(math.copysign(1, m.x), math.copysign(1, m.y)) for m in H.minima}
    assert len(signs) == 4


def test_saddle_is_unbounded() -> None:
    L = landscapes.get("saddle")
    assert L.minima == () and L.f_star is None and L.saddles == ((0.0, 0.0),)
    assert L.hessian((0.3, 0.4)).tolist() == [[2.0, 0.0], [0.0, -2.0]]
    assert L.value((0.0, 100.0)).item() == -10000.0


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.5])
def test_saddle_plateau_minima_in_closed_form(eps: float) -> None:
    L = landscapes.saddle_plateau(eps=eps)
    ystar = L.minima[0].y
    # y* is the positive root of y^4 - y^2 - eps = 0
    assert ystar**4 - ystar**2 - eps == pytest.approx(0.0, abs=1e-14)
    assert [m.point for m in L.minima] == [(0.0, ystar), (0.0, -ystar)]
    assert L.hessian((0.0, 0.0)).tolist() == [[1.0, 0.0], [0.0, -eps]]
    assert L.hessian((0.0, ystar))[1, 1].item() == pytest.approx(2 * ystar**4 + 2 * eps, rel=1e-12)
    if eps == 0.0:
        assert ystar == 1.0 and L.f_star == pytest.approx(-1.0 / 12.0, abs=1e-15)


def test_saddle_plateau_rejects_negative_eps() -> None:
    with pytest.raises(ValueError, match="eps must be .* got -0.1"):
        landscapes.saddle_plateau(eps=-0.1)


def _run(L: Landscape, opt: type[torch.optim.Optimizer], steps: int, **kw: float) -> torch.Tensor:
    p = torch.tensor(L.start, dtype=torch.float64, requires_grad=True)
    o = opt([p], **kw)
    for _ in range(steps):
        o.zero_grad()
        L.f(p).backward()
        o.step()
    return p.detach()


def test_saddle_plateau_gd_crawls_adaptive_escapes() -> None:
    L = landscapes.get("saddle_plateau")
    ystar = L.minima[0].y
    assert L.start[1] == 0.01 and L.start[0] > 1.0
    gd = _run(L, torch.optim.SGD, 300, lr=0.1)
    # y grows by about (1 + lr eps) per step: 0.01 * 1.001^300 ~ 0.0135
    assert abs(gd[0].item()) < 1e-6
    assert 0.01 < gd[1].item() < 0.0136
    adam = _run(L, torch.optim.Adam, 300, lr=0.1)
    assert adam[1].item() == pytest.approx(ystar, abs=1e-3)
    assert L.value(adam).item() == pytest.approx(L.f_star, abs=1e-6)
    rms = _run(L, torch.optim.RMSprop, 300, lr=0.01)
    assert rms[1].item() == pytest.approx(ystar, abs=1e-3)


def test_two_minima_labels_and_gd_gets_trapped() -> None:
    L = landscapes.get("two_minima")
    (glob,) = L.global_minima
    (local,) = [m for m in L.minima if m.kind == "local"]
    assert glob.x < 0 < local.x and glob.y == local.y == 0.0
    for m in (glob, local, Minimum(L.saddles[0][0], 0.0, "local")):
        x = m.x  # root of 4 x^3 - 4 x + 0.3
        assert 4 * x**3 - 4 * x + 0.3 == pytest.approx(0.0, abs=1e-14)
    assert L.value(glob.point).item() < L.value(local.point).item()
    end = _run(L, torch.optim.SGD, 500, lr=0.05)
    assert end.tolist() == pytest.approx(list(local.point), abs=1e-6)


def test_rastrigin_local_minima_ring() -> None:
    L = landscapes.get("rastrigin")
    assert L.global_minima == (Minimum(0.0, 0.0, "global"),)
    locals_ = [m for m in L.minima if m.kind == "local"]
    assert len(locals_) == 8
    a = max(abs(m.x) for m in locals_)
    assert 0.99 < a < 1.0
    assert 2 * a + 20 * math.pi * math.sin(2 * math.pi * a) == pytest.approx(0.0, abs=1e-12)


def test_from_function_autograd_matches_hand_derivatives() -> None:
    L = landscapes.from_function(
        lambda x, y: x**3 * y + torch.sin(y), box=(-1, 1, -2, 2), start=(0.5, 0.5), name="mine"
    )
    assert L.name == "mine" and L.minima == () and L.f_star is None
    assert L.grad_fn is None and L.hessian_fn is None
    pts = random_points(L, n=10, seed=4)
    x, y = pts[:, 0], pts[:, 1]
    grad = torch.stack([3 * x**2 * y, x**3 + torch.cos(y)], dim=-1)
    torch.testing.assert_close(L.grad(pts), grad, rtol=1e-12, atol=1e-12)
    hess = torch.stack(
        [torch.stack([6 * x * y, 3 * x**2], -1), torch.stack([3 * x**2, -torch.sin(y)], -1)], -2
    )
    torch.testing.assert_close(L.hessian(pts), hess, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(L.hessian(pts.reshape(2, 5, 2)), hess.reshape(2, 5, 2, 2))
    # works without grad mode and leaves the input alone
    with torch.no_grad():
        g = L.grad(pts)
    assert not g.requires_grad and not pts.requires_grad
    torch.testing.assert_close(g, grad, rtol=1e-12, atol=1e-12)


def test_from_function_gradient_is_differentiable_when_input_requires_grad() -> None:
    L = landscapes.from_function(lambda x, y: x**2 * y)
    p = torch.tensor([2.0, 3.0], dtype=torch.float64, requires_grad=True)
    g = L.grad(p)  # (2xy, x^2) = (12, 4)
    assert g.tolist() == [12.0, 4.0]
    (dg,) = torch.autograd.grad(g.sum(), p)  # d/dp (2xy + x^2) = (2y + 2x, 2x)
    assert dg.tolist() == [10.0, 4.0]


def test_from_function_defaults_and_validation() -> None:
    L = landscapes.from_function(lambda x, y: x * x + y * y, box=(0, 4, -2, 2))
    assert L.start == (3.0, 1.0) and L.name == "custom"
    # a constant function: zero gradient and Hessian
    C = landscapes.from_function(lambda x, y: torch.zeros_like(x) + 1.0)
    assert C.grad((1.0, 2.0)).tolist() == [0.0, 0.0]
    assert C.hessian((1.0, 2.0)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match=r"shape \(3,\), got \(\)"):
        landscapes.from_function(lambda x, y: (x * y).sum())
    with pytest.raises(ValueError, match="box"):
        landscapes.from_function(lambda x, y: x, box=(1, 0, 0, 1))


def test_xy_must_end_in_two() -> None:
    with pytest.raises(ValueError, match=r"xy must have shape \(\.\.\., 2\), got shape \(3,\)"):
        landscapes.get("rosenbrock").value(torch.zeros(3))


@pytest.mark.parametrize("name", landscapes.names())
def test_value_and_grad_equals_f_and_grad_bit_for_bit(name: str) -> None:
    """The fused closed forms (rosenbrock, bowl, himmelblau) give exactly f and grad's numbers."""
    L = landscapes.get(name)
    gen = torch.Generator().manual_seed(7)
    for dtype in (torch.float64, torch.float32):
        xy = (torch.rand(500, 2, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype) * 4
        f, g = L.value_and_grad(xy)
        assert torch.equal(f, L.f(xy)) and torch.equal(g, L.grad(xy))
        f1, g1 = L.value_and_grad(xy[3])
        assert torch.equal(f1, f[3]) and torch.equal(g1, g[3])
    assert (L.value_grad_fn is not None) == (name in ("rosenbrock", "bowl", "himmelblau"))


def test_replacing_f_or_grad_turns_the_fused_form_off() -> None:
    import dataclasses

    calls = []
    L = landscapes.get("rosenbrock")

    def wrapped(fn):
        def inner(xy):
            calls.append(1)
            return fn(xy)
        return inner

    W = dataclasses.replace(L, f=wrapped(L.f), grad_fn=wrapped(L.grad_fn))
    xy = torch.tensor([[0.5, -0.3]], dtype=torch.float64)
    f, g = W.value_and_grad(xy)
    assert len(calls) == 2 and torch.equal(f, L.f(xy)) and torch.equal(g, L.grad(xy))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x**(9**9**9)", "expression 'x**(9**9**9)' cannot be evaluated: OverflowError"),
        ("9**9**9 + y", "expression '9**9**9 + y' cannot be evaluated: OverflowError"),
        ("sin(x, y)", "sin takes exactly one argument, as in sin(x); got 2 positional and 0 keyword"),
        ("exp()", "exp takes exactly one argument, as in exp(x); got 0 positional and 0 keyword"),
        ("log(input=x)", "log takes exactly one argument, as in log(x); got 0 positional and 1 keyword"),
        ("x * 'ab' * 10**9", "may only use real numbers, found 'ab'"),
        ("None", "may only use real numbers, found None"),
        ("1j * x", "may only use real numbers, found 1j"),
    ],
)
def test_from_expression_rejects_what_it_cannot_evaluate_at_once(text: str, message: str) -> None:
    # 9**9**9 used to be computed as a Python integer (the call never returned); calls of the
    # wrong arity failed inside from_function's probe with torch's own words
    with pytest.raises(ValueError) as err:
        landscapes.from_expression(text)
    assert message in str(err.value)


def test_from_expression_numbers_are_floats_with_the_same_values() -> None:
    L = landscapes.from_expression("2**10 * x**2 + 7 % 4 * y")
    assert float(L([3.0, 2.0])) == 1024 * 9 + 3 * 2
    assert torch.equal(L.grad([3.0, 2.0]), torch.tensor([1024 * 6.0, 3.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box": "abcd"}, "box must be (xmin, xmax, ymin, ymax): 4 finite numbers, got 'abcd'"),
        ({"box": (0, float("inf"), 0, 1)}, "box must be (xmin, xmax, ymin, ymax): 4 finite numbers, got (0, inf, 0, 1)"),
        ({"start": "ab"}, "start must be a finite point (x, y): 2 finite numbers, got 'ab'"),
        ({"start": (1.0, None)}, "start must be a finite point (x, y): 2 finite numbers, got (1.0, None)"),
        ({"minima": [(0, 0), ("a", 0)]}, "minima[1] must be (x, y) or (x, y, kind): 2 finite numbers, got ('a', 0)"),
    ],
)
def test_from_function_names_the_argument_that_is_not_numbers(kwargs: dict, message: str) -> None:
    # these used to raise "could not convert string to float: 'a'" (or a TypeError), naming nothing
    with pytest.raises(ValueError) as err:
        landscapes.from_expression("x**2 + y**2", **kwargs)
    assert str(err.value) == message


def test_an_f_star_that_f_goes_below_is_refused_before_a_run_calls_it_converged() -> None:
    from descend.lab import minimize

    # x**2 + y**2 with f_star=5 was accepted, and a run from (1, 1) was "converged" at step 0 with f = 2
    with pytest.raises(ValueError) as err:
        landscapes.from_expression("x**2 + y**2", f_star=5)
    assert str(err.value) == ("f_star = 5 is not the minimum: f(0, 0) = 0 is lower; give the global minimum "
                              "value (or no f_star when it is unknown)")
    with pytest.raises(ValueError) as err:
        landscapes.from_expression("x**2 + y**2", minima=[(1, 1)])
    assert str(err.value).startswith("f at the global minima = 2 is not the minimum: f(0, 0) = 0 is lower")
    with pytest.raises(ValueError) as err:
        landscapes.from_expression("-x**2 - y**2", f_star=0, box=(-1, 1, -1, 1), start=(0.5, 0.5))
    assert "f(-1, -1) = -2 is lower" in str(err.value)
    # a true f_star (NaN regions of log skipped) is kept, and a run reaches it
    L = landscapes.from_expression("(x - 1)**2 + y**2 + 3", f_star=3)
    assert L.f_star == 3.0 and landscapes.from_expression("log(x) + y**2", f_star=-3, box=(0.1, 1, -1, 1)).f_star == -3
    run = minimize(L, [0.0, 0.0], "newton", steps=5)
    assert run.converged and run.steps_to_tol == 1 and run.path[1].tolist() == pytest.approx([1.0, 0.0], abs=1e-15)
    # a function that only runs on the probe's shape (3,) is still made; the grid check steps aside
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert landscapes.from_function(lambda x, y: x**2 + w * y**2, f_star=0.0).f_star == 0.0
