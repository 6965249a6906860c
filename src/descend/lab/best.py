"""The one rule for "the best run" of a sweep, a heat-map, a fair race and the tour.

:data:`BEST_RULE`: among the runs that reached the tolerance, the one that got
there in the **fewest steps** (ties: the lower final loss, then the smaller lr);
when none reached it, the **lowest final loss** among the runs that did not
diverge (ties: the smaller lr). Runs stop once within tolerance, so comparing
their final gaps would pick by noise below the tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BEST_RULE = "best: fewest steps to tol, then lowest final loss"


def best_index(
    steps_to_tol: Sequence[int | None],
    final_losses: Sequence[float] | np.ndarray,
    diverged: Sequence[bool] | np.ndarray,
    lrs: Sequence[float] | np.ndarray | None = None,
) -> int | None:
    """Index of the best run by :data:`BEST_RULE`; None when every run diverged.

    ``final_losses`` may be ``f`` or ``f - f*`` (only their order matters); NaN counts as worst.
    """
    n = len(final_losses)
    finals = np.asarray(final_losses, dtype=np.float64)
    finals = np.where(np.isfinite(finals), finals, np.inf)
    div = np.asarray(diverged, dtype=bool)
    lr = np.zeros(n) if lrs is None else np.asarray(lrs, dtype=np.float64)
    reached = [i for i in range(n) if steps_to_tol[i] is not None and not div[i]]
    if reached:
        return min(reached, key=lambda i: (steps_to_tol[i], finals[i], lr[i]))
    ok = [i for i in range(n) if not div[i]]
    if ok:
        return min(ok, key=lambda i: (finals[i], lr[i]))
    return None


__all__ = ["BEST_RULE", "best_index"]
