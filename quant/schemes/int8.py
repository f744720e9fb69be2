"""int8: symmetric INT8 weights per output channel; activations INT8 per token (dynamic). W8A8.

Stored: ``weight`` int8 [N, K], ``weight_scale`` float32 [N]. Runs on INT8 tensor cores (Ampere and newer),
Ascend NPUs (``npu_quant_matmul``) and CPUs (``torch._int_mm``).
"""

from __future__ import annotations

import torch

from ...kernels import reference as ref
from .base import Scheme


class Int8(Scheme):
    name = "int8"
    weight_dtype = torch.int8

    def _quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        scale = ref.amax_to_scale(weight.abs().amax(dim=1, keepdim=True), ref.INT8_MAX)
        return {"weight": ref.cast_int8(weight, scale), "weight_scale": scale.reshape(-1)}

    label = "int8 W8A8"
