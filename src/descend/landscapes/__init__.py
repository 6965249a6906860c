"""2-D test functions with known minima, for watching optimizers move.

Every :class:`Landscape` carries ``f`` (vectorized over ``(..., 2)``),
``grad`` and ``hessian`` (closed form for the built-ins), its ``minima`` and
``f_star``, a plotting ``box``, a suggested ``start`` and a ``note``::

    from descend import landscapes
    L = landscapes.get("rosenbrock")
    L.grad(torch.tensor([-1.2, 1.0]))        # tensor([-215.6000,  -88.0000])
    landscapes.bowl(kappa=100, angle=0.5)    # a rotated, ill-conditioned bowl
    landscapes.from_function(lambda x, y: x**4 + y**2, name="quartic", f_star=0.0)
    landscapes.load("x**2 + 10*y**2")        # or "module:function"; what descend race/sweep accept

=================  =========================================================
``note003``        ``3 x^2 y``, note 003's example; gradient ``(6, 3)`` at ``(1, 1)``
``bowl``           quadratic with condition number ``kappa`` (zig-zag of plain GD)
``rosenbrock``     curved narrow valley, minimum ``(1, 1)``
``beale``          flat floor and steep walls, minimum ``(3, 0.5)``
``himmelblau``     four global minima
``saddle``         ``x^2 - y^2``, unbounded
``saddle_plateau`` bounded saddle with a flat plateau (GD crawls, Adam escapes)
``two_minima``     tilted double well: a local and a global minimum
``rastrigin``      many local minima around a global one at the origin
=================  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Landscape, Minimum, as_xy, autograd_grad, autograd_hessian, from_function
from .custom import from_expression, load
from .functions import (
    beale,
    bowl,
    himmelblau,
    note003,
    rastrigin,
    rosenbrock,
    saddle,
    saddle_plateau,
    two_minima,
)

_FACTORIES: dict[str, Callable[[], Landscape]] = {
    "note003": note003,
    "bowl": bowl,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "himmelblau": himmelblau,
    "saddle": saddle,
    "saddle_plateau": saddle_plateau,
    "two_minima": two_minima,
    "rastrigin": rastrigin,
}


def names() -> list[str]:
    """The registered landscape names, in a fixed teaching order."""
    return list(_FACTORIES)


def get(name: str) -> Landscape:
    """The landscape registered as ``name`` (with default parameters for ``bowl`` and ``saddle_plateau``).

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    key = str(name).strip().lower()
    if key not in _FACTORIES:
        raise ValueError(f"unknown landscape {name!r}; valid names: {', '.join(_FACTORIES)}")
    return _FACTORIES[key]()


def all_landscapes() -> list[Landscape]:
    """Every registered landscape with its default parameters."""
    return [factory() for factory in _FACTORIES.values()]


__all__ = [
    "Landscape",
    "Minimum",
    "get",
    "names",
    "all_landscapes",
    "from_function",
    "from_expression",
    "load",
    "as_xy",
    "autograd_grad",
    "autograd_hessian",
    "note003",
    "bowl",
    "rosenbrock",
    "beale",
    "himmelblau",
    "saddle",
    "saddle_plateau",
    "two_minima",
    "rastrigin",
]
