"""A traced foreach program (:mod:`descend.optim.trace`) replayed by one C++ call on the CPU.

torch's multi-tensor ops on the CPU are a loop of single-tensor ops: each op of a
program is a pass over memory, and each tensor of 32768 elements or more is a
parallel region of its own (a fork, a join and a cold start of the prefetchers).
SGD's one ``_foreach_add_`` over the 164 tensors of a 25M-parameter transformer
took 1.16-1.26x the time of the same ``add_`` on one flat buffer; Adam's eight ops
read and write the state eight times. Here the whole program runs in one OpenMP
region over every tensor of a part: each thread takes the share of each tensor that
torch's ``parallel_for`` would give it (the share :func:`native.finite` scanned, so
the gradient is still in that core's cache), in blocks of :data:`BLOCK` elements,
and runs every op of the program on a block before the next one, so temporaries
stay in the L1 cache and the parameters, gradients and state are read and written
once.

Each op computes what torch's CPU kernel computes, element by element, in the
tensors' dtype: ``a + alpha * b`` as one fused multiply-add (torch's ``add``),
``addcmul`` as ``fma(value * x, y, a)`` and ``addcdiv`` as ``a + (value * x) / y``
(how torch's build compiles them), division correctly rounded. So the results equal
:meth:`trace.Program.run` bit for bit (``tests/optim/test_replay.py`` holds every rule
and option to that, float32 and float64). The library is compiled with
``-ffp-contract=off``: the compiler fuses nothing that torch does not. Programs with
a square root or a maximum replay with torch's ops: torch's vectorized square root
is SLEEF's, not correctly rounded for about 0.7% of float32 inputs, and its maximum
gives a zero's sign differently in its vector and scalar loops. That leaves the
rules whose state is a plain average (SGD, momentum, Nesterov): their parts of the
foreach path at every size.

Used for CPU parts of the foreach path whose parameters, gradients and state are
plain contiguous float32/float64 tensors of one dtype and size; anything else, and
wherever the library cannot be built, replays with torch's ops.
"""

from __future__ import annotations

import array
import ctypes
import os
import threading
from typing import Any

import torch

from . import native, trace

