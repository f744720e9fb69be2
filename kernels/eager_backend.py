"""The eager kernels: the float32 reference (``reference.py``) for each scheme, on every device — the last
entry of the table, so every layer has a kernel."""

from __future__ import annotations

import torch

from . import reference as ref
from .kernel import Block, Kernel


def eager_fp8_tensor(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                     bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                     out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = ref.quant_fp8_per_tensor(x2, input_scale)
    return ref.scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


def eager_fp8_channel(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                      bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                      out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = ref.quant_fp8_per_token(x2)
    return ref.scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


def eager_fp8_block(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                    input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    if block is None:
        raise ValueError("fp8_block needs the weight block size")
    x_q, x_s = ref.quant_fp8_per_group(x2, block[1])
    return ref.block_scaled_mm(x_q, weight, x_s, weight_scale, *block, bias, out_dtype)


def eager_weight_only(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                      bias: torch.Tensor | None, input_scale: torch.Tensor | None, block: Block,
                      out_dtype: torch.dtype) -> torch.Tensor:
    return ref.weight_only_mm(x2, weight, weight_scale, block, bias, out_dtype)


def eager_int8(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
               input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    x_q, x_s = ref.quant_int8_per_token(x2)
    return ref.scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


KERNELS = (
    Kernel("eager", "eager", ("fp8_tensor",), (), eager_fp8_tensor, tensor_scale=True),
    Kernel("eager", "eager", ("fp8_channel",), (), eager_fp8_channel),
    Kernel("eager", "eager", ("fp8_block",), (), eager_fp8_block),
    Kernel("eager", "eager", ("fp8_weight_only",), (), eager_weight_only),
    Kernel("eager", "eager", ("int8",), (), eager_int8),
)


def eager(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
          input_scale: torch.Tensor | None, scheme: str, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    """The reference result of ``scheme`` (what every other kernel is tested against)."""
    kernel = next((k for k in KERNELS if scheme in k.schemes), None)
    if kernel is None:
        raise ValueError(f"unknown quantization scheme {scheme!r}")
    return kernel.run(x2, weight, weight_scale, bias, input_scale, block, out_dtype)
