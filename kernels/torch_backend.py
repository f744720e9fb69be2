"""Kernels built on torch ops: ``torch._scaled_mm`` (tensorwise, rowwise, blockwise), ``torch._int_mm`` and a
dequantize-then-``F.linear`` weight-only path. Each runner quantizes the activations (fused Triton kernels on CUDA,
the reference elsewhere: ``act_quant``) and calls a GEMM primitive (``torch_gemm``)."""

from __future__ import annotations

from functools import cache
from importlib import import_module

import torch
import torch.nn.functional as F

from . import act_quant
from . import reference as ref
from .caps import DeviceCaps
from .kernel import Block, Kernel
from .torch_gemm import HALF, blockwise_gemm, int_acc, int_gemm, scaled_gemm

CUBLAS_BLOCK = (128, 128)
# cuBLASLt blockwise layout: the weight-scale grid's leading dimension (K/128 blocks) must be a multiple of 4 and M
# a multiple of 4, or older torch passes the layout through and the result is silently wrong (kernels.md).
CUBLAS_K_BLOCKS_ALIGN = 4
CUBLAS_M_ALIGN = 4
TORCH_DEVICES = ("cuda", "cpu")
NO_FP8_NOTE = "no FP8 tensor cores: weight-only FP8, activations unquantized"


def scaled_mm_tensorwise(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                         bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                         out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = act_quant.fp8_per_tensor(x2, input_scale)
    return scaled_gemm(x_q, weight, x_s, weight_scale.float().reshape(()), bias, out_dtype)


def scaled_mm_rowwise(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                      bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                      out_dtype: torch.dtype, fp16_out: bool = True) -> torch.Tensor:
    """``fp16_out=False``: this torch build's rowwise GEMM writes no fp16, so fp16 goes through float32."""
    x_q, x_s = act_quant.fp8_per_token(x2)
    return scaled_gemm(x_q, weight, x_s.contiguous(), weight_scale.float().reshape(1, -1).contiguous(), bias,
                       out_dtype, HALF if fp16_out else (torch.bfloat16,))


def scaled_mm_rowwise_bf16_out(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                               bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                               out_dtype: torch.dtype) -> torch.Tensor:
    return scaled_mm_rowwise(x2, weight, weight_scale, bias, input_scale, block, out_dtype, fp16_out=False)


def scaled_mm_blockwise(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                        bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                        out_dtype: torch.dtype) -> torch.Tensor:
    m = x2.shape[0]
    if m % CUBLAS_M_ALIGN:  # cuBLASLt reads M-major activation scales with M padded to 4: pad rows (exact)
        x2 = F.pad(x2, (0, 0, 0, CUBLAS_M_ALIGN - m % CUBLAS_M_ALIGN))
    x_q, x_s = act_quant.fp8_per_group(x2, 128, m_major=True)
    out = blockwise_gemm(x_q, weight, x_s, weight_scale, bias, out_dtype)
    return out[:m] if out.shape[0] != m else out


def int_mm(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
           input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = act_quant.int8_per_token(x2)
    return int_gemm(x_q, weight, x_s, weight_scale, bias, out_dtype)


@cache
def _triton_epilogue():
    return import_module(f"{__package__}.triton_epilogue")  # Triton is imported only where this kernel runs


def int_mm_fused_epilogue(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                          bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                          out_dtype: torch.dtype) -> torch.Tensor:
    """``_int_mm``, then scales, bias and the output cast in one Triton pass (``triton_epilogue``)."""
    x_q, x_s = act_quant.int8_per_token(x2)
    return _triton_epilogue().int8_epilogue(int_acc(x_q, weight), x_s, weight_scale, bias, out_dtype)


def dequant_mm(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
               input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    """Weight dequantized to the activation dtype (one temporary [N, K]), then a plain ``F.linear``."""
    dtype = x2.dtype if x2.dtype in HALF else torch.float32
    w = ref.dequantize_weight(weight, weight_scale, block, dtype)
    return F.linear(x2.to(dtype), w, None if bias is None else bias.to(dtype)).to(out_dtype)


# --- requirements ---------------------------------------------------------------------------------------------


def _needs(flag: str, what: str):
    def requires(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
        return None if getattr(caps, flag) else f"no {what} on {caps.describe()}"
    return requires


def _rowwise_fp16(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    if not caps.scaled_mm_rowwise:
        return f"no rowwise torch._scaled_mm on {caps.describe()}"
    return None if caps.device_type != "cuda" or caps.fp16_rowwise else "rowwise GEMM writes no fp16 here"


def _cublas_blockwise(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    if not caps.cublas_blockwise:
        return f"no cuBLAS blockwise scaling on {caps.describe()}"
    if block != CUBLAS_BLOCK:
        return f"cuBLAS takes 128x128 weight blocks only (layer has {block})"
    if n % 128 or k % 128:
        return f"cuBLAS blockwise needs N, K multiples of 128 (N={n}, K={k})"
    if (k // 128) % CUBLAS_K_BLOCKS_ALIGN:
        return f"cuBLAS blockwise needs K/128 a multiple of {CUBLAS_K_BLOCKS_ALIGN} (K={k})"
    return None


def _int_mm_with_triton(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    if not caps.int_mm:
        return f"no torch._int_mm on {caps.describe()}"
    return None if caps.triton else "no Triton for the fused epilogue"


def _no_fp8_cores(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    return None if not caps.fp8_tensor_cores else "the device has FP8 tensor cores"


KERNELS = (
    Kernel("scaled_mm_tensorwise", "torch", ("fp8_tensor",), TORCH_DEVICES, scaled_mm_tensorwise,
           _needs("scaled_mm", "torch._scaled_mm"), tensor_scale=True),
    Kernel("scaled_mm_rowwise", "torch", ("fp8_channel",), TORCH_DEVICES, scaled_mm_rowwise, _rowwise_fp16),
    Kernel("scaled_mm_rowwise", "torch", ("fp8_channel",), TORCH_DEVICES, scaled_mm_rowwise_bf16_out,
           _needs("scaled_mm_rowwise", "rowwise torch._scaled_mm")),
    Kernel("scaled_mm_blockwise", "torch", ("fp8_block",), TORCH_DEVICES, scaled_mm_blockwise, _cublas_blockwise),
    Kernel("int_mm", "torch", ("int8",), ("cuda",), int_mm_fused_epilogue, _int_mm_with_triton),
    Kernel("int_mm", "torch", ("int8",), TORCH_DEVICES, int_mm, _needs("int_mm", "torch._int_mm")),
)
# after the Triton kernels: dequantize + bf16 GEMM, for weight-only and for FP8 schemes without FP8 tensor cores
FALLBACK_KERNELS = (
    Kernel("dequant_mm", "torch", ("fp8_weight_only",), TORCH_DEVICES, dequant_mm),
    Kernel("dequant_mm", "torch", ("fp8_tensor", "fp8_channel", "fp8_block"), ("cuda",), dequant_mm,
           _no_fp8_cores, NO_FP8_NOTE),
)
