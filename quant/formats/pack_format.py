"""This pack's own self-describing format, for the schemes stock ComfyUI has no format for.

Same tensors as ComfyUI's native format (``<l>.weight`` codes, ``<l>.weight_scale`` float32, optional
``<l>.input_scale``), a ``<l>.comfy_quant`` marker per quantized layer (``layer_marker``: a name stock ComfyUI runs
or refuses by name, so it never reads the codes as unscaled FP8) and one safetensors header entry
``comfyui_dit_quant``: JSON ``{"format_version": 1, "layers": {"<l>": <scheme config>}}`` where a scheme config is,
e.g., ``{"scheme": "fp8_block", "block_size": [128, 128]}`` (see ``quant.schemes``); the header decides the scheme.
Scale layouts per scheme: fp8_tensor ``[]``; fp8_channel and channel-granular fp8_weight_only ``[N]``; int8
``[N, 1]`` (ComfyUI's int8_tensorwise); fp8_block and block-granular fp8_weight_only ``[ceil(N/bn), ceil(K/bk)]``.
Files written before the markers (header only) read the same. Tensors not named in ``layers`` are plain.
"""

from __future__ import annotations

import json

from ..schemes import Scheme, from_config
from . import comfy_native
from .safetensors_io import CheckpointError

HEADER_KEY = "comfyui_dit_quant"
FORMAT_VERSION = 1


def pack_metadata(layers: dict[str, Scheme]) -> dict[str, str]:
    body = {"format_version": FORMAT_VERSION, "layers": {n: s.config() for n, s in sorted(layers.items())}}
    return {HEADER_KEY: json.dumps(body, separators=(",", ":"))}


def pack_layers(metadata: dict[str, str], path: str) -> dict[str, Scheme]:
    """Layer name → scheme from the header entry; raises naming the file and layer on anything unknown."""
    body, entries = comfy_native.layers_entry(metadata, HEADER_KEY, path,
                                              f'{{"format_version": {FORMAT_VERSION}, "layers": {{...}}}}')
    version = body.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: {HEADER_KEY} format_version {version!r} is not supported "
                              f"(this version reads {FORMAT_VERSION}); update comfyui-dit-quant")
    layers = {}
    for name, cfg in entries.items():
        if not isinstance(cfg, dict) or not isinstance(cfg.get("scheme"), str):
            raise CheckpointError(f"{path}: metadata {HEADER_KEY!r} layer {name!r}: expected a scheme config such "
                                  f'as {{"scheme": "fp8_channel"}}, got {json.dumps(cfg)[:80]}')
        try:
            layers[name] = from_config(cfg)
        except (ValueError, TypeError, KeyError) as e:
            raise CheckpointError(f"{path}: layer {name!r}: bad scheme config {cfg!r}: {e}") from e
    return layers
