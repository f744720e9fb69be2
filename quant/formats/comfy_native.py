"""ComfyUI's native per-layer quantized format (what stock ``UNETLoader`` / ``CLIPLoader`` read).

Per quantized Linear ``<l>``: ``<l>.weight`` (float8_e4m3fn codes), ``<l>.weight_scale`` (float32 scalar,
dequant multiplier), optional ``<l>.input_scale`` (float32 scalar, static activation scale), and
``<l>.comfy_quant``: a 1-D uint8 tensor holding UTF-8 JSON such as ``{"format": "float8_e4m3fn"}``.
ComfyUI also accepts the same per-layer JSON in the safetensors header ``_quantization_metadata``
(``{"format_version": "1.0", "layers": {"<l>": {...}}}``); both are read here, the tensor form is written.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ..schemes import FP8Tensor, Scheme
from .safetensors_io import CheckpointError

MARKER_SUFFIX = ".comfy_quant"
HEADER_KEY = "_quantization_metadata"
SUPPORTED = ("float8_e4m3fn",)


def native_config(scheme: Scheme, weight_scale_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """The ``comfy_quant`` JSON for a layer, or None when stock ComfyUI cannot express it."""
    if isinstance(scheme, FP8Tensor) and len(weight_scale_shape) == 0:
        return {"format": "float8_e4m3fn"}
    return None


def encode_config(config: dict[str, Any]) -> torch.Tensor:
    return torch.tensor(list(json.dumps(config).encode("utf-8")), dtype=torch.uint8)


def decode_config(t: torch.Tensor) -> dict[str, Any]:
    return json.loads(bytes(t.to(torch.uint8).tolist()).decode("utf-8"))


def scheme_from_native(config: dict[str, Any], path: str, layer: str) -> Scheme:
    fmt = str(config.get("format", ""))
    if fmt == "float8_e4m3fn":
        return FP8Tensor()
    raise CheckpointError(f"{path}: layer {layer!r} uses ComfyUI quant format {fmt!r}, which this pack does not "
                          f"run; supported native formats: {', '.join(SUPPORTED)}")


def header_layers(metadata: dict[str, str], path: str) -> dict[str, dict[str, Any]]:
    """Per-layer configs from a ``_quantization_metadata`` header entry (empty if absent)."""
    raw = metadata.get(HEADER_KEY)
    if not raw:
        return {}
    try:
        return dict(json.loads(raw).get("layers", {}))
    except (ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: malformed {HEADER_KEY} header: {e}") from e
