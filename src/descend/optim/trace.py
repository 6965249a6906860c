"""The multi-tensor path, traced: a rule of :mod:`descend.optim.rules` turned into a short
program of in-place ``torch._foreach_*`` ops, once per configuration, replayed every step.

:class:`descend.optim.foreach.Many` evaluates a rule op by op, each op a new
list of tensors, plus a copy back: Adam costs 16 list ops that way. Tracing
the same rule once with symbolic tensors (:class:`Node`) and scalars
(:class:`Sym`) gives its expression graph; the scheduler then

* folds ``a + x * s`` into ``_foreach_add(a, x, alpha=s)``, ``a + x * y * s``
  into ``_foreach_addcmul`` and ``a - s * x / d`` into ``_foreach_addcdiv``;
* computes a node in place in its input's buffer when that input has no other
  use (a temporary, or a parameter or state tensor whose old value is no longer
  needed), so that ``p - lr * g`` is one ``_foreach_add_(p, g, alpha=-lr)``.

The math stays the rule's: the trace is the rule's own arithmetic, so only
rounding may differ from the eager path (fused multiply-adds). Hyperparameters
are symbols, so a new lr or beta replays the same program; zero terms and
flags are part of the configuration (a rule skips them).
"""

from __future__ import annotations

from typing import Any

import torch

from . import rules

F = torch


class Sym:
    """A scalar expression over the hyperparameters, evaluated at replay."""

    __slots__ = ("fn",)

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    @staticmethod
    def lift(x: Any) -> Sym:
        return x if isinstance(x, Sym) else Sym(lambda h, x=x: x)

    def __add__(self, o: Any) -> Any:
        return _scalar_or_node(self, o, lambda a, b: a + b, "add")

    def __radd__(self, o: Any) -> Any:
        return _scalar_or_node(self, o, lambda a, b: b + a, "add")

    def __sub__(self, o: Any) -> Any:
        o2 = Sym.lift(o) if not isinstance(o, Node) else None
        if o2 is not None:
            return Sym(lambda h, a=self.fn, b=o2.fn: a(h) - b(h))
        return Node("rsub", o, self)

    def __rsub__(self, o: Any) -> Sym:
        o2 = Sym.lift(o)
        return Sym(lambda h, a=self.fn, b=o2.fn: b(h) - a(h))

    def __mul__(self, o: Any) -> Any:
        return _scalar_or_node(self, o, lambda a, b: a * b, "mul")

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Sym:
        o2 = Sym.lift(o)
        return Sym(lambda h, a=self.fn, b=o2.fn: a(h) / b(h))

    def __neg__(self) -> Sym:
        return Sym(lambda h, a=self.fn: -a(h))


def _scalar_or_node(s: Sym, o: Any, op: Any, node_op: str) -> Any:
    if isinstance(o, Node):
        return Node(node_op, o, s)
    o2 = Sym.lift(o)
    return Sym(lambda h, a=s.fn, b=o2.fn: op(a(h), b(h)))


class Node:
    """A list of tensors in the traced rule: a leaf (``p``, ``g``, a state key) or an op."""

    __slots__ = ("op", "args", "name", "__weakref__")

    def __init__(self, op: str, *args: Any, name: str | None = None) -> None:
        self.op, self.args, self.name = op, args, name

    def __add__(self, o: Any) -> Node:
        return Node("add", self, o)

    __radd__ = __add__

    def __sub__(self, o: Any) -> Node:
        return Node("sub", self, o)

    def __rsub__(self, o: Any) -> Node:
        return Node("rsub", self, o)

    def __mul__(self, o: Any) -> Node:
        return Node("mul", self, o)

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Node:
        return Node("div", self, o)

    def __neg__(self) -> Node:
        return Node("mul", self, -1.0)

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        if kwargs:
            raise TypeError("traced rules take no keyword arguments in torch calls")
        if func is torch.sqrt:
            return Node("sqrt", args[0])
        if func is torch.sign:
            return Node("sign", args[0])
        if func is torch.maximum:
            return Node("maximum", args[0], args[1])
        raise TypeError(f"descend.optim.trace cannot trace {getattr(func, '__name__', func)}")


def _scalar(x: Any) -> bool:
    return not isinstance(x, Node)


