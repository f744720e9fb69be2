"""FP8 e4m3 weights of any rank with a per-tensor scale (``[]``) or one scale per output channel
(``[out, 1, ...]``, broadcasting against Linear ``[out, in]`` and Conv ``[out, in, *k]`` weights)."""

from __future__ import annotations

import torch

from ...kernels.reference import FP8_MAX, amax_to_scale, cast_fp8

GRANULARITIES = ("channel", "tensor")


def quantize_weight(weight: torch.Tensor, granularity: str = "channel") -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 e4m3 codes and float32 dequant scale (``W ≈ codes.float() * scale``)."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity {granularity!r}: expected one of {GRANULARITIES}")
    w = weight.detach()
    if granularity == "tensor" or w.dim() < 2:
        scale = amax_to_scale(w.abs().amax(), FP8_MAX).reshape(())
    else:
        scale = amax_to_scale(w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True), FP8_MAX)
    return cast_fp8(w, scale), scale


def dequantize_weight(codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``codes * scale`` computed in float32, returned in ``dtype``."""
    return (codes.to(torch.float32) * scale.to(device=codes.device, dtype=torch.float32)).to(dtype)