SOURCE = r"""
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_num_threads() { return 1; }
static inline int omp_get_thread_num() { return 0; }
#endif

enum { ADD, SUB, MUL, DIV, SIGN, RSUB, ADD_ALPHA, ADDCMUL, ADDCDIV, COPY };
static const int64_t BLOCK = 1024;
static const int64_t GRAIN = 32768;  // at::internal::GRAIN_SIZE
static const int64_t MAX_SLOTS = 64;
""" + native.ANY_NONFINITE + r"""
// code: 6 int64 per op: op, out, a, b, c, coef. An operand >= 0 is a slot; < 0 is the
// scalar -(k + 1). coef is a scalar index or -1. slot_leaf[s]: the leaf whose tensors
// slot s is, or -1 for a temporary. leaf_ptrs[l * n + i]: leaf l's tensor i.
template <typename T>
static void run_block(const int64_t* code, int64_t nops, T* const* at, const T* sc, int64_t m) {
  for (int64_t o = 0; o < nops; ++o) {
    const int64_t* c = code + 6 * o;
    T* out = at[c[1]];
    const T* a = at[c[2]];
    const bool bs = c[3] < 0;
    const T bv = bs ? sc[-c[3] - 1] : T(0);
    const T* b = bs ? nullptr : at[c[3]];
    const T k = c[5] >= 0 ? sc[c[5]] : T(1);
#define DESCEND_LOOP(expr) \
  _Pragma("omp simd") for (int64_t j = 0; j < m; ++j) out[j] = (expr);
#define DESCEND_BIN(expr_s, expr_t) \
  if (bs) { DESCEND_LOOP(expr_s) } else { DESCEND_LOOP(expr_t) }
    switch (c[0]) {
      case ADD: DESCEND_BIN(a[j] + bv, a[j] + b[j]) break;
      case SUB: DESCEND_BIN(a[j] - bv, a[j] - b[j]) break;
      case MUL: DESCEND_BIN(a[j] * bv, a[j] * b[j]) break;
      case DIV: DESCEND_BIN(a[j] / bv, a[j] / b[j]) break;
      case SIGN: DESCEND_LOOP(T((T(0) < a[j]) - (a[j] < T(0)))) break;
      case RSUB: DESCEND_BIN(-a[j] + bv, -a[j] + b[j]) break;
      case ADD_ALPHA: DESCEND_BIN(std::fma(bv, k, a[j]), std::fma(b[j], k, a[j])) break;
      case ADDCMUL: {
        const T* y = at[c[4]];
        DESCEND_LOOP(std::fma(k * b[j], y[j], a[j]))
        break;
      }
      case ADDCDIV: {
        const T* y = at[c[4]];
        DESCEND_LOOP(a[j] + (k * b[j]) / y[j])
        break;
      }
      default: DESCEND_LOOP(a[j]) break;  // COPY
    }
  }
}

template <typename T, typename U>
static int64_t run(const int64_t* code, int64_t nops, const int64_t* slot_leaf, int64_t nslots,
                   const int64_t* leaf_ptrs, const int64_t* counts, int64_t n, const double* scalars,
                   int64_t nscalars, int64_t check, U mask, int64_t threads) {
  std::vector<T> sc(nscalars);
  for (int64_t k = 0; k < nscalars; ++k) sc[k] = static_cast<T>(scalars[k]);
  int64_t ntemp = 0;
  for (int64_t s = 0; s < nslots; ++s) ntemp += slot_leaf[s] < 0;
  int bad = 0;
#pragma omp parallel num_threads(threads)
  {
    const int64_t nt = omp_get_num_threads(), tid = omp_get_thread_num();
    std::vector<int64_t> share(2 * n);  // this thread's elements lo..hi of each tensor
    int64_t rest = 0;  // the elements of the tensors below GRAIN, dealt out in equal shares
    for (int64_t i = 0; i < n; ++i)
      if (nt == 1 || counts[i] < GRAIN) rest += counts[i];
    const int64_t sa = rest * tid / nt, sb = rest * (tid + 1) / nt;
    for (int64_t i = 0, start = 0; i < n; ++i) {
      const int64_t cnt = counts[i];
      if (nt > 1 && cnt >= GRAIN) {  // equal contiguous parts, one a thread, as parallel_for
        const int64_t chunk = (cnt + nt - 1) / nt;
        share[2 * i] = tid * chunk < cnt ? tid * chunk : cnt;
        share[2 * i + 1] = share[2 * i] + chunk < cnt ? share[2 * i] + chunk : cnt;
      } else {
        const int64_t end = start + cnt;
        share[2 * i] = (sa > start ? sa : start) - start;
        share[2 * i + 1] = (sb < end ? sb : end) - start;
        start = end;
      }
    }
    if (check >= 0) {  // every thread scans its share of every gradient before anything is written
      bool mine = false;
      for (int64_t i = 0; i < n; ++i)
        if (share[2 * i] < share[2 * i + 1])
          mine |= any_nonfinite(reinterpret_cast<const U*>(leaf_ptrs[check * n + i]) + share[2 * i],
                                share[2 * i + 1] - share[2 * i], mask);
      if (mine) {
#pragma omp atomic write
        bad = 1;
      }
#pragma omp barrier
    }
    int stop;
#pragma omp atomic read
    stop = bad;
    std::vector<T> temps(stop ? 1 : ntemp * BLOCK + 1);
    T* at[MAX_SLOTS];
    for (int64_t i = 0; i < n && !stop; ++i) {
      for (int64_t b0 = share[2 * i]; b0 < share[2 * i + 1]; b0 += BLOCK) {
        const int64_t m = share[2 * i + 1] - b0 < BLOCK ? share[2 * i + 1] - b0 : BLOCK;
        for (int64_t s = 0, t = 0; s < nslots; ++s)
          at[s] = slot_leaf[s] >= 0 ? reinterpret_cast<T*>(leaf_ptrs[slot_leaf[s] * n + i]) + b0
                                    : temps.data() + BLOCK * t++;
        run_block<T>(code, nops, at, sc.data(), m);
      }
    }
  }
  return bad ? 2 : 0;
}

// kind 0: float32, 1: float64. check: the leaf whose tensors are scanned for infinity and NaN
// before anything is written (the gradients), or -1. Returns 0; 1 where the program has too
// many slots; 2 where the scan found a value that is not finite (nothing written).
extern "C" int64_t descend_replay(const int64_t* code, int64_t nops, const int64_t* slot_leaf,
                                  int64_t nslots, const int64_t* leaf_ptrs, const int64_t* counts,
                                  int64_t n, const double* scalars, int64_t nscalars, int64_t kind,
                                  int64_t check, int64_t threads) {
  if (nslots > MAX_SLOTS) return 1;
  if (kind == 0)
    return run<float, uint32_t>(code, nops, slot_leaf, nslots, leaf_ptrs, counts, n, scalars,
                                nscalars, check, 0x7f800000u, threads);
  return run<double, uint64_t>(code, nops, slot_leaf, nslots, leaf_ptrs, counts, n, scalars,
                               nscalars, check, 0x7ff0000000000000ull, threads);
}
"""

