"""descend.optim.kernels: compiled CPU kernels kept across processes.

A process that compiled a rule keeps its kernel; a later process steps with it without Dynamo
or Inductor, bit for bit as the compiling process did. A record or library that is missing,
altered or unreadable is ignored (the step compiles), and the kept kernel refuses arguments it
was not compiled for, as Inductor's own checks do.
"""

from __future__ import annotations

import json
import platform

import pytest
import torch

import descend.optim as O
from descend.optim import fused, kernels, native

from .cases import child

pytestmark = pytest.mark.skipif(
    native.library() is None or platform.machine().lower() not in native.LAUNCH_MACHINES,
    reason=f"no native kernel calls here: {native.error or platform.machine()}")

# four steps of two compiled rules (large tensors and packed small ones); prints a hash of
# the parameters, the graphs compiled, and whether Dynamo or Inductor was imported
STEPS = """
import hashlib, sys, torch, descend.optim as O
from descend.optim import fused
torch.manual_seed(0)
out = []
for make in (lambda ps: O.Adam(ps, lr=0.01, weight_decay=0.01, impl="fused"),
             lambda ps: O.Momentum(ps, lr=0.01, beta=0.9, impl="fused")):
    ps = [torch.randn(n, requires_grad=True) for n in (40_000, 1000, 10)]
    opt = make(ps)
    for _ in range(4):
        for p in ps:
            p.grad = torch.randn_like(p)
        opt.step()
    out.append(b"".join(p.detach().numpy().tobytes() for p in ps))
print(hashlib.sha256(b"".join(out)).hexdigest(), fused.compile_count(),
      "torch._dynamo" in sys.modules, "torch._inductor" in sys.modules)
"""


def test_a_later_process_steps_with_the_kept_kernels_bitwise_and_imports_no_compiler(tmp_path):
    env = {"DESCEND_CACHE_DIR": str(tmp_path), "DESCEND_KERNEL_CACHE": "1"}
    digest, compiled, _, _ = child(STEPS, **env)
    assert int(compiled) >= 2
    kept = sorted(p.suffix for p in (tmp_path / "kernels").iterdir())
    assert kept.count(".json") >= 2 and kept.count(".so") >= 1
    assert child(STEPS, **env) == [digest, "0", "False", "False"]  # (nothing compiled or imported)
    off = child(STEPS, **{**env, "DESCEND_KERNEL_CACHE": "0"})
    assert off[0] == digest and int(off[1]) >= 2


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """A cache folder of the test's own, kept kernels on, no graphs from earlier tests."""
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("DESCEND_KERNEL_CACHE", "1")
    monkeypatch.setattr(fused, "_SOURCES", {})
    return tmp_path / "kernels"


def _steps(monkeypatch, n=3):
    """``n`` steps of a compiled Adam on graphs of this call's own; returns the parameters
    and the objects that served the calls (Direct or Stored)."""
    monkeypatch.setattr(fused, "_SOURCES", {})
    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(n_, generator=gen).requires_grad_() for n_ in (40_000, 300)]
    opt = O.Adam(ps, lr=0.01, impl="fused")
    for _ in range(n):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    served = [h for v in fused._SOURCES.values() for h in v[4].values()]
    return [p.detach().clone() for p in ps], served


def test_kept_kernels_serve_the_next_graphs_bit_for_bit(kept, monkeypatch):
    first, served = _steps(monkeypatch)
    assert served and all(type(h) is fused.Direct for h in served)
    again, served = _steps(monkeypatch)
    assert served and all(type(h) is kernels.Stored for h in served)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


@pytest.mark.parametrize("spoil", ["library", "record"])
def test_an_altered_or_unreadable_kept_kernel_is_ignored(kept, monkeypatch, spoil):
    first, _ = _steps(monkeypatch)
    for path in kept.iterdir():
        if spoil == "library" and path.suffix == ".so":
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        elif spoil == "record" and path.suffix == ".json":
            path.write_text("{not json")
    before = fused.compile_count()
    again, served = _steps(monkeypatch)
    assert fused.compile_count() > before and all(type(h) is fused.Direct for h in served)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    if spoil == "library":  # (kept again, whole, by the process that compiled it)
        again, served = _steps(monkeypatch)
        assert all(type(h) is kernels.Stored for h in served)
        assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_a_kept_kernel_refuses_arguments_it_was_not_compiled_for(kept, monkeypatch):
    _steps(monkeypatch)
    calls = []
    call = kernels.Stored.__call__
    monkeypatch.setattr(kernels.Stored, "__call__", lambda self, args: (calls.append((self, list(args))), call(self, args))[1])
    _steps(monkeypatch, n=1)
    stored, args = calls[0]
    good = [a.detach().clone() for a in args]  # (p, g, state: 1-d, then the 0-d scalars)
    p = good[0].clone()
    for bad, why in ((torch.zeros(good[0].numel() + 1), "of one size"),
                     (torch.zeros(2 * good[0].numel())[::2], "contiguous"),
                     (torch.zeros(1, good[0].numel()), "0-d and 1-d")):
        with pytest.raises(AssertionError, match=why):
            stored([*good[:2], bad, *good[3:]])
        assert torch.equal(good[0], p)  # (nothing written)
    stored(good)
    assert not torch.equal(good[0], p)


def test_the_key_changes_with_what_decides_the_kernel(monkeypatch):
    sig = (2, torch.device("cpu"), torch.float32, torch.float32)
    base = kernels._key("rule", sig)
    assert kernels._key("other rule", sig) != base
    assert kernels._key("rule", (2, torch.device("cpu"), torch.float64, torch.float32)) != base
    monkeypatch.setattr(kernels, "_fingerprint", [])
    monkeypatch.setenv("TORCHINDUCTOR_MAX_AUTOTUNE", "1")
    assert kernels._key("rule", sig) != base
    assert json.loads(kernels.fingerprint())[1] == torch.__version__


def test_descend_kernel_cache_is_1_or_0_and_anything_else_is_named(monkeypatch):
    for raw, on in (("", True), ("1", True), ("0", False), (" 0 ", False)):
        monkeypatch.setenv("DESCEND_KERNEL_CACHE", raw)
        assert kernels.enabled() is on
    monkeypatch.setenv("DESCEND_KERNEL_CACHE", "off")
    with pytest.warns(RuntimeWarning, match=r"DESCEND_KERNEL_CACHE must be 1 .* or 0 \(off\), got 'off'"):
        assert kernels.enabled() is True
