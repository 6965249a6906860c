"""The :class:`Landscape` record: a 2-D test function, its derivatives and what is known about it.

A landscape's ``f`` maps a tensor ``xy`` of shape ``(..., 2)`` to values of shape
``(...)``; it is vectorized, differentiable and dtype-preserving (float32 or
float64). ``grad`` and ``hessian`` use closed forms where the landscape supplies
them and autograd otherwise::

    grad(xy)    = (df/dx, df/dy)                     shape (..., 2)
    hessian(xy) = [[f_xx, f_xy], [f_yx, f_yy]]       shape (..., 2, 2)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

Tensor = torch.Tensor
PointFn = Callable[[Tensor], Tensor]

KINDS = ("global", "local")


class Minimum(NamedTuple):
    """A minimum at ``(x, y)``; ``kind`` is ``"global"`` or ``"local"``."""

    x: float
    y: float
    kind: str

    @property
    def point(self) -> tuple[float, float]:
        """``(x, y)``."""
        return (self.x, self.y)


def as_xy(xy: Tensor | Sequence[float] | Sequence[Sequence[float]]) -> Tensor:
    """``xy`` as a floating tensor of shape ``(..., 2)``.

    Tensors keep their dtype (integer tensors become float64); Python numbers
    and sequences become float64.
    """
    if isinstance(xy, Tensor):
        t = xy if xy.is_floating_point() else xy.to(torch.float64)
    else:
        t = torch.as_tensor(xy, dtype=torch.float64)
    if t.ndim == 0 or t.shape[-1] != 2:
        raise ValueError(f"xy must have shape (..., 2), got shape {tuple(t.shape)}")
    return t


def autograd_grad(f: PointFn, xy: Tensor) -> Tensor:
    """Gradient of a pointwise ``f`` by autograd, shape ``(..., 2)``.

    Because ``f`` acts on each point separately, the gradient of ``sum(f(xy))``
    with respect to ``xy`` holds every point's own gradient. The result stays
    differentiable when ``xy`` requires grad.
    """
    keep_graph = xy.requires_grad
    with torch.enable_grad():
        z = xy if keep_graph else xy.detach().requires_grad_(True)
        out = f(z).sum()
        if not out.requires_grad:  # f does not depend on xy at all
            return torch.zeros_like(xy)
        (g,) = torch.autograd.grad(out, z, create_graph=True, allow_unused=True)
    if g is None:
        return torch.zeros_like(xy)
    return g if keep_graph else g.detach()


def autograd_hessian(grad: PointFn, xy: Tensor) -> Tensor:
    """Hessian from a (differentiable) gradient function, shape ``(..., 2, 2)``.

    Row ``i`` is the gradient of ``grad(xy)[..., i]``; for a pointwise function
    the sum over points again separates the points.
    """
    keep_graph = xy.requires_grad
    with torch.enable_grad():
        z = xy if keep_graph else xy.detach().requires_grad_(True)
        g = grad(z)
        rows = []
        for i in range(2):
            gi = g[..., i].sum()
            if not gi.requires_grad:  # this gradient component is constant
                rows.append(torch.zeros_like(z))
                continue
            (r,) = torch.autograd.grad(
                gi, z, create_graph=keep_graph, retain_graph=True, allow_unused=True
            )
            rows.append(torch.zeros_like(z) if r is None else r)
    h = torch.stack(rows, dim=-2)
    return h if keep_graph else h.detach()


@dataclass(frozen=True, eq=False)
class Landscape:
    """A 2-D test function with known facts for plots and tests.

    Attributes:
        name: registry key, e.g. ``"rosenbrock"``.
        title: human-readable name with the formula.
        f: ``xy (..., 2) -> (...)``, vectorized and differentiable.
        minima: known minima as :class:`Minimum` ``(x, y, kind)``; empty when unknown.
        f_star: global minimum value, ``None`` when unbounded below or unknown.
        box: ``(xmin, xmax, ymin, ymax)`` view box for plots.
        start: suggested start ``(x, y)`` for the optimizers.
        log_levels: whether contour levels should be log-spaced (in ``f - f_star``).
        note: one sentence on what the landscape demonstrates.
        saddles: known saddle points ``(x, y)``.
        grad_fn: closed-form gradient, or ``None`` for autograd.
        hessian_fn: closed-form Hessian, or ``None`` for autograd.
        value_grad_fn: ``f`` and ``grad`` together, sharing their terms (the same numbers as
            ``f`` and ``grad_fn``, faster), or ``None``. If it carries ``of = (f, grad_fn)``, it
            is used only while those are the landscape's own (``dataclasses.replace`` of ``f``
            or ``grad_fn``, e.g. to wrap them, turns it off).
    """

    name: str
    title: str
    f: PointFn
    minima: tuple[Minimum, ...]
    f_star: float | None
    box: tuple[float, float, float, float]
    start: tuple[float, float]
    log_levels: bool = False
    note: str = ""
    saddles: tuple[tuple[float, float], ...] = ()
    grad_fn: PointFn | None = None
    hessian_fn: PointFn | None = None
    value_grad_fn: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None

    def __post_init__(self) -> None:
        xmin, xmax, ymin, ymax = (float(v) for v in self.box)
        if not (xmin < xmax and ymin < ymax):
            raise ValueError(
                f"box must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, "
                f"got {self.box!r}"
            )
        object.__setattr__(self, "box", (xmin, xmax, ymin, ymax))
        object.__setattr__(self, "start", (float(self.start[0]), float(self.start[1])))
        minima = tuple(Minimum(float(m[0]), float(m[1]), str(m[2])) for m in self.minima)
        for m in minima:
            if m.kind not in KINDS:
                raise ValueError(f"minimum kind must be one of {KINDS}, got {m.kind!r}")
        object.__setattr__(self, "minima", minima)
        object.__setattr__(
            self, "saddles", tuple((float(s[0]), float(s[1])) for s in self.saddles)
        )

    def __repr__(self) -> str:
        return f"Landscape({self.name!r}, {self.title!r})"

    def __call__(self, xy: Tensor | Sequence[float]) -> Tensor:
        return self.value(xy)

    def value(self, xy: Tensor | Sequence[float]) -> Tensor:
        """``f(xy)``, shape ``(...)`` for ``xy`` of shape ``(..., 2)``."""
        return self.f(as_xy(xy))

    def grad(self, xy: Tensor | Sequence[float]) -> Tensor:
        """``(df/dx, df/dy)``, shape ``(..., 2)``: closed form if known, else autograd."""
        t = as_xy(xy)
        if self.grad_fn is not None:
            return self.grad_fn(t)
        return autograd_grad(self.f, t)

    def value_and_grad(self, xy: Tensor | Sequence[float]) -> tuple[Tensor, Tensor]:
        """``(f(xy), grad(xy))``: in one pass when the landscape has ``value_grad_fn``."""
        t = as_xy(xy)
        fused = self.value_grad_fn
        of = getattr(fused, "of", None)  # the (f, grad_fn) it fuses; a replaced f or grad_fn wins
        if fused is not None and (of is None or (of[0] is self.f and of[1] is self.grad_fn)):
            return fused(t)
        return self.f(t), self.grad(t)

    def hessian(self, xy: Tensor | Sequence[float]) -> Tensor:
        """``[[f_xx, f_xy], [f_yx, f_yy]]``, shape ``(..., 2, 2)``: closed form if known, else autograd."""
        t = as_xy(xy)
        if self.hessian_fn is not None:
            return self.hessian_fn(t)
        if self.grad_fn is not None:
            return autograd_hessian(self.grad_fn, t)
        return autograd_hessian(lambda z: autograd_grad(self.f, z), t)

    @property
    def global_minima(self) -> tuple[Minimum, ...]:
        """The minima labelled ``"global"``."""
        return tuple(m for m in self.minima if m.kind == "global")

    @property
    def bounded(self) -> bool:
        """Whether ``f`` is known to be bounded below (``f_star`` is not ``None``)."""
        return self.f_star is not None


def from_function(
    fn: Callable[[Tensor, Tensor], Tensor],
    *,
    box: Sequence[float] = (-2.0, 2.0, -2.0, 2.0),
    start: Sequence[float] | None = None,
    name: str = "custom",
    title: str | None = None,
    log_levels: bool = False,
    note: str = "",
    f_star: float | None = None,
    minima: Sequence[Sequence[Any]] = (),
) -> Landscape:
    """A :class:`Landscape` from any torch function ``fn(x, y)`` of two tensors.

    ``fn`` receives ``x = xy[..., 0]`` and ``y = xy[..., 1]`` and must use torch
    operations (so it broadcasts and autograd sees it). Gradient and Hessian are
    computed by autograd. ``f_star`` (the global minimum value) and ``minima``
    (points ``(x, y)`` or ``(x, y, "global"|"local")``; ``(x, y)`` counts as
    global) are what you know; without ``f_star`` a run can only report a
    *stationary point* (small gradient), not convergence to the minimum. With
    minima but no ``f_star``, ``f_star`` is ``f`` at the global minima. ``start``
    defaults to the point three quarters of the way across the box,
    ``(xmin + 0.75 (xmax - xmin), ymin + 0.75 (ymax - ymin))``.

    >>> L = from_function(lambda x, y: x**2 + 3 * y**2, name="my_bowl")
    >>> L.grad(torch.tensor([1.0, 1.0]))
    tensor([2., 6.])
    """
    if not callable(fn):
        raise ValueError(f"fn must be a callable fn(x, y) -> tensor, got {fn!r}")
    xmin, xmax, ymin, ymax = _numbers("box", box, 4, "(xmin, xmax, ymin, ymax)")
    if start is None:
        start = (xmin + 0.75 * (xmax - xmin), ymin + 0.75 * (ymax - ymin))
    start = _numbers("start", start, 2, "a finite point (x, y)")

    def f(xy: Tensor) -> Tensor:
        return fn(xy[..., 0], xy[..., 1])

    try:
        probe = f(torch.zeros(3, 2, dtype=torch.float64))
    except Exception as err:  # the user's function failed: say so instead of a traceback deep in a run
        raise ValueError(
            f"fn must be a torch function fn(x, y) of two tensors; calling {name!r} on x, y of shape (3,) "
            f"failed: {type(err).__name__}: {err}"
        ) from None
    if not isinstance(probe, Tensor) or tuple(probe.shape) != (3,):
        shape = tuple(probe.shape) if isinstance(probe, Tensor) else type(probe).__name__
        raise ValueError(
            "fn must be elementwise in torch: fn(x, y) with x, y of shape (3,) must return "
            f"shape (3,), got {shape}"
        )

    given = f_star is not None
    found: list[Minimum] = []
    for i, m in enumerate(minima):
        if not isinstance(m, Sequence) or isinstance(m, str) or len(m) not in (2, 3):
            raise ValueError(f"minima[{i}] must be (x, y) or (x, y, kind), got {m!r}")
        x, y = _numbers(f"minima[{i}]", m[:2], 2, "(x, y) or (x, y, kind)")
        found.append(Minimum(x, y, str(m[2]) if len(m) == 3 else "global"))
    if f_star is not None:
        if isinstance(f_star, bool) or not isinstance(f_star, int | float) or not math.isfinite(f_star):
            raise ValueError(f"f_star must be a finite number or None, got {f_star!r}")
        f_star = float(f_star)
    elif any(m.kind == "global" for m in found):
        pts = torch.tensor([m.point for m in found if m.kind == "global"], dtype=torch.float64)
        f_star = float(f(pts).min())
    if f_star is not None:
        what = ("f_star", "give the global minimum value (or no f_star when it is unknown)") if given else (
            "f at the global minima", "list the global minima (or none when they are unknown)")
        _check_f_star(f, f_star, (xmin, xmax, ymin, ymax), start, *what)
    return Landscape(
        name=name,
        title=title if title is not None else name,
        f=f,
        minima=tuple(found),
        f_star=f_star,
        box=(xmin, xmax, ymin, ymax),
        start=(float(start[0]), float(start[1])),
        log_levels=log_levels,
        note=note or "A user-supplied function; derivatives by autograd.",
    )


def _numbers(name: str, value: Any, n: int, form: str) -> tuple[float, ...]:
    """``value`` as ``n`` finite floats, or a ValueError naming ``name``, its value and ``form``."""
    try:
        out = tuple(float(v) for v in value) if not isinstance(value, str | bytes) else ()
    except (TypeError, ValueError):
        out = ()
    if len(out) != n or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be {form}: {n} finite numbers, got {value!r}")
    return out


def _check_f_star(f: PointFn, f_star: float, box: tuple[float, ...], start: Sequence[float], what: str,
                  fix: str) -> None:
    """Refuse an ``f_star`` that ``f`` goes below on a 65 x 65 grid of the box or at the start: runs
    would count ``f - f_star < tol`` as converged wherever ``f`` is lower than the claimed minimum."""
    xs = torch.linspace(box[0], box[1], 65, dtype=torch.float64)
    ys = torch.linspace(box[2], box[3], 65, dtype=torch.float64)
    pts = torch.cat([torch.cartesian_prod(xs, ys), torch.tensor([list(start)], dtype=torch.float64)])
    try:
        with torch.no_grad():
            vals = torch.as_tensor(f(pts)).to(torch.float64).reshape(len(pts))
    except Exception:  # noqa: BLE001 (a function that fails on this grid is checked where it runs)
        return
    vals = torch.where(torch.isfinite(vals), vals, torch.inf)
    i = int(vals.argmin())
    if float(vals[i]) < f_star - 1e-6 * (1.0 + abs(f_star)):
        x, y = (float(v) for v in pts[i])
        raise ValueError(f"{what} = {f_star:.6g} is not the minimum: f({x:.6g}, {y:.6g}) = {float(vals[i]):.6g} "
                         f"is lower; {fix}")
