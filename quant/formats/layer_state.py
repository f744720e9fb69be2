"""How one quantized Linear travels through a ComfyUI state dict (ComfyUI-free).

Per quantized layer ``<l>`` a state dict holds ``<l>.weight`` (codes), ``<l>.weight_scale``, optional
``<l>.input_scale`` and one marker: ``<l>.comfy_quant`` (ComfyUI's native JSON, scale in ComfyUI's layout) when
stock ComfyUI can express the scheme, else ``<l>.dit_quant`` (uint8 JSON of ``Scheme.config()``, scale in this
pack's layout). The ops class reads both markers and writes the same rule back, so a natively loaded layer is
saved natively.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...kernels import reference as ref
from ..schemes import Scheme, from_config
from . import comfy_native
from .checkpoint import QuantizedCheckpoint

PACK_MARKER = "dit_quant"
NATIVE_MARKER = comfy_native.MARKER_SUFFIX.lstrip(".")
MARKERS = (PACK_MARKER, NATIVE_MARKER)


@dataclass
class LayerTensors:
    """A quantized layer in this pack's layout."""

    scheme: Scheme
    weight: torch.Tensor
    weight_scale: torch.Tensor
    input_scale: torch.Tensor | None = None


def encode_layer(layer: LayerTensors) -> dict[str, torch.Tensor]:
    """Suffix → tensor entries (``weight``, ``weight_scale``, ``input_scale``?, marker) for one layer."""
    out = {"weight": layer.weight}
    native = comfy_native.native_config(layer.scheme, tuple(layer.weight_scale.shape))
    if native is not None:
        out["weight_scale"] = comfy_native.scale_to_disk(native, layer.weight_scale)
        out[NATIVE_MARKER] = comfy_native.encode_config(native)
    else:
        out["weight_scale"] = layer.weight_scale
        out[PACK_MARKER] = comfy_native.encode_config(layer.scheme.config())
    if layer.input_scale is not None:
        out["input_scale"] = layer.input_scale
    return out


def decode_layer(parts: dict[str, torch.Tensor], name: str = "") -> LayerTensors | None:
    """The inverse of ``encode_layer`` (None when ``parts`` has no marker: a plain layer)."""
    weight, scale = parts.get("weight"), parts.get("weight_scale")
    if PACK_MARKER in parts:
        scheme = from_config(comfy_native.decode_config(parts[PACK_MARKER]))
    elif NATIVE_MARKER in parts:
        cfg = comfy_native.decode_config(parts[NATIVE_MARKER])
        scheme = comfy_native.scheme_from_native(cfg, "state dict", name)
        if scale is not None and weight is not None:
            scale = comfy_native.scale_from_disk(cfg, scale, weight.shape[0])
    else:
        return None
    if weight is None or scale is None:
        raise ValueError(f"quantized layer {name!r}: weight and weight_scale are required")
    if weight.dtype != scheme.weight_dtype:
        weight = weight.view(scheme.weight_dtype) if weight.dtype == torch.uint8 else weight.to(scheme.weight_dtype)
    return LayerTensors(scheme, weight, scale.float(), parts.get("input_scale"))


def checkpoint_to_state_dict(ckpt: QuantizedCheckpoint) -> dict[str, torch.Tensor]:
    """A ``QuantizedCheckpoint`` as a marked state dict (what the ops class loads)."""
    sd = dict(ckpt.tensors)
    for name, scheme in ckpt.layers.items():
        t = ckpt.layer_tensors(name)
        for part in ("weight", "weight_scale", "input_scale"):
            sd.pop(f"{name}.{part}", None)
        layer = LayerTensors(scheme, t["weight"], t["weight_scale"], t.get("input_scale"))
        sd.update({f"{name}.{k}": v for k, v in encode_layer(layer).items()})
    return sd


def state_dict_to_checkpoint(sd: dict[str, torch.Tensor]) -> QuantizedCheckpoint:
    """A marked state dict (e.g. the ops model's ``state_dict()``) as a ``QuantizedCheckpoint``."""
    tensors = dict(sd)
    layers: dict[str, Scheme] = {}
    for key in [k for k in sd if k.rpartition(".")[2] in MARKERS]:
        name = key.rpartition(".")[0]
        parts = {p: tensors.pop(f"{name}.{p}") for p in ("weight", "weight_scale", "input_scale", *MARKERS)
                 if f"{name}.{p}" in tensors}
        layer = decode_layer(parts, name)
        assert layer is not None
        layers[name] = layer.scheme
        tensors[f"{name}.weight"], tensors[f"{name}.weight_scale"] = layer.weight, layer.weight_scale
        if layer.input_scale is not None:
            tensors[f"{name}.input_scale"] = layer.input_scale
    return QuantizedCheckpoint(tensors, layers, "dit_quant" if layers else "plain")


def full_scale(scheme: Scheme, scale: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """A scale that broadcasts against the ``[N, K]`` codes."""
    if scheme.block is not None:
        return ref.expand_blocks(scale.float().reshape(ref.ceil_div(n, scheme.block[0]), -1), n, k, *scheme.block)
    return scale.float().reshape(()) if scale.numel() == 1 else scale.float().reshape(n, 1)


def requantize_with_scale(scheme: Scheme, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Codes for ``weight`` under an existing scale (values beyond its range saturate): for in-place updates."""
    s = full_scale(scheme, scale.to(weight.device), *weight.shape)
    return ref.cast_int8(weight, s) if scheme.weight_dtype == torch.int8 else ref.cast_fp8(weight, s)
