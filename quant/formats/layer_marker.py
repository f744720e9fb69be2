"""The ``<l>.comfy_quant`` marker this pack writes for each quantized layer, and reading any layer's marker back.

Written, in order of preference:
1. ComfyUI's native names (``float8_e4m3fn``, ``int8_tensorwise``): stock ComfyUI runs the layer correctly.
2. convert_to_quant's names (``float8_e4m3fn_rowwise``, ``float8_e4m3fn_blockwise`` + ``group_size``) where the
   layout matches: stock ComfyUI refuses them by name (KeyError on the format); tools that know them read them.
3. ``{"format": "comfyui_dit_quant/<scheme>"}`` for everything else (non-square or ragged blocks): stock ComfyUI's
   KeyError then names this pack.
In a ``dit_quant`` file the ``comfyui_dit_quant`` header says each layer's full scheme (activation handling, block
size); the markers are what keeps stock ComfyUI from reading the codes as unscaled FP8.
"""

from __future__ import annotations

from typing import Any

import torch

from ..schemes import Scheme
from . import comfy_native, community
from .safetensors_io import CheckpointError

MARKER_PART = comfy_native.MARKER_SUFFIX.lstrip(".")
PACK_PREFIX = "comfyui_dit_quant/"
E5M2 = "float8_e5m2"  # ComfyUI's per-tensor e5m2 format: read with its codes moved to e4m3 (io._native_layers)


def disk_config(scheme: Scheme, out_features: int, in_features: int) -> dict[str, Any]:
    """The marker JSON for one layer (see the module docstring for the order)."""
    scale_shape = tuple(scheme.empty_tensors(out_features, in_features)["weight_scale"].shape)
    return (comfy_native.native_config(scheme, scale_shape)
            or community.community_config(scheme, out_features, in_features)
            or {"format": PACK_PREFIX + scheme.name})


def stock_runs(config: dict[str, Any]) -> bool:
    """Whether stock ComfyUI runs a layer with this marker (rather than refusing it)."""
    return config.get("format") in comfy_native.SUPPORTED


def to_disk(config: dict[str, Any], stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A layer's tensors as written: the scale in the marker format's layout, plus the marker tensor."""
    out = dict(stored)
    out["weight_scale"] = comfy_native.scale_to_disk(config, stored["weight_scale"])
    out[MARKER_PART] = comfy_native.encode_config(config)
    return out


def scale_from_disk(config: dict[str, Any], scale: torch.Tensor, out_features: int) -> torch.Tensor:
    """Back to this pack's scale layout for the scheme the marker names."""
    if str(config.get("format")) in community.NAMES:
        return community.scale_from_disk(config, scale)
    if str(config.get("format")).startswith(PACK_PREFIX):
        return scale
    return comfy_native.scale_from_disk(config, scale, out_features)


def decode(t: torch.Tensor, path: str, key: str) -> dict[str, Any]:
    """A marker tensor's JSON object; anything else (not UTF-8 JSON, a list, a string, no format) raises."""
    try:
        cfg = comfy_native.decode_config(t)
    except (ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: key {key!r}: malformed comfy_quant marker (not UTF-8 JSON): {e}") from e
    return comfy_native.check_config(cfg, path, f"key {key!r}")


def scheme_from_marker(config: dict[str, Any], path: str, layer: str,
                       scale_shape: tuple[int, ...] | None = None) -> Scheme:
    """The scheme a marker stands for when the file has no ``comfyui_dit_quant`` header (raises otherwise)."""
    fmt = config["format"]
    if fmt.startswith(PACK_PREFIX):
        raise CheckpointError(f"{path}: layer {layer!r} is marked {fmt!r} (written by comfyui-dit-quant) but the "
                              "file has no comfyui_dit_quant header saying its scheme; the file was altered after "
                              "it was written")
    if fmt in community.NAMES:
        return community.scheme_from_community(config, path, layer, scale_shape)
    if fmt not in comfy_native.SUPPORTED:
        readable = (*comfy_native.SUPPORTED, E5M2, community.ROWWISE, community.BLOCKWISE)
        hint = f" ({comfy_native.STOCK_HINT})" if fmt in comfy_native.STOCK_ONLY else ""
        raise CheckpointError(f"{path}: layer {layer!r} uses quant format {fmt!r}, which this pack does not "
                              f"run{hint}; it reads {', '.join(readable)}")
    return comfy_native.scheme_from_native(config, path, layer)
