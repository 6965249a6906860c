"""The fused CPU step in one native call.

Once a fused CPU part's kernels are called directly (:class:`fused.Direct`), its whole step
(the packed parameters gathered, every compiled kernel, the packed values copied back) runs as
one :func:`native.launch` of descend's library, which calls the C++ kernels Inductor generated
by address (:func:`inductor.c_kernel`). The program is built once per configuration; a step
rewrites only its numbers (lr, bias corrections: the kernels' 0-d scalars, in place) and the
gradients' addresses. Anything it cannot take as it is (a gradient that is not contiguous or of
another dtype, state the user replaced with another kind of tensor, a kernel it cannot find)
takes :func:`engine.apply`, with the same results bit for bit (``tests/optim/test_launch.py``).
"""

from __future__ import annotations

import array
import operator
from typing import Any, NamedTuple

import torch

from . import engine, fused, native
from .engine import _NUMEL, _PTR, Part, Work


def stage(opt: Any, work: list[Work]) -> list[Any]:
    """For each work item, its step made ready to run in one native call, or None (it then takes
    :func:`engine.apply`). Staging changes nothing the user can see, so it comes before the check.

    The Python of a step (hyperparameters, arguments, pointers) runs here, before any parallel
    kernel: on a machine whose idle OpenMP threads spin for a while after each parallel region,
    Python run between kernels took about three times as long (the 200k-parameter MLP: 250 µs
    a step, where the kernels take 60). A fused CPU part whose kernels are called directly
    (:meth:`fused.Direct.native`) then runs as one :func:`native.launch`: the packed
    parameters gathered, every kernel, the packed values copied back, without Python between.
    """
    return [_stage_native(opt, w) if stages(w.part) else None for w in work]


def stages(part: Part) -> bool:
    """Whether :func:`stage` takes ``part``'s steps: fused, on the CPU, with the library built."""
    return part.kind == "fused" and part.scan


class Launch(NamedTuple):
    """A fused CPU part's native program, kept while its configuration holds."""

    program: Any  # the traced program it runs
    seed_keys: tuple  # the state keys rounded stochastically
    prepared: fused.Prepared  # the compiled call whose 0-d scalars the kernels read
    states: list  # the large tensors' state tensors it writes (replaced by the user: rebuilt)
    code: array.array  # the program (native.launch)
    grad_places: list[tuple[int, int]]  # (place in code, which large tensor's gradient)
    big_params: list[torch.Tensor]  # the large parameters (their version counters are bumped)


def _stage_native(opt: Any, w: Work) -> Any:
    part = w.part
    sts = w.states
    if not (w.whole and part.synced and all(sts)) or part.packer is None and part.small:
        return None
    step = sts[0]["step"] + 1
    c = engine.configure(opt, w, step)
    if c.program is None:
        return None
    dtype = w.params[0].dtype
    if w.gptrs is not None:  # (bulk.grads read every gradient plain: addresses and sizes)
        if part.big and engine.picked(w.gnumels, part.big) != part.big_counts:
            return None
        ptrs = engine.picked(w.gptrs, part.big)
    else:
        grads = [w.grads[j] for j in part.big]
        if grads and not (native.dense(grads, dtype) and list(map(_NUMEL, grads)) == part.big_numels):
            return None
        ptrs = list(map(_PTR, grads))
    states = list(map(dict.get, *part.big_at)) if part.big else []
    made = part.launch
    if made is not None and made.program is c.program and made.seed_keys == tuple(c.seeds) \
            and all(map(operator.is_, states, made.states)):
        made.prepared.refresh(c.values, c.seeds)
    else:  # a new configuration or state the user replaced
        made = part.launch = _build(part, c, w, states)
        if made is None:
            return None
    code = made.code
    for i, k in made.grad_places:
        code[i] = ptrs[k]
    copy = None
    if part.small and opt.nonfinite == "ignore":  # else the check gathers them (grad_checks)
        small = engine.small_ptrs(w)
        if small is None:  # (bulk did not read them: ask in Python)
            gs = [w.grads[j] for j in part.small]
            if native.plain(gs, dtype) and list(map(_NUMEL, gs)) == part.packer.numels:  # type: ignore
                small = array.array("q", map(_PTR, gs))
        if small is not None:
            copy = native.Copy(part.packer, small, part.scratch[1], 1)  # type: ignore

    def run() -> None:
        if copy is not None:  # (the copy holds the gradients' pointers until here)
            native.launch(array.array("q", copy.op) + code)
        else:
            if part.small and not w.gathered:  # (by torch where a byte copy would not be exact)
                engine.gather_grads(part, w)
            native.launch(code)
        if made.big_params:
            torch._C._increment_version(made.big_params)
        if part.small:
            torch._C._increment_version(part.packer.params)  # type: ignore[union-attr]
        engine.set_steps(sts, step)
    return run