class Program:
    """A rule compiled to a list of foreach calls; ``run`` replays it on lists of tensors."""

    def __init__(self, outputs: list[tuple[str, Node | None]], writable: set[str], inplace: bool) -> None:
        self.steps: list[tuple] = []
        order: list[Node] = []
        seen: set[int] = set()

        def visit(n: Any) -> None:
            if not isinstance(n, Node) or id(n) in seen:
                return
            seen.add(id(n))
            for a in n.args:
                visit(a)
            order.append(n)

        for _, out in outputs:
            visit(out)
        self.order, self.outputs = order, [(k, v) for k, v in outputs if v is not None]
        uses: dict[int, int] = {}
        for n in order:
            for a in n.args:
                if isinstance(a, Node):
                    uses[id(a)] = uses.get(id(a), 0) + 1
        for _, out in outputs:
            if out is not None:
                uses[id(out)] = uses.get(id(out), 0) + 1
        folded: set[int] = set()
        plans: dict[int, tuple] = {}
        for n in order:
            if n.op in ("add", "sub") and isinstance(n.args[1], Node) and uses[id(n.args[1])] == 1:
                plan = self._fuse(n.args[1], -1.0 if n.op == "sub" else 1.0, uses)
                if plan is not None:
                    plans[id(n)] = plan[0]
                    folded.update(plan[1])
        slot: dict[int, int] = {}
        owner: dict[int, str] = {}  # slot -> leaf name whose buffer it is
        self.leaves: list[tuple[str, int]] = []
        count = 0
        for n in order:
            if id(n) in folded:
                continue
            if n.op == "leaf":
                slot[id(n)] = count
                owner[count] = n.name  # type: ignore[assignment]
                self.leaves.append((n.name, count))  # type: ignore[arg-type]
                count += 1
                continue
            first = n.args[0]
            can = (isinstance(first, Node) and uses[id(first)] == 1 and id(first) not in folded
                   and (first.op != "leaf" or (inplace and first.name in writable)))
            if id(n) in plans:
                kind, args = plans[id(n)]
                self.steps.append((kind, can, [_ref(a, slot) for a in (first, *args[:-1])], args[-1]))
            else:
                self.steps.append((n.op, can, [_ref(a, slot) for a in n.args], None))
            if can:
                slot[id(n)] = slot[id(first)]
            else:
                slot[id(n)] = count
                owner[count] = ""
                count += 1
            self.steps[-1] = (*self.steps[-1], slot[id(n)])
        self.nslots = count
        self.leaf_names = [name for name, _ in self.leaves]
        self.writes = []
        for name, out in outputs:
            if out is None or (out.op == "leaf" and out.name == name):
                continue
            s = slot[id(out)]
            if owner.get(s) == name:
                continue
            if owner.get(s):  # the result sits in another leaf's buffer: replay would clobber it
                raise _Clobber
            self.writes.append((name, s))

    @staticmethod
    def _fuse(b: Node, sign: float, uses: dict[int, int]) -> tuple[tuple, list[int]] | None:
        """``a +/- b`` as one foreach call when ``b`` is ``x*s``, ``x*y*s``, ``x*y`` or ``(x*s)/d``."""
        def single(n: Any) -> bool:
            return isinstance(n, Node) and uses[id(n)] == 1

        if b.op == "mul" and _scalar(b.args[1]):
            x, s = b.args
            if single(x) and x.op == "mul" and not _scalar(x.args[1]):
                return ("addcmul", (x.args[0], x.args[1], (sign, s))), [id(b), id(x)]
            if single(x) and x.op == "mul":  # a + (x * s1) * s2: one call, alpha = s1 * s2
                return ("add_alpha", (x.args[0], (sign, Sym.lift(x.args[1]) * s))), [id(b), id(x)]
            return ("add_alpha", (x, (sign, s))), [id(b)]
        if b.op == "mul":
            return ("addcmul", (b.args[0], b.args[1], (sign, 1.0))), [id(b)]
        if b.op == "div" and not _scalar(b.args[1]):
            x, d = b.args
            if single(x) and x.op == "mul" and _scalar(x.args[1]):
                return ("addcdiv", (x.args[0], d, (sign, x.args[1])), ), [id(b), id(x)]
            if not _scalar(x):
                return ("addcdiv", (x, d, (sign, 1.0))), [id(b)]
        return None

    def run(self, leaves: dict[str, list[torch.Tensor]], hypers: dict[str, Any]) -> None:
        """Replay on lists of tensors; a list of one runs the same ops on the tensor itself
        (torch's CPU foreach ops are a loop of these, so the result is the same, minus the
        list overhead that dominates a 2-parameter step)."""
        one = len(leaves["p"]) == 1
        calls = _CALL1 if one else _CALL
        slots: list[Any] = [None] * self.nslots
        for name, i in self.leaves:
            slots[i] = leaves[name][0] if one else leaves[name]
        for op, inplace, args, coef, out in self.steps:
            vals = [slots[a[1]] if a[0] == "s" else _value(a[1], hypers) for a in args]
            slots[out] = calls[op](inplace, vals, None if coef is None else
                                   coef[0] * _value(coef[1], hypers))
        for name, s in self.writes:
            if one:
                leaves[name][0].copy_(slots[s])
            else:
                torch._foreach_copy_(leaves[name], slots[s])


    def source(self, name: str, low: frozenset, flag: bool,
               rounded: tuple = ()) -> tuple[str, list[str], list[Sym]]:
        """Straight-line Python of the rule for one tensor (for ``torch.compile``).

        Returns the source of ``name(<leaves>, <scalars>[, ok][, seed_<target>...])``, the
        leaf names and the scalar expressions whose values (computed in double) are its
        scalar arguments. Leaves named in ``low`` are read as float32; outputs named in
        ``rounded`` are written through ``_sr(value, seed, p)`` (stochastic rounding to bf16, salted
        with the old p: the state is written before p).
        """
        var: dict[int, str] = {}
        syms: list[Sym] = []
        lines: list[str] = []
        leaves = [n.name for n in self.order if n.op == "leaf"]

        def arg(a: Any) -> str:
            if isinstance(a, Node):
                return var[id(a)]
            if isinstance(a, Sym):
                if not any(a is x for x in syms):
                    syms.append(a)
                return f"s{next(i for i, x in enumerate(syms) if x is a)}"
            return repr(float(a))

        for i, n in enumerate(self.order):
            if n.op == "leaf":
                var[id(n)] = f"L_{n.name}"
                lines.append(f"    L_{n.name} = {n.name}.float()" if n.name in low else f"    L_{n.name} = {n.name}")
                continue
            a = [arg(x) for x in n.args]
            expr = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / {1}",
                    "rsub": "{1} - {0}", "sqrt": "torch.sqrt({0})", "sign": "torch.sign({0})",
                    "maximum": "torch.maximum({0}, {1})"}[n.op].format(*a)
            var[id(n)] = f"t{i}"
            lines.append(f"    t{i} = {expr}")
        # the state first: its rounding is salted with the old p (L_p), read before p is written
        for target, out in sorted(self.outputs, key=lambda o: o[0] == "p"):
            value = var[id(out)]
            if flag:
                value = f"torch.where(ok, {value}, L_{target})"
            if target in rounded:
                value = f"_sr({value}, seed_{target}, L_p)"
            lines.append(f"    {target}.copy_({value})")
        params = (leaves + [f"s{i}" for i in range(len(syms))] + (["ok"] if flag else [])
                  + [f"seed_{t}" for t in rounded])
        return f"def {name}({', '.join(params)}):\n" + "\n".join(lines) + "\n", leaves, syms


