"""ComfyUI's legacy ``scaled_fp8`` format (read only).

A marker tensor named ``scaled_fp8`` (any prefix; its dtype says the fp8 type, e4m3 is the common one) and, per
quantized layer ``<l>``: ``<l>.weight`` fp8 codes, ``<l>.scale_weight`` (float32 dequant multiplier, scalar or
``[1]``) and optionally ``<l>.scale_input`` (static activation scale). Read as ComfyUI reads it
(``comfy.utils.convert_old_quants``): ``fp8_tensor`` layers, where a ``scale_input`` of exactly 1.0 means "no
calibrated input scale" (dropped: activations are scaled dynamically, not clipped at +-448), and a marker of 2
elements means full-precision matmul (``fp8_weight_only`` per-tensor: weights dequantized, no FP8 activations).
ComfyUI names every such layer ``float8_e4m3fn`` whatever the codes are; two other kinds exist in the wild:
- float8_e5m2 codes (Kijai's ``*_fp8_e5m2_scaled_KJ`` files): moved to e4m3 by a power-of-two rescale
  (``e5m2_as_e4m3``), exact for every code within 2^13 of the largest one (e4m3's normal range);
- int8 codes (LightX2V's converter with ``--comfyui_mode --linear_type int8``: one scale per tensor, a 2-element
  marker): read as ``int8`` W8A8 with that scale on every row.
"""

from __future__ import annotations

import math

import torch

MARKER = "scaled_fp8"
RENAMES = {"scale_weight": "weight_scale", "scale_input": "input_scale"}


def is_marker(key: str) -> bool:
    return key == MARKER or key.endswith("." + MARKER)


def is_unit(scale_input: torch.Tensor) -> bool:
    """``scale_input == 1.0``: the placeholder legacy writers store when there is no calibrated input scale."""
    return scale_input.numel() == 1 and float(scale_input.float().reshape(())) == 1.0


def e5m2_as_e4m3(codes: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """e5m2 codes and their scalar scale as e4m3 codes and scale: codes times 2^-k (exact in float32), k the
    smallest integer putting the largest code within e4m3's 448, then cast (exact for codes of magnitude at least
    2^-6 * 2^k, since e5m2's 2 mantissa bits fit e4m3's 3)."""
    amax = float(codes.float().abs().max()) if codes.numel() else 0.0
    k = math.ceil(math.log2(amax / 448.0)) if amax > 0 else 0
    return (codes.float() * 2.0 ** -k).to(torch.float8_e4m3fn), scale.float() * 2.0 ** k
