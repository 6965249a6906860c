"""Two small C++ helpers for the CPU step, built once per machine with the system compiler.

* :class:`Packer` copies many small tensors into one flat buffer and back. The
  compiled path packs a group's small parameters (their values and gradients go
  into flat scratch buffers, one kernel updates them, the new values go back);
  torch's ``_foreach_copy_`` makes each copy through the dispatcher, about 1 µs a
  tensor on the CPU, so on 2000 tensors of 500 elements the three copies cost
  three times the kernel. Here each is one call: a ``memcpy`` per tensor, OpenMP
  across tensors.
* :func:`finite` scans gradients for NaN and infinity by their exponent bits, in
  one call for any number of tensors (every float dtype, exact: no overflow false
  alarms). On the 25M sets it reads at memory speed, about 20% faster than
  ``dot(g, g)`` per tensor; on 2000 small tensors seven times faster than
  ``_foreach_norm``, and on a digits MLP's four it takes 4 µs where
  ``_foreach_norm`` and four host reads took 12.

The library is compiled with ``$CXX`` (else ``g++``, ``c++``, ``clang++``), ``-O3
-march=native -fopenmp`` (then without ``-march=native``, then without OpenMP:
:data:`FLAG_SETS`), into descend's cache folder (:func:`kernels.cache_home`) under a
name that hashes the source, the compiler and the CPU's feature flags: about 0.3 s
once, about 1 ms to load in later processes. Where no compiler works,
:func:`library` is None and callers use torch's ops (same results, slower); the
reason is in :data:`error`, and a ``.failed`` file next to where the library would
be keeps later processes from trying again with the same compiler.

Both apply only where they are exact and stay inside each tensor: CPU tensors of
the plain types, contiguous, of the expected dtype (and, for copies, size), and for
copies without a lazy negation (:func:`dense`, :func:`plain`).
"""

from __future__ import annotations

import array
import ctypes
import hashlib
import operator
import os
import platform
import shutil
import subprocess
import threading
from typing import Any

import torch

ANY_NONFINITE = r"""
// Whether any of u[0..n) has every exponent bit set (infinity or NaN). Eight interleaved
// streams: a single stream reads about 25% slower here (too few reads in flight).
template <typename U>
static inline bool any_nonfinite(const U* u, int64_t n, U mask) {
  const int64_t len = n / 8;
  const U *p0 = u, *p1 = u + len, *p2 = p1 + len, *p3 = p2 + len, *p4 = p3 + len,
          *p5 = p4 + len, *p6 = p5 + len, *p7 = p6 + len;
  U acc = 0;
  for (int64_t k = 0; k < len; ++k)
    acc |= (U)(((p0[k] & mask) == mask) | ((p1[k] & mask) == mask) | ((p2[k] & mask) == mask) |
               ((p3[k] & mask) == mask) | ((p4[k] & mask) == mask) | ((p5[k] & mask) == mask) |
               ((p6[k] & mask) == mask) | ((p7[k] & mask) == mask));
  for (int64_t k = 8 * len; k < n; ++k) acc |= (U)((u[k] & mask) == mask);
  return acc != 0;
}
"""  # (also in replay's library: its step may check the gradients first)

