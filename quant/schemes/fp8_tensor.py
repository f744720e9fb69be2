"""fp8_tensor: one float32 scale for the whole weight; activations per tensor (dynamic, or a static scale).

Stored: ``weight`` e4m3 [N, K], ``weight_scale`` float32 [], optional ``input_scale`` float32 [] (static
activation scale brought by a calibrated checkpoint, e.g. ModelOpt ``FP8``).
"""

from __future__ import annotations

import torch

from ...kernels import reference as ref
from .base import Scheme


class FP8Tensor(Scheme):
    name = "fp8_tensor"

    def _quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        scale = ref.amax_to_scale(weight.abs().amax(), ref.FP8_MAX).reshape(())
        return {"weight": ref.cast_fp8(weight, scale), "weight_scale": scale}

    def describe(self) -> str:
        return "fp8 per-tensor"
