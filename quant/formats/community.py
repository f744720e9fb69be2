"""The per-layer ``comfy_quant`` format names silveroxides/convert_to_quant writes (and stock ComfyUI does not run).

Per layer ``<l>``, next to the ``<l>.comfy_quant`` JSON marker:
- ``{"format": "float8_e4m3fn_rowwise"}``: e4m3 codes [N, K], ``weight_scale`` float32 [N] (one dequant multiplier
  per output row; [N, 1] is read too).
- ``{"format": "float8_e4m3fn_blockwise", "group_size": G}``: e4m3 codes, ``weight_scale`` float32 [N/G, K/G]
  (square G x G tiles; convert_to_quant requires N and K multiples of G and defaults G to 64). Its block converter
  falls back to per-row scales [N] for a layer whose shape G does not divide, still under this name: read as rowwise.
- ``{"format": "int8_blockwise", "group_size": G}``: int8 codes with G x G scales and INT8 activations per 1 x G
  group. This pack has no INT8 block scheme: refused by name.
convert_to_quant writes a dummy ``input_scale`` of 1.0 next to some layers; its loader runs rowwise and blockwise
layers by dequantizing the weight (a high-precision matmul), so without this pack's header such a layer is read as
``fp8_weight_only`` (channel / block G x G) with no input scale: the same math. ``full_precision_matrix_mult`` may
accompany any of them.

This pack writes its fp8_channel, channel-granular fp8_weight_only and square, evenly dividing block layers under
these names (the activation scheme goes into the ``comfyui_dit_quant`` header), so stock ComfyUI refuses them by
name: ``QUANT_ALGOS[format]`` raises a KeyError naming the format.
"""

from __future__ import annotations

from typing import Any

from ...kernels import reference as ref
from ..schemes import FP8Channel, FP8WeightOnly, Scheme
from .safetensors_io import CheckpointError

ROWWISE = "float8_e4m3fn_rowwise"
BLOCKWISE = "float8_e4m3fn_blockwise"
INT8_BLOCKWISE = "int8_blockwise"
NAMES = (ROWWISE, BLOCKWISE, INT8_BLOCKWISE)
DEFAULT_GROUP = 64  # convert_to_quant's fallback when a blockwise marker has no group_size


def community_config(scheme: Scheme, out_features: int, in_features: int) -> dict[str, Any] | None:
    """The convert_to_quant name for a layer of this scheme and shape, or None when no name fits it."""
    per_row = isinstance(scheme, FP8Channel) or (isinstance(scheme, FP8WeightOnly) and scheme.granularity == "channel")
    block = scheme.block
    if per_row:
        cfg: dict[str, Any] = {"format": ROWWISE}
    elif (block is not None and scheme.weight_dtype == ref.FP8_DTYPE and block[0] == block[1]
          and out_features % block[0] == 0 and in_features % block[1] == 0):
        cfg = {"format": BLOCKWISE, "group_size": block[0]}
    else:
        return None
    if not scheme.quantizes_activations:
        cfg["full_precision_matrix_mult"] = True
    return cfg


def _group_size(config: dict[str, Any], path: str, layer: str) -> int:
    g = config.get("group_size", DEFAULT_GROUP)
    if isinstance(g, bool) or not isinstance(g, int):
        raise CheckpointError(f"{path}: layer {layer!r}: {config.get('format')} group_size {g!r} is not an integer")
    return g


def scheme_from_community(config: dict[str, Any], path: str, layer: str,
                          scale_shape: tuple[int, ...] | None = None) -> Scheme:
    """The scheme that computes what convert_to_quant's loader computes for this layer (raises on int8_blockwise)."""
    fmt = config.get("format")
    if fmt == ROWWISE:
        return FP8WeightOnly("channel")
    if fmt == BLOCKWISE:
        g = _group_size(config, path, layer)
        if scale_shape is not None and len(scale_shape) == 1:
            return FP8WeightOnly("channel")  # convert_to_quant's per-row fallback for a shape G does not divide
        try:
            return FP8WeightOnly("block", (g, g))
        except ValueError as e:
            raise CheckpointError(f"{path}: layer {layer!r}: {BLOCKWISE} group_size {g}: {e}") from e
    if fmt == INT8_BLOCKWISE:
        raise CheckpointError(f"{path}: layer {layer!r} uses convert_to_quant's {INT8_BLOCKWISE!r} format (INT8 "
                              "weights in G x G blocks, INT8 activations per group), which this pack does not run: "
                              "its INT8 scheme is per-channel; quantize the high-precision model with scheme int8")
    raise CheckpointError(f"{path}: layer {layer!r}: {fmt!r} is not a convert_to_quant format")


def scale_from_disk(config: dict[str, Any], scale: Any) -> Any:
    """Rowwise scales as this pack's [N] (``[N, 1]`` flattened); block scales as they are (a [N/G, 1] grid stays)."""
    if config.get("format") == ROWWISE and scale.dim() == 2 and scale.shape[1] == 1:
        return scale.reshape(-1)
    return scale
