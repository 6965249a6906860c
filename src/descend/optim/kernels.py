"""What the compiled path keeps across processes, in descend's cache folder (:func:`cache_home`):
Inductor's answers to its CPU probes (:func:`memo_probes`), and the compiled CPU kernels
themselves, so that a later process steps without Dynamo or Inductor (:func:`load`).

The compiled path's first step in a process goes through ``torch.compile``. With Inductor's
on-disk cache warm it compiles nothing, but it still imports Dynamo and Inductor (1.4 s and
about 1 s here) and traces the rule (about 0.3 s): 2.3-3.3 s of a first step. Yet on the CPU
what it ends with is one C function in a shared library, called with the tensors' addresses
and sizes (:func:`inductor.c_kernel`, :meth:`fused.Direct.native`).

So the first process that calls a kernel directly keeps it: a copy of the library in
descend's cache folder (``kernels/<sha256>.so``, named by its content) and a record
(``kernels/<key>.json``) of how its arguments come from the call's. The key hashes the
traced rule's source and the call's signature (sizes class, device, dtypes) with everything
else that decides what Inductor would generate: torch's version, Python's, the machine, the
CPU's feature flags, the C++ compiler, descend's own compile settings (``fused.py``,
``inductor.py``), the ``TORCHINDUCTOR_*`` environment and ``DESCEND_PREFETCH``. A later process that finds the
record runs the kernel as :class:`Stored` (through :func:`native.launch`): the same kernel,
so the same results bit for bit, with nothing compiled and Dynamo never imported.

A record whose library is missing or altered (its SHA-256 differs), or that cannot be read,
loaded or parsed, is ignored and the step compiles as before. ``DESCEND_KERNEL_CACHE=0``
turns this off. Inductor settings changed in the process (``torch._inductor.config``) are not
part of the key: set them through the environment, or turn this off.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from . import native

FORMAT = 1  # of the records; a change makes every older record a miss
_fingerprint: list[str] = []


def enabled() -> bool:
    """Whether kernels are kept and looked up (``DESCEND_KERNEL_CACHE``: 1, the default, or 0)."""
    raw = os.environ.get("DESCEND_KERNEL_CACHE", "").strip()
    if raw in ("", "1", "0"):
        return raw != "0"
    warnings.warn(f"DESCEND_KERNEL_CACHE must be 1 (keep compiled kernels, the default) or 0 (off), "
                  f"got {raw!r}; keeping them", RuntimeWarning, stacklevel=2)
    return True


def _home() -> Path:
    return cache_home() / "kernels"


def fingerprint() -> str:
    """What, besides the rule and the call, decides the kernel Inductor generates here."""
    if not _fingerprint:
        here = Path(__file__).resolve().parent
        own = hashlib.sha256(b"".join((here / f).read_bytes() for f in ("fused.py", "inductor.py"))).hexdigest()
        cxx = native._compiler() or ""
        stamp = os.stat(cxx).st_mtime if cxx else 0
        inductor_env = sorted((k, v) for k, v in os.environ.items()
                              if (k.startswith("TORCHINDUCTOR_") and k != "TORCHINDUCTOR_CACHE_DIR")
                              or k == "DESCEND_PREFETCH")
        _fingerprint.append(json.dumps([FORMAT, torch.__version__, sys.version, platform.machine(),
                                        native._cpu_flags(), cxx, stamp, own, inductor_env]))
    return _fingerprint[0]


def _key(ident: str, sig: tuple) -> str:
    return hashlib.sha256("\n".join([fingerprint(), ident, repr(sig)]).encode()).hexdigest()[:40]


class Stored:
    """A kept kernel called in place of :class:`fused.Direct`: ``stored(args)`` runs it on the
    arguments of the compiled function (flat 1-D tensors of one size, then 0-d scalars);
    :meth:`native` is its address and argument spec, as :meth:`fused.Direct.native` gives.
    Arguments unlike those it was compiled for raise AssertionError (as Inductor's own
    checks do) and the caller compiles."""

    __slots__ = ("fn", "spec")

    def __init__(self, fn: int, spec: list[tuple[int, str | None]]) -> None:
        self.fn, self.spec = fn, spec

    def native(self) -> tuple[int, list[tuple[int, str | None]]]:
        return self.fn, self.spec

    def __call__(self, args: list) -> None:
        sizes = set()
        for t in args:
            if isinstance(t, torch.Tensor):
                if t.device.type != "cpu" or t.dim() > 1 or not t.is_contiguous():
                    raise AssertionError("a kept kernel takes contiguous 0-d and 1-d CPU tensors")
                if t.dim() == 1:
                    sizes.add(t.numel())
        if len(sizes) > 1:
            raise AssertionError(f"a kept kernel takes 1-d tensors of one size, not {sorted(sizes)}")
        values = [args[a].data_ptr() if attr is None else args[a].numel() for a, attr in self.spec]
        native.launch(array.array("q", native.call_op(self.fn, values)))


def load(ident: str, sig: tuple) -> Stored | None:
    """The kept kernel of the rule ``ident`` for calls of signature ``sig``, or None."""
    if not enabled():
        return None
    try:
        home = _home()
        record = json.loads((home / f"{_key(ident, sig)}.json").read_text())
        path = home / f"{record['sha256']}.so"
        if hashlib.sha256(path.read_bytes()).hexdigest() != record["sha256"]:
            path.unlink()  # (altered: the next process that compiles the kernel keeps it again)
            return None
        spec = [(int(a), None if attr is None else str(attr)) for a, attr in record["spec"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not spec or any(attr not in (None, "size") for _, attr in spec):
        return None
    fn = native.kernel_address(str(path))  # (None without the native launcher; the library stays loaded)
    return None if fn is None else Stored(fn, spec)


def save(ident: str, sig: tuple, library: str, spec: list[tuple[int, str | None]]) -> None:
    """Keep the kernel in ``library`` (a file of Inductor's cache) for later processes;
    nothing happens where the cache folder cannot be written."""
    if not enabled():
        return
    try:
        home = _home()
        data = Path(library).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        home.mkdir(parents=True, exist_ok=True)
        path = home / f"{sha}.so"
        if not path.exists():
            tmp = home / f"{sha}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, path)  # (whole or not at all, for processes writing at once)
        record = home / f"{_key(ident, sig)}.json"
        tmp = home / f"{record.stem}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"sha256": sha, "spec": [list(s) for s in spec], "signature": repr(sig)}))
        os.replace(tmp, record)
    except OSError:
        return


def cache_home() -> Any:
    """descend's own cache folder: ``$DESCEND_CACHE_DIR``, else ``$XDG_CACHE_HOME/descend``,
    else ``~/.cache/descend``."""
    if os.environ.get("DESCEND_CACHE_DIR"):
        return Path(os.environ["DESCEND_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "descend"


def isa_cache() -> tuple[Any, str] | None:
    """The file that remembers Inductor's CPU vector-ISA probes, and this setup's fingerprint.

    Before its first CPU compile in a process, Inductor checks each vector instruction
    set the CPU reports (AVX2, AVX-512, its bf16 and VNNI parts, AMX) by building a
    test library and loading it in a child Python: about 1.3 s of a first step when
    Inductor's cache holds the test libraries, 10-14 s here when it does not (ten C++
    builds). With the same torch, Python, CPU flags and compiler the answers cannot
    change, so descend keeps them in its own cache folder (:func:`cache_home`), which
    outlives Inductor's (``/tmp/torchinductor_$USER`` by default, gone at a reboot),
    and answers them from there in later processes. None off x86-64 Linux.
    """
    import platform
    import shutil
    import sys

    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    from torch._inductor import cpu_vec_isa

    cxx = os.environ.get("CXX", "g++")
    compiler = shutil.which(cxx) or cxx
    stamp = os.stat(compiler).st_mtime if os.path.exists(compiler) else 0
    flags = ",".join(sorted(cpu_vec_isa.x86_isa_checker()))
    fingerprint = f"{torch.__version__}|{sys.executable}|{flags}|{compiler}|{stamp}"
    return cache_home() / "vec_isa.json", fingerprint


def memo_probes() -> Any:
    """A context in which Inductor's ISA probes are answered from (and saved to) the cache file."""
    import contextlib
    import hashlib
    import json

    try:
        where = isa_cache()
        from torch._inductor import cpu_vec_isa
    except (OSError, ImportError, AttributeError):
        where = None
    if where is None:
        return contextlib.nullcontext()
    path, fingerprint = where
    try:
        saved = json.loads(path.read_text())
        known: dict[str, bool] = saved["probes"] if saved.get("fingerprint") == fingerprint else {}
    except (OSError, ValueError, KeyError, TypeError):
        known = {}
    real = cpu_vec_isa.VecISA.check_build

    def check_build(isa: Any, code: str) -> bool:
        key = hashlib.sha256(f"{isa.build_arch_flags()}\n{code}".encode()).hexdigest()
        if key not in known:
            known[key] = bool(real(isa, code))
        return known[key]

    @contextlib.contextmanager
    def scope() -> Any:
        before = dict(known)
        cpu_vec_isa.VecISA.check_build = check_build  # type: ignore[method-assign]
        try:
            yield
        finally:
            cpu_vec_isa.VecISA.check_build = real  # type: ignore[method-assign]
        if known != before:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"fingerprint": fingerprint, "probes": known}))
                os.replace(tmp, path)
            except OSError:
                pass

    return scope()
