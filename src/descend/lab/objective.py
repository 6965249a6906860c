"""The objective of a lab run: a landscape, a landscape name or a torch function of one tensor.

:class:`Objective` gives the runners what they need from ``f``: the start,
the divergence bound, and values with gradients for one point or for ``N``
rows at once (the landscape's closed forms, or ``torch.func.vmap`` of
autograd for a plain function). ``Objective(fn, rows=True)`` takes a *rows function*
instead: ``fn(X)`` maps all ``N`` rows ``(N, *shape)`` to their ``N`` values at once (one
batched evaluation, the gradient by one backward pass through ``fn(X).sum()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import landscapes
from ..landscapes import Landscape

Tensor = torch.Tensor
DIVERGE_BOX_FACTOR = 100.0
DIVERGE_BOUND = 1e6


class Objective:
    """``f`` with what the runners need: values and gradients for one point or N rows."""

    def __init__(self, f: Landscape | str | Callable[[Tensor], Tensor], *, rows: bool = False) -> None:
        if rows and (isinstance(f, Landscape | str) or not callable(f)):
            raise ValueError(f"rows=True needs a torch function of all rows (N, ...) -> (N,), got {f!r}")
        self.rows = rows
        if isinstance(f, str):
            f = landscapes.load(f)
        self.landscape: Landscape | None = f if isinstance(f, Landscape) else None
        if self.landscape is None and not callable(f):
            raise ValueError(
                f"f must be a Landscape, a landscape name ({', '.join(landscapes.names())}) or a "
                f"differentiable torch function of one tensor, got {f!r}"
            )
        self.fn = f
        self.f_star = None if self.landscape is None else self.landscape.f_star
        self.name = None if self.landscape is None else self.landscape.name
        self._vmapped: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None
        self._vmap_failed = False

    @property
    def bound(self) -> float:
        """|x_j| beyond this means diverged: 100x the view box, or 1e6 without a landscape."""
        if self.landscape is None:
            return DIVERGE_BOUND
        return DIVERGE_BOX_FACTOR * max(abs(v) for v in self.landscape.box)

    def bound_for(self, x0: Tensor) -> float:
        """The default bound for a run from ``x0``: :attr:`bound`, or 100x the largest start
        coordinate where that is larger (a start far outside the box has not diverged there)."""
        far = float(x0.detach().abs().max()) if x0.numel() else 0.0
        return max(self.bound, DIVERGE_BOX_FACTOR * far) if math.isfinite(far) else self.bound

    def start(self, x0: Any, name: str = "x0") -> Tensor:
        """``x0`` as a floating tensor (float64 unless it already is a floating tensor)."""
        if x0 is None:
            if self.landscape is None:
                raise ValueError(f"{name} is required when f is a function (it has no default start)")
            x0 = self.landscape.start
        if isinstance(x0, Tensor):
            x = x0.detach()
            x = x if x.is_floating_point() else x.to(torch.float64)
        else:
            try:
                x = torch.as_tensor(np.asarray(x0, dtype=np.float64))
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a point (a sequence of numbers or a tensor), got {x0!r}") from None
        if x.numel() == 0:
            raise ValueError(f"{name} must hold at least one coordinate, got shape {tuple(x.shape)}")
        return x.clone()

    def check_point_shape(self, shape: tuple[int, ...], name: str) -> None:
        if self.landscape is not None and shape != (2,):
            raise ValueError(f"{name} must be a 2-D point (x, y) on landscape {self.name!r}, got shape {shape}")

    def check_start(self, x: Tensor, name: str = "x0") -> None:
        """Refuse a start where ``x``, ``f`` or its gradient is NaN or infinite: a run from there
        would be reported "diverged" at step 0 without a step taken."""
        self.check_point_shape(tuple(x.shape), name)
        point = ", ".join(f"{float(v):.6g}" for v in x.reshape(-1)[:4]) + (", ..." if x.numel() > 4 else "")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be a finite point, got ({point})")
        v, g = self.value_grad(x)
        if not (bool(torch.isfinite(v).all()) and bool(torch.isfinite(g).all())):
            raise ValueError(f"f at {name} = ({point}) is {float(v):.6g} with gradient norm "
                             f"{float(torch.linalg.vector_norm(g.to(torch.float64))):.6g}: start where f and its "
                             "gradient are finite")

    # one point -------------------------------------------------------------------
    def value_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(x), grad f(x))`` for one point, both detached."""
        if self.rows:
            F, G = self.value_grad_many(x.unsqueeze(0))
            return F[0], G[0]
        if self.landscape is not None:
            with torch.no_grad():
                return self.landscape.value_and_grad(x)
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            v = self._scalar(self.fn(z))
            if not v.requires_grad:
                return v.detach(), torch.zeros_like(z)
            (g,) = torch.autograd.grad(v, z, allow_unused=True)
        return v.detach(), torch.zeros_like(x) if g is None else g

    def loss(self, x: Tensor) -> Tensor:
        """``f(x)`` with its graph (Newton's closure)."""
        if self.landscape is not None:
            return self.landscape.f(x)
        return self._scalar(self.fn(x.unsqueeze(0))[0] if self.rows else self.fn(x))

    @staticmethod
    def _scalar(v: Any) -> Tensor:
        if not isinstance(v, Tensor) or v.numel() != 1:
            shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"f must return a scalar tensor, got {shape}")
        return v.reshape(())

    # N rows ------------------------------------------------------------------------
    def value_grad_many(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(X[i]), grad f(X[i]))`` for every row: shapes ``(N,)`` and ``(N, d)``."""
        if self.landscape is not None:
            with torch.no_grad():
                return self.landscape.value_and_grad(X)
        if self.rows:
            with torch.enable_grad():
                Z = X.detach().requires_grad_(True)
                F = self.fn(Z)
                if not isinstance(F, Tensor) or tuple(F.shape) != (X.shape[0],):
                    got = tuple(F.shape) if isinstance(F, Tensor) else type(F).__name__
                    raise ValueError(f"a rows function must return one value per row, shape "
                                     f"({X.shape[0]},), got {got}")
                G = torch.autograd.grad(F.sum(), Z, allow_unused=True)[0] if F.requires_grad else None
            return F.detach(), torch.zeros_like(X) if G is None else G
        if not self._vmap_failed:
            try:
                if self._vmapped is None:
                    gv = torch.func.grad_and_value(lambda z: self._scalar(self.fn(z)))
                    self._vmapped = torch.func.vmap(gv)
                G, F = self._vmapped(X.detach())
                return F.detach(), G.detach()
            except ValueError:
                raise
            except Exception:  # an operation without a batching rule: one row at a time
                self._vmap_failed = True
        pairs = [self.value_grad(row) for row in X.detach()]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

