"""The Triton kernels (CUDA only): fused activation quantization, then the matching Triton GEMM. The Triton
modules are imported when a kernel first runs, so machines without Triton never import them."""

from __future__ import annotations

from functools import cache
from importlib import import_module

import torch

from .caps import DeviceCaps
from .kernel import Block, Kernel
from .torch_backend import NO_FP8_NOTE

HALF = (torch.bfloat16, torch.float16)


@cache
def _gemm():
    return import_module(f"{__package__}.triton_gemm")


@cache
def _quant():
    return import_module(f"{__package__}.triton_quant")


def triton_scaled_per_tensor(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                             bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                             out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = _quant().quant_fp8_per_tensor(x2, input_scale)
    return _gemm().scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


def triton_scaled_per_token(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                            bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                            out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = _quant().quant_fp8_per_token(x2)
    return _gemm().scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


def triton_int8(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = _quant().quant_int8_per_token(x2)
    return _gemm().scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


def triton_block(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                 input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    assert block is not None
    x_q, x_s = _quant().quant_fp8_per_group(x2, block[1])
    return _gemm().block_scaled_mm(x_q, weight, x_s, weight_scale, *block, bias, out_dtype)


def triton_weight_only(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                       bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                       out_dtype: torch.dtype) -> torch.Tensor:
    x = x2 if x2.dtype in HALF else x2.to(torch.bfloat16)
    return _gemm().weight_only_mm(x, weight, weight_scale, block, bias, out_dtype)


def _triton(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    return None if caps.triton else f"no usable Triton on {caps.describe()}"


def _triton_fp8(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    if not caps.fp8_tensor_cores:
        return f"no FP8 tensor cores on {caps.describe()}"
    return _triton(caps, n, k, block)


def _triton_no_fp8(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    return _triton(caps, n, k, block) if not caps.fp8_tensor_cores else "the device has FP8 tensor cores"


CUDA = ("cuda",)
# Above this M the weight-only Triton GEMM (codes converted per tile) loses to one dequantization + cuBLAS bf16:
# the [N, K] dequantization costs about what 1/10 of the GEMM does at M = 1024 on Wan shapes.
WEIGHT_ONLY_MAX_M = 1024
KERNELS = (
    Kernel("triton_scaled", "triton", ("fp8_tensor",), CUDA, triton_scaled_per_tensor, _triton_fp8,
           tensor_scale=True),
    Kernel("triton_scaled", "triton", ("fp8_channel",), CUDA, triton_scaled_per_token, _triton_fp8),
    Kernel("triton_block", "triton", ("fp8_block",), CUDA, triton_block, _triton_fp8),
    Kernel("triton_int8", "triton", ("int8",), CUDA, triton_int8, _triton),
    Kernel("triton_weight_only", "triton", ("fp8_weight_only",), CUDA, triton_weight_only, _triton,
           max_m=WEIGHT_ONLY_MAX_M),
    Kernel("triton_weight_only", "triton", ("fp8_tensor", "fp8_channel", "fp8_block"), CUDA, triton_weight_only,
           _triton_no_fp8, NO_FP8_NOTE, max_m=WEIGHT_ONLY_MAX_M),
)
