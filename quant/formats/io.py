"""Read any supported checkpoint into a ``QuantizedCheckpoint``, and write one in ComfyUI's native format
(where it can express every layer) or in this pack's format."""

from __future__ import annotations

import os
from typing import Any

import torch
from safetensors import safe_open

from ..finite import all_finite
from ..schemes import FP8Tensor, Scheme
from . import comfy_native, legacy_scaled_fp8, pack_format
from .checkpoint import QuantizedCheckpoint, layer_of
from .safetensors_io import CheckpointError, Header, read_header, save_tensors

WRITE_FORMATS = ("auto", "comfy_quant", "dit_quant")


def detect_format(header: Header) -> str:
    """``comfy_quant`` | ``dit_quant`` | ``scaled_fp8`` | ``plain``, from the header alone."""
    if pack_format.HEADER_KEY in header.metadata:
        return "dit_quant"
    if comfy_native.HEADER_KEY in header.metadata or any(
            k.endswith(comfy_native.MARKER_SUFFIX) for k in header.tensors):
        return "comfy_quant"
    if any(legacy_scaled_fp8.is_marker(k) for k in header.tensors):
        return "scaled_fp8"
    return "plain"


def _load_all(path: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read tensors: {e}") from e


def _native_layers(tensors: dict[str, torch.Tensor], header: Header) -> dict[str, Scheme]:
    configs: dict[str, dict[str, Any]] = comfy_native.header_layers(header.metadata, header.path)
    for key in [k for k in tensors if k.endswith(comfy_native.MARKER_SUFFIX)]:
        try:
            configs[layer_of(key)] = comfy_native.decode_config(tensors.pop(key))
        except ValueError as e:
            raise CheckpointError(f"{header.path}: key {key!r}: malformed comfy_quant JSON: {e}") from e
    layers = {}
    for name, cfg in configs.items():
        layers[name] = comfy_native.scheme_from_native(cfg, header.path, name)
        scale, weight = tensors.get(f"{name}.weight_scale"), tensors.get(f"{name}.weight")
        if scale is not None and weight is not None and weight.dim() == 2:  # else validate_layers names it
            tensors[f"{name}.weight_scale"] = comfy_native.scale_from_disk(cfg, scale, weight.shape[0])
    return layers


def _legacy_layers(tensors: dict[str, torch.Tensor]) -> dict[str, Scheme]:
    layers: dict[str, Scheme] = {}
    for key in list(tensors):
        if legacy_scaled_fp8.is_marker(key):
            del tensors[key]
            continue
        layer, _, part = key.rpartition(".")
        if part in legacy_scaled_fp8.RENAMES:
            t = tensors.pop(key)
            tensors[f"{layer}.{legacy_scaled_fp8.RENAMES[part]}"] = t.float().reshape(()) if t.numel() == 1 else t
            if part == "scale_weight":
                layers[layer] = FP8Tensor()
    return layers


def validate_layers(ckpt: QuantizedCheckpoint, path: str) -> None:
    """Every quantized layer has codes of the scheme's dtype and a scale of the scheme's shape."""
    for name, scheme in ckpt.layers.items():
        w = ckpt.tensors.get(f"{name}.weight")
        if w is None or w.dim() != 2:
            raise CheckpointError(f"{path}: quantized layer {name!r} has no 2-D tensor {name + '.weight'!r}")
        if w.dtype != scheme.weight_dtype:
            raise CheckpointError(f"{path}: key {name + '.weight'!r} is {w.dtype}, expected {scheme.weight_dtype} "
                                  f"for {scheme.describe()}")
        expected = scheme.empty_tensors(*w.shape)["weight_scale"].shape
        s = ckpt.tensors.get(f"{name}.weight_scale")
        if s is None:
            raise CheckpointError(f"{path}: quantized layer {name!r} has no {name + '.weight_scale'!r}")
        if s.shape != expected:
            raise CheckpointError(f"{path}: key {name + '.weight_scale'!r} has shape {list(s.shape)}, expected "
                                  f"{list(expected)} for {scheme.describe()} of a {list(w.shape)} weight")
        if not all_finite(s):
            raise CheckpointError(f"{path}: key {name + '.weight_scale'!r} contains NaN or inf")


def read_checkpoint(path: str | os.PathLike) -> QuantizedCheckpoint:
    """Load a safetensors checkpoint in any supported format; tensors on CPU."""
    path = str(path)
    header = read_header(path)
    fmt = detect_format(header)
    tensors = _load_all(path)
    if fmt == "dit_quant":
        layers = pack_format.pack_layers(header.metadata, path)
    elif fmt == "comfy_quant":
        layers = _native_layers(tensors, header)
    elif fmt == "scaled_fp8":
        layers = _legacy_layers(tensors)
    else:
        layers = {}
    ckpt = QuantizedCheckpoint(tensors, layers, fmt, dict(header.metadata))
    validate_layers(ckpt, path)
    return ckpt


def native_configs(layers: dict[str, Scheme], tensors: dict[str, torch.Tensor]) -> dict[str, dict] | None:
    """``comfy_quant`` JSON per layer when stock ComfyUI can express every layer, else None."""
    out = {}
    for name, scheme in layers.items():
        cfg = comfy_native.native_config(scheme, tuple(tensors[f"{name}.weight_scale"].shape))
        if cfg is None:
            return None
        out[name] = cfg
    return out


def resolve_write_format(requested: str, native_ok: bool) -> str:
    if requested not in WRITE_FORMATS:
        raise ValueError(f"unknown output format {requested!r}; expected one of {', '.join(WRITE_FORMATS)}")
    if requested == "comfy_quant" and not native_ok:
        raise ValueError("ComfyUI's native format only holds per-tensor FP8 (with or without FP8 activations) and "
                         "per-channel INT8 layers; use the dit_quant format (or 'auto') for the fp8 channel, block "
                         "and per-channel / block weight-only schemes")
    if requested == "auto":
        return "comfy_quant" if native_ok else "dit_quant"
    return requested


def write_checkpoint(path: str | os.PathLike, ckpt: QuantizedCheckpoint, fmt: str = "auto",
                     metadata: dict[str, str] | None = None) -> str:
    """Write atomically; returns the format written (``comfy_quant`` or ``dit_quant``)."""
    configs = native_configs(ckpt.layers, ckpt.tensors)
    fmt = resolve_write_format(fmt, configs is not None)
    tensors = dict(ckpt.tensors)
    meta = dict(metadata or {})
    if fmt == "comfy_quant":
        assert configs is not None
        for name, cfg in configs.items():
            tensors[f"{name}{comfy_native.MARKER_SUFFIX}"] = comfy_native.encode_config(cfg)
            tensors[f"{name}.weight_scale"] = comfy_native.scale_to_disk(cfg, tensors[f"{name}.weight_scale"])
    else:
        meta.update(pack_format.pack_metadata(ckpt.layers))
    save_tensors(path, tensors, meta)
    return fmt
