"""Explicit round-to-nearest-even helpers for the Triton kernels.

The kernels round in float32 *before* the final cast, so the cast itself is exact: the GPU gets the same result as
its native RTNE conversion, and the Triton interpreter (whose float casts truncate) computes the same numbers —
the code tested on CPU is the code that runs on the GPU.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def round_half_even(y):
    """Nearest integer, ties to even (as ``torch.round``), in float32."""
    f = tl.floor(y)
    d = y - f
    parity = f - 2.0 * tl.floor(f * 0.5)
    return tl.where(d > 0.5, f + 1.0, tl.where(d < 0.5, f, f + parity))


@triton.jit
def _round_mantissa(y, DROP: tl.constexpr):
    """Round a float32 to ``23 - DROP`` mantissa bits (RTNE) by integer arithmetic on its bits."""
    bits = y.to(tl.uint32, bitcast=True)
    half = (1 << (DROP - 1)) - 1
    bits = bits + half + ((bits >> DROP) & 1)
    bits = (bits >> DROP) << DROP
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def round_to_e4m3(y):
    """RTNE onto the e4m3 grid (inputs already saturated to ±448): 3 mantissa bits, subnormals below 2^-6."""
    return tl.where(tl.abs(y) < 0.015625, round_half_even(y * 512.0) * 0.001953125, _round_mantissa(y, 20))


@triton.jit
def round_to_bf16(y):
    """RTNE onto the bfloat16 grid (8 mantissa bits)."""
    return _round_mantissa(y, 16)
