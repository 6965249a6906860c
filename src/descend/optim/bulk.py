"""A step's per-tensor facts in one C++ call, so that its Python grows with the parts, not the tensors.

Before a step touches anything, each CPU part asks every gradient: is it there, is it
sparse, is it a plain contiguous tensor of the parameter's dtype, where are its bytes
and how many are there. In Python that is a ``map`` per question over the tensors,
about 0.1 ms per question on 2000 tensors (torch's binding per attribute), ten of them
a step: on the many-small set (1M parameters in 2000 tensors) more than the update.
:func:`grads` asks them all in C++ through torch's own headers, in about 20 µs for 2000
tensors; :func:`layout` reads the parameters' addresses, sizes and contiguity and
:func:`same` the packed state's identity the same way (the plan's check that nothing moved).

The library is compiled against the installed torch (its headers and libraries, the
Python headers) once per machine into descend's cache folder, by a process of its own
(``python -m descend.optim.bulk``, about 16-25 s on two cores) that the first step which could
use it starts, and which outlives a short run that ends first; until it is there,
and wherever it cannot be built (no compiler or headers: the reason is in :data:`error`),
the same facts are read in Python, with the same results.
"""

from __future__ import annotations

import array
import ctypes
import functools
import hashlib
import itertools
import os
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import torch

from . import native

SOURCE = r"""
#include <torch/csrc/autograd/python_variable.h>

// Each of the parameters' gradients into the list `out` (None where a parameter has none:
// out holds None on entry), and each gradient's data pointer and element count (0 unless it
// is a plain dense CPU tensor). Returns a bitmask: 1 some parameter has no gradient, 2 some
// gradient is not strided (sparse), 4 some gradient is not a plain torch.Tensor of the first
// parameter's dtype on the CPU, contiguous, without a lazy negation or conjugation; or -1
// where a parameter is not a plain tensor or torch raised (the caller then asks in Python).
extern "C" int64_t descend_grads(PyObject* params, PyObject* out, int64_t* ptrs, int64_t* numels) {
  try {
    if (!PyList_Check(params) || !PyList_Check(out)) return -1;
    const Py_ssize_t n = PyList_GET_SIZE(params);
    if (n == 0 || PyList_GET_SIZE(out) != n) return -1;
    int64_t flags = 0;
    c10::ScalarType dtype = c10::ScalarType::Undefined;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* po = PyList_GET_ITEM(params, i);
      ptrs[i] = 0;
      numels[i] = 0;
      if (!THPVariable_CheckExact(po)) return -1;
      const at::Tensor& p = THPVariable_Unpack(po);
      if (i == 0) dtype = p.scalar_type();
      const at::Tensor& g = p.grad();
      if (!g.defined()) {
        flags |= 1;
        continue;
      }
      PyObject* go = THPVariable_Wrap(g);
      if (go == nullptr) {
        PyErr_Clear();
        return -1;
      }
      PyList_SetItem(out, i, go);  // (steals the reference; releases the None)
      if (g.layout() != c10::kStrided) {
        flags |= 2;
        continue;
      }
      if (!THPVariable_CheckExact(go) || g.scalar_type() != dtype || !g.device().is_cpu() ||
          !g.is_contiguous() || g.is_neg() || g.is_conj() || !g.has_storage()) {
        flags |= 4;
        continue;
      }
      ptrs[i] = reinterpret_cast<int64_t>(g.data_ptr());
      numels[i] = g.numel();
    }
    return flags;
  } catch (...) {
    PyErr_Clear();
    return -1;
  }
}

// The layout of a list of plain tensors, three numbers each: data pointer (0 without
// storage), element count, contiguous (1 or 0). -1 where an element is not a plain tensor
// or torch raised.
extern "C" int64_t descend_layout(PyObject* ts, int64_t* out) {
  try {
    if (!PyList_Check(ts)) return -1;
    const Py_ssize_t n = PyList_GET_SIZE(ts);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* o = PyList_GET_ITEM(ts, i);
      if (!THPVariable_CheckExact(o)) return -1;
      const at::Tensor& t = THPVariable_Unpack(o);
      out[3 * i] = t.has_storage() ? reinterpret_cast<int64_t>(t.data_ptr()) : 0;
      out[3 * i + 1] = t.numel();
      out[3 * i + 2] = t.is_contiguous() ? 1 : 0;
    }
    return 0;
  } catch (...) {
    PyErr_Clear();
    return -1;
  }
}

// 1 when dicts[i][keys[i]] is refs[i] for every i (a dict lookup: no __missing__), 0 when
// some entry is missing or another object, -1 where the arguments are not lists of equal
// length holding dicts.
extern "C" int64_t descend_same(PyObject* dicts, PyObject* keys, PyObject* refs) {
  if (!PyList_Check(dicts) || !PyList_Check(keys) || !PyList_Check(refs)) return -1;
  const Py_ssize_t n = PyList_GET_SIZE(dicts);
  if (PyList_GET_SIZE(keys) != n || PyList_GET_SIZE(refs) != n) return -1;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* d = PyList_GET_ITEM(dicts, i);
    if (!PyDict_Check(d)) return -1;
    PyObject* v = PyDict_GetItemWithError(d, PyList_GET_ITEM(keys, i));
    if (v == nullptr) {
      if (PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
      }
      return 0;
    }
    if (v != PyList_GET_ITEM(refs, i)) return 0;
  }
  return 1;
}
"""

