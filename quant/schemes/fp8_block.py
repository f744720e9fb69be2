"""fp8_block: float32 scales per ``bn x bk`` weight block; activations FP8 per ``1 x bk`` group (dynamic).

Stored: ``weight`` e4m3 [N, K], ``weight_scale`` float32 [ceil(N/bn), ceil(K/bk)] (ragged edges padded), the
DeepSeek-V3 / vLLM / cuBLAS-blockwise layout. The block size is part of the scheme's config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...kernels import reference as ref
from .base import Scheme
from .block_size import parse_block_size


def quantize_blocks(weight: torch.Tensor, block: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Per-block FP8 weight quantization shared by fp8_block and block-granular fp8_weight_only."""
    n, k = weight.shape
    scale = ref.amax_to_scale(ref.block_amax(weight, *block), ref.FP8_MAX)
    q = ref.cast_fp8(weight, ref.expand_blocks(scale, n, k, *block))
    return {"weight": q, "weight_scale": scale}


class FP8Block(Scheme):
    name = "fp8_block"

    def __init__(self, block_size: str | Sequence[int] | None = None) -> None:
        self._block = parse_block_size(block_size)
        self.row_group = self._block[0]

    @property
    def block(self) -> tuple[int, int]:
        return self._block

    def _quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        return quantize_blocks(weight, self._block)

    def config(self) -> dict[str, Any]:
        return {"scheme": self.name, "block_size": list(self._block)}

    label = "fp8 block"
