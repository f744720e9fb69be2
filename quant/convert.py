"""Streaming conversion of a high-precision safetensors checkpoint into a quantized one.

Tensors are read one at a time with plain file reads and written straight to the output (header first, from a
plan computed from the input header), so peak host memory is about one tensor, never the whole model. The
output appears atomically: on any error (bad input, NaN weight, interruption) no output file is left.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from .families import DetectedModel, UnknownFamilyError, detect_family
from .finite import all_finite
from .formats import comfy_native, foreign, layer_marker
from .formats.io import detect_format, resolve_write_format
from .formats.pack_format import pack_metadata
from .formats.safetensors_io import (
    CheckpointError,
    SafetensorsWriter,
    atomic_output,
    read_header,
    read_tensor,
)
from .formats.shards import refuse_shard
from .plan import plan_state_dict
from .report import QuantReport
from .schemes import NonFiniteWeightError, Scheme

log = logging.getLogger("comfyui_dit_quant")

ProgressFn = Callable[[int, int, str], None]


@dataclass
class ConvertResult:
    report: QuantReport
    format: str
    family: DetectedModel | None
    layers: dict[str, Scheme] = field(default_factory=dict)


def convert_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    scheme: Scheme,
    *,
    family: str = "auto",
    preset: str = "default",
    ignore: str | Iterable[str] | None = None,
    fmt: str = "auto",
    min_features: int = 16,
    progress: ProgressFn | None = None,
) -> ConvertResult:
    """Quantize every eligible Linear weight of ``src`` into ``dst``.

    ``family="auto"`` detects the model family from the keys (unknown → error) and applies its ``preset``
    ignore list; ``family="none"`` skips detection and presets. ``ignore`` adds patterns (``quant.ignore``
    syntax), matched against layer names without the checkpoint's key prefix.
    """
    src, dst = str(src), str(dst)
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError(f"{src}: output must be a different file than the input")
    header = read_header(src)
    refuse_shard(src)
    existing = detect_format(header)
    if existing == foreign.FORMAT:
        raise foreign.error(header)
    if existing != "plain":
        raise CheckpointError(f"{src}: already quantized ({existing} format); load it as it is instead of "
                              "converting it again")
    try:
        detected = None if family == "none" else detect_family(header.shapes())
    except UnknownFamilyError as e:
        raise UnknownFamilyError(f"{src}: {e}. To quantize it anyway, skip detection and presets with --family none "
                                 "(family='none'), listing the layers to keep with --ignore") from None
    shapes = {k: (i.shape, i.torch_dtype) for k, i in header.tensors.items()}
    layers, report = plan_state_dict(shapes, scheme, detected, preset, ignore, min_features)
    report.bytes_before = sum(i.nbytes for i in header.tensors.values())

    configs = {layer: layer_marker.disk_config(s, *header.tensors[f"{layer}.weight"].shape)
               for layer, s in layers.items()}
    native_ok = all(layer_marker.stock_runs(c) for c in configs.values()) and comfy_native.native_config(
        scheme, tuple(scheme.empty_tensors(16, 16)["weight_scale"].shape)) is not None
    out_fmt = resolve_write_format(fmt, native_ok)

    plan: list[tuple[str, torch.dtype, tuple[int, ...]]] = []
    for key in sorted(header.tensors):
        info = header.tensors[key]
        layer = key[: -len(".weight")] if key.endswith(".weight") else None
        if layer in layers:
            stored = layer_marker.to_disk(configs[layer], layers[layer].empty_tensors(*info.shape))
            plan += [(f"{layer}.{part}", t.dtype, tuple(t.shape)) for part, t in stored.items()]
        else:
            if info.torch_dtype is None:
                raise CheckpointError(f"{src}: key {key!r} has unsupported dtype {info.dtype}")
            plan.append((key, info.torch_dtype, info.shape))

    metadata = dict(header.metadata)
    metadata["quantized_by"] = "comfyui-dit-quant"
    if out_fmt == "dit_quant":
        metadata.update(pack_metadata(layers))

    done = 0
    with open(src, "rb") as fin, atomic_output(dst) as fout:
        writer = SafetensorsWriter(fout, plan, metadata)
        for key in sorted(header.tensors):
            tensor = read_tensor(fin, header, key)
            if not all_finite(tensor):
                raise CheckpointError(f"{src}: key {key!r} contains NaN or inf; refusing to quantize")
            layer = key[: -len(".weight")] if key.endswith(".weight") else None
            if layer not in layers:
                writer.write(key, tensor)
                continue
            try:
                stored = layer_marker.to_disk(configs[layer], layers[layer].quantize(tensor))
            except NonFiniteWeightError as e:
                raise CheckpointError(f"{src}: key {key!r}: {e}") from e
            for part, t in stored.items():
                writer.write(f"{layer}.{part}", t)
            done += 1
            if progress is not None:
                progress(done, len(layers), layer)
            del tensor, stored
        writer.close()
    report.bytes_after = sum(torch.Size(shape).numel() * dtype.itemsize for _, dtype, shape in plan)
    log.info("%s -> %s: %d layers quantized (%s), %d kept, format %s", src, dst, len(layers),
             report.scheme, len(report.skipped), out_fmt)
    return ConvertResult(report, out_fmt, detected, layers)

