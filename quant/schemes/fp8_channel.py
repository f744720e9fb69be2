"""fp8_channel: one float32 scale per output channel; activations FP8 per token (dynamic).

Stored: ``weight`` e4m3 [N, K], ``weight_scale`` float32 [N] (ModelOpt ``FP8_PER_CHANNEL_PER_TOKEN`` layout).
"""

from __future__ import annotations

import torch

from ...kernels import reference as ref
from .base import Scheme


class FP8Channel(Scheme):
    name = "fp8_channel"

    def _quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        q, scale = ref.quant_fp8_per_token(weight)
        return {"weight": q, "weight_scale": scale.reshape(-1)}

    label = "fp8 per-token x channel"
