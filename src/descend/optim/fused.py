"""The compiled path: one pass over memory per optimizer step.

An optimizer step is memory-bound: it reads the parameter, the gradient and
the state and writes the parameter and the state. The compiled path runs the
very rule the eager path runs, ``rules.X(p, g, *state, **hypers)``, as one
kernel that ``torch.compile`` generates (C++ on the CPU, Triton on a GPU) over
flat 1-D tensors, and writes the results in place:

* a large contiguous parameter is updated in its own storage, one kernel
  call per tensor (its gradient and state are read where they are);
* the small parameters of a group are *packed*: their state lives in one flat
  buffer per state key (``optimizer.state[p][key]`` is a view into it), their
  gradients and values are gathered into flat scratch buffers for the kernel,
  and the new values are copied back into each parameter. Parameters and
  gradients are never re-homed: ``p`` and ``p.grad`` stay the user's tensors.

Hyperparameters reach the kernel as 0-d tensors, so a schedule that changes
lr every step causes no recompilation; sizes are dynamic, so one kernel per
rule and option set serves every tensor. Compiled kernels land in Inductor's
on-disk cache and are reused by later processes. Low-precision parameters are
computed in float32 (torch's "opmath"). ``ok`` (a 0-d bool tensor, or None)
folds a device-side non-finite check into the update: where it is False the
kernel writes the old values back, so skipping a step needs no host sync.
"""

from __future__ import annotations

import hashlib
import linecache
import re
import threading
import types
import warnings
from typing import Any

import torch

from . import inductor, kernels, lowstate, rules

_compile_count = 0
_KERNELS: dict[tuple, Any] = {}
LOW = (torch.float16, torch.bfloat16)
# device types on which compiled graphs are called directly (:class:`Direct`) after their first call
DIRECT_DEVICES = {"cpu", "cuda"}


def compile_count() -> int:
    """How many graphs the compiled path has compiled in this process."""
    return _compile_count


def _backend(gm: torch.fx.GraphModule, example_inputs: list) -> Any:
    global _compile_count
    _compile_count += 1
    from torch._inductor import config
    from torch._inductor.compile_fx import compile_fx

    # Parallel or not is decided when compiling, from the first call's size, and the kernel
    # is cached for every later size: a first compile on a small tensor left the 25M sets on
    # one thread. With dynamic threads every loop gets a parallel region and OpenMP splits it
    # at run time, with the threads of the moment.
    with config.patch({"cpp.dynamic_threads": True, "post_grad_custom_post_pass": _key_pass()}), \
            _wide_low_precision():
        compiled = compile_fx(gm, example_inputs)
    sink = getattr(_capture, "sink", None)
    if sink is not None:
        sink.append((_arg_plan(gm), compiled))
    return compiled


def _key_pass() -> Any:
    """A graph pass that changes nothing but Inductor's cache key: kernels compiled under
    :func:`_wide_low_precision` must not be mixed up with kernels compiled without it. Made at
    the first compile (importing Inductor's module imports Dynamo: 1.4 s here)."""
    if _KEY_PASS:
        return _KEY_PASS[0]
    try:
        from torch._inductor.custom_graph_pass import CustomGraphPass
    except ImportError:
        _KEY_PASS.append(None)
        return None

    class DescendKernels(CustomGraphPass):
        def __call__(self, graph: torch.fx.graph.Graph) -> None:
            return None

        def uuid(self) -> Any:
            return "descend.optim.fused: low-precision kernels at the 16-bit vector width, vector bitcasts, v2"

    _KEY_PASS.append(DescendKernels())
    return _KEY_PASS[0]


_KEY_PASS: list = []


