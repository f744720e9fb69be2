"""Eager PyTorch references for every kernel of the pack.

These are the ground truth the fast kernels are tested against, and the fallback that runs everywhere (CPU,
NPU-less machines, GPUs without FP8). Conventions: FP8 is e4m3fn, INT8 is symmetric in [-127, 127], and every
scale is a float32 *dequant multiplier* (``x ≈ q.float() * scale``), as in ``torch._scaled_mm``, ComfyUI's
``weight_scale`` and ModelOpt exports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_DTYPE).max)  # 448.0
INT8_MAX = 127.0
# Smallest amax used to derive a scale: keeps all-zero rows/blocks finite (their codes are 0 anyway).
AMAX_EPS = 1e-12


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def amax_to_scale(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    """Dequant scale from an absolute maximum: float32, never zero."""
    return amax.float().clamp(min=AMAX_EPS) / qmax


def cast_fp8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x / scale`` saturated to the e4m3 range and rounded to FP8 (scale broadcasts against x)."""
    y = x.to(torch.float32, copy=True)  # one working copy, then in place
    return y.div_(scale).clamp_(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)


def cast_int8(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x / scale`` rounded half-to-even and saturated to [-127, 127]."""
    y = x.to(torch.float32, copy=True)
    return y.div_(scale).round_().clamp_(-INT8_MAX, INT8_MAX).to(torch.int8)


# --- block grids -------------------------------------------------------------------------------------------


def block_amax(x: torch.Tensor, block_n: int, block_k: int) -> torch.Tensor:
    """Per-block absolute maximum of a 2-D tensor; ragged edges are padded with zeros: [ceil(N/bn), ceil(K/bk)]."""
    n, k = x.shape
    gn, gk = ceil_div(n, block_n), ceil_div(k, block_k)
    padded = F.pad(x.float().abs(), (0, gk * block_k - k, 0, gn * block_n - n))
    return padded.view(gn, block_n, gk, block_k).amax(dim=(1, 3))


def expand_blocks(scale: torch.Tensor, n: int, k: int, block_n: int, block_k: int) -> torch.Tensor:
    """Broadcast a [ceil(N/bn), ceil(K/bk)] block grid to a full [N, K] tensor."""
    full = scale.repeat_interleave(block_n, dim=0).repeat_interleave(block_k, dim=1)
    return full[:n, :k]


# --- activation quantization (dynamic) ---------------------------------------------------------------------


def quant_fp8_per_tensor(x: torch.Tensor, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 with one scale; dynamic (amax / 448) unless a static ``scale`` is given. Scale shape []."""
    if scale is None:
        scale = amax_to_scale(x.abs().amax(), FP8_MAX)
    scale = scale.float().reshape(())
    return cast_fp8(x, scale), scale


def quant_fp8_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 with one scale per row of a 2-D tensor. Scale shape [M, 1]."""
    scale = amax_to_scale(x.abs().amax(dim=-1, keepdim=True), FP8_MAX)
    return cast_fp8(x, scale), scale


def quant_fp8_per_group(x: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 with one scale per ``1 x group`` slice of each row (ragged last group). Scale shape [M, ceil(K/g)]."""
    scale = amax_to_scale(block_amax(x, 1, group), FP8_MAX)
    return cast_fp8(x, expand_blocks(scale, *x.shape, 1, group)), scale


def quant_int8_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric INT8 with one scale per row of a 2-D tensor. Scale shape [M, 1]."""
    scale = amax_to_scale(x.abs().amax(dim=-1, keepdim=True), INT8_MAX)
    return cast_int8(x, scale), scale


# --- GEMMs on quantized operands (dequantize, then matmul in float32) --------------------------------------


def _finish(out: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    if bias is not None:
        out = out + bias.float()
    return out.to(out_dtype)


def scaled_mm(
    x_q: torch.Tensor,
    w_q: torch.Tensor,
    x_scale: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """``(x_q * x_scale) @ (w_q * w_scale).T + bias`` for FP8 or INT8 operands.

    ``x_scale``: [] or [M, 1]; ``w_scale``: [] or [N]. Accumulates in float32.
    """
    acc = x_q.float() @ w_q.float().t()
    return _finish(acc * x_scale.float() * w_scale.float().reshape(1, -1 if w_scale.numel() > 1 else 1),
                   bias, out_dtype)


def block_scaled_mm(
    x_q: torch.Tensor,
    w_q: torch.Tensor,
    x_scale: torch.Tensor,
    w_scale: torch.Tensor,
    block_n: int,
    block_k: int,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """Block-scaled FP8 GEMM: ``x_scale`` [M, ceil(K/bk)] per 1 x bk group, ``w_scale`` [ceil(N/bn), ceil(K/bk)]."""
    m, k = x_q.shape
    n = w_q.shape[0]
    x = x_q.float() * expand_blocks(x_scale.float(), m, k, 1, block_k)
    w = w_q.float() * expand_blocks(w_scale.float(), n, k, block_n, block_k)
    return _finish(x @ w.t(), bias, out_dtype)


def dequantize_weight(
    w_q: torch.Tensor, w_scale: torch.Tensor, block: tuple[int, int] | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Dequantize an [N, K] weight with a [] / [N] / [N, 1] scale, or a block grid when ``block`` is given."""
    n, k = w_q.shape
    if block is not None:
        grid = w_scale.float().reshape(ceil_div(n, block[0]), ceil_div(k, block[1]))
        scale = expand_blocks(grid, n, k, *block)
    elif w_scale.numel() == 1:
        scale = w_scale.float().reshape(())
    else:
        scale = w_scale.float().reshape(n, 1)
    return (w_q.float() * scale).to(dtype)


def weight_only_mm(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_scale: torch.Tensor,
    block: tuple[int, int] | None,
    bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """Weight-only GEMM: high-precision activations x dequantized FP8 weights (float32 accumulate)."""
    w = dequantize_weight(w_q, w_scale, block)
    return _finish(x.float() @ w.t(), bias, out_dtype)