NONE, SPARSE, OTHER = 1, 2, 4  # the bits :func:`grads` returns
# parts of fewer tensors ask in Python: a call costs about 4.6 µs where Python's maps cost
# 2.6 µs for one tensor, 4.6 for eight, 6.4 for sixteen (a step's plan check and gradients)
MIN_TENSORS = 12
error: str | None = None  # why the library could not be built or loaded, once that was tried
BUILD_TIMEOUT = 600  # seconds after which a build another process started counts as abandoned
_lock = threading.Lock()
_lib: list = []  # [(grads, layout, same) or None] once loaded or failed
_builder: list = []  # the build process this process started
_next_look = [0.0]  # (time.monotonic) when library() looks at the cache folder again


@functools.lru_cache(maxsize=1)
def _flags() -> tuple[tuple, list[str], str]:
    root = os.path.dirname(torch.__file__)
    inc = [os.path.join(root, "include"), os.path.join(root, "include", "torch", "csrc", "api", "include"),
           sysconfig.get_paths()["include"]]
    lib = os.path.join(root, "lib")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    common = ["-O2", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-w", *(f"-I{d}" for d in inc)]
    extra = [f"-L{lib}", "-lc10", "-ltorch", "-ltorch_cpu", "-ltorch_python", f"-Wl,-rpath,{lib}"]
    return ((["-std=c++20", *common], ["-std=c++17", *common]), extra,
            f"torch {torch.__version__} {root} python {sysconfig.get_paths()['include']}")


def _build(compile: bool) -> tuple[Any, str | None]:
    return native.build("bulk", SOURCE, *_flags(), compile=compile)


def _load(path: Any) -> tuple[Any, Any, Any] | None:
    global error
    try:
        cdll = ctypes.PyDLL(str(path))  # (holds the GIL: the functions use Python's API)
        g, p, same = cdll.descend_grads, cdll.descend_layout, cdll.descend_same
    except (OSError, AttributeError) as e:
        error = f"loading {path} failed: {e}"
        return None
    g.restype = p.restype = same.restype = ctypes.c_int64
    g.argtypes = [ctypes.py_object, ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p]
    p.argtypes = [ctypes.py_object, ctypes.c_void_p]
    same.argtypes = [ctypes.py_object, ctypes.py_object, ctypes.py_object]
    return g, p, same


def _start_build(marker: Path) -> None:
    """Start the build in a process of its own (``python -m descend.optim.bulk``), which outlives
    this one: a short run that ends first leaves it to finish, and the next run loads it. The
    marker keeps other processes from starting one too while it runs."""
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        if marker.exists() and time.time() - marker.stat().st_mtime < BUILD_TIMEOUT and _alive(marker):
            return  # (another process is building it)
        marker.write_text(str(os.getpid()))
    except OSError:
        return
    _builder.append(subprocess.Popen([sys.executable, "-m", "descend.optim.bulk", str(marker)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True))


def _alive(marker: Path) -> bool:
    """Whether the process named in the marker is running."""
    try:
        os.kill(int(marker.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def library(wait: bool = False) -> tuple[Any, Any, Any] | None:
    """``(grads, layout, same)``, or None while the library is being built (by a process of its
    own, started by the first call on a machine; later calls look for it once a second) or where
    it cannot be; ``wait=True`` waits for the build."""
    global error
    if _lib:
        return _lib[0]
    if os.environ.get("DESCEND_BULK", "1") == "0" or native.library() is None:
        return None
    now = time.monotonic()
    if not wait and now < _next_look[0]:
        return None
    with _lock:
        if _lib:
            return _lib[0]
        _next_look[0] = now + 1.0
        deadline = now + BUILD_TIMEOUT
        while True:
            path, why = _build(compile=False)
            if path is not None or why is not None:
                error = why
                _lib.append(_load(path) if path is not None else None)
                return _lib[0]
            if not _builder:
                _start_build(path_marker())
            elif _builder[0].poll() is not None:  # (it ended without a library or a reason)
                error = f"the build process of the bulk library exited with code {_builder[0].returncode}"
                _lib.append(None)
                return None
            if not wait or time.monotonic() > deadline:
                return None
            time.sleep(0.2)


def path_marker() -> Path:
    """The file that says a build of this library is under way (next to where it will be)."""
    from .kernels import cache_home

    return cache_home() / f"bulk-{hashlib.sha256(_flags()[2].encode()).hexdigest()[:20]}.building"


def main(marker: str) -> None:
    """The build process: compile (or find) the library, then remove the marker."""
    Path(marker).write_text(str(os.getpid()))
    try:
        _build(compile=True)
    finally:
        Path(marker).unlink(missing_ok=True)


def grads(params: list[torch.Tensor]) -> tuple[list[Any], int, array.array, array.array] | None:
    """``(gradients, flags, pointers, element counts)`` of CPU ``params`` (plain tensors, one
    dtype), or None where the library is not there or could not answer (ask in Python)."""
    lib = _lib[0] if _lib else library()
    if lib is None:
        return None
    n = len(params)
    out: list[Any] = [None] * n
    ptrs = array.array("q", bytes(8 * n))
    counts = array.array("q", bytes(8 * n))
    flags = lib[0](params, out, ptrs.buffer_info()[0], counts.buffer_info()[0])
    return None if flags < 0 else (out, flags, ptrs, counts)


def layout(ts: list[torch.Tensor]) -> array.array | None:
    """Data pointer, element count and contiguity (1/0) of each of the plain tensors ``ts``,
    one after another (:func:`layout_of` in Python), or None (ask in Python)."""
    lib = _lib[0] if _lib else library()
    if lib is None:
        return None
    out = array.array("q", bytes(24 * len(ts)))
    return out if lib[1](ts, out.buffer_info()[0]) == 0 else None


def layout_of(ptrs: list[int], numels: list[int], contiguous: list[bool]) -> array.array:
    """What :func:`layout` answers for tensors of these pointers, counts and contiguity."""
    return array.array("q", itertools.chain.from_iterable(zip(ptrs, numels, map(int, contiguous))))


def same(dicts: list[dict], keys: list[str], refs: list[Any]) -> bool | None:
    """Whether ``dicts[i].get(keys[i]) is refs[i]`` for every i, or None (ask in Python)."""
    lib = _lib[0] if _lib else library()
    if lib is None:
        return None
    r = lib[2](dicts, keys, refs)
    return None if r < 0 else bool(r)


if __name__ == "__main__":
    main(sys.argv[1])