# the ops replayed here, as torch's CPU kernels compute them; a program with another op (a square
# root: torch's vectorized one is SLEEF's, which is not always correctly rounded; maximum: its
# sign of a zero differs between torch's vector and scalar loops) replays with torch's ops
_OPS = {"add": 0, "sub": 1, "mul": 2, "div": 3, "sign": 4, "rsub": 5, "add_alpha": 6, "addcmul": 7,
        "addcdiv": 8}
COPY = 9
KINDS = {torch.float32: 0, torch.float64: 1}
FLAG_SETS = tuple([*flags, "-ffp-contract=off", "-fno-math-errno"] for flags in native.FLAG_SETS)
error: str | None = None  # why the library could not be built, once that was tried
_lock = threading.Lock()
_loaded: list = []


def library() -> Any:
    """The C function ``descend_replay``, or None where the library cannot be built."""
    return native.once(_loaded, _lock, _load)


def _load() -> Any:
    global error
    path, error = native.build("replay", SOURCE, FLAG_SETS, [], "")
    if path is None:
        return None
    try:
        fn = ctypes.CDLL(str(path)).descend_replay
    except OSError as e:
        error = f"loading {path} failed: {e}"
        return None
    fn.restype = ctypes.c_int64
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                   ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_int64, ctypes.c_int64]
    return fn


class Code:
    """A :class:`trace.Program` encoded for ``descend_replay``: its ops, which slot is which
    leaf, and the scalar expressions to evaluate each step."""

    def __init__(self, program: trace.Program) -> None:
        self.leaf_names = program.leaf_names
        self.g = self.leaf_names.index("g") if "g" in self.leaf_names else -1  # (the leaf a check scans)
        at = {slot: i for i, (_, slot) in enumerate(program.leaves)}
        self.slot_leaf = array.array("q", [at.get(s, -1) for s in range(program.nslots)])
        self.scalars: list[Any] = []
        ops: list[int] = []

        def scalar(x: Any) -> int:
            self.scalars.append(x)
            return len(self.scalars) - 1

        self.ok = all(step[0] in _OPS for step in program.steps)
        for op, _inplace, args, coef, out in program.steps if self.ok else ():
            refs = [a[1] if a[0] == "s" else -scalar(a[1]) - 1 for a in args] + [0, 0, 0]
            k = -1 if coef is None else scalar(trace.Sym(lambda h, c=coef: c[0] * trace._value(c[1], h)))
            ops += [_OPS[op], out, refs[0], refs[1], refs[2], k]
        for name, s in program.writes:
            ops += [COPY, program.leaves[self.leaf_names.index(name)][1], s, 0, 0, -1]
        self.code = array.array("q", ops)
        self.nops = len(ops) // 6
        self.values = array.array("d", [0.0 if isinstance(x, trace.Sym) else float(x) for x in self.scalars])
        self.syms = [(i, x.fn) for i, x in enumerate(self.scalars) if isinstance(x, trace.Sym)]

    def run(self, ptrs: array.array, counts: array.array, hypers: dict[str, Any],
            dtype: torch.dtype, check: bool = False) -> Any:
        """Replay on the tensors at ``ptrs`` (leaf by leaf, in :attr:`leaf_names` order, each
        a list as long as ``counts``): True when done; False where the library is missing;
        :data:`NONFINITE` where ``check`` (scan the gradients first) found infinity or NaN.
        Nothing is written unless True."""
        fn = library()
        if fn is None:
            return False
        values = array.array("d", self.values)  # (a copy: optimizers in two threads may share a program)
        for i, f in self.syms:
            values[i] = f(hypers)
        got = fn(self.code.buffer_info()[0], self.nops, self.slot_leaf.buffer_info()[0], len(self.slot_leaf),
                 ptrs.buffer_info()[0], counts.buffer_info()[0], len(counts), values.buffer_info()[0],
                 len(values), KINDS[dtype], self.g if check else -1,
                 native._threads(sum(counts) * dtype.itemsize))
        return True if got == 0 else NONFINITE if got == 2 else False


