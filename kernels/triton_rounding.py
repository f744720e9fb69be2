"""Explicit round-to-nearest-even helpers for the Triton kernels, and e4m3 decoding from raw bits.

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


@triton.jit
def e4m3_bits_to_float(bits):
    """float32 values of e4m3fn codes given as uint8 bits (exact), for GPUs whose Triton has no e4m3 type
    (``fp8e4nv`` needs sm_89+). Normals: sign | (exp + 120) << 23 | mantissa << 20; subnormals: mantissa * 2^-9.
    The NaN code (0x7F / 0xFF) never occurs in this pack's weights (they saturate at ±448)."""
    u = bits.to(tl.uint32)
    exp = (u >> 3) & 0xF
    man = u & 0x7
    normal = (((exp + 120) << 23) | (man << 20)).to(tl.float32, bitcast=True)
    mag = tl.where(exp == 0, man.to(tl.float32) * 0.001953125, normal)
    return tl.where((u & 0x80) != 0, -mag, mag)