def _wide_low_precision() -> Any:
    """A context in which Inductor vectorizes a CPU kernel that reads or writes bfloat16 or
    float16 at the 16-bit vector width (32 lanes with AVX-512) instead of the float32 one.

    Inductor takes the 16-bit width only when every loop of a kernel is in 16 bits. An
    optimizer kernel mixes float32 parameters with bf16 state (or bf16 parameters with
    float32 arithmetic), so it got 16 lanes, and its 16-bit loads and stores half-vector
    masked ones: the Adam kernel with bf16 state took 2.4x the time of the float32 one.
    At 32 lanes (float32 arithmetic on pairs of vectors, as Inductor does for all-16-bit
    kernels) it takes 0.75x. In the same scope a bitcast (``view(torch.int32)``, the bit
    arithmetic of stochastic rounding) is a register reinterpretation per vector instead of
    Inductor's store, scalar loop and load. Applied only to descend's own compiles; a torch
    without these internals compiles as before. The kernels' results are bit-identical.
    """
    import contextlib

    try:
        from torch._inductor import cpu_vec_isa
        from torch._inductor.codegen import cpp as inductor_cpp

        select = inductor_cpp.TilingSelect.select_tiling
        bodies, dtypes = inductor_cpp._get_loop_body, inductor_cpp._get_dtype_from_loopbodies
    except (ImportError, AttributeError):
        return contextlib.nullcontext()

    def to_dtype_bitcast(x: Any, dtype: torch.dtype, src_dtype: torch.dtype) -> str:
        # a register reinterpretation per vector (Inductor's own goes through a scalar loop)
        kernel = inductor_cpp.V.kernel
        target = inductor_cpp.DTYPE_TO_CPP[dtype]
        n = kernel._get_num_vectors(dtype)
        if n == 1:
            return f"at::vec::cast<{target}>({x})"
        parts = "; ".join(f"r[{i}] = at::vec::cast<{target}>({x}[{i}])" for i in range(n))
        return f"[&]() {{ {kernel._get_vec_type(dtype)} r; {parts}; return r; }}()"

    def select_tiling(self: Any, fn_list: Any, var_sizes_list: Any) -> Any:
        chosen = select(self, fn_list, var_sizes_list)  # (factors, indices[, stats]): 2 items before torch 2.12
        factors = chosen[0]
        if len(factors) == 1:
            found = dtypes(bodies(fn_list))
            low = next((d for d in LOW if d in found), None)
            isa = cpu_vec_isa.pick_vec_isa()
            if low is not None and isa and factors[0] == isa.nelements(torch.float):
                return type(chosen)(([isa.nelements(low)], *chosen[1:]))
        return chosen

    @contextlib.contextmanager
    def scope() -> Any:
        vec = inductor_cpp.CppVecOverrides
        scalar_loop = vars(vec).get("to_dtype_bitcast")  # Inductor's: element by element
        inductor_cpp.TilingSelect.select_tiling = select_tiling  # type: ignore[method-assign]
        vec.to_dtype_bitcast = staticmethod(to_dtype_bitcast)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            inductor_cpp.TilingSelect.select_tiling = select  # type: ignore[method-assign]
            if scalar_loop is None:
                del vec.to_dtype_bitcast
            else:
                vec.to_dtype_bitcast = scalar_loop  # type: ignore[attr-defined]

    return scope()


# ------------------------------------------------------------- calling a graph directly
_capture = threading.local()
_SOURCE = re.compile(r"L\['(\w+)'\](?:\.(size|stride)\(\)\[(\d+)\]|\.(storage_offset)\(\))?")


def _arg_plan(gm: torch.fx.GraphModule) -> list[tuple[str, str | None, int]] | None:
    """The compiled graph's inputs in order, as (argument name, None | "size" | "stride" |
    "storage_offset", dim); None when one of them is something else."""
    plan: list[tuple[str, str | None, int]] = []
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        arg = node.meta.get("grapharg")
        source = getattr(getattr(arg, "source", None), "name", None)
        source = source() if callable(source) else source
        found = _SOURCE.fullmatch(source) if isinstance(source, str) else None
        if found is None:
            return None
        name, attr, dim, offset = found.groups()
        plan.append((name, attr or offset, int(dim or 0)))
    return plan


