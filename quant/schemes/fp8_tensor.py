"""fp8_tensor: one float32 scale for the whole weight; activations per tensor (dynamic, or a static scale).

Stored: ``weight`` e4m3 [N, K], ``weight_scale`` float32 [], optional ``input_scale`` float32 [] (static
activation scale brought by a calibrated checkpoint, e.g. ModelOpt ``FP8``).
"""

from __future__ import annotations

import torch

from ...kernels import reference as ref
from .base import Scheme, row_chunks


def quantize_per_tensor(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """e4m3 codes under one float32 scale from the whole weight (cast in row chunks: small float32 temporaries)."""
    scale = ref.amax_to_scale(weight.abs().amax(), ref.FP8_MAX).reshape(())
    codes = [ref.cast_fp8(weight[rows], scale) for rows in row_chunks(*weight.shape)]
    return {"weight": torch.cat(codes), "weight_scale": scale}


class FP8Tensor(Scheme):
    name = "fp8_tensor"
    row_group = None  # one scale from the whole weight; the cast below still works in row chunks

    def _quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        return quantize_per_tensor(weight)

    label = "fp8 per-tensor"
