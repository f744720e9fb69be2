"""Backend name → runner ``(x2, weight, weight_scale, bias, input_scale, block, out_dtype) -> [M, N]``.

Triton modules are imported only when a Triton backend runs (never on CPU-only or Triton-less machines), and
``torch_npu`` only when the NPU backend runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import reference as ref
from . import torch_backend as tb
from .caps import detect_caps

Runner = Callable[..., torch.Tensor]


def eager(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
          input_scale: torch.Tensor | None, scheme: str, block: tuple[int, int] | None,
          out_dtype: torch.dtype) -> torch.Tensor:
    """The float32 reference, for every scheme."""
    if scheme == "fp8_weight_only":
        return ref.weight_only_mm(x2, weight, weight_scale, block, bias, out_dtype)
    if scheme == "fp8_block":
        assert block is not None
        x_q, x_s = ref.quant_fp8_per_group(x2, block[1])
        return ref.block_scaled_mm(x_q, weight, x_s, weight_scale, *block, bias, out_dtype)
    if scheme == "fp8_tensor":
        x_q, x_s = ref.quant_fp8_per_tensor(x2, input_scale)
    elif scheme == "fp8_channel":
        x_q, x_s = ref.quant_fp8_per_token(x2)
    else:  # int8
        x_q, x_s = ref.quant_int8_per_token(x2)
    return ref.scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


def run(backend: str, x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
        input_scale: torch.Tensor | None, scheme: str, block: tuple[int, int] | None,
        out_dtype: torch.dtype) -> torch.Tensor:
    """Run one quantized linear ``x2 @ W.T + bias`` with the named backend."""
    args = (x2, weight, weight_scale, bias, input_scale, block, out_dtype)
    if backend == "eager":
        return eager(x2, weight, weight_scale, bias, input_scale, scheme, block, out_dtype)
    if backend == "scaled_mm_tensorwise":
        return tb.scaled_mm_tensorwise(*args)
    if backend == "scaled_mm_rowwise":
        fp16_out = x2.device.type != "cuda" or detect_caps("cuda", x2.device.index or 0).fp16_rowwise
        return tb.scaled_mm_rowwise(*args, fp16_out=fp16_out)
    if backend == "scaled_mm_blockwise":
        return tb.scaled_mm_blockwise(*args)
    if backend == "int_mm":
        return tb.int_mm(*args)
    if backend == "dequant_mm":
        return tb.dequant_mm(*args)
    if backend == "npu_quant_matmul":
        from . import npu_backend  # imports torch_npu itself, on first use

        return npu_backend.int8_linear(x2, weight, weight_scale, bias, out_dtype)
    from . import triton_backend  # Triton paths: CUDA only

    return triton_backend.run(backend, scheme, *args)
