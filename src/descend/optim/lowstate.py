"""Optimizer state in 16 bits: ``state_dtype=torch.bfloat16``.

An optimizer step is bound by memory traffic. Adam in float32 moves 28 bytes per
parameter (parameter read and write, gradient read, V and S read and write);
with V and S stored in bfloat16 it moves 20, and the state takes half the memory.
The arithmetic stays in float32 (the parameter's precision, or float32 for
fp16/bf16 parameters); only the stored state is rounded, in one of two ways:

* ``"nearest"``: round to nearest even (``tensor.to(torch.bfloat16)``). Cheap,
  but biased where an update is smaller than half a bf16 step: with
  ``beta2 = 0.999``, ``0.999 * S`` rounds back to ``S`` (bf16 keeps 8 bits), so
  an average that should decay can stall;
* ``"stochastic"`` (the default): round up with probability equal to the
  distance to the lower neighbour, so the stored value is exact on average.
  The random bits come from the element's parameter as the step found it, the
  step and the state key (no random generator, no position), so a resumed run
  rounds exactly as the original did, every path rounds alike whatever its
  layout (one tensor, a packed buffer, rows of a tensor hyperparameter's batch),
  and the same element gets fresh bits every step.

It applies where ``state_dtype=torch.bfloat16`` stores the state below the
parameter's precision. bfloat16 parameters keep their state in bfloat16 as
torch.optim does, rounded to nearest on every path (torch's fused kernels).
The same function serves the eager, foreach and compiled paths.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch

ROUNDINGS = ("stochastic", "nearest")
STATE_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
_M32 = 0xFFFFFFFF


NAMES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32,
         "fp32": torch.float32, "float64": torch.float64, "fp64": torch.float64}


def check_state_dtype(value: Any) -> torch.dtype | None:
    """``state_dtype`` as a dtype (names such as ``"bf16"`` accepted), or a clear error naming it."""
    if isinstance(value, str) and value.lower() in NAMES:
        return NAMES[value.lower()]
    if value is None or value in STATE_DTYPES:
        return value
    hint = (" (float16 state overflows: Adam's S = g*g is inf from |g| > 256)"
            if value is torch.float16 or str(value).lower() in ("float16", "fp16", "half") else "")
    raise ValueError(
        f"state_dtype must be None (the parameter's dtype), torch.float32, torch.float64 or "
        f"torch.bfloat16 (or one of the names {', '.join(map(repr, NAMES))}), got {value!r}{hint}"
    )


def seed(step: int, key: str) -> int:
    """The 32-bit seed of one state tensor's rounding at one step."""
    return (step * 0x9E3779B1 + zlib.crc32(key.encode())) & _M32


def _halves(bits: torch.Tensor, a: int, b: int) -> torch.Tensor:
    # (int32 throughout: each product stays below 2**31)
    return ((bits & 0xFFFF) * a) ^ (((bits >> 16) & 0xFFFF) * b)


def noise(salts: tuple[torch.Tensor, ...], seed: Any) -> torch.Tensor | Any:
    """Integers in [0, 65536) (int32, the shape of the salts): a dither from each element's
    ``salts`` (the int32 bits of its parameter as the step found it) and the seed.

    Nothing of the value being rounded may enter: noise that depends on it is biased (with
    its upper half mixed in, an average decaying by beta2 = 0.999 drifted 14% in 500 steps;
    with the parameter alone, 0.1%). Each 16-bit half of a salt is multiplied by an odd
    constant (a permutation of 16-bit values; int32 products below 2**31) and the two are
    XORed, then with 16 bits of the seed, which change every step, so each element's noise
    is uniform over the steps and elements with other parameters draw apart. A few integer
    operations per element: cheap enough for the compiled kernel.
    """
    h = (seed >> 16) & 0xFFFF
    for salt in salts:
        h = h ^ _halves(salt, 20251, 11069)
    return h & 0xFFFF


def stochastic_bf16(x: torch.Tensor, seed: Any, *salts: torch.Tensor) -> torch.Tensor:
    """float32 ``x`` rounded stochastically to bfloat16 (same shape); ``salts``: tensors of
    ``x``'s shape whose values also seed each element's draw (the parameter before the step).

    bfloat16 is the upper half of a float32: adding 16 random bits to the lower
    half and cutting it off rounds the magnitude up with the right probability
    (for either sign; a finite float32 plus 65535 stays inside int32). Infinities
    stay infinite and the NaN that arithmetic makes stays NaN (no select needed).
    A value that bfloat16 holds exactly is kept.
    """
    bits = x.float().contiguous().view(torch.int32)  # (a float64 value is rounded from float32)
    salt_bits = tuple(t.float().contiguous().view(torch.int32) for t in salts)
    bits = (bits + noise(salt_bits, seed)) & -65536
    return bits.view(torch.float32).to(torch.bfloat16)


def store(target: torch.Tensor, value: torch.Tensor, rounding: str, seed: Any,
          *salts: torch.Tensor) -> None:
    """Write the float32 ``value`` into the state tensor ``target`` (rounded if it is bf16;
    ``salts``: see :func:`stochastic_bf16`)."""
    if target.dtype == torch.bfloat16 and value.dtype != torch.bfloat16 and rounding == "stochastic":
        target.copy_(stochastic_bf16(value.float(), seed, *salts))
    else:
        target.copy_(value)