class Direct:
    """A compiled rule called without Dynamo's frame evaluation and guards.

    Dynamo costs about 40 µs a call here (guards on a dozen tensors, its frame
    wrappers), more than the kernel of a small tensor takes and about a fifth of
    the optimizer step on a model of 60 large tensors. The compiled program's
    inputs are flat contiguous tensors and 0-d scalars whose dtypes and device are
    fixed by the key they are stored under (:func:`prepare`), so after the first
    call through Dynamo (which compiles, or loads from the cache) descend calls the
    graph Inductor produced with the inputs in its order. Inductor's own size and
    stride assertions guard every call; one that fails falls back to Dynamo.

    On the devices of :data:`INNER_DEVICES` it goes one level further in: to the
    generated module's ``call`` (:func:`inductor.generated_call`), past AOTAutograd's runtime
    wrappers, which cost about 15 µs a call on this CPU (about a tenth of a step
    of a 200k-parameter model). Those wrappers do nothing this graph needs: it has
    no outputs, no autograd, and its inputs are mutated inside the kernel (descend
    bumps the parameters' version counters itself).
    """

    __slots__ = ("compiled", "picks", "inner", "_native", "library")

    def __init__(self, compiled: Any, plan: list[tuple[str, str | None, int]], names: list[str],
                 inner: Any = None) -> None:
        where = {n: i for i, n in enumerate(names)}
        self.compiled = compiled
        self.inner = inner
        self.picks = [(where[name], attr, dim) for name, attr, dim in plan]
        self._native: list = []  # [None or (kernel address, arg spec)] once looked for
        self.library: str | None = None  # the shared library the kernel is in, once found

    def native(self) -> tuple[int, list[tuple[int, str | None]]] | None:
        """The C kernel behind the generated module, for :func:`native.launch`: its address and,
        for each of its arguments, ``(i, None)`` (the data pointer of the ``i``-th argument of
        :meth:`__call__`) or ``(i, "size")`` (its element count). None where the generated
        module is not exactly one kernel call on its inputs (see :func:`inductor.c_kernel`)."""
        if not self._native:
            found = None
            if self.inner is not None:
                try:
                    found = inductor.c_kernel(self.inner)
                except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError):
                    found = None
            if found is not None:
                fn, inputs, self.library = found
                spec = []
                for i, what in inputs:
                    a, attr, dim = self.picks[i]
                    if (attr, dim) != ((None, 0) if what != "int" else ("size", 0)):
                        spec = None
                        break
                    spec.append((a, None if what == "ptr" else "size"))
                found = None if spec is None else (fn, spec)
            self._native.append(found)
        return self._native[0]

    def __call__(self, args: list) -> None:
        inputs = []
        for i, attr, dim in self.picks:
            a = args[i]
            inputs.append(a if attr is None else a.size(dim) if attr == "size"
                          else a.stride(dim) if attr == "stride" else a.storage_offset())
        if self.inner is not None:
            self.inner(inputs)
        else:
            self.compiled(*inputs)


# devices on which Direct calls the generated module itself (measured on the CPU only)
INNER_DEVICES = {"cpu"}


def call(fn: Any, names: list[str], direct: dict, sig: tuple, args: list, ident: str | None = None) -> None:
    """``fn(*args)``: through the :class:`Direct` graph of ``sig`` when there is one, else
    through Dynamo (capturing the graph a first call of ``sig`` compiles). On the CPU the
    first call looks for the kernel a process before kept (:mod:`kernels`, by ``ident``, the
    rule's), and a Direct graph whose kernel is found is kept for the processes after."""
    hit = direct.get(sig)
    if hit is None and sig not in direct and ident is not None and sig[1].type == "cpu":
        hit = kernels.load(ident, sig)
        if hit is not None:
            direct[sig] = hit
    if hit is not None:
        try:
            hit(args)
            return
        except AssertionError:  # an input Inductor did not compile for: let Dynamo choose
            direct[sig] = None
    if sig in direct:
        compiled_call(fn, *args)
        return
    sink: list = []
    _capture.sink = sink
    try:
        compiled_call(fn, *args)
    finally:
        _capture.sink = None
    plan = sink[0][0] if len(sink) == 1 else None
    if plan is None:
        direct[sig] = None
        return
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), None)
    inner = inductor.generated_call(sink[0][1]) if device is not None and device.type in INNER_DEVICES else None
    made = direct[sig] = Direct(sink[0][1], plan, names, inner)
    found = made.native() if ident is not None and inner is not None else None  # (launch reads it anyway)
    if found is not None:
        kernels.save(ident, sig, made.library, found[1])  # type: ignore[arg-type]