SOURCE = r"""
#include <cstdint>
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_num_threads() { return 1; }
static inline int omp_get_thread_num() { return 0; }
#endif

// Copy n tensors (addresses ptrs[i], bytes offsets[i]..offsets[i+1] of flat) into flat
// (to_flat != 0) or out of it.
extern "C" void descend_gather(const int64_t* ptrs, const int64_t* offsets, int64_t n,
                               char* flat, int64_t to_flat, int64_t threads) {
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    char* t = reinterpret_cast<char*>(ptrs[i]);
    const int64_t a = offsets[i], b = offsets[i + 1];
    if (to_flat) {
      std::memcpy(flat + a, t, b - a);
    } else {
      std::memcpy(t, flat + a, b - a);
    }
  }
}
""" + ANY_NONFINITE + r"""
// Each thread scans the share of each gradient that it will update: a gradient of at least
// GRAIN elements is split into equal contiguous parts, one a thread, as torch's parallel_for
// and the compiled kernels' static OpenMP schedule split it, so the update finds its share of
// the gradient in its own core's cache (a cold 200k-parameter MLP: the check and the update
// together about 12% faster than with one share of all elements each). Smaller gradients,
// which torch updates on one thread, are dealt out in equal shares of their elements.
static const int64_t GRAIN = 32768;  // at::internal::GRAIN_SIZE

template <typename U>
static int64_t all_finite(const int64_t* ptrs, const int64_t* counts, int64_t n, U mask,
                          int64_t threads) {
  int64_t bad = 0;
#pragma omp parallel num_threads(threads) reduction(| : bad)
  {
    const int64_t nt = omp_get_num_threads(), tid = omp_get_thread_num();
    int64_t rest = 0;  // the elements of the gradients below GRAIN (all of them on one thread)
    for (int64_t i = 0; i < n; ++i)
      if (nt == 1 || counts[i] < GRAIN) rest += counts[i];
    const int64_t a = rest * tid / nt, b = rest * (tid + 1) / nt;
    int64_t start = 0;
    for (int64_t i = 0; i < n; ++i) {
      const U* u = reinterpret_cast<const U*>(ptrs[i]);
      const int64_t c = counts[i];
      if (nt > 1 && c >= GRAIN) {
        const int64_t chunk = (c + nt - 1) / nt;
        const int64_t lo = tid * chunk < c ? tid * chunk : c, hi = lo + chunk < c ? lo + chunk : c;
        if (lo < hi) bad |= any_nonfinite(u + lo, hi - lo, mask);
        continue;
      }
      const int64_t end = start + c;
      const int64_t lo = a > start ? a : start, hi = b < end ? b : end;
      if (lo < hi) bad |= any_nonfinite(u + (lo - start), hi - lo, mask);
      start = end;
    }
  }
  return !bad;
}

// A step's compiled kernels and copies, run back to back without returning to Python: on a
// machine whose idle OpenMP threads spin after each parallel kernel, Python between kernels
// runs about 3x slower. prog holds ops one after another:
//   0, fn, nargs, arg...   call fn(arg...): an Inductor CPU kernel, whose arguments are all
//                          pointers and int64 (passed alike on the ABIs this is used on)
//   1, ptrs, offsets, n, flat, to_flat, threads   descend_gather(...)
// Returns 0, or 1 + the index of an op that failed (an unknown op, too many arguments, or a
// C++ exception from a kernel).
typedef int64_t I;
extern "C" int64_t descend_launch(const int64_t* prog, int64_t len) {
  int64_t at = 0, op = 0;
  try {
    for (; at < len; ++op) {
      const int64_t* a = prog + at;
      if (a[0] == 1) {
        descend_gather(reinterpret_cast<const int64_t*>(a[1]), reinterpret_cast<const int64_t*>(a[2]),
                       a[3], reinterpret_cast<char*>(a[4]), a[5], a[6]);
        at += 7;
        continue;
      }
      if (a[0] != 0) return 1 + op;
      const void* f = reinterpret_cast<const void*>(a[1]);
      const int64_t n = a[2];
      const int64_t* x = a + 3;
      switch (n) {
#define DESCEND_ARGS_1 x[0]
#define DESCEND_ARGS_2 DESCEND_ARGS_1, x[1]
#define DESCEND_ARGS_3 DESCEND_ARGS_2, x[2]
#define DESCEND_ARGS_4 DESCEND_ARGS_3, x[3]
#define DESCEND_ARGS_5 DESCEND_ARGS_4, x[4]
#define DESCEND_ARGS_6 DESCEND_ARGS_5, x[5]
#define DESCEND_ARGS_7 DESCEND_ARGS_6, x[6]
#define DESCEND_ARGS_8 DESCEND_ARGS_7, x[7]
#define DESCEND_ARGS_9 DESCEND_ARGS_8, x[8]
#define DESCEND_ARGS_10 DESCEND_ARGS_9, x[9]
#define DESCEND_ARGS_11 DESCEND_ARGS_10, x[10]
#define DESCEND_ARGS_12 DESCEND_ARGS_11, x[11]
#define DESCEND_ARGS_13 DESCEND_ARGS_12, x[12]
#define DESCEND_ARGS_14 DESCEND_ARGS_13, x[13]
#define DESCEND_ARGS_15 DESCEND_ARGS_14, x[14]
#define DESCEND_ARGS_16 DESCEND_ARGS_15, x[15]
#define DESCEND_ARGS_17 DESCEND_ARGS_16, x[16]
#define DESCEND_ARGS_18 DESCEND_ARGS_17, x[17]
#define DESCEND_ARGS_19 DESCEND_ARGS_18, x[18]
#define DESCEND_ARGS_20 DESCEND_ARGS_19, x[19]
#define DESCEND_ARGS_21 DESCEND_ARGS_20, x[20]
#define DESCEND_ARGS_22 DESCEND_ARGS_21, x[21]
#define DESCEND_ARGS_23 DESCEND_ARGS_22, x[22]
#define DESCEND_ARGS_24 DESCEND_ARGS_23, x[23]
#define DESCEND_CASE(k, ...) \
  case k: reinterpret_cast<void (*)(__VA_ARGS__)>(const_cast<void*>(f))(DESCEND_ARGS_##k); break;
        DESCEND_CASE(1, I)
        DESCEND_CASE(2, I, I)
        DESCEND_CASE(3, I, I, I)
        DESCEND_CASE(4, I, I, I, I)
        DESCEND_CASE(5, I, I, I, I, I)
        DESCEND_CASE(6, I, I, I, I, I, I)
        DESCEND_CASE(7, I, I, I, I, I, I, I)
        DESCEND_CASE(8, I, I, I, I, I, I, I, I)
        DESCEND_CASE(9, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(10, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(11, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(12, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(13, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(14, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(15, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(16, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(17, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(18, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(19, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(20, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(21, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(22, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(23, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        DESCEND_CASE(24, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I)
        default: return 1 + op;
      }
      at += 3 + n;
    }
  } catch (...) {
    return 1 + op;
  }
  return 0;
}

// kind: 0 float32, 1 float64, 2 bfloat16, 3 float16.
extern "C" int64_t descend_finite(const int64_t* ptrs, const int64_t* counts, int64_t n,
                                  int64_t kind, int64_t threads) {
  switch (kind) {
    case 0: return all_finite<uint32_t>(ptrs, counts, n, 0x7f800000u, threads);
    case 1: return all_finite<uint64_t>(ptrs, counts, n, 0x7ff0000000000000ull, threads);
    case 2: return all_finite<uint16_t>(ptrs, counts, n, (uint16_t)0x7f80, threads);
    default: return all_finite<uint16_t>(ptrs, counts, n, (uint16_t)0x7c00, threads);
  }
}
"""

