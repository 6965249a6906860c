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
  The random bits come from the element's position, the step and the state key
  (no random generator), so a resumed run rounds exactly as the original did,
  and the same position gets fresh bits every step.

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


def noise(n: int, seed: Any, device: torch.device) -> torch.Tensor:
    """``n`` integers in [0, 65536) (int32): a dither pattern of the position, XORed with the seed.

    Within each block of 65536 positions the pattern takes every value once (an odd
    multiplier permutes the low 16 bits), blocks are shifted against each other, and
    the seed's 16 bits change every step, so each position sees uniform noise over the
    steps. A few integer operations per element: cheap enough for the compiled kernel,
    where a full hash would cost more than the memory traffic it saves.
    """
    if n < 2**31:  # int32 throughout: no product can overflow
        i = torch.arange(n, dtype=torch.int32, device=device)
        return (((i & 0xFFFF) * 20251) ^ ((i >> 16) * 11069) ^ ((seed >> 16) & 0xFFFF)) & 0xFFFF
    i = torch.arange(n, dtype=torch.int64, device=device)
    return ((((i & 0xFFFF) * 20251) ^ ((i >> 16) * 11069)) & 0xFFFF).to(torch.int32) ^ ((seed >> 16) & 0xFFFF)


def stochastic_bf16(x: torch.Tensor, seed: Any) -> torch.Tensor:
    """float32 ``x`` rounded stochastically to bfloat16 (same shape).

    bfloat16 is the upper half of a float32: adding 16 random bits to the lower
    half and cutting it off rounds the magnitude up with the right probability
    (for either sign; a finite float32 plus 65535 stays inside int32). Infinities
    stay infinite and the NaN that arithmetic makes stays NaN (no select needed).
    """
    bits = x.contiguous().view(torch.int32)
    bits = (bits + noise(x.numel(), seed, x.device).view(x.shape)) & -65536
    return bits.view(torch.float32).to(torch.bfloat16)


def store(target: torch.Tensor, value: torch.Tensor, rounding: str, seed: Any) -> None:
    """Write the float32 ``value`` into the state tensor ``target`` (rounded if it is bf16)."""
    if target.dtype == torch.bfloat16 and value.dtype != torch.bfloat16 and rounding == "stochastic":
        target.copy_(stochastic_bf16(value.float(), seed))
    else:
        target.copy_(value)
