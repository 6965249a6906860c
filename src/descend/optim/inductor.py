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

import re
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


_PYBINDING = re.compile(r"^(\w+) = async_compile\.cpp_pybinding\(\[([^\]]*)\]", re.M)
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
    types = {m.group(1): [t.strip().strip("'\"") for t in m.group(2).split(",")]
             for m in _PYBINDING.finditer(source)}
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
        elif re.fullmatch(r"\w+\(.*\)", st) and st.split("(", 1)[0] in types:
            calls.append(st)
        else:
            return None
    if len(calls) != 1:
        return None
    name, rest = calls[0].split("(", 1)
    args = [a.strip() for a in rest[:-1].split(",") if a.strip()]
    params = types[name]
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
    path = getattr(getattr(binding, "__self__", None), "__file__", None)
    fn = native.kernel_address(path) if path else None
    return None if fn is None else (fn, out, path)