NONFINITE = "nonfinite"  # what a replay that checked the gradients first and found one returns
_PTR = torch.Tensor.data_ptr
_NUMEL = torch.Tensor.numel
_CODES: dict[int, tuple[trace.Program, Code]] = {}


def usable(ps: list[torch.Tensor]) -> bool:
    """Whether a part of these parameters may replay natively: plain contiguous CPU tensors of
    float32 or float64 (checked again each step with the gradients and state), unless
    ``DESCEND_REPLAY=0`` (then torch's ops replay every program)."""
    return (ps[0].device.type == "cpu" and ps[0].dtype in KINDS and native.dense(ps, ps[0].dtype)
            and os.environ.get("DESCEND_REPLAY", "1") != "0" and library() is not None)


def code_of(program: trace.Program) -> Code:
    got = _CODES.get(id(program))
    if got is None or got[0] is not program:
        got = _CODES[id(program)] = (program, Code(program))
    return got[1]


def step(program: trace.Program, leaves: dict[str, list[torch.Tensor]], hypers: dict[str, Any],
         ptrs: list[int], counts: array.array, gptrs: Any, check: bool = False) -> Any:
    """Run ``program`` on a part's tensors in one native call: ``ptrs`` and ``counts`` are the
    parameters' addresses and sizes (the plan's), ``gptrs`` the gradients' addresses where
    :func:`bulk.grads` read them all plain (else None: they are checked here). ``check``: the
    call first scans every gradient for infinity and NaN (the optimizer's ``nonfinite`` check,
    in the same parallel region, each thread its own share) and writes nothing if it finds one.

    Returns True when done, :data:`NONFINITE` when the check found one, and False, with
    nothing written, where a gradient or state tensor is not a plain contiguous tensor of the
    parameters' dtype and size: the caller replays with torch's ops. The parameters' and state's
    version counters are bumped, as torch's in-place ops bump them."""
    code = code_of(program)
    if not code.ok or check and code.g < 0 or code.nops == 1 and len(counts) == 1 and not check:
        return False  # (one op on one tensor: torch's call is cheaper, unless a check comes with it)
    dtype = leaves["p"][0].dtype
    at = array.array("q")
    for name in code.leaf_names:
        if name == "p":
            at.extend(ptrs)
            continue
        if name == "g" and gptrs is not None:
            at.extend(gptrs)
            continue
        ts = leaves[name]
        if not native.plain(ts, dtype) or array.array("q", map(_NUMEL, ts)) != counts:
            return False
        at.extend(map(_PTR, ts))
    got = code.run(at, counts, hypers, dtype, check)
    if got is True:
        for name in code.leaf_names:  # (written through pointers: autograd must still see it)
            if name != "g":
                torch._C._increment_version(leaves[name])
    return got
