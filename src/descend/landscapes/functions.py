r"""The built-in landscapes, each with a closed-form gradient and Hessian.

===================  ===============================================================  =====================
name                 f(x, y)                                                           minima
===================  ===============================================================  =====================
``note003``          ``3 x^2 y``                                                       none (unbounded)
``bowl``             ``1/2 (u^2 + kappa v^2)``, ``(u, v)`` = ``(x, y)`` rotated        ``(0, 0)``, f* = 0
``rosenbrock``       ``(1 - x)^2 + 100 (y - x^2)^2``                                   ``(1, 1)``, f* = 0
``beale``            ``sum_i (c_i - x + x y^i)^2``, ``c = (1.5, 2.25, 2.625)``         ``(3, 0.5)``, f* = 0
``himmelblau``       ``(x^2 + y - 11)^2 + (x + y^2 - 7)^2``                            four, f* = 0
``saddle``           ``x^2 - y^2``                                                     none (unbounded)
``saddle_plateau``   ``x^2/2 + y^6/6 - y^4/4 - eps y^2/2``                             ``(0, +-y*)``
``two_minima``       ``(x^2 - 1)^2 + 0.3 x + y^2``                                     global x<0, local x>0
``rastrigin``        ``20 + sum_i (x_i^2 - 10 cos(2 pi x_i))``                        ``(0, 0)``, f* = 0
===================  ===============================================================  =====================
"""

from __future__ import annotations

import math

import torch

from .base import Landscape, Minimum

Tensor = torch.Tensor
TAU = 2.0 * math.pi


def _vec(gx: Tensor, gy: Tensor) -> Tensor:
    """Stack two components into shape ``(..., 2)`` (broadcasting them first)."""
    if gx.shape != gy.shape:
        gx, gy = torch.broadcast_tensors(gx, gy)
    return torch.stack((gx, gy), dim=-1)


def _sym(hxx: Tensor, hxy: Tensor, hyy: Tensor) -> Tensor:
    """The symmetric matrix ``[[hxx, hxy], [hxy, hyy]]`` of shape ``(..., 2, 2)``."""
    hxx, hxy, hyy = torch.broadcast_tensors(hxx, hxy, hyy)
    return torch.stack((torch.stack((hxx, hxy), -1), torch.stack((hxy, hyy), -1)), -2)


# ---------------------------------------------------------------- note 003: 3 x^2 y


