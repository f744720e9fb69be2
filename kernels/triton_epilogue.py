"""The INT8 GEMM epilogue in one Triton pass: ``out = acc * x_scale[:, None] * w_scale[None, :] + bias`` from
``torch._int_mm``'s int32 result straight to the output dtype — 4 bytes read and 2 written per element, where
the torch epilogue (int32 → fp32 copy, two scale passes, bias, cast) moves about five times as much and holds an
fp32 M x N temporary. Numerics as ``torch_gemm.int_gemm``: fp32 math, one rounding to the output dtype."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_rounding import round_to_bf16

BLOCK_M, BLOCK_N = 32, 128  # a [32, 128] int32 tile per program: 16-byte loads along N
NUM_WARPS = 4


@triton.jit
def _int8_epilogue_kernel(acc_ptr, xs_ptr, ws_ptr, bias_ptr, out_ptr, M, N, stride_am, stride_om,
                          HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    mask = mask_m[:, None] & mask_n[None, :]
    acc = tl.load(acc_ptr + offs_m[:, None].to(tl.int64) * stride_am + offs_n[None, :], mask=mask, other=0)
    xs = tl.load(xs_ptr + offs_m, mask=mask_m, other=0.0)
    ws = tl.load(ws_ptr + offs_n, mask=mask_n, other=0.0)
    out = acc.to(tl.float32) * xs[:, None] * ws[None, :]
    if HAS_BIAS:
        out += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    if out_ptr.dtype.element_ty == tl.bfloat16:
        out = round_to_bf16(out)
    tl.store(out_ptr + offs_m[:, None].to(tl.int64) * stride_om + offs_n[None, :], out.to(out_ptr.dtype.element_ty),
             mask=mask)


def int8_epilogue(acc: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None,
                  out_dtype: torch.dtype) -> torch.Tensor:
    """int32 ``acc`` [M, N] (unit stride along N), ``x_scale`` [M] or [M, 1], ``w_scale`` [N] (any shape of N
    elements) → ``out_dtype`` [M, N]."""
    m, n = acc.shape
    if acc.stride(1) != 1:
        acc = acc.contiguous()
    out = torch.empty((m, n), dtype=out_dtype, device=acc.device)
    xs = x_scale.float().reshape(-1).contiguous()
    ws = w_scale.float().reshape(-1).contiguous()
    grid = (triton.cdiv(m, BLOCK_M), triton.cdiv(n, BLOCK_N))
    _int8_epilogue_kernel[grid](acc, xs, ws, ws if bias is None else bias, out, m, n, acc.stride(0), out.stride(0),
                                HAS_BIAS=bias is not None, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, num_warps=NUM_WARPS)
    return out
