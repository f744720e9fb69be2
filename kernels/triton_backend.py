"""The Triton backends: fused activation quantization, then the matching Triton GEMM (CUDA only)."""

from __future__ import annotations

import torch

from . import triton_gemm as tg
from . import triton_quant as tq


def run(backend: str, scheme: str, x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
        bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: tuple[int, int] | None,
        out_dtype: torch.dtype) -> torch.Tensor:
    """Run ``backend`` (one of policy.TRITON_BACKENDS) for ``scheme``; ``x2`` [M, K] → [M, N]."""
    if backend == "triton_weight_only":  # also FP8 schemes on GPUs without FP8 tensor cores
        x = x2 if x2.dtype in (torch.bfloat16, torch.float16) else x2.to(torch.bfloat16)
        return tg.weight_only_mm(x, weight, weight_scale, block, bias, out_dtype)
    if backend == "triton_block":
        assert block is not None
        x_q, x_s = tq.quant_fp8_per_group(x2, block[1])
        return tg.block_scaled_mm(x_q, weight, x_s, weight_scale, *block, bias, out_dtype)
    if backend == "triton_int8":
        x_q, x_s = tq.quant_int8_per_token(x2)
    elif scheme == "fp8_tensor":
        x_q, x_s = tq.quant_fp8_per_tensor(x2, input_scale)
    else:
        x_q, x_s = tq.quant_fp8_per_token(x2)
    return tg.scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)
