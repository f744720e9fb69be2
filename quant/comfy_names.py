"""A loaded state dict in diffusers key names (e.g. a diffusers ``transformer/`` file, a lone ModelOpt export file)
or under a key prefix ComfyUI does not strip moved to ComfyUI's names, which ComfyUI needs to detect Wan and
HunyuanVideo 1.5 (ComfyUI-free).

The tensors move with ``modelopt_keys.to_comfyui_names``: renames as they are; fused q/k/v of quantized layers
concatenated (per-tensor parts requantized to a common scale), halves swapped with their scales.
"""

from __future__ import annotations

import torch

from .families import DetectedModel
from .formats.layer_state import checkpoint_to_state_dict, state_dict_to_checkpoint
from .modelopt_keys import to_comfyui_names

# Key prefixes ComfyUI's load_diffusion_model_state_dict strips itself (model_detection.unet_prefix_from_state_dict).
COMFY_PREFIXES = ("", "model.diffusion_model.", "model.")


def comfyui_state_dict(sd: dict[str, torch.Tensor], detected: DetectedModel | None
                       ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``sd`` (plain tensors and this pack's marked layers) as ComfyUI detects it, with notes: a key prefix ComfyUI
    does not strip itself (``transformer.``, ``diffusion_model.``, ...) removed, keys outside it left out, and
    diffusers names mapped to ComfyUI's. Otherwise ``sd`` unchanged."""
    if detected is None or (detected.naming != "diffusers" and detected.prefix in COMFY_PREFIXES):
        return sd, []
    n, notes = len(detected.prefix), []
    body = {k[n:]: v for k, v in sd.items() if k.startswith(detected.prefix)}
    if detected.prefix not in COMFY_PREFIXES:
        notes.append(f"key prefix {detected.prefix!r} removed ({len(sd) - len(body)} keys outside it left out)")
    if detected.naming != "diffusers":
        return body, notes
    ckpt, map_notes = to_comfyui_names(state_dict_to_checkpoint(body), detected.family)
    return checkpoint_to_state_dict(ckpt), [*notes, "diffusers key names mapped to ComfyUI's", *map_notes]
