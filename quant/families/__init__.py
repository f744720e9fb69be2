"""Model-family knowledge: detection, ignore presets and diffusers <-> ComfyUI key maps.

Families: ``wan`` (Wan 2.1/2.2), ``qwen_image`` (Qwen-Image / Edit), ``hunyuan_video15`` (HunyuanVideo 1.5).
Pure Python: works on key names and shapes (a safetensors header), never on ComfyUI objects.
"""

from __future__ import annotations

from .detect import detect_family, strip_prefix
from .keymap import FusedKeyError, KeyMapEntry, KeyMapError, KeyRule
from .keys import fused_parts, map_state_dict_keys, plan_state_dict_keys, to_comfyui, to_diffusers
from .presets import preset_ignore, preset_weight_only
from .registry import FAMILIES, get_family
from .spec import NAMINGS, PRESETS, DetectedModel, FamilySpec, UnknownFamilyError

__all__ = [
    "FAMILIES",
    "NAMINGS",
    "PRESETS",
    "DetectedModel",
    "FamilySpec",
    "FusedKeyError",
    "KeyMapEntry",
    "KeyMapError",
    "KeyRule",
    "UnknownFamilyError",
    "detect_family",
    "fused_parts",
    "get_family",
    "map_state_dict_keys",
    "plan_state_dict_keys",
    "preset_ignore",
    "preset_weight_only",
    "strip_prefix",
    "to_comfyui",
    "to_diffusers",
]