def _update(P, G, states, rule, prep, hypers, ok, seeds):
    p = P.float() if P.dtype in LOW else P
    g = G.float() if G.dtype in LOW else G
    work = [None if s is None else (s.float() if s.dtype in LOW else s) for s in states]
    new = rule(p, rules.prepare_grad(p, g, **prep), *work, **hypers)
    if ok is not None:
        new = [None if n is None else torch.where(ok, n, o) for n, o in zip(new, [p, *work])]
    for s, v, seed in zip(states, new[1:], seeds):  # (before P: the old p salts the rounding)
        if s is not None:
            s.copy_(v if seed is None else lowstate.stochastic_bf16(v, seed, p))
    P.copy_(new[0])


def compiled_call(fn: Any, *args: Any) -> Any:
    """Call a ``torch.compile``d function; the first call in a process answers Inductor's
    ISA probes from descend's cache of them (:func:`kernels.isa_cache`)."""
    global _first_call_done
    if _first_call_done:
        return fn(*args)
    with kernels.memo_probes():
        out = fn(*args)
    _first_call_done = True
    return out


_first_call_done = False


def kernel(key: tuple) -> Any:
    """The compiled update for one static configuration (rule, absent state, flags).

    Each configuration gets a code object of its own, so Dynamo keeps one
    small cache per configuration instead of hitting its recompile limit on
    a single function shared by every optimizer.
    """
    if key not in _KERNELS:
        code = _update.__code__.replace(co_name=f"_update_{len(_KERNELS)}")
        fn = types.FunctionType(code, _update.__globals__, code.co_name)
        _KERNELS[key] = torch.compile(fn, dynamic=True, fullgraph=True, backend=_backend)
    return _KERNELS[key]


def run(P, G, states, rule, prep, hypers, ok, seeds=None) -> None:
    """Apply ``rule`` to flat ``P`` (in place) with gradient ``G`` and flat ``states``;
    ``seeds`` (one per state, None or an int): stochastic rounding of that state to bf16."""
    seeds = [None if x is None else torch.tensor(x, dtype=torch.int64, device=P.device)
             for x in (seeds or [None] * len(states))]
    prep = {k: regularizer(v, P) if k != "maximize" else v for k, v in prep.items()}
    hypers = scalar_hypers(hypers, P)
    flags = tuple(
        (k, v) for k, v in sorted({**prep, **hypers}.items())
        if v is None or isinstance(v, (bool, str)) or (isinstance(v, float) and v == 0.0)
    )
    key = (rule.__qualname__, tuple(s is None for s in states), flags, ok is None,
           tuple(x is None for x in seeds))
    compiled_call(kernel(key), P, G, states, rule, prep, hypers, ok, seeds)


# (program, low-precision leaves, flag, rounded) -> (compiled function, leaf names, scalar
# expressions, the function's argument names, its Direct graphs by input signature, the hash
# of its source and options)
_SOURCES: dict[tuple, tuple[Any, list[str], list[Any], list[str], dict]] = {}


class _Lazy:
    """``torch.compile(fn)``, made at the first call: ``torch.compile`` imports Dynamo (1.4 s
    here), which a process whose kernels are all kept (:mod:`kernels`) never needs."""

    __slots__ = ("fn", "compiled")

    def __init__(self, fn: Any) -> None:
        self.fn, self.compiled = fn, None

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            self.compiled = torch.compile(self.fn, dynamic=True, fullgraph=True, backend=_backend)
        return self.compiled(*args)


def alias(t: torch.Tensor, offset: int, shape: tuple, stride: tuple) -> torch.Tensor:
    """A tensor on ``t``'s memory that is not a view of it (Dynamo guards a view input on
    its base, which would compile a kernel again for every base)."""
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage(), offset, shape, stride)