def _note003_f(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return 3.0 * x * x * y


def _note003_grad(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return _vec(6.0 * x * y, 3.0 * x * x)


def _note003_hessian(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return _sym(6.0 * y, 6.0 * x, torch.zeros_like(x))


def note003() -> Landscape:
    """Note 003's worked example ``f = 3 x^2 y``: ``grad f = (6xy, 3x^2)``, ``(6, 3)`` at ``(1, 1)``.

    Unbounded below (``f -> -inf`` as ``y -> -inf`` for any ``x != 0``), so it
    has no minima and ``f_star`` is ``None``; every critical point lies on the
    line ``x = 0``.
    """
    return Landscape(
        name="note003",
        title="Note 003's example: f = 3x²y",
        f=_note003_f,
        grad_fn=_note003_grad,
        hessian_fn=_note003_hessian,
        minima=(),
        f_star=None,
        box=(-0.5, 2.5, -0.5, 2.5),
        start=(1.0, 1.0),
        log_levels=False,
        note="The worked example of note 003: at (1, 1) the gradient is (6, 3). Unbounded "
        "below, yet the line x = 0 is all critical points: from (1, 1) gradient descent "
        "slides onto it and stops; from (1, 0.3) it runs off to y -> -inf.",
    )


# ---------------------------------------------------------------- quadratic bowl


def bowl(kappa: float = 10.0, angle: float = 0.0) -> Landscape:
    r"""An elongated quadratic bowl with condition number ``kappa``, rotated by ``angle`` radians.

    With ``u = cos(a) x + sin(a) y`` and ``v = -sin(a) x + cos(a) y``::

        f = 1/2 (lambda1 u^2 + lambda2 v^2),   lambda1 = 1, lambda2 = kappa
        grad f = H (x, y),   H = R^T diag(1, kappa) R,   R = [[cos a, sin a], [-sin a, cos a]]

    The Hessian's eigenvalues are ``1`` and ``kappa`` (ratio ``kappa``); the
    minimum is ``f = 0`` at the origin. Plain GD with ``lr`` near ``2 / kappa``
    zig-zags across the steep ``v`` direction while crawling along ``u``.
    """
    kappa = float(kappa)
    if not (math.isfinite(kappa) and kappa >= 1.0):
        raise ValueError(f"kappa must be a finite condition number >= 1, got {kappa!r}")
    angle = float(angle)
    if not math.isfinite(angle):
        raise ValueError(f"angle must be a finite number of radians, got {angle!r}")
    c, s = math.cos(angle), math.sin(angle)
    hxx = c * c + kappa * s * s
    hxy = (1.0 - kappa) * c * s
    hyy = s * s + kappa * c * c

    def f(xy: Tensor) -> Tensor:
        x, y = xy[..., 0], xy[..., 1]
        u = c * x + s * y
        v = -s * x + c * y
        return 0.5 * (u * u + kappa * v * v)

    def grad(xy: Tensor) -> Tensor:
        x, y = xy[..., 0], xy[..., 1]
        return _vec(hxx * x + hxy * y, hxy * x + hyy * y)

    def hessian(xy: Tensor) -> Tensor:
        x = xy[..., 0]
        return _sym(torch.full_like(x, hxx), torch.full_like(x, hxy), torch.full_like(x, hyy))

    def value_grad(xy: Tensor) -> tuple[Tensor, Tensor]:
        x, y = xy[..., 0], xy[..., 1]
        u = c * x + s * y
        v = -s * x + c * y
        return 0.5 * (u * u + kappa * v * v), _vec(hxx * x + hxy * y, hxy * x + hyy * y)

    value_grad.of = (f, grad)  # type: ignore[attr-defined]

    u0, v0 = -2.5, 1.0  # start in the bowl's own coordinates, rotated back below
    deg = math.degrees(angle)
    return Landscape(
        name="bowl",
        title=f"Quadratic bowl (κ = {kappa:g}, angle = {deg:g}°)",
        f=f,
        grad_fn=grad,
        value_grad_fn=value_grad,
        hessian_fn=hessian,
        minima=(Minimum(0.0, 0.0, "global"),),
        f_star=0.0,
        box=(-3.0, 3.0, -3.0, 3.0),
        start=(c * u0 - s * v0, s * u0 + c * v0),
        log_levels=True,
        note=f"Ill-conditioned quadratic (condition number {kappa:g}): plain GD zig-zags "
        "across the narrow valley; momentum and preconditioning straighten the path.",
    )


# ---------------------------------------------------------------- Rosenbrock


def _rosenbrock_f(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def _rosenbrock_grad(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    r = y - x * x
    return _vec(-2.0 * (1.0 - x) - 400.0 * x * r, 200.0 * r)


def _rosenbrock_value_grad(xy: Tensor) -> tuple[Tensor, Tensor]:
    """``f`` and ``grad`` sharing their terms (the same expressions, so the same bits)."""
    x, y = xy[..., 0], xy[..., 1]
    a = 1.0 - x
    r = y - x * x
    return a**2 + 100.0 * r**2, _vec(-2.0 * a - 400.0 * x * r, 200.0 * r)


_rosenbrock_value_grad.of = (_rosenbrock_f, _rosenbrock_grad)  # type: ignore[attr-defined]


def _rosenbrock_hessian(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return _sym(2.0 - 400.0 * y + 1200.0 * x * x, -400.0 * x, torch.full_like(x, 200.0))


def rosenbrock() -> Landscape:
    """Rosenbrock's banana ``(1 - x)^2 + 100 (y - x^2)^2``; minimum ``0`` at ``(1, 1)``.

    ``grad = (-2 (1 - x) - 400 x (y - x^2), 200 (y - x^2))``; at the minimum the
    Hessian is ``[[802, -400], [-400, 200]]`` (condition number about 2508).
    """
    return Landscape(
        name="rosenbrock",
        title="Rosenbrock: (1 − x)² + 100 (y − x²)²",
        f=_rosenbrock_f,
        grad_fn=_rosenbrock_grad,
        value_grad_fn=_rosenbrock_value_grad,
        hessian_fn=_rosenbrock_hessian,
        minima=(Minimum(1.0, 1.0, "global"),),
        f_star=0.0,
        box=(-2.0, 2.0, -1.0, 3.0),
        start=(-1.2, 1.0),
        log_levels=True,
        note="A curved, narrow valley: easy to reach, slow to follow to (1, 1); "
        "momentum and adaptive steps help, plain GD crawls.",
    )


# ---------------------------------------------------------------- Beale

_BEALE_C = (1.5, 2.25, 2.625)


def _beale_f(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    total = torch.zeros_like(x)
    for i, ci in enumerate(_BEALE_C, start=1):
        total = total + (ci - x + x * y**i) ** 2
    return total


def _beale_grad(xy: Tensor) -> Tensor:
    # a_i = c_i - x + x y^i;  da_i/dx = y^i - 1;  da_i/dy = i x y^(i-1)
    x, y = xy[..., 0], xy[..., 1]
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    for i, ci in enumerate(_BEALE_C, start=1):
        a = ci - x + x * y**i
        gx = gx + 2.0 * a * (y**i - 1.0)
        gy = gy + 2.0 * a * (i * x * y ** (i - 1))
    return _vec(gx, gy)


def _beale_hessian(xy: Tensor) -> Tensor:
    # H = sum_i 2 (da_i da_i^T + a_i d2a_i), d2a_i = [[0, i y^(i-1)], [i y^(i-1), i (i-1) x y^(i-2)]]
    x, y = xy[..., 0], xy[..., 1]
    hxx = torch.zeros_like(x)
    hxy = torch.zeros_like(x)
    hyy = torch.zeros_like(x)
    for i, ci in enumerate(_BEALE_C, start=1):
        a = ci - x + x * y**i
        ax = y**i - 1.0
        ay = i * x * y ** (i - 1)
        axy = i * y ** (i - 1)
        ayy = i * (i - 1) * x * y ** (i - 2) if i >= 2 else torch.zeros_like(x)
        hxx = hxx + 2.0 * ax * ax
        hxy = hxy + 2.0 * (ax * ay + a * axy)
        hyy = hyy + 2.0 * (ay * ay + a * ayy)
    return _sym(hxx, hxy, hyy)


def beale() -> Landscape:
    """Beale's function ``sum_{i=1..3} (c_i - x + x y^i)^2`` with ``c = (1.5, 2.25, 2.625)``.

    Minimum ``0`` at ``(3, 0.5)``: there every residual ``c_i - 3 + 3 / 2^i`` is 0.
    """
    return Landscape(
        name="beale",
        title="Beale: Σᵢ (cᵢ − x + x yⁱ)², c = (1.5, 2.25, 2.625)",
        f=_beale_f,
        grad_fn=_beale_grad,
        hessian_fn=_beale_hessian,
        minima=(Minimum(3.0, 0.5, "global"),),
        f_star=0.0,
        box=(-4.5, 4.5, -4.5, 4.5),
        start=(1.0, 1.5),
        log_levels=True,
        note="Flat basins and steep walls (values span ten orders of magnitude): "
        "a fixed learning rate is too large on the walls and too small on the floor.",
    )


# ---------------------------------------------------------------- Himmelblau

_HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.8051180869527448531, 3.1313125182505729658),
    (-3.7793102533777468919, -3.2831859912861694123),
    (3.5844283403304917449, -1.8481265269644035535),
)


def _himmelblau_f(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2


def _himmelblau_grad(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    a = x * x + y - 11.0
    b = x + y * y - 7.0
    return _vec(4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b)


def _himmelblau_value_grad(xy: Tensor) -> tuple[Tensor, Tensor]:
    x, y = xy[..., 0], xy[..., 1]
    a = x * x + y - 11.0
    b = x + y * y - 7.0
    return a**2 + b**2, _vec(4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b)


_himmelblau_value_grad.of = (_himmelblau_f, _himmelblau_grad)  # type: ignore[attr-defined]


def _himmelblau_hessian(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    a = x * x + y - 11.0
    b = x + y * y - 7.0
    return _sym(4.0 * a + 8.0 * x * x + 2.0, 4.0 * x + 4.0 * y, 2.0 + 4.0 * b + 8.0 * y * y)


def himmelblau() -> Landscape:
    """Himmelblau's function ``(x^2 + y - 11)^2 + (x + y^2 - 7)^2``: four global minima, all 0.

    ``(3, 2)`` is exact; the other three were solved to 20 digits (mpmath) and
    are stored to float64 precision.
    """
    return Landscape(
        name="himmelblau",
        title="Himmelblau: (x² + y − 11)² + (x + y² − 7)²",
        f=_himmelblau_f,
        grad_fn=_himmelblau_grad,
        value_grad_fn=_himmelblau_value_grad,
        hessian_fn=_himmelblau_hessian,
        minima=tuple(Minimum(x, y, "global") for x, y in _HIMMELBLAU_MINIMA),
        f_star=0.0,
        box=(-5.0, 5.0, -5.0, 5.0),
        start=(0.0, 0.0),
        log_levels=True,
        note="Four equally good minima: which one an optimizer finds depends on the "
        "start, the learning rate and the method.",
    )


# ---------------------------------------------------------------- plain saddle


def _saddle_f(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return x * x - y * y


def _saddle_grad(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return _vec(2.0 * x, -2.0 * y)


def _saddle_hessian(xy: Tensor) -> Tensor:
    x = xy[..., 0]
    return _sym(torch.full_like(x, 2.0), torch.zeros_like(x), torch.full_like(x, -2.0))


def saddle() -> Landscape:
    """The saddle ``x^2 - y^2``: critical point at the origin, Hessian ``diag(2, -2)``, unbounded below."""
    return Landscape(
        name="saddle",
        title="Saddle: x² − y²",
        f=_saddle_f,
        grad_fn=_saddle_grad,
        hessian_fn=_saddle_hessian,
        minima=(),
        f_star=None,
        saddles=((0.0, 0.0),),
        box=(-2.0, 2.0, -2.0, 2.0),
        start=(1.5, 0.01),
        log_levels=False,
        note="A pure saddle: started near the x-axis (its stable manifold), GD first "
        "slides toward the origin, then escapes along y at a rate set by the tiny y offset.",
    )


# ---------------------------------------------------------------- saddle with a plateau


def saddle_plateau(eps: float = 0.01) -> Landscape:
    r"""A bounded saddle with a plateau: ``f = x^2/2 + y^6/6 - y^4/4 - eps y^2/2``.

    ::

        grad f    = (x, y^5 - y^3 - eps y)
        hessian f = diag(1, 5 y^4 - 3 y^2 - eps)

    * saddle at the origin, Hessian ``diag(1, -eps)``: along ``y`` the surface
      is flat to fourth order (``f(0, y) ~ -eps y^2/2 - y^4/4``), a plateau;
    * two global minima ``(0, +-y*)`` with ``y*^2 = (1 + sqrt(1 + 4 eps)) / 2``
      (the positive root of ``y^4 - y^2 - eps = 0``), Hessian ``diag(1, 2 y*^4 + 2 eps)``
      (using ``y*^4 = y*^2 + eps``): well curved, unlike the plateau;
    * ``f* = y*^6/6 - y*^4/4 - eps y*^2/2`` (``-1/12`` at ``eps = 0``).

    Started near the stable manifold ``y = 0``, plain GD with step ``lr`` grows
    ``y`` by the factor ``1 + lr eps`` per step (about 4600 steps to go from
    ``y = 0.01`` to ``y = 1`` at ``lr = 0.1``, ``eps = 0.01``), whereas Adam or
    RMSprop, which divide the gradient by its own running size, move ``y`` by about
    ``lr`` per step and leave the plateau in tens of steps. ``eps = 0`` gives a
    degenerate saddle (Hessian ``diag(1, 0)``) with ``f(0, y) ~ -y^4/4``.
    """
    eps = float(eps)
    if not (math.isfinite(eps) and eps >= 0.0):
        raise ValueError(f"eps must be a finite number >= 0 (the saddle's negative curvature), got {eps!r}")
    y2 = (1.0 + math.sqrt(1.0 + 4.0 * eps)) / 2.0
    ystar = math.sqrt(y2)
    f_star = y2**3 / 6.0 - y2**2 / 4.0 - eps * y2 / 2.0

    def f(xy: Tensor) -> Tensor:
        x, y = xy[..., 0], xy[..., 1]
        y2t = y * y
        return 0.5 * x * x + y2t * y2t * y2t / 6.0 - y2t * y2t / 4.0 - 0.5 * eps * y2t

    def grad(xy: Tensor) -> Tensor:
        x, y = xy[..., 0], xy[..., 1]
        y2t = y * y
        return _vec(x.clone(), y * (y2t * y2t - y2t - eps))

    def hessian(xy: Tensor) -> Tensor:
        x, y = xy[..., 0], xy[..., 1]
        y2t = y * y
        return _sym(torch.ones_like(x), torch.zeros_like(x), 5.0 * y2t * y2t - 3.0 * y2t - eps)

    return Landscape(
        name="saddle_plateau",
        title=f"Saddle with a plateau: x²/2 + y⁶/6 − y⁴/4 − {eps:g}·y²/2",
        f=f,
        grad_fn=grad,
        hessian_fn=hessian,
        minima=(Minimum(0.0, ystar, "global"), Minimum(0.0, -ystar, "global")),
        f_star=f_star,
        saddles=((0.0, 0.0),),
        box=(-2.0, 2.0, -1.6, 1.6),
        start=(1.5, 0.01),
        log_levels=False,
        note="A flat saddle: from near the stable manifold y = 0, plain GD crawls for "
        "thousands of steps while Adam and RMSprop escape in tens.",
    )


# ---------------------------------------------------------------- tilted double well

_TWO_MINIMA_TILT = 0.3
# roots of f_x = 4 x^3 - 4 x + 0.3, solved with mpmath to 20 digits
_TWO_MINIMA_GLOBAL_X = -1.0355787140888537414
_TWO_MINIMA_SADDLE_X = 0.075429158569748219958
_TWO_MINIMA_LOCAL_X = 0.96014955551910552146
_TWO_MINIMA_F_STAR = -0.30542848374391597437  # f at the global minimum
_TWO_MINIMA_F_LOCAL = 0.29414648102826284621  # f at the local minimum


def _two_minima_f(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return (x * x - 1.0) ** 2 + _TWO_MINIMA_TILT * x + y * y


def _two_minima_grad(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return _vec(4.0 * x * (x * x - 1.0) + _TWO_MINIMA_TILT, 2.0 * y)


def _two_minima_hessian(xy: Tensor) -> Tensor:
    x = xy[..., 0]
    return _sym(12.0 * x * x - 4.0, torch.zeros_like(x), torch.full_like(x, 2.0))


def two_minima() -> Landscape:
    """A tilted double well ``(x^2 - 1)^2 + 0.3 x + y^2``: one global and one local minimum.

    ``f_x = 4 x^3 - 4 x + 0.3`` has three roots: the global minimum at
    ``x = -1.03557871...`` (``f* = -0.30542848...``), a saddle at ``x = 0.07542916...``
    and a local minimum at ``x = 0.96014956...`` (``f = 0.29414648...``), all at ``y = 0``.
    """
    return Landscape(
        name="two_minima",
        title="Tilted double well: (x² − 1)² + 0.3x + y²",
        f=_two_minima_f,
        grad_fn=_two_minima_grad,
        hessian_fn=_two_minima_hessian,
        minima=(
            Minimum(_TWO_MINIMA_GLOBAL_X, 0.0, "global"),
            Minimum(_TWO_MINIMA_LOCAL_X, 0.0, "local"),
        ),
        f_star=_TWO_MINIMA_F_STAR,
        saddles=((_TWO_MINIMA_SADDLE_X, 0.0),),
        box=(-2.0, 2.0, -1.5, 1.5),
        start=(1.6, 1.0),
        log_levels=False,
        note="A local and a global minimum: from the right, plain GD settles in the "
        "local well; enough momentum carries the iterate over the barrier.",
    )


# ---------------------------------------------------------------- Rastrigin

# nonzero root of 2 x + 20 pi sin(2 pi x) near 1 (a 1-D local minimum), mpmath to 20 digits
_RASTRIGIN_A = 0.99495863765233479545


def _rastrigin_f(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return 20.0 + x * x - 10.0 * torch.cos(TAU * x) + y * y - 10.0 * torch.cos(TAU * y)


def _rastrigin_grad(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    return _vec(2.0 * x + 10.0 * TAU * torch.sin(TAU * x), 2.0 * y + 10.0 * TAU * torch.sin(TAU * y))


def _rastrigin_hessian(xy: Tensor) -> Tensor:
    x, y = xy[..., 0], xy[..., 1]
    k = 10.0 * TAU * TAU
    return _sym(2.0 + k * torch.cos(TAU * x), torch.zeros_like(x), 2.0 + k * torch.cos(TAU * y))


def rastrigin() -> Landscape:
    """Rastrigin ``20 + sum_i (x_i^2 - 10 cos(2 pi x_i))``: minimum 0 at the origin, a local minimum near every integer point.

    The eight local minima next to the origin, ``(+-a, 0)``, ``(0, +-a)``,
    ``(+-a, +-a)`` with ``a = 0.99495863...`` (root of ``2a + 20 pi sin(2 pi a) = 0``,
    slightly inside the integer), are listed as ``"local"``.
    """
    a = _RASTRIGIN_A
    ring = [(a, 0.0), (-a, 0.0), (0.0, a), (0.0, -a), (a, a), (a, -a), (-a, a), (-a, -a)]
    return Landscape(
        name="rastrigin",
        title="Rastrigin: 20 + Σᵢ (xᵢ² − 10 cos 2πxᵢ)",
        f=_rastrigin_f,
        grad_fn=_rastrigin_grad,
        hessian_fn=_rastrigin_hessian,
        minima=(Minimum(0.0, 0.0, "global"), *(Minimum(x, y, "local") for x, y in ring)),
        f_star=0.0,
        box=(-5.12, 5.12, -5.12, 5.12),
        start=(3.2, -2.6),
        log_levels=False,
        note="A bowl covered in egg-crate bumps: gradient methods stop in the nearest "
        "of about a hundred local minima.",
    )
