"""ComfyUI's legacy ``scaled_fp8`` format (read only).

A marker tensor named ``scaled_fp8`` (any prefix; its dtype says the fp8 type, e4m3 is the common one) and, per
quantized layer ``<l>``: ``<l>.weight`` fp8 codes, ``<l>.scale_weight`` (float32 dequant multiplier, scalar or
``[1]``) and optionally ``<l>.scale_input`` (static activation scale). Read as ComfyUI reads it
(``comfy.utils.convert_old_quants``): ``fp8_tensor`` layers, where a ``scale_input`` of exactly 1.0 means "no
calibrated input scale" (dropped: activations are scaled dynamically, not clipped at +-448), and a marker of 2
elements means full-precision matmul (``fp8_weight_only`` per-tensor: weights dequantized, no FP8 activations).
"""

from __future__ import annotations

import torch

MARKER = "scaled_fp8"
RENAMES = {"scale_weight": "weight_scale", "scale_input": "input_scale"}


def is_marker(key: str) -> bool:
    return key == MARKER or key.endswith("." + MARKER)


def is_unit(scale_input: torch.Tensor) -> bool:
    """``scale_input == 1.0``: the placeholder legacy writers store when there is no calibrated input scale."""
    return scale_input.numel() == 1 and float(scale_input.float().reshape(())) == 1.0