def _build(part: Part, c: engine.Config, w: Work, states: list) -> Launch | None:
    """The part's :class:`Launch` for configuration ``c``, or None where its kernels are not yet
    called directly (the first steps go through :func:`engine.apply`) or cannot be launched."""
    sts = w.states
    j0 = part.big[0] if part.big else None
    like = {"p": w.params[j0], "g": w.params[j0], **{k: v for k, v in sts[j0].items() if k in c.keys}} \
        if j0 is not None else {"p": part.scratch[0], "g": part.scratch[1],  # type: ignore[index]
                                **{k: v for k, v in part.flat.items() if v is not None}}
    prepared = fused.prepare(c.program, like, c.values, None, c.seeds or None, part.scalars)
    big_spec = prepared.native(engine.BIG) if part.big else None
    small_spec = prepared.native(part.scratch[0].numel()) if part.small else None  # type: ignore[index]
    if (part.big and big_spec is None) or (part.small and small_spec is None) or prepared.fixed is None:
        return None
    made = _native_program(part, prepared, c.keys, big_spec, small_spec, like)
    if made is None:
        return None
    return Launch(c.program, tuple(c.seeds), prepared, states, *made, [part.params[j] for j in part.big])


def _native_program(part: Part, prepared: Any, keys: tuple, big_spec: Any, small_spec: Any,
                    like: dict[str, torch.Tensor]) -> tuple | None:
    """The native program of a fused CPU part (:func:`native.launch`) and the places in it of
    the large tensors' gradient pointers (rewritten each step); None where a large tensor's
    state is not what the kernel was compiled for (a tensor the user put there, of another
    dtype, size or layout)."""
    leaves = prepared.leaves
    for j in part.big:
        st, n = part.states[j], part.params[j].numel()
        for k in keys:
            v = st.get(k)
            if (v is None) != (k not in like) or v is not None and (
                    v.dtype != like[k].dtype or v.numel() != n or not v.is_contiguous() or type(v) not in engine.PLAIN):
                return None
    prog: list[int] = []
    gpos: list[tuple[int, int]] = []  # (place in prog, which large tensor's gradient)

    def call(spec: Any, tensors: dict[str, torch.Tensor], numel: int, grad: int | None) -> None:
        fn, args = spec
        start = len(prog) + 3
        values = []
        for i, (a, attr) in enumerate(args):
            t = tensors[leaves[a]] if a < len(leaves) else prepared.extra[a - len(leaves)]
            values.append(numel if attr == "size" else t.data_ptr())
            if grad is not None and attr is None and a < len(leaves) and leaves[a] == "g":
                gpos.append((start + i, grad))
        prog.extend(native.call_op(fn, values))

    for n, j in enumerate(part.big):
        p = part.params[j]
        st = part.states[j]
        call(big_spec, {"p": p, "g": p, **{k: st[k] for k in keys if k in st}}, p.numel(), n)
    if part.small:
        P, G = part.scratch  # type: ignore[misc]
        prog.extend(native.Copy(part.packer, part.packer.pptrs, P, 1).op)  # type: ignore[arg-type]
        call(small_spec, {"p": P, "g": G, **part.flat}, P.numel(), None)
        prog.extend(native.Copy(part.packer, part.packer.pptrs, P, 0).op)  # type: ignore[arg-type]
    return array.array("q", prog), gpos
