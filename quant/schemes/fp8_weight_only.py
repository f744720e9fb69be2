"""fp8_weight_only: FP8 weights (per-channel, per-tensor or per-block scales), activations stay bf16/fp16.

Stored: ``weight`` e4m3 [N, K] and ``weight_scale`` float32 [N] (granularity "channel"), [] (granularity
"tensor": ComfyUI's native ``float8_e4m3fn`` with ``full_precision_matrix_mult``) or [ceil(N/bn), ceil(K/bk)]
(granularity "block", ModelOpt ``FP8_PB_WO``). Halves weight memory on any GPU; the matmul runs in the activation
dtype, so it suits GPUs without FP8 tensor cores and small M (modulation layers, whose M is the batch size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...kernels import reference as ref
from .base import Scheme
from .block_size import parse_block_size
from .fp8_block import quantize_blocks
from .fp8_tensor import quantize_per_tensor

GRANULARITIES = ("channel", "tensor", "block")


class FP8WeightOnly(Scheme):
    name = "fp8_weight_only"
    quantizes_activations = False

    def __init__(self, granularity: str = "channel", block_size: str | Sequence[int] | None = None) -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"fp8_weight_only granularity {granularity!r}: expected one of {GRANULARITIES}")
        self.granularity = granularity
        self._block = parse_block_size(block_size) if granularity == "block" else None
        self.row_group = self._block[0] if self._block else (None if granularity == "tensor" else 1)

    @property
    def block(self) -> tuple[int, int] | None:
        return self._block

    def _quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        if self._block is not None:
            return quantize_blocks(weight, self._block)
        if self.granularity == "tensor":
            return quantize_per_tensor(weight)
        q, scale = ref.quant_fp8_per_token(weight)
        return {"weight": q, "weight_scale": scale.reshape(-1)}

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"scheme": self.name, "granularity": self.granularity}
        if self._block is not None:
            cfg["block_size"] = list(self._block)
        return cfg

    @property
    def label(self) -> str:
        return "fp8 weight-only (block)" if self._block is not None else f"fp8 weight-only (per-{self.granularity})"
