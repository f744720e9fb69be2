"""A loaded state dict in diffusers key names (e.g. a diffusers ``transformer/`` file, a lone ModelOpt export file)
moved to ComfyUI's names, which ComfyUI needs to detect Wan and HunyuanVideo 1.5 (ComfyUI-free).

The tensors move with ``modelopt_keys.to_comfyui_names``: renames as they are; fused q/k/v of quantized layers
concatenated (per-tensor parts requantized to a common scale), halves swapped with their scales.
"""

from __future__ import annotations

import torch

from .families import DetectedModel
from .formats.layer_state import checkpoint_to_state_dict, state_dict_to_checkpoint
from .modelopt_keys import to_comfyui_names


def comfyui_state_dict(sd: dict[str, torch.Tensor], detected: DetectedModel | None
                       ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``sd`` (plain tensors and this pack's marked layers) in ComfyUI's names when ``detected`` says its keys are
    diffusers names (keys outside ``detected.prefix`` are left out), with notes; otherwise ``sd`` unchanged."""
    if detected is None or detected.naming != "diffusers":
        return sd, []
    n = len(detected.prefix)
    body = {k[n:]: v for k, v in sd.items() if k.startswith(detected.prefix)}
    ckpt, notes = to_comfyui_names(state_dict_to_checkpoint(body), detected.family)
    return checkpoint_to_state_dict(ckpt), ["diffusers key names mapped to ComfyUI's", *notes]
