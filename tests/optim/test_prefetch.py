"""descend.optim.inductor's prefetch pass: software prefetches in a compiled CPU kernel's loop.

The pass adds one ``__builtin_prefetch`` per array and cache line at the top of the vectorized
loop of an Inductor kernel and changes nothing else, so a step with it is bitwise the step
without it; a kernel of any other shape is left as Inductor made it.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest
import torch

import descend.optim as O
from descend.optim import fused, inductor, kernels, native

# the shape of Inductor's CPU kernel for Adam with bfloat16 state (trimmed): float32 parameter
# and gradient, bfloat16 V and S, 32 elements a step
KERNEL = r"""
#include <torch/csrc/inductor/cpp_prefix.h>
extern "C"  void  kernel(const float* in_ptr0,
                       const at::BFloat16* in_ptr1,
                       const float* in_ptr2,
                       float* out_ptr3,
                       at::BFloat16* out_ptr4,
                       const int64_t ks0)
{
    #pragma omp parallel
    {
        {
            #pragma omp for
            for(int64_t x0=static_cast<int64_t>(0L); x0<static_cast<int64_t>(ks0); x0+=static_cast<int64_t>(32L))
            {
                {
                    if(C10_LIKELY(x0 >= static_cast<int64_t>(0) && x0 < static_cast<int64_t>(32L*(c10::div_floor_integer(static_cast<int64_t>(ks0), static_cast<int64_t>(32L))))))
                    {
                        auto tmp0 = at::vec::VectorizedN<float,2>::loadu(out_ptr3 + static_cast<int64_t>(x0), static_cast<int64_t>(32));
                        auto tmp1 = at::vec::Vectorized<at::BFloat16>::loadu(out_ptr4 + static_cast<int64_t>(x0), static_cast<int64_t>(32));
                        auto tmp3 = in_ptr2[static_cast<int64_t>(0L)];
                        auto tmp6 = at::vec::VectorizedN<float,2>::loadu(in_ptr0 + static_cast<int64_t>(x0), static_cast<int64_t>(32));
                        auto tmp2 = at::vec::convert<float,2,at::BFloat16,1>(tmp1);
                        auto tmp5 = tmp2 * at::vec::VectorizedN<float,2>(tmp3) + tmp6;
                        auto tmp7 = at::vec::convert<at::BFloat16,1,float,2>(tmp5);
                        (tmp0 - tmp5).store(out_ptr3 + static_cast<int64_t>(x0));
                        tmp7.store(out_ptr4 + static_cast<int64_t>(x0), static_cast<int64_t>(32));
                    }
                    if(C10_UNLIKELY(x0 >= static_cast<int64_t>(32L*(c10::div_floor_integer(static_cast<int64_t>(ks0), static_cast<int64_t>(32L)))) && x0 < static_cast<int64_t>(ks0)))
                    {
                        auto tmp0 = at::vec::VectorizedN<float,2>::loadu(out_ptr3 + static_cast<int64_t>(x0), static_cast<int64_t>(ks0 - x0));
                    }
                }
            }
        }
    }
}
"""

_HINT = re.compile(r"__builtin_prefetch\(reinterpret_cast<const void\*>\(reinterpret_cast<uintptr_t>\((\w+)\) \+ "
                   r"sizeof\(\*\1\) \* \(x0 \+ (\d+)\) \+ (\d+)\), ([01]), 3\);")


def test_one_prefetch_per_array_and_cache_line_and_nothing_else_changed():
    out = inductor.with_prefetch(KERNEL, 512)
    assert out is not None
    added = [line for line in out.split("\n") if "__builtin_prefetch" in line]
    assert [line for line in out.split("\n") if "__builtin_prefetch" not in line] == KERNEL.split("\n")
    hints = [_HINT.search(line).groups() for line in added]
    # 32 float32 elements a step are 2 cache lines, 32 bfloat16 ones 1; written arrays for writing;
    # in_ptr2 (a scalar, read at [0]) is not streamed
    assert sorted(hints) == sorted([("out_ptr3", "512", "0", "1"), ("out_ptr3", "512", "64", "1"),
                                    ("out_ptr4", "512", "0", "1"),
                                    ("in_ptr0", "512", "0", "0"), ("in_ptr0", "512", "64", "0")])
    # at the top of the full-vector branch, before its first load
    lines = out.split("\n")
    top = lines.index(next(line for line in lines if "if(C10_LIKELY(" in line))
    assert lines[top + 1].strip() == "{" and all("__builtin_prefetch" in line for line in lines[top + 2:top + 7])


@pytest.mark.parametrize("change", [
    lambda s: s.replace("if(C10_LIKELY(", "if(("),  # no full-vector branch
    lambda s: s + s,  # two loops
    lambda s: s.replace("const float* in_ptr0", "const c10::complex<float>* in_ptr0"),  # an element type it does not know
    lambda s: s.replace("static_cast<int64_t>(x0)", "static_cast<int64_t>(2L*x0)"),  # no array read at x0
])
def test_a_kernel_of_another_shape_is_left_alone(change):
    assert inductor.with_prefetch(change(KERNEL), 512) is None


def test_the_distance_comes_from_descend_prefetch(monkeypatch):
    monkeypatch.setenv("DESCEND_PREFETCH", "0")
    assert inductor.distance() == 0
    monkeypatch.setenv("DESCEND_PREFETCH", "256")
    assert inductor.distance() == 256
    monkeypatch.setenv("DESCEND_PREFETCH", "far")
    with pytest.warns(RuntimeWarning, match="DESCEND_PREFETCH must be a whole number.*'far'"):
        assert inductor.distance() == inductor.DISTANCE
    monkeypatch.delenv("DESCEND_PREFETCH")
    assert inductor.distance() == inductor.DISTANCE
    monkeypatch.setattr(kernels, "_fingerprint", [])
    plain = kernels.fingerprint()
    monkeypatch.setattr(kernels, "_fingerprint", [])
    monkeypatch.setenv("DESCEND_PREFETCH", "0")
    assert kernels.fingerprint() != plain  # (a kept kernel is kept with its prefetches or without)


def _run(monkeypatch, prefetch):
    """Four compiled steps of Adam with float32 and with stochastically rounded bfloat16 state;
    the parameters, the state, and the libraries the kernels were called from."""
    monkeypatch.setenv("DESCEND_PREFETCH", prefetch)
    monkeypatch.setattr(fused, "_SOURCES", {})
    gen = torch.Generator().manual_seed(0)
    out, libraries = [], []
    for state_dtype in (None, torch.bfloat16):
        ps = [torch.randn(n, generator=gen).requires_grad_() for n in (70_000, 3)]
        opt = O.Adam(ps, lr=0.01, weight_decay=0.01, impl="fused", state_dtype=state_dtype)
        for _ in range(4):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        out += [p.detach().clone() for p in ps]
        out += [t.clone() for st in opt.state.values() for t in st.values() if isinstance(t, torch.Tensor)]
    for v in fused._SOURCES.values():
        libraries += [d.library for d in v[4].values() if getattr(d, "library", None)]
    return out, libraries


@pytest.mark.skipif(native.library() is None or platform.machine().lower() not in native.LAUNCH_MACHINES,
                    reason=f"no native kernel calls here: {native.error or platform.machine()}")
def test_steps_with_prefetches_are_bitwise_the_steps_without(monkeypatch):
    plain, plain_libs = _run(monkeypatch, "0")
    hinted, hinted_libs = _run(monkeypatch, "512")
    assert len(plain) == len(hinted) > 4
    assert all(a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(plain, hinted))
    assert len(hinted_libs) >= 2 and set(hinted_libs).isdisjoint(plain_libs)
    for lib in hinted_libs:
        assert "__builtin_prefetch" in Path(lib).with_suffix(".cpp").read_text()
    for lib in plain_libs:
        assert "__builtin_prefetch" not in Path(lib).with_suffix(".cpp").read_text()
