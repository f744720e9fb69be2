"""Quantized files with ``weight_scale`` tensors and no marker at all (read only), as LightX2V writes them.

ModelTC/LightX2V's converter (``tools/convert/converter.py`` + ``quant/quant.py``, ``--quantized`` without
``--comfyui_mode``) writes, per quantized Linear ``<l>`` (original Wan names, ComfyUI's): ``<l>.weight`` int8
(``--linear_type int8``: round(w / s) clamped to [-128, 127], s = row amax / 127) or float8_e4m3fn (``fp8``: s = row
amax / 448) and ``<l>.weight_scale`` of shape ``[N, 1]`` in the source's dtype (bf16 for the official weights;
LightX2V casts it to float32 at load). No marker, no header entry. LightX2V runs them W8A8 with per-token dynamic
activations (``int8-vllm`` / ``fp8-vllm``), which is this pack's ``int8`` / ``fp8_channel``.

Read here: int8 codes + per-row (or one) scale -> ``int8``; e4m3 codes + per-row scale -> ``fp8_channel``; e4m3 codes
+ one scale -> ``fp8_tensor`` (with its ``input_scale`` if any). Anything else with a scale (block or 4-D scales,
e5m2 codes, packed 4-bit codes, NVFP4 / MXFP global scales) and int8 codes without a scale are refused by name:
reading codes as weights would be silently wrong.
"""

from __future__ import annotations

import torch

from ..schemes import FP8Channel, FP8Tensor, Int8, Scheme
from .checkpoint import layer_of
from .safetensors_io import CheckpointError, Header

FORMAT = "lightx2v"
SCALE = "weight_scale"
# Per-layer tensors of 4-bit layouts (LightX2V nvfp4 / mxfp*, ModelOpt NVFP4 / AWQ) that this pack does not run.
FOUR_BIT_PARTS = ("weight_global_scale", "input_global_scale", "weight_scale_2", "pre_quant_scale")
ONE_BYTE = ("I8", "U8", "F8_E4M3", "F8_E5M2")


def is_layout(header: Header) -> bool:
    """In a file without markers: some ``<l>.weight_scale`` next to 1-byte codes (or with no ``<l>.weight``), a
    4-bit layout's scale, or a 2-D int8 weight. A ``weight_scale`` beside a high-precision weight is some model's own
    parameter, not this layout."""
    for key, info in header.tensors.items():
        layer, _, part = key.rpartition(".")
        if part in FOUR_BIT_PARTS:
            return True
        if part == SCALE:
            weight = header.tensors.get(f"{layer}.weight")
            if weight is None or weight.dtype in ONE_BYTE:
                return True
        if part == "weight" and info.dtype == "I8" and len(info.shape) == 2:
            return True
    return False


def _refuse(path: str, layer: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: layer {layer!r}: {what}. This pack reads marker-less weight_scale files as LightX2V writes them "
        "(int8 or float8_e4m3fn codes with a per-row [N, 1] scale, or e4m3 with one scale); load this file with the "
        "tool that wrote it, or quantize the bf16 model with this pack")


def layer_scheme(path: str, layer: str, weight: torch.Tensor, scale: torch.Tensor | None
                 ) -> tuple[Scheme, torch.Tensor]:
    """(scheme, scale in this pack's layout: ``[N]`` float32 or a scalar) of one marker-less quantized layer."""
    n = weight.shape[0] if weight.dim() == 2 else -1
    if scale is None:
        raise _refuse(path, layer, f"{weight.dtype} codes have no {layer + '.weight_scale'!r}, so they cannot be "
                                   "dequantized")
    if weight.dim() != 2:
        raise _refuse(path, layer, f"{layer + '.weight_scale'!r} scales a {weight.dim()}-D tensor")
    if not scale.is_floating_point() or scale.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        raise _refuse(path, layer, f"{layer + '.weight_scale'!r} is {scale.dtype} {list(scale.shape)} (an MXFP / "
                                   "NVFP4 block-scale layout)")
    if weight.dtype == torch.float8_e4m3fn and scale.dim() == 4:
        raise _refuse(path, layer, f"{layer + '.weight_scale'!r} has the 4-D block shape {list(scale.shape)} of a "
                                   "NVIDIA ModelOpt FP8_PB_WO export: load it with the ModelOpt Checkpoint Loader")
    per_row = scale.numel() == n and list(scale.shape) in ([n], [n, 1])
    one = scale.numel() == 1 and scale.dim() <= 1
    if weight.dtype == torch.int8 and (per_row or one):
        s = scale.float().reshape(-1)
        return Int8(), (s.expand(n).clone() if one else s)
    if weight.dtype == torch.float8_e4m3fn and per_row:
        return FP8Channel(), scale.float().reshape(n)
    if weight.dtype == torch.float8_e4m3fn and one:
        return FP8Tensor(), scale.float().reshape(())
    raise _refuse(path, layer, f"{weight.dtype} {list(weight.shape)} codes with a {scale.dtype} "
                               f"{list(scale.shape)} weight_scale are not a layout this pack knows")


def read_layers(tensors: dict[str, torch.Tensor], path: str) -> dict[str, Scheme]:
    """Layers of a marker-less file (scales converted in place); ``CheckpointError`` naming the layer otherwise."""
    for key in tensors:
        part = key.rpartition(".")[2]
        if part in FOUR_BIT_PARTS:
            raise _refuse(path, layer_of(key), f"{key!r} belongs to a 4-bit (NVFP4 / MXFP / AWQ) layout, which this "
                                               "pack does not run")
    layers: dict[str, Scheme] = {}
    for key in sorted(k for k in tensors if k.endswith("." + SCALE)):
        layer = layer_of(key)
        w = tensors.get(f"{layer}.weight")
        if w is None:
            raise _refuse(path, layer, f"{key!r} has no {layer + '.weight'!r} to scale")
        if w.is_floating_point() and w.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
            raise _refuse(path, layer, f"{key!r} scales a {w.dtype} weight, which holds no codes")
        layers[layer], tensors[key] = layer_scheme(path, layer, w, tensors[key])
    for key, t in tensors.items():
        layer = layer_of(key)
        if key.endswith(".weight") and t.dim() == 2 and t.dtype in (torch.int8, torch.uint8) and layer not in layers:
            layer_scheme(path, layer, t, None)  # raises: codes without a scale
    for key in [k for k in tensors if k.endswith(".input_scale")]:
        layer = layer_of(key)
        if not isinstance(layers.get(layer), FP8Tensor):
            raise _refuse(path, layer, f"{key!r} is a static activation scale, but the layer is "
                                       f"{layers[layer].describe() if layer in layers else 'not quantized'}")
        if tensors[key].is_floating_point() and tensors[key].numel() == 1:
            tensors[key] = tensors[key].float().reshape(())
    return layers


def header_schemes(header: Header) -> dict[str, str]:
    """Layer -> scheme description from the header alone (shapes and dtypes on the meta device; nothing read)."""
    tensors = {k: torch.empty(i.shape, dtype=i.torch_dtype, device="meta") for k, i in header.tensors.items()
               if i.torch_dtype is not None}
    return {n: s.describe() for n, s in read_layers(tensors, header.path).items()}
