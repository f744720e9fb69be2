"""Dynamic activation quantization for the GEMM backends: the fused Triton kernels on CUDA where Triton runs, the
eager reference elsewhere. Scales come back in the layout the GEMMs read (per-tensor [], per-token [M, 1],
per-group [M, ceil(K/g)] — optionally M-major, as cuBLAS blockwise wants)."""

from __future__ import annotations

import torch

from . import reference as ref
from .detect import detect_caps


def _fused(x: torch.Tensor) -> bool:
    return x.is_cuda and detect_caps("cuda", x.device.index or 0).triton


def fp8_per_tensor(x: torch.Tensor, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if _fused(x):
        from . import triton_quant
        return triton_quant.quant_fp8_per_tensor(x, scale)
    return ref.quant_fp8_per_tensor(x, scale)


def fp8_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if _fused(x):
        from . import triton_quant
        return triton_quant.quant_fp8_per_token(x)
    return ref.quant_fp8_per_token(x)


def fp8_per_group(x: torch.Tensor, group: int, m_major: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    if _fused(x):
        from . import triton_quant
        return triton_quant.quant_fp8_per_group(x, group, m_major)
    q, s = ref.quant_fp8_per_group(x, group)
    return q, (s.t().contiguous().t() if m_major else s)


def int8_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if _fused(x):
        from . import triton_quant
        return triton_quant.quant_int8_per_token(x)
    return ref.quant_int8_per_token(x)
