"""ComfyUI's native per-layer quantized format (what stock ``UNETLoader`` / ``CLIPLoader`` read).

Per quantized Linear ``<l>``: ``<l>.weight`` codes, ``<l>.weight_scale`` (float32 dequant multiplier) and
``<l>.comfy_quant``: a 1-D uint8 tensor holding UTF-8 JSON such as ``{"format": "float8_e4m3fn"}``.
- ``float8_e4m3fn``: e4m3 codes, scalar scale, optional ``<l>.input_scale`` (static activation scale) = fp8_tensor;
  with ``"full_precision_matrix_mult": true`` ComfyUI dequantizes and multiplies in high precision = this pack's
  fp8_weight_only with granularity "tensor".
- ``int8_tensorwise``: int8 codes, scale scalar or ``[N, 1]`` per output channel; ComfyUI quantizes activations
  per token at run time = this pack's int8 scheme (written with ``[N, 1]`` scales, read back as ``[N]``).
ComfyUI also accepts the same per-layer JSON in the safetensors header ``_quantization_metadata``
(``{"format_version": "1.0", "layers": {"<l>": {...}}}``); both are read here, the tensor form is written.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ..schemes import FP8Tensor, FP8WeightOnly, Int8, Scheme
from .safetensors_io import CheckpointError

MARKER_SUFFIX = ".comfy_quant"
# Key prefixes ComfyUI's diffusion-model loader strips (comfy.model_detection.unet_prefix_from_state_dict).
STRIPPED_PREFIXES = ("model.diffusion_model.", "model.")
HEADER_KEY = "_quantization_metadata"
SUPPORTED = ("float8_e4m3fn", "int8_tensorwise")
# ComfyUI formats (comfy/quant_ops.py QUANT_ALGOS) stock ComfyUI runs and this pack does not (float8_e5m2 is read:
# its codes move to e4m3, see io._native_layers).
STOCK_ONLY = ("nvfp4", "mxfp8", "convrot_w4a4")
STOCK_HINT = "stock ComfyUI's Load Diffusion Model (UNETLoader) runs it: load the file with that node instead"


def native_config(scheme: Scheme, weight_scale_shape: tuple[int, ...]) -> dict[str, Any] | None:
    """The ``comfy_quant`` JSON for a layer, or None when stock ComfyUI cannot express it."""
    if isinstance(scheme, FP8Tensor) and len(weight_scale_shape) == 0:
        return {"format": "float8_e4m3fn"}
    if isinstance(scheme, FP8WeightOnly) and scheme.granularity == "tensor" and len(weight_scale_shape) == 0:
        return {"format": "float8_e4m3fn", "full_precision_matrix_mult": True}
    if isinstance(scheme, Int8) and len(weight_scale_shape) == 1:
        return {"format": "int8_tensorwise"}
    return None


def scale_to_disk(config: dict[str, Any], scale: torch.Tensor) -> torch.Tensor:
    """ComfyUI broadcasts per-channel scales as ``[N, 1]``."""
    return scale.reshape(-1, 1) if config.get("format") == "int8_tensorwise" else scale


def scale_from_disk(config: dict[str, Any], scale: torch.Tensor, out_features: int) -> torch.Tensor:
    """Back to this pack's layout: scalar for fp8, ``[N]`` for int8 (a scalar int8 scale is broadcast)."""
    if config.get("format") == "int8_tensorwise":
        return scale.float().reshape(-1).expand(out_features).clone() if scale.numel() == 1 else scale.reshape(-1)
    return scale.reshape(()) if scale.numel() == 1 else scale


def encode_config(config: dict[str, Any]) -> torch.Tensor:
    """A marker: the JSON of ``config`` as a 1-D uint8 tensor (how ComfyUI stores ``comfy_quant``; used for every
    per-layer JSON tensor the pack writes)."""
    return torch.tensor(list(json.dumps(config).encode("utf-8")), dtype=torch.uint8)


def decode_config(t: torch.Tensor) -> Any:
    """The JSON value in a 1-byte marker tensor (its raw bytes, any device); ValueError if it is not UTF-8 JSON,
    RuntimeError if the tensor is not of a 1-byte dtype."""
    return json.loads(bytes(t.detach().to("cpu").reshape(-1).view(torch.uint8).tolist()).decode("utf-8"))


def scheme_from_native(config: dict[str, Any], path: str, layer: str) -> Scheme:
    fmt = str(config.get("format", ""))
    if fmt == "float8_e4m3fn":
        return FP8WeightOnly("tensor") if config.get("full_precision_matrix_mult") else FP8Tensor()
    if fmt == "int8_tensorwise":
        if config.get("convrot") or (config.get("params") or {}).get("convrot"):
            raise CheckpointError(f"{path}: layer {layer!r} uses int8_tensorwise with ConvRot rotation, which this "
                                  f"pack does not run; {STOCK_HINT}")
        return Int8()
    hint = f"; {STOCK_HINT}" if fmt in STOCK_ONLY else ""
    raise CheckpointError(f"{path}: layer {layer!r} uses ComfyUI quant format {fmt!r}, which this pack does not "
                          f"run{hint}; supported native formats: {', '.join(SUPPORTED)}")


def check_config(cfg: Any, path: str, where: str) -> dict[str, Any]:
    """A layer config must be a JSON object with a string ``format``; raises naming the file and ``where``."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: {where}: malformed comfy_quant config: expected a JSON object such as "
                              f'{{"format": "float8_e4m3fn"}}, got {type(cfg).__name__} {short_json(cfg)}')
    if not isinstance(cfg.get("format"), str):
        raise CheckpointError(f"{path}: {where}: comfy_quant config {short_json(cfg)} has no string 'format'")
    return cfg


def short_json(obj: Any, limit: int = 80) -> str:
    text = json.dumps(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def layers_entry(metadata: dict[str, str], key: str, path: str, example: str) -> tuple[dict[str, Any], dict]:
    """The JSON object in header entry ``key`` and its ``layers`` map (``example`` shows the expected shape);
    a ``CheckpointError`` naming the file and key when it is missing, not JSON or of another shape."""
    try:
        body = json.loads(metadata[key])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: metadata {key!r} is missing or not JSON: {e}") from e
    if not isinstance(body, dict):
        raise CheckpointError(f"{path}: metadata {key!r}: expected a JSON object {example}, got "
                              f"{type(body).__name__} {short_json(body)}")
    layers = body.get("layers", {})
    if not isinstance(layers, dict):
        raise CheckpointError(f"{path}: metadata {key!r}: 'layers' must map layer names to configs, got "
                              f"{type(layers).__name__} {short_json(layers)}")
    return body, layers


def header_layers(metadata: dict[str, str], path: str) -> dict[str, dict[str, Any]]:
    """Per-layer configs from a ``_quantization_metadata`` header entry (empty if absent); raises on a wrong shape."""
    if not metadata.get(HEADER_KEY):
        return {}
    _, layers = layers_entry(metadata, HEADER_KEY, path, '{"layers": {...}}')
    return {str(name): check_config(cfg, path, f"metadata {HEADER_KEY!r} layer {name!r}")
            for name, cfg in layers.items()}