KINDS = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}
PARALLEL_BYTES = 1 << 18  # below this a call runs on one thread (an OpenMP region costs more)
error: str | None = None  # why the library could not be built, once that was tried
_lock = threading.Lock()
_loaded: list = []  # [(gather, finite, launch) or None] once tried
_PTR = torch.Tensor.data_ptr
_CONTIGUOUS = torch.Tensor.is_contiguous
_NEG = torch.Tensor.is_neg
_NUMEL = torch.Tensor.numel
_DTYPE = operator.attrgetter("dtype")
_TYPES = {torch.Tensor, torch.nn.Parameter}


def library() -> tuple[Any, Any, Any] | None:
    """``(gather, finite, launch)``, the library's functions, or None where it cannot be built."""
    return once(_loaded, _lock, _load)


def once(cache: list, lock: threading.Lock, load: Any) -> Any:
    """``load()``'s result, computed by the first caller only (``cache`` holds it)."""
    if not cache:
        with lock:
            if not cache:
                cache.append(load())
    return cache[0]


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# tried in turn: a compiler without -march=native or without OpenMP still builds the library
# (single-threaded without OpenMP: the source has no hard dependency on it)
FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3", "-fopenmp"], ["-O3"])


def build(prefix: str, source: str, flag_sets: tuple, extra: list[str], key: str,
          compile: bool = True) -> tuple[Any, str | None]:
    """Compile ``source`` into ``<cache>/<prefix>-<hash>.so`` once per machine: ``(path, None)``,
    or ``(None, why)``. Each of ``flag_sets`` is tried in turn (``extra`` follows each); a
    build that failed leaves a ``.failed`` file so that later processes do not try again.
    ``compile=False`` only looks: ``(path, None)`` when built, ``(None, why)`` when failed,
    ``(None, None)`` when not yet built."""
    from .kernels import cache_home

    cxx = _compiler()
    if cxx is None:
        return None, "no C++ compiler found ($CXX, g++, c++, clang++)"
    key = hashlib.sha256("\n".join([source, cxx, str(os.stat(cxx).st_mtime), repr(flag_sets), repr(extra),
                                    key, platform.machine(), _cpu_flags()]).encode()).hexdigest()[:20]
    home = cache_home()
    path = home / f"{prefix}-{key}.so"
    failed = home / f"{prefix}-{key}.failed"
    if path.exists():
        return path, None
    if failed.exists():
        return None, failed.read_text(errors="replace")
    if not compile:
        return None, None
    try:
        home.mkdir(parents=True, exist_ok=True)
        src = home / f"{prefix}-{key}.{os.getpid()}.cpp"
        tmp = home / f"{prefix}-{key}.{os.getpid()}.so"
        src.write_text(source)
        errors = []
        for flags in flag_sets:
            done = subprocess.run([cxx, *flags, "-shared", "-fPIC", str(src), "-o", str(tmp), *extra],
                                  capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                break
            errors.append(f"{cxx} {' '.join(flags)}: {done.stderr.strip()[-300:]}")
        src.unlink(missing_ok=True)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            why = f"building the {prefix} library failed:\n" + "\n".join(errors)
            try:
                failed.write_text(why)
            except OSError:
                pass
            return None, why
        os.replace(tmp, path)  # whole or not at all, for processes building at once
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"building {path} failed: {e}"
    return path, None


def _load() -> tuple[Any, Any, Any] | None:
    global error
    path, error = build("native", SOURCE, FLAG_SETS, [], "")
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        error = f"loading {path} failed: {e}"
        return None
    gather, finite, launch = lib.descend_gather, lib.descend_finite, lib.descend_launch
    launch.restype = ctypes.c_int64
    launch.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    gather.restype = None
    gather.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                       ctypes.c_int64, ctypes.c_int64]
    finite.restype = ctypes.c_int64
    finite.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
    return gather, finite, launch


