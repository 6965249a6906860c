"""What descend reads out of Inductor's output to call a compiled rule with less in between.

* :func:`generated_call`: the generated module's ``call(args)`` inside what ``compile_fx``
  returned (past AOTAutograd's runtime wrappers), for :class:`fused.Direct`;
* :func:`c_kernel`: the C++ kernel that ``call`` runs on the CPU and how its arguments come
  from ``call``'s inputs, for :func:`native.launch` (the fused CPU step in one native call).

Both return None for anything but the plain shape they know (one compiled graph; one kernel
call on the inputs), and the callers then keep the outer call: another Inductor version that
generates something else costs speed, not correctness.
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from typing import Any


def generated_call(compiled: Any) -> Any:
    """The generated module's ``call(args)`` inside what ``compile_fx`` returned, or None.

    Found by following the wrappers' closures (AOTAutograd keeps the compiled graph
    there); None unless exactly one compiled graph is found, with no partitions,
    no constants and nothing to check on its inputs, so any Inductor that wraps it
    differently keeps the outer call.
    """
    try:
        from torch._inductor.output_code import CompiledFxGraph
    except ImportError:
        return None
    found: list = []
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if type(obj) is CompiledFxGraph:
            found.append(obj)
            return
        for attr in ("compiled_fn", "__wrapped__"):
            inner = getattr(obj, attr, None)
            if inner is not None:
                walk(inner, depth + 1)
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                walk(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                pass
        if isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item, depth + 1)

    try:
        walk(compiled, 0)
    except Exception:
        return None
    if len(found) != 1:
        return None
    graph = found[0]
    if getattr(graph, "partition_maps", None) or getattr(graph, "constants", None) or \
            getattr(graph, "inputs_to_check", None) or getattr(graph, "output_strides", None):
        return None
    return getattr(graph, "current_callable", None)


# a kernel of the generated module: its name, its argument types (a list literal) and its C++ source
_PYBINDING = re.compile(r"^(\w+) = async_compile\.cpp_pybinding\((\[[^\]]*\]), r'''(.*?)'''\)", re.M | re.S)
_NAME = re.compile(r"^[A-Za-z_]\w*$")


def c_kernel(inner: Any) -> tuple[int, list[tuple[int, str]], str] | None:
    """The C kernel a generated module's ``call`` runs, read from the module's source: its
    address; for each of its arguments, ``(input index, what)``: "ptr" (that input's data
    pointer), "int" (that input, an integer) or "len" (that input's length, a 1-D tensor);
    and the shared library it is in.

    None unless ``call`` is nothing but unpacking its inputs, naming sizes (an integer input,
    or ``x.size()[0]`` of a tensor input), Inductor's size and stride assertions, deletions
    and exactly one call of a C++ kernel whose parameters are all pointers or int64, each an
    input (a tensor's pointer) or a size named from one.
    Any other statement (an allocation, a second kernel, an output) keeps the Python call.
    """
    from . import native

    func = getattr(inner, "__func__", inner)
    module = func.__globals__
    with open(func.__code__.co_filename) as f:
        source = f.read()
    kernels = {m.group(1): (ast.literal_eval(m.group(2)), m.group(3)) for m in _PYBINDING.finditer(source)}
    lines = source.splitlines()
    first = func.__code__.co_firstlineno  # the "def call(self, args):" line, 1-based
    body = []
    for line in lines[first:]:
        if line.strip() and len(line) - len(line.lstrip()) <= len(lines[first - 1]) - len(lines[first - 1].lstrip()):
            break
        if line.strip():
            body.append(line.strip())
    inputs: dict[str, int] = {}
    sizes: dict[str, tuple[int, str]] = {}  # a size's name -> (input, "int": that input, "len": its length)
    shapes: dict[str, int] = {}  # "argK_size = argK.size()" -> K
    calls = []
    for st in body:
        m = re.fullmatch(r"(\w+) = (\w+)(\.size\(\)|\[0\])?", st)
        if st.endswith("= args"):
            inputs = {n.strip(): i for i, n in enumerate(st[:-len("= args")].rstrip(" ,").split(","))}
        elif st in ("args.clear()", "return ()") or st.startswith(("del ", "assert_size_stride(")):
            pass
        elif m and m.group(3) == ".size()" and m.group(2) in inputs:
            shapes[m.group(1)] = inputs[m.group(2)]
        elif m and m.group(3) == "[0]" and m.group(2) in shapes:
            sizes[m.group(1)] = (shapes[m.group(2)], "len")
        elif m and not m.group(3) and m.group(2) in inputs:
            sizes[m.group(1)] = (inputs[m.group(2)], "int")
        elif m and not m.group(3) and m.group(2) in sizes:
            sizes[m.group(1)] = sizes[m.group(2)]
        elif re.fullmatch(r"\w+\(.*\)", st) and st.split("(", 1)[0] in kernels:
            calls.append(st)
        else:
            return None
    if len(calls) != 1:
        return None
    name, rest = calls[0].split("(", 1)
    args = [a.strip() for a in rest[:-1].split(",") if a.strip()]
    params = [t.strip() for t in kernels[name][0]]
    if len(args) != len(params) or not args or len(args) > native.MAX_ARGS:
        return None
    out = []
    for a, t in zip(args, params):
        pointer = t.endswith("*")
        if not _NAME.match(a) or not (pointer or t in ("int64_t", "const int64_t")):
            return None
        if a in inputs and pointer:
            out.append((inputs[a], "ptr"))
        elif a in sizes and not pointer:
            out.append(sizes[a])
        else:
            return None
    binding = module.get(name)
    path = prefetching(*kernels[name]) or getattr(getattr(binding, "__self__", None), "__file__", None)
    fn = native.kernel_address(path) if path else None
    return None if fn is None else (fn, out, path)


# Software prefetches in a compiled CPU kernel's vectorized loop. An optimizer step streams
# four to seven arrays at once (Adam: parameter, gradient, two states), and this CPU's hardware
# prefetchers keep too few of them ahead: the Adam kernel with bfloat16 state on 25M parameters
# took 13.7 ms as Inductor generated it and 11.6 ms with one prefetch per array and cache line,
# DISTANCE elements ahead (256 to 1024 alike). The arithmetic is untouched, so the results are
# the same bit for bit; a prefetch past an array's end is harmless (a hint, it never faults).
# DESCEND_PREFETCH sets the distance in elements; 0 turns it off.
DISTANCE = 512
_LOOP = re.compile(r"for\(int64_t x0=static_cast<int64_t>\(0L\); x0<static_cast<int64_t>\(\w+\); "
                   r"x0\+=static_cast<int64_t>\((\d+)L\)\)")
_ACCESS = re.compile(r"(loadu\(|\.store\()(\w+) \+ static_cast<int64_t>\(x0\)")
_PARAM = re.compile(r"(?:const )?([\w:]+)\* (\w+)[,)]")
_BYTES = {"float": 4, "double": 8, "at::BFloat16": 2, "at::Half": 2, "int32_t": 4, "int64_t": 8, "bool": 1}


def distance() -> int:
    """The prefetch distance in elements (``DESCEND_PREFETCH``; 0: none)."""
    raw = os.environ.get("DESCEND_PREFETCH", "").strip()
    if raw.isdigit():
        return int(raw)
    if raw:
        warnings.warn(f"DESCEND_PREFETCH must be a whole number of elements (0 turns prefetching off), "
                      f"got {raw!r}; using {DISTANCE}", RuntimeWarning, stacklevel=2)
    return DISTANCE


def with_prefetch(source: str, ahead: int) -> str | None:
    """``source`` (an Inductor CPU kernel) with a ``__builtin_prefetch`` of every array that its
    vectorized loop reads or writes at ``x0``, for each cache line of the loop's step, ``ahead``
    elements ahead (written arrays prefetched for writing), at the top of the loop's full-vector
    branch. None unless the kernel has exactly one such loop and branch, with every array's
    element type known: any other shape is left as Inductor made it."""
    loops = _LOOP.findall(source)
    lines = source.split("\n")
    at = [i for i, line in enumerate(lines) if "if(C10_LIKELY(" in line]
    if len(loops) != 1 or len(at) != 1 or at[0] + 1 >= len(lines) or lines[at[0] + 1].strip() != "{":
        return None
    end = next((i for i in range(at[0] + 2, len(lines)) if "if(C10_UNLIKELY(" in lines[i]), len(lines))
    found: dict[str, bool] = {}
    for how, ptr in _ACCESS.findall("\n".join(lines[at[0] + 2:end])):
        found[ptr] = found.get(ptr, False) or how == ".store("
    kinds = {name: kind for kind, name in _PARAM.findall(source[:source.find("{")])}
    if not found or any(kinds.get(ptr) not in _BYTES for ptr in found):
        return None
    step = int(loops[0])
    indent = lines[at[0] + 1].replace("{", "    ")
    # (the address in integers: a pointer past an array's end would be undefined behaviour)
    hints = [f"{indent}__builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>({ptr}) + "
             f"sizeof(*{ptr}) * (x0 + {ahead}) + {64 * k}), {int(written)}, 3);"
             for ptr, written in found.items() for k in range(-(-step * _BYTES[kinds[ptr]] // 64))]
    return "\n".join(lines[:at[0] + 2] + hints + lines[at[0] + 2:])


def prefetching(argtypes: list[str], kernel_source: str) -> str | None:
    """The shared library of a generated module's kernel (its argument types and source)
    compiled with prefetches (:func:`with_prefetch`), through Inductor's own C++ cache (its flags, headers and cache
    directory: a later process loads it without compiling); None where prefetching is off,
    the kernel's shape is not the known one, or anything fails (the kernel stays Inductor's)."""
    ahead = distance()
    changed = with_prefetch(kernel_source, ahead) if ahead > 0 else None
    if changed is None:
        return None
    try:
        from torch._inductor.codecache import CppPythonBindingsCodeCache

        binding = CppPythonBindingsCodeCache.load_pybinding(argtypes, changed)
        return binding.__self__.__file__
    except Exception:  # (a compiler error, another Inductor): the kernel as Inductor made it
        return None
