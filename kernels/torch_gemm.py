"""The torch GEMM primitives on already-quantized operands: ``torch._scaled_mm`` (tensorwise, rowwise,
blockwise) and ``torch._int_mm``. Weights are [N, K] row-major, so ``weight.t()`` is the column-major B these GEMMs
want, without a copy. Used by the torch kernels (``torch_backend``) and the probes (``probe``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

INT_MM_MIN_M = 17  # CUDA _int_mm needs M > 16: smaller inputs are zero-padded (exact)
HALF = (torch.bfloat16, torch.float16)


def _epilogue(out: torch.Tensor, bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """Bias and output cast after a GEMM, in place where the dtypes allow: one pass, no M x N temporary beyond the
    cast. A bf16 result plus a bf16 bias rounds once either way (the sum is computed in fp32 and rounded)."""
    if bias is not None:
        if out.dtype == torch.float32 or (bias.dtype == out.dtype == out_dtype):
            out.add_(bias.to(out.dtype))  # fp32 results: bias in fp32; bf16 + bf16 bias: one rounding
        else:
            out = out.float().add_(bias.float())
    return out if out.dtype == out_dtype else out.to(out_dtype)


def scaled_gemm(x_q: torch.Tensor, weight: torch.Tensor, x_s: torch.Tensor, w_s: torch.Tensor,
                bias: torch.Tensor | None, out_dtype: torch.dtype,
                native: tuple[torch.dtype, ...] = HALF) -> torch.Tensor:
    """``torch._scaled_mm`` for tensorwise ([] x []) or rowwise ([M, 1] x [1, N]) scales; the bias is fused when
    ``out_dtype`` is in ``native``, else the GEMM writes float32 and bias + cast follow."""
    if out_dtype in native:
        fused_bias = None if bias is None else bias.to(out_dtype)
        return torch._scaled_mm(x_q, weight.t(), x_s, w_s, bias=fused_bias, out_dtype=out_dtype)
    return _epilogue(torch._scaled_mm(x_q, weight.t(), x_s, w_s, out_dtype=torch.float32), bias, out_dtype)


def blockwise_gemm(x_q: torch.Tensor, weight: torch.Tensor, x_s: torch.Tensor, w_s: torch.Tensor,
                   bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """cuBLAS 1x128 x 128x128: ``x_s`` [M, K/128] M-major, ``w_s`` our [N/128, K/128] grid passed transposed."""
    out = torch._scaled_mm(x_q, weight.t(), x_s, w_s.float().t(), out_dtype=torch.bfloat16)
    return out if bias is None and out_dtype == torch.bfloat16 else _epilogue(out, bias, out_dtype)


def int_acc(x_q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """int32 ``x_q @ weight.T`` by ``torch._int_mm`` (M below its minimum zero-padded: exact)."""
    m = x_q.shape[0]
    if m < INT_MM_MIN_M:
        x_q = F.pad(x_q, (0, 0, 0, INT_MM_MIN_M - m))
    return torch._int_mm(x_q, weight.t())[:m]


def int_gemm(x_q: torch.Tensor, weight: torch.Tensor, x_s: torch.Tensor, w_s: torch.Tensor,
             bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """int32 ``_int_mm``, then per-token x per-channel scales and bias in float32."""
    acc = int_acc(x_q, weight)
    out = acc.float().mul_(x_s.float()).mul_(w_s.float().reshape(1, -1))  # one fp32 M x N, scaled in place
    return _epilogue(out, bias, out_dtype)
