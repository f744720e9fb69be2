"""A ModelOpt export ready for ComfyUI (ComfyUI-free): read, detect the family, map to ComfyUI names, report.

Shared by the "ModelOpt Checkpoint Loader" node and ``inspect``.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

from .families import UnknownFamilyError, detect_family
from .formats.checkpoint import QuantizedCheckpoint
from .formats.modelopt import ModelOptExport, read_modelopt
from .modelopt_keys import to_comfyui_names
from .report import LayerRecord, QuantReport
from .schemes import FP8Block, FP8WeightOnly, Scheme

COMPUTE_CHOICES = ("as exported", "block W8A8")


@dataclass
class LoadedExport:
    checkpoint: QuantizedCheckpoint  # ComfyUI names
    export: ModelOptExport
    family: str  # DetectedModel.describe()
    report: QuantReport
    notes: list[str] = field(default_factory=list)


def ignored_but_quantized(export: ModelOptExport) -> list[str]:
    """Layers the config's ``ignore`` names that the tensors say are quantized (the tensors win)."""
    pats = [p[:-2] + "*" if p.endswith(".*") else p for p in export.config.ignore]
    return [n for n in export.checkpoint.layers if any(fnmatch.fnmatchcase(n, p) or n == p for p in pats)]


def with_compute(layers: dict[str, Scheme], tensors: dict, compute: str) -> tuple[dict[str, Scheme], int]:
    """``block W8A8``: block weight-only layers run as fp8_block (same tensors) where the shape allows."""
    if compute not in COMPUTE_CHOICES:
        raise ValueError(f"compute {compute!r}: expected one of {COMPUTE_CHOICES}")
    if compute == "as exported":
        return layers, 0
    out, n = dict(layers), 0
    for name, s in layers.items():
        if isinstance(s, FP8WeightOnly) and s.block is not None:
            alt = FP8Block(s.block)
            if alt.unsupported_reason(*tensors[f"{name}.weight"].shape) is None:
                out[name], n = alt, n + 1
    return out, n


def load_export(path: str | os.PathLike, component: str = "transformer", compute: str = "as exported"
                ) -> LoadedExport:
    """Read + map an export; ``KeyMapError`` / ``CheckpointError`` / ``UnknownFamilyError`` name the problem."""
    export = read_modelopt(path, component)
    src = export.checkpoint
    try:
        detected = detect_family({k: tuple(v.shape) for k, v in src.tensors.items()})
    except UnknownFamilyError as e:
        raise UnknownFamilyError(f"{path}: {e}") from None
    notes = list(export.notes)
    if detected.naming == "diffusers":
        ckpt, map_notes = to_comfyui_names(src, detected.family)
        notes += map_notes
    else:
        ckpt = src
    ckpt.layers, switched = with_compute(ckpt.layers, ckpt.tensors, compute)
    if switched:
        notes.append(f"{switched} block weight-only layers run as block W8A8")
    overruled = ignored_but_quantized(export)
    if overruled:
        notes.append(f"{len(overruled)} layer(s) listed in 'ignore' hold float8 weights: loaded quantized "
                     f"({overruled[0]}, ...)")
    schemes = sorted({s.describe() for s in ckpt.layers.values()})
    report = QuantReport(scheme=f"ModelOpt {export.config.quant_algo}: " + ", ".join(schemes))
    for name, s in ckpt.layers.items():
        report.quantized.append(LayerRecord(name, tuple(ckpt.tensors[f"{name}.weight"].shape), s.name))
    for key, t in ckpt.tensors.items():
        layer = key.rpartition(".")[0]
        if key.endswith(".weight") and t.dim() == 2 and layer not in ckpt.layers:
            report.skipped.append(LayerRecord(layer, tuple(t.shape), reason="high precision in export"))
    report.bytes_before = sum(t.numel() * (2 if k.rpartition(".")[0] in ckpt.layers and k.endswith(".weight")
                                           else t.element_size()) for k, t in ckpt.tensors.items())
    report.bytes_after = sum(t.numel() * t.element_size() for t in ckpt.tensors.values())
    report.notes.extend(notes)
    return LoadedExport(ckpt, export, detected.describe(), report, notes)