def dense(ts: list[torch.Tensor], dtype: torch.dtype) -> bool:
    """Whether each tensor's ``numel`` elements of ``dtype`` from its data pointer are exactly
    its elements: plain tensors (no subclass) of that dtype, contiguous (CPU assumed). Enough
    for :func:`finite`, which is blind to sign and so to a lazy negation. (A gradient's dtype
    and size are its parameter's unless changed through ``.data`` or ``resize_``, which torch
    lets through: then the byte copies and scans must not run, or they would read past it.)"""
    return set(map(type, ts)) <= _TYPES and set(map(_DTYPE, ts)) == {dtype} and all(map(_CONTIGUOUS, ts))


def plain(ts: list[torch.Tensor], dtype: torch.dtype) -> bool:
    """Whether the tensors' bytes are their values: :func:`dense`, and no lazy negation."""
    return dense(ts, dtype) and not any(map(_NEG, ts))


def _threads(nbytes: int) -> int:
    return 1 if nbytes < PARALLEL_BYTES else torch.get_num_threads()


def finite(ts: list[torch.Tensor]) -> bool | None:
    """Whether every element of ``ts`` (:func:`dense` CPU tensors of one float dtype) is finite;
    None where the library is missing (the caller checks another way)."""
    lib = library()
    if lib is None:
        return None
    return finite_at(array.array("q", map(_PTR, ts)), array.array("q", map(_NUMEL, ts)), ts[0].dtype)


def finite_at(ptrs: array.array, counts: array.array, dtype: torch.dtype) -> bool:
    """:func:`finite` of the tensors of ``dtype`` at addresses ``ptrs`` with ``counts`` elements
    (read by :func:`bulk.grads`); the library must be there."""
    nbytes = sum(counts) * dtype.itemsize
    return bool(library()[1](ptrs.buffer_info()[0], counts.buffer_info()[0], len(ptrs),  # type: ignore[index]
                             KINDS[dtype], _threads(nbytes)))


