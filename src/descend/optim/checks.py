"""The check of the gradients before a step: NaN and infinity, found before anything is written.

:func:`grad_checks` reads every gradient once (on the CPU by :func:`native.finite`,
else by dots and norms into which NaN and infinity propagate); :func:`all_finite`
reads the checks on the host, :func:`finite_flag` keeps them on the device (the
``"skip"`` policy on an accelerator folds it into the update: no host sync), and
:func:`exactly_finite` names the first offending gradient.
"""

from __future__ import annotations

import array
import cmath
import math

import torch

from . import engine, fused, native
from .engine import Work

_ITEM = torch.Tensor.item
_DOT = (torch.float32, torch.float64)
_NAN = torch.tensor(float("nan"))  # what a native scan that found a non-finite value adds to the checks


def grad_checks(work: list[Work]) -> list[torch.Tensor]:
    """0-d tensors whose sum is finite when every gradient is (one read of the gradients).

    On the CPU, gradients are scanned by :func:`native.finite` (exponent bits, one call
    per dtype; exact), which appends a NaN when it finds one. Otherwise (no C++ compiler,
    a gradient that is not contiguous, complex or a tensor subclass) a
    large contiguous float32/float64 CPU gradient is checked by ``dot(g, g)`` (BLAS); the
    rest, and every gradient on an accelerator (where a call costs more than the pass), by
    one ``_foreach_norm`` per part (in float32 for fp16/bf16). NaN and infinity propagate
    into both; empty tensors (shards) give 0. A value that overflows from finite gradients
    is a false alarm that :func:`exactly_finite` clears. Packed gradients are gathered
    into their scratch buffer here (the kernel reads them there) and checked there.
    """
    out: list[torch.Tensor] = []
    scan: dict[torch.dtype, list[torch.Tensor]] = {}
    arrays: dict[torch.dtype, tuple[array.array, array.array]] = {}
    if len(work) == 1 and work[0].part.scan and len(work[0].grads) == 1 and work[0].grads[0].numel() <= engine.TINY:
        # one tiny gradient (a 2-D problem): its values read in Python, faster than any call
        g = work[0].grads[0]
        fine = all(map(cmath.isfinite, (g if g.dim() == 1 else g.reshape(-1)).tolist()))
        return [] if fine else [_NAN]
    for w in work:
        part = w.part
        rest = []
        packed = part.kind == "fused" and w.whole and part.synced and bool(part.small)
        if packed and (part.scan or part.params[0].dtype in _DOT):  # (fused parts hold no subclasses)
            engine.gather_grads(part, w)
            w.gathered = True
            G = part.scratch[1]  # type: ignore[index]
            if part.scan:
                scan.setdefault(G.dtype, []).append(G)
            else:
                out.append(torch.dot(G, G))
        if part.scan and w.gptrs is not None:  # (bulk.grads read them all plain: addresses and sizes)
            at = arrays.setdefault(part.params[0].dtype, (array.array("q"), array.array("q")))
            at[0].extend(engine.picked(w.gptrs, part.big) if w.gathered else w.gptrs)
            at[1].extend(engine.picked(w.gnumels, part.big) if w.gathered else w.gnumels)
            continue
        grads = [g for j, g in enumerate(w.grads) if j not in part.small_set] if w.gathered else w.grads
        if part.scan:
            dtype = part.params[0].dtype
            if native.dense(grads, dtype):
                scan.setdefault(dtype, []).extend(grads)
            else:  # (one by one: a gradient of another dtype or layout is checked by torch)
                for g in grads:
                    (scan.setdefault(dtype, []) if native.dense([g], dtype) else rest).append(g)
        elif not part.any_big:  # no gradient is large: one _foreach_norm
            rest = grads
        else:
            for g in grads:
                if g.numel() >= engine.BIG and g.dtype in _DOT and type(g) is torch.Tensor and g.is_contiguous() \
                        and g.device.type == "cpu":
                    flat = g.view(-1)
                    out.append(torch.dot(flat, flat))
                else:
                    rest.append(g)
        if not rest:
            continue
        kw = {"dtype": torch.float32} if rest[0].dtype in fused.LOW else {}
        if len(rest) == 1:
            out.append(torch.linalg.vector_norm(rest[0], 2, **kw))
        elif len(rest) <= 32:
            out += torch._foreach_norm(rest, 2, **kw)
        else:  # one device and dtype within a part: summed there
            out.append(torch.stack(torch._foreach_norm(rest, 2, **kw)).sum())
    for ts in scan.values():
        if ts and not native.finite(ts):
            out.append(_NAN)
    for dtype, (ptrs, counts) in arrays.items():
        if ptrs and not native.finite_at(ptrs, counts, dtype):
            out.append(_NAN)
    return out


def all_finite(checks: list[torch.Tensor]) -> bool:
    """Whether every check is finite: one host read (a few reads of CPU scalars for a few checks,
    which is four times cheaper than stacking them)."""
    if not checks:
        return True
    if len(checks) <= 32 and checks[0].device.type == "cpu":
        return math.isfinite(sum(map(_ITEM, checks)))
    try:  # (float32 and float64 checks are promoted; checks on several devices cannot stack)
        return math.isfinite(torch.stack(checks).sum().item())
    except RuntimeError:
        return math.isfinite(sum(map(_ITEM, checks)))


def finite_flag(norms: list[torch.Tensor]) -> torch.Tensor:
    """A 0-d bool tensor on the first check's device, True when all checks are finite (no host sync)."""
    dev = norms[0].device
    return torch.stack([n.to(dev, torch.float32) for n in norms]).sum().isfinite()


def exactly_finite(work: list[Work]) -> tuple[Work, int] | None:
    """None when every gradient is finite, else the work item and position of the first that is not."""
    for w in work:
        for j, g in enumerate(w.grads):
            if not bool(torch.isfinite(g).all()):
                return w, j
    return None