def scalars(numbers: list, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """0-d tensors of ``numbers`` on ``device``; on an accelerator by one asynchronous copy
    from pinned memory (no host sync), each an :func:`alias` of the copy, not a view of it."""
    if device.type == "cpu" or not numbers:
        return [torch.tensor(v, dtype=dtype) for v in numbers]
    copy = torch.tensor(numbers, dtype=dtype, pin_memory=True).to(device, non_blocking=True)
    return [alias(copy, i, (), ()) for i in range(len(numbers))]


def prepare(program: Any, like: dict[str, torch.Tensor], values: dict[str, Any], ok: Any,
            seeds: dict[str, int] | None = None, slots: dict | None = None) -> Any:
    """This step's compiled call of a traced rule for flat tensors with the dtypes and
    device of ``like``: a function of the tensors (by leaf name), called once per kernel.

    The scalar expressions of the rule (``1 - beta``, ``lr * decay``) are computed in
    double in Python, as on the eager path, once per step, and enter the kernel as 0-d
    tensors of the compute dtype (float32 for fp16/bf16), so the kernel does float
    arithmetic. ``slots`` (the caller's, kept across steps): on the CPU those 0-d tensors
    are the caller's own, rewritten in place (one numpy store, not a tensor per number).
    """
    P = like["p"]
    lows = frozenset(k for k, t in like.items() if t.dtype in LOW)
    rounded = tuple(sorted(seeds or ()))
    key = (id(program), lows, ok is None, rounded)
    if key not in _SOURCES:
        name = f"_rule_{len(_SOURCES)}"
        src, leaves, syms = program.source(name, lows, ok is not None, rounded)
        namespace: dict[str, Any] = {"torch": torch, "_sr": lowstate.stochastic_bf16}
        filename = f"<descend.optim.fused {name}>"
        # Registered as a source file: torch < 2.13 wraps a function with no source file into
        # one shared code object (pytorch #124269), and every program then recompiles it.
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        exec(compile(src, filename, "exec"), namespace)
        code = namespace[name].__code__
        ident = hashlib.sha256(repr((src.replace(name, "_rule"), sorted(lows), ok is None, rounded)).encode()).hexdigest()
        _SOURCES[key] = (_Lazy(namespace[name]), leaves, syms, list(code.co_varnames[:code.co_argcount]), {}, ident)
        program._keep = program  # the id above stays this program's
    fn, leaves, syms, names, direct, ident = _SOURCES[key]
    dtype = scalar_dtype(like.values())
    numbers = [float(s.fn(values)) for s in syms]
    # on the CPU the 0-d scalars are the caller's slots, rewritten in place (fixed addresses)
    kept = P.device.type == "cpu" and slots is not None
    fixed = [syms, None, None, rounded] if kept and ok is None else None

    def scalar_args(vals: list, vtype: torch.dtype, place: int) -> list[torch.Tensor]:
        if not (kept and vals):
            return scalars(vals, vtype, P.device)
        slot = slots.get((key, vtype))  # type: ignore[union-attr]
        if slot is None:
            buf = torch.empty(len(vals), dtype=vtype)
            slot = slots[(key, vtype)] = (buf.numpy(), [alias(buf, i, (), ()) for i in range(len(vals))])  # type: ignore[index]
        slot[0][:] = vals
        if fixed:
            fixed[place] = slot[0]
        return list(slot[1])

    extra = scalar_args(numbers, dtype, 1)
    if ok is not None:
        extra.append(ok)
    if rounded:  # 0-d int64 tensors: a new seed every step without recompiling
        extra += scalar_args([seeds[t] for t in rounded], torch.int64, 2)  # type: ignore[index]
    return Prepared(fn, leaves, names, direct, (P.device, *[like[k].dtype for k in leaves]), extra, fixed, ident)


def scalar_dtype(tensors: Any) -> torch.dtype:
    """The dtype of a kernel's 0-d scalars: the widest of its tensors (float32 for fp16/bf16).

    The eager path multiplies by Python floats, which torch takes at each operand's own
    precision; a float32 scalar would round ``beta2 = 0.999`` to 24 bits also where it
    meets float64 state (``state_dtype=torch.float64`` beside float32 parameters). A
    float64 scalar is rounded to float32 where it meets a float32 tensor, as a Python
    float is, so it changes nothing there.
    """
    dtypes = {t.dtype for t in tensors}
    return torch.float64 if torch.float64 in dtypes else torch.float32


class Prepared:
    """A step's compiled call of one rule (:func:`prepare`): ``prepared(tensors)`` runs it on
    flat tensors given by leaf name. Where its scalars are the caller's slots (the CPU),
    :meth:`refresh` makes it the call of a later step of the same configuration."""

    __slots__ = ("fn", "leaves", "names", "direct", "base", "extra", "fixed", "ident")

    def __init__(self, fn: Any, leaves: list[str], names: list[str], direct: dict, base: tuple,
                 extra: list, fixed: list | None = None, ident: str | None = None) -> None:
        self.ident = ident  # the rule's, for kernels kept across processes (:mod:`kernels`)
        self.fn, self.leaves, self.names, self.direct, self.base, self.extra = \
            fn, leaves, names, direct, base, extra
        self.fixed = fixed  # [scalar expressions, numbers' slot, seeds' slot, seed keys] or None

    def refresh(self, values: dict[str, Any], seeds: dict[str, int] | None) -> None:
        """Write this step's numbers (and stochastic-rounding seeds) into the slots the
        kernel reads; only for a :attr:`fixed` call of the same program and seed keys."""
        syms, numbers, seed_slot, rounded = self.fixed  # type: ignore[misc]
        if numbers is not None:
            numbers[:] = [float(s.fn(values)) for s in syms]
        if seed_slot is not None:
            seed_slot[:] = [seeds[t] for t in rounded]  # type: ignore[index]

    def __call__(self, tensors: dict[str, torch.Tensor]) -> None:
        args = [tensors[k] for k in self.leaves] + self.extra
        if self.base[0].type not in DIRECT_DEVICES:
            compiled_call(self.fn, *args)
        else:  # the scalars' dtypes follow from the key; sizes 0 and 1 get graphs of their own
            call(self.fn, self.names, self.direct, (min(tensors["p"].numel(), 2), *self.base), args, self.ident)

    def native(self, numel: int) -> tuple[int, list[tuple[int, str | None]]] | None:
        """:meth:`Direct.native` of the graph that serves tensors of ``numel`` elements, once
        one was called directly; None before that, or where there is none."""
        hit = self.direct.get((min(numel, 2), *self.base))
        return None if hit is None else hit.native()


def warn_once(owner: Any, key: str, message: str) -> None:
    seen = owner.__dict__.setdefault("_warned", set())
    if key not in seen:
        seen.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


REGULARIZERS = ("decay",)


def scalar_hypers(hypers: dict[str, Any], like: torch.Tensor) -> dict[str, Any]:
    """Numbers become 0-d float64 tensors (values change without recompiling); flags stay static.

    Scalars are computed in double, as Python floats are on the eager path
    (``1 - 0.999**t`` in float32 would lose most of its digits).
    """
    out: dict[str, Any] = {}
    for k, v in hypers.items():
        if k in REGULARIZERS:
            out[k] = regularizer(v, like)
        elif isinstance(v, (bool, str)) or v is None:
            out[k] = v
        elif isinstance(v, torch.Tensor):
            out[k] = v.to(device=like.device, dtype=torch.float64)
        else:
            out[k] = torch.tensor(float(v), dtype=torch.float64, device=like.device)
    return out


def regularizer(value: Any, like: torch.Tensor) -> Any:
    """Zero stays a static 0.0 (the term is skipped); anything else is a 0-d tensor."""
    if isinstance(value, (int, float)) and value == 0:
        return 0.0
    if isinstance(value, torch.Tensor):
        return value.to(device=like.device, dtype=torch.float64)
    return torch.tensor(float(value), dtype=torch.float64, device=like.device)


def is_scalar(value: Any) -> bool:
    return not isinstance(value, torch.Tensor) or value.dim() == 0