class Packer:
    """Byte copies between a fixed list of CPU tensors' places in one flat buffer and any
    list of tensors with the same sizes and dtype (the parameters, fixed; this step's
    gradients)."""

    def __init__(self, fn: Any, params: list[torch.Tensor]) -> None:
        self.fn = fn
        self.n = len(params)
        self.numels = [p.numel() for p in params]
        self.counts = array.array("q", self.numels)
        offsets = array.array("q", [0])
        for p in params:
            offsets.append(offsets[-1] + p.numel() * p.element_size())
        self.offsets = offsets
        self.params = params
        self.pptrs = array.array("q", map(_PTR, params))
        self.threads = _threads(offsets[-1])

    @classmethod
    def make(cls, params: list[torch.Tensor]) -> Packer | None:
        """A packer for ``params``, or None where byte copies do not apply."""
        if not params or params[0].device.type != "cpu" or not plain(params, params[0].dtype):
            return None
        lib = library()
        return None if lib is None else cls(lib[0], params)

    def _run(self, ptrs: array.array, flat: torch.Tensor, to_flat: int) -> None:
        self.fn(ptrs.buffer_info()[0], self.offsets.buffer_info()[0], self.n, flat.data_ptr(),
                to_flat, self.threads)

    def gather_params(self, flat: torch.Tensor) -> None:
        self._run(self.pptrs, flat, 1)

    def scatter_params(self, flat: torch.Tensor) -> None:
        """Copy the new values back into the parameters; autograd sees them modified."""
        self._run(self.pptrs, flat, 0)
        torch._C._increment_version(self.params)

    def gather(self, ts: list[torch.Tensor], flat: torch.Tensor) -> bool:
        """Copy ``ts`` (one per parameter, same sizes and dtype) into ``flat``; False, having
        copied nothing, when a byte copy would not be exact or a size differs (a gradient
        resized in place: the caller's ``_foreach_copy_`` then names the mismatch)."""
        if not plain(ts, self.params[0].dtype) or list(map(_NUMEL, ts)) != self.numels:
            return False
        self._run(array.array("q", map(_PTR, ts)), flat, 1)
        return True

    def copy_in(self, ptrs: array.array, flat: torch.Tensor) -> None:
        """Copy the plain tensors at ``ptrs``, of this packer's sizes and dtype, into ``flat``."""
        self._run(ptrs, flat, 1)


# Kernels are called through :func:`launch` only where pointers and 64-bit integers are passed
# alike (the integer registers, then the stack, 8 bytes each), so a kernel declared with
# ``const float*`` and ``int64_t`` parameters can be called as one taking ``int64_t`` only.
LAUNCH_MACHINES = {"x86_64", "amd64", "aarch64", "arm64"}
MAX_ARGS = 24  # the most arguments descend_launch passes to a kernel
_kernels: dict[str, Any] = {}  # a kernel library's file -> its CDLL (kept loaded)


def kernel_address(path: str, name: str = "kernel") -> int | None:
    """The address of the C function ``name`` in the shared library ``path`` (an Inductor
    kernel's, already loaded by Inductor: the loader hands out the same copy), or None."""
    if platform.machine().lower() not in LAUNCH_MACHINES or library() is None:
        return None
    try:
        lib = _kernels.get(path)
        if lib is None:
            lib = _kernels[path] = ctypes.CDLL(path)
        return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


def call_op(fn: int, args: list[int]) -> list[int]:
    """The program ops of one kernel call (see :func:`launch`)."""
    return [0, fn, len(args), *args]


class Copy:
    """A :class:`Packer`'s copy as a program op (see :func:`launch`); ``ptrs`` is kept alive."""

    def __init__(self, packer: Packer, ptrs: array.array, flat: torch.Tensor, to_flat: int) -> None:
        self.ptrs = ptrs
        self.op = [1, ptrs.buffer_info()[0], packer.offsets.buffer_info()[0], packer.n, flat.data_ptr(),
                   to_flat, packer.threads]


def launch(prog: array.array) -> None:
    """Run a program of kernel calls and copies (int64 ops, :func:`call_op` and :class:`Copy`)
    in one call; the library must be there."""
    bad = library()[2](prog.buffer_info()[0], len(prog))  # type: ignore[index]
    if bad:
        raise RuntimeError(f"descend's native launch failed at operation {bad - 1} of the step")
