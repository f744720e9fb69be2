"""Read any supported checkpoint into a ``QuantizedCheckpoint``, and write one in ComfyUI's native format
(where it can express every layer) or in this pack's format."""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors import safe_open

from ..finite import all_finite
from ..schemes import FP8Tensor, FP8WeightOnly, Int8, Scheme
from . import comfy_native, community, foreign, layer_marker, legacy_scaled_fp8, lightx2v, pack_format
from .checkpoint import QuantizedCheckpoint, layer_of
from .modelopt_config import is_modelopt
from .safetensors_io import CheckpointError, Header, read_header, save_tensors

WRITE_FORMATS = ("auto", "comfy_quant", "dit_quant")


def detect_format(header: Header) -> str:
    """``comfy_quant`` | ``dit_quant`` | ``scaled_fp8`` | ``lightx2v`` (``weight_scale`` without any marker) |
    ``foreign`` (another tool's packed layout, refused: ``formats.foreign``) | ``plain``, from the header alone."""
    if foreign.kind(header) is not None:
        return foreign.FORMAT
    if pack_format.HEADER_KEY in header.metadata:
        return "dit_quant"
    if comfy_native.HEADER_KEY in header.metadata or any(
            k.endswith(comfy_native.MARKER_SUFFIX) for k in header.tensors):
        return "comfy_quant"
    if any(legacy_scaled_fp8.is_marker(k) for k in header.tensors):
        return "scaled_fp8"
    if lightx2v.is_layout(header):
        return lightx2v.FORMAT
    return "plain"


