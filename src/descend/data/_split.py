"""Split sizes and (stratified) splits of index sets, exact and seeded.

``split_sizes(n, fractions)`` apportions ``n`` examples by the largest
remainder method: every size is ``floor(n p_s)`` or ``ceil(n p_s)`` and the
sizes add up to ``n``.

``split_indices(y, sizes, rng, stratify=True)`` cuts ``range(len(y))`` into
parts of the given sizes. Stratified, class ``c`` (``n_c`` examples) gets
``floor(n_c N_s / n)`` or ``ceil(n_c N_s / n)`` examples in part ``s`` of size
``N_s``, while the parts keep their exact sizes: the class-by-part matrix
``n_c N_s / n`` has integer row sums ``n_c`` and column sums ``N_s``, so a
rounding that keeps both exists (integral flows); it is found by augmenting
paths. Every class proportion in every part is therefore within one example of
the whole set's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def check_split(split: Sequence[float]) -> tuple[float, float, float]:
    """Validate ``split = (train, val, test)``: three finite fractions >= 0 summing to 1, train > 0."""
    try:
        parts = tuple(float(p) for p in split)
    except (TypeError, ValueError):
        raise ValueError(
            f"split must be three fractions (train, val, test) summing to 1, got {split!r}"
        ) from None
    if len(parts) != 3:
        raise ValueError(
            f"split must be three fractions (train, val, test) summing to 1, got {split!r} "
            f"({len(parts)} values)"
        )
    if not all(math.isfinite(p) and p >= 0.0 for p in parts):
        raise ValueError(f"split fractions must be finite and >= 0, got split={split!r}")
    if abs(sum(parts) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got split={split!r} (sum {sum(parts):g})")
    if parts[0] <= 0.0:
        raise ValueError(f"split must give the training set a fraction > 0, got split={split!r}")
    return parts  # type: ignore[return-value]


def split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Largest-remainder apportionment of ``n`` into parts proportional to ``fractions``.

    ``sizes[s]`` is ``floor(n p_s)`` or ``ceil(n p_s)`` and ``sum(sizes) == n``;
    leftover units go to the largest fractional parts (ties: earlier part first).
    """
    total = float(sum(fractions))
    quotas = [n * float(p) / total for p in fractions]
    sizes = [math.floor(q + 1e-9) for q in quotas]
    left = n - sum(sizes)
    order = sorted(range(len(quotas)), key=lambda s: (-(quotas[s] - sizes[s]), s))
    for s in order[:left]:
        sizes[s] += 1
    return sizes


def stratified_counts(class_counts: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """Integer matrix ``k[c, s]``, each ``floor`` or ``ceil`` of ``n_c N_s / n``, rows summing to
    ``n_c`` and columns to ``N_s``."""
    nc = np.asarray(class_counts, dtype=np.int64)
    ns = np.asarray(sizes, dtype=np.int64)
    n = int(nc.sum())
    if int(ns.sum()) != n:
        raise ValueError(f"sizes must add up to the number of examples {n}, got {list(sizes)}")
    prod = np.outer(nc, ns)
    k = prod // n
    remainder = prod % n  # > 0 where the ideal count is fractional
    row_need = nc - k.sum(axis=1)
    col_left = ns - k.sum(axis=0)
    extra = np.zeros_like(k)
    n_parts = len(ns)

    def assign(c: int, seen: set[int]) -> bool:
        # prefer the parts whose ideal count has the largest fractional part
        for s in sorted(range(n_parts), key=lambda s: -remainder[c, s]):
            if remainder[c, s] == 0 or extra[c, s] or s in seen:
                continue
            seen.add(s)
            if col_left[s] > 0:
                extra[c, s] = 1
                col_left[s] -= 1
                return True
            for c2 in np.flatnonzero(extra[:, s]):
                if assign(int(c2), seen):
                    extra[c2, s] = 0
                    extra[c, s] = 1
                    return True
        return False

    for c in range(len(nc)):
        for _ in range(int(row_need[c])):
            if not assign(c, set()):  # cannot happen: an integral rounding exists
                raise RuntimeError("stratified rounding failed")
    return k + extra


def split_indices(
    y: np.ndarray | None, sizes: Sequence[int], rng: np.random.Generator, *, stratify: bool
) -> list[np.ndarray]:
    """Cut ``range(n)`` into shuffled index arrays of the given sizes (stratified by ``y`` if asked)."""
    n = int(sum(sizes))
    if not stratify or y is None:
        perm = rng.permutation(n)
        bounds = np.cumsum([0, *sizes])
        return [perm[bounds[s] : bounds[s + 1]] for s in range(len(sizes))]
    classes, inverse = np.unique(y, return_inverse=True)
    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    counts = stratified_counts([len(m) for m in members], sizes)
    parts: list[list[np.ndarray]] = [[] for _ in sizes]
    for c, idx in enumerate(members):
        shuffled = rng.permutation(idx)
        bounds = np.cumsum([0, *counts[c]])
        for s in range(len(sizes)):
            parts[s].append(shuffled[bounds[s] : bounds[s + 1]])
    return [rng.permutation(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]