class _Clobber(Exception):
    pass


def _ref(a: Any, slot: dict[int, int]) -> tuple[str, Any]:
    return ("s", slot[id(a)]) if isinstance(a, Node) else ("c", a)


def _value(x: Any, h: dict[str, Any]) -> Any:
    return x.fn(h) if isinstance(x, Sym) else x


def _op(out_of_place: Any, in_place: Any, coef: str | None = None) -> Any:
    """One op of a program: ``call(inplace, args, coef)`` writes into ``args[0]`` when it may.

    The same maker serves lists (``torch._foreach_*``, whose in-place forms return None)
    and single tensors (``torch.add`` / ``Tensor.add_``); ``coef`` names the keyword
    (``alpha``, ``value``) that takes the folded scalar.
    """
    def call(inplace: bool, v: list, c: Any) -> Any:
        kw = {} if coef is None else {coef: c}
        if inplace:
            in_place(*v, **kw)
            return v[0]
        return out_of_place(*v, **kw)

    return call


def _calls(many: bool) -> dict[str, Any]:
    """The ops of a program on lists (``many``) or on one tensor, by name."""
    def pair(name: str, coef: str | None = None) -> Any:
        if many:
            return _op(getattr(F, f"_foreach_{name}"), getattr(F, f"_foreach_{name}_"), coef)
        return _op(getattr(F, name), getattr(torch.Tensor, f"{name}_"), coef)

    ops = {name: pair(name) for name in ("add", "sub", "mul", "div", "sqrt", "sign")}
    ops.update(add_alpha=pair("add", "alpha"), addcmul=pair("addcmul", "value"),
               addcdiv=pair("addcdiv", "value"))
    if many:
        ops["maximum"] = pair("maximum")
        ops["rsub"] = lambda inplace, v, c: F._foreach_add(F._foreach_neg(v[0]), v[1])
    else:
        ops["maximum"] = _maximum1
        ops["rsub"] = lambda inplace, v, c: torch.neg(v[0]).add_(v[1])
    return ops


