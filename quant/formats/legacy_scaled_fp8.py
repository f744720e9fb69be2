"""ComfyUI's legacy ``scaled_fp8`` format (read only).

A marker tensor named ``scaled_fp8`` (any prefix; its dtype says the fp8 type, e4m3 is the common one) and, per
quantized layer ``<l>``: ``<l>.weight`` fp8 codes, ``<l>.scale_weight`` (float32 dequant multiplier, scalar or
``[1]``) and optionally ``<l>.scale_input`` (static activation scale). Read as ``fp8_tensor`` layers.
"""

from __future__ import annotations

MARKER = "scaled_fp8"
RENAMES = {"scale_weight": "weight_scale", "scale_input": "input_scale"}


def is_marker(key: str) -> bool:
    return key == MARKER or key.endswith("." + MARKER)