def _load_all(path: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read tensors: {e}") from e


def _pop_markers(tensors: dict[str, torch.Tensor], header: Header) -> dict[str, dict[str, Any]]:
    """Per-layer marker configs: ``<l>.comfy_quant`` tensors (popped), then ``_quantization_metadata`` (which wins,
    as in ComfyUI's loader)."""
    configs: dict[str, dict[str, Any]] = {}
    for key in [k for k in tensors if k.endswith(comfy_native.MARKER_SUFFIX)]:
        configs[layer_of(key)] = layer_marker.decode(tensors.pop(key), header.path, key)
    for name, cfg in comfy_native.header_layers(header.metadata, header.path).items():
        configs[_under_prefix(name, tensors)] = cfg
    return configs


def _under_prefix(name: str, tensors: dict[str, torch.Tensor]) -> str:
    """A header layer name as the tensors name it: ComfyUI reads ``_quantization_metadata`` both with and without
    the ``model.diffusion_model.`` / ``model.`` prefix it strips (it injects the markers before and after)."""
    if f"{name}.weight" in tensors:
        return name
    return next((p + name for p in comfy_native.STRIPPED_PREFIXES if f"{p}{name}.weight" in tensors), name)


def _scales_from_disk(tensors: dict[str, torch.Tensor], configs: dict[str, dict[str, Any]]) -> None:
    for name, cfg in configs.items():
        scale, weight = tensors.get(f"{name}.weight_scale"), tensors.get(f"{name}.weight")
        if scale is not None and weight is not None and weight.dim() == 2:
            tensors[f"{name}.weight_scale"] = layer_marker.scale_from_disk(cfg, scale, weight.shape[0])


def _native_layers(tensors: dict[str, torch.Tensor], header: Header) -> dict[str, Scheme]:
    """Layers of a ``comfy_quant`` file (ComfyUI's names, convert_to_quant's names), no header of this pack."""
    configs = _pop_markers(tensors, header)
    layers = {}
    for name, cfg in configs.items():
        if cfg["format"] == layer_marker.E5M2:
            configs[name] = cfg = _e5m2_to_e4m3(tensors, name, cfg)
        scale = tensors.get(f"{name}.weight_scale")
        layers[name] = layer_marker.scheme_from_marker(cfg, header.path, name,
                                                       None if scale is None else tuple(scale.shape))
        if not layers[name].quantizes_activations and cfg["format"] in community.NAMES:
            tensors.pop(f"{name}.input_scale", None)  # convert_to_quant's dummy 1.0; its loader never uses it
    _scales_from_disk(tensors, configs)
    return layers


def _e5m2_to_e4m3(tensors: dict[str, torch.Tensor], name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """A ``float8_e5m2`` layer as the same layer in ``float8_e4m3fn`` (codes moved by a power of two)."""
    w, s = tensors.get(f"{name}.weight"), tensors.get(f"{name}.weight_scale")
    if w is not None and s is not None and w.dtype == torch.float8_e5m2 and s.numel() == 1:
        tensors[f"{name}.weight"], tensors[f"{name}.weight_scale"] = legacy_scaled_fp8.e5m2_as_e4m3(w, s)
    return {**cfg, "format": "float8_e4m3fn"}  # a layer that did not fit is named by validate_layers


def _pack_layers(tensors: dict[str, torch.Tensor], header: Header) -> dict[str, Scheme]:
    """Layers of a ``dit_quant`` file: schemes from the header, markers (if any) only say the scale layout."""
    layers = pack_format.pack_layers(header.metadata, header.path)
    configs = _pop_markers(tensors, header)
    for name in configs:
        if name not in layers:
            raise CheckpointError(f"{header.path}: key {name + comfy_native.MARKER_SUFFIX!r} marks a layer the "
                                  f"{pack_format.HEADER_KEY} header does not list")
    _scales_from_disk(tensors, configs)
    return layers


def _legacy_layers(tensors: dict[str, torch.Tensor]) -> dict[str, Scheme]:
    """ComfyUI's reading of ``scaled_fp8``: a 2-element marker means full-precision matmul (weight-only), and a
    ``scale_input`` of 1.0 means no calibrated input scale (dynamic activation scaling)."""
    full_precision = any(legacy_scaled_fp8.is_marker(k) and t.numel() == 2 for k, t in tensors.items())
    scheme: Scheme = FP8WeightOnly("tensor") if full_precision else FP8Tensor()
    layers: dict[str, Scheme] = {}
    for key in list(tensors):
        if legacy_scaled_fp8.is_marker(key):
            del tensors[key]
            continue
        layer, _, part = key.rpartition(".")
        if part in legacy_scaled_fp8.RENAMES:
            t = tensors.pop(key)
            if part == "scale_input" and (full_precision or legacy_scaled_fp8.is_unit(t)):
                continue
            tensors[f"{layer}.{legacy_scaled_fp8.RENAMES[part]}"] = t.float().reshape(()) if t.numel() == 1 else t
            if part == "scale_weight":
                layers[layer] = scheme
    for layer in layers:
        w, s = tensors.get(f"{layer}.weight"), tensors[f"{layer}.weight_scale"]
        if w is None or w.dim() != 2 or s.numel() != 1:
            continue  # validate_layers names it
        if w.dtype == torch.float8_e5m2:
            tensors[f"{layer}.weight"], tensors[f"{layer}.weight_scale"] = legacy_scaled_fp8.e5m2_as_e4m3(w, s)
        elif w.dtype == torch.int8:
            layers[layer] = Int8()
            tensors[f"{layer}.weight_scale"] = s.float().reshape(1).expand(w.shape[0]).clone()
            tensors.pop(f"{layer}.input_scale", None)
    return layers


def _check_scale(path: str, key: str, s: torch.Tensor) -> None:
    if not s.is_floating_point():
        raise CheckpointError(f"{path}: key {key!r} is {s.dtype}, expected a floating-point scale")
    if not all_finite(s):
        raise CheckpointError(f"{path}: key {key!r} contains NaN or inf")
    if s.numel() and bool((s.float() <= 0).any()):
        raise CheckpointError(f"{path}: key {key!r} holds a zero or negative scale ({s.float().min().item():g}); "
                              "scales must be positive")


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
        _check_scale(path, f"{name}.weight_scale", s)
        x = ckpt.tensors.get(f"{name}.input_scale")
        if x is not None:
            if x.numel() != 1:
                raise CheckpointError(f"{path}: key {name + '.input_scale'!r} has shape {list(x.shape)}, expected "
                                      "one value (a per-tensor activation scale)")
            _check_scale(path, f"{name}.input_scale", x)


def _refuse_modelopt(header: Header) -> None:
    """A safetensors header carrying NVIDIA ModelOpt's ``quantization_config`` (its single-file / ComfyUI export
    options also write a ``_quantization_metadata`` whose formats are ModelOpt's algo names, e.g. ``fp8``)."""
    try:
        q = json.loads(header.metadata.get("quantization_config") or "null")
    except ValueError:
        return
    if isinstance(q, dict) and is_modelopt(q):
        raise CheckpointError(f"{header.path}: a NVIDIA ModelOpt export (quant_algo {q.get('quant_algo')!r} in its "
                              "header's quantization_config): load it with the ModelOpt Checkpoint Loader (or "
                              "`inspect` its folder)")


def read_checkpoint(path: str | os.PathLike) -> QuantizedCheckpoint:
    """Load a safetensors checkpoint in any supported format; tensors on CPU."""
    path = str(path)
    header = read_header(path)
    fmt = detect_format(header)
    _refuse_modelopt(header)
    if fmt == foreign.FORMAT:
        raise foreign.error(header)
    tensors = _load_all(path)
    if fmt == "dit_quant":
        layers = _pack_layers(tensors, header)
    elif fmt == "comfy_quant":
        layers = _native_layers(tensors, header)
    elif fmt == "scaled_fp8":
        layers = _legacy_layers(tensors)
    elif fmt == lightx2v.FORMAT:
        layers = lightx2v.read_layers(tensors, path)
    else:
        layers = {}
    ckpt = QuantizedCheckpoint(tensors, layers, fmt, dict(header.metadata))
    validate_layers(ckpt, path)
    return ckpt


def disk_configs(layers: dict[str, Scheme], tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """The ``comfy_quant`` marker of every quantized layer (``layer_marker.disk_config``)."""
    return {name: layer_marker.disk_config(scheme, *tensors[f"{name}.weight"].shape)
            for name, scheme in layers.items()}


def resolve_write_format(requested: str, native_ok: bool) -> str:
    """``comfy_quant`` (every layer in a format stock ComfyUI runs) or ``dit_quant``."""
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
    """Write atomically; returns the format written (``comfy_quant`` or ``dit_quant``). Every quantized layer gets
    a ``comfy_quant`` marker; a ``dit_quant`` file also gets the ``comfyui_dit_quant`` header with the schemes."""
    configs = disk_configs(ckpt.layers, ckpt.tensors)
    fmt = resolve_write_format(fmt, all(layer_marker.stock_runs(c) for c in configs.values()))
    tensors = dict(ckpt.tensors)
    meta = dict(metadata or {})
    for name, cfg in configs.items():
        stored = layer_marker.to_disk(cfg, {"weight_scale": tensors[f"{name}.weight_scale"]})
        tensors.update({f"{name}.{part}": t for part, t in stored.items()})
    if fmt == "dit_quant":
        meta.update(pack_format.pack_metadata(ckpt.layers))
    save_tensors(path, tensors, meta)
    return fmt