def _maximum1(inplace: bool, v: list, coef: Any) -> Any:
    """``torch.maximum`` on one tensor; a number as the other side is ``clamp_min``."""
    other = v[1]
    if isinstance(other, torch.Tensor):
        return torch.maximum(v[0], other, out=v[0]) if inplace else torch.maximum(v[0], other)
    return v[0].clamp_min_(other) if inplace else v[0].clamp_min(other)


_CALL = _calls(many=True)
_CALL1 = _calls(many=False)  # the same ops on one tensor (a part of one parameter)


def build(trace_fn: Any, leaf_names: list[str], writable: set[str], scalars: dict[str, Any]) -> Program:
    """Trace ``trace_fn(leaves, syms)`` (returning ``[(target, node)]``) into a Program."""
    leaves = {n: Node("leaf", name=n) for n in leaf_names}
    syms = {k: (Sym(lambda h, k=k: h[k]) if sym else v) for k, (sym, v) in scalars.items()}
    outputs = trace_fn(leaves, syms)
    try:
        return Program(outputs, writable, inplace=True)
    except _Clobber:
        return Program(outputs, writable, inplace=False)


_PROGRAMS: dict[tuple, Program | None] = {}
_SYM = object()


def _static(v: Any) -> Any:
    """What a program specializes on: flags, absent values and zeros; _SYM for a number."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, torch.Tensor):
        return torch.Tensor
    return 0.0 if v == 0 else _SYM


def of_rule(programs: dict, rule: Any, keys: tuple, st: dict[str, Any], maximize: bool,
            values: dict[str, Any]) -> Program | None:
    """The traced program of an update rule of ``rules`` in this configuration: ``st`` is a
    parameter's state (which of the state ``keys`` it holds), ``values`` the hyperparameters and
    regularizers. None when numbers are tensors. ``programs``: a part's cache of its own."""
    sig = (rule, maximize, *map(_static, values.values()), *(k in st for k in keys))
    cached = programs.get(sig)
    if cached is not None:
        return cached
    if torch.Tensor in sig:
        return None
    present = tuple(k for k in keys if k in st)
    config = {k: (_static(v) is _SYM, v) for k, v in values.items()}
    key = (rule, present, maximize, tuple((k, c[1] if not c[0] else "sym") for k, c in config.items()))
    if key not in _PROGRAMS:
        names = [k for k in values if k not in ("weight_decay", "l1")]

        def traced(leaves: dict[str, Any], syms: dict[str, Any]) -> list:
            g = rules.prepare_grad(leaves["p"], leaves["g"], maximize=maximize,
                                   weight_decay=syms["weight_decay"], l1=syms["l1"])
            new = rule(leaves["p"], g, *[leaves[k] if k in present else None for k in keys],
                       **{k: syms[k] for k in names})
            return [("p", new[0])] + [(k, v) for k, v in zip(keys, new[1:]) if k in present]

        _PROGRAMS[key] = build(traced, ["p", "g", *present], {"p", *present}, config)
    programs[sig] = _PROGRAMS[key]
    return _PROGRAMS[key]
