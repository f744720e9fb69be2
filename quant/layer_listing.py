"""The layer list behind the "Pick layers…" dialog (ComfyUI-free; ``nodes/routes.py`` serves it).

Reads only a safetensors header: every weight with two or more dimensions (linear layers; conv kernels marked
as such), grouped by block, with the family's preset patterns that would keep each layer in high precision (and,
for the ones FP8 schemes store weight-only instead, the weight-only pattern) and the pattern of the node's current
``ignored_layers`` text that matches it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable

from .families import PRESETS, UnknownFamilyError, detect_family, preset_ignore, preset_weight_only
from .formats.safetensors_io import CheckpointError, Header, read_header
from .ignore import IgnoreMatcher

# Folders the route may read from (ComfyUI folder_paths names).
ALLOWED_FOLDERS = ("diffusion_models", "unet", "checkpoints", "vae", "text_encoders", "clip")
_BLOCK = re.compile(r"^(.*?\.\d+)\.")
# What one request may cost: real DiT headers are well under 1 MB (Wan 14B: ~0.2 MB).
MAX_ROUTE_HEADER = 16 * 1024 * 1024
MAX_IGNORED_TEXT = 64 * 1024


class LayerListingError(ValueError):
    """A request the route refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def resolve_model_file(folder: str, name: str, list_files: Callable[[str], list[str]],
                       full_path: Callable[[str, str], str | None]) -> str:
    """The path of ``name`` in a ComfyUI model folder; only names ComfyUI itself lists there are accepted."""
    if folder not in ALLOWED_FOLDERS:
        raise LayerListingError(f"folder must be one of {', '.join(ALLOWED_FOLDERS)}")
    if not name or "\x00" in name or not name.endswith(".safetensors"):
        raise LayerListingError("name must be a .safetensors file of the folder")
    if name not in list_files(folder):
        raise LayerListingError(f"{name!r} is not a file of {folder}", status=404)
    path = full_path(folder, name)
    if not path or not os.path.isfile(path):
        raise LayerListingError(f"{name!r} is not a file of {folder}", status=404)
    return path


def block_of(name: str) -> str:
    """The block a layer belongs to: ``blocks.3.self_attn.q`` → ``blocks.3``; ``head.head`` → ``head``."""
    m = _BLOCK.match(name)
    return m.group(1) if m else name.split(".", 1)[0]


def list_layers(path: str, ignored: str = "", max_header: int = MAX_ROUTE_HEADER) -> dict:
    """Family, presets and layers of the safetensors file at ``path`` (header only, at most ``max_header`` bytes;
    the ``ignored`` text is checked first, its regexes by ``quant.regex_guard``)."""
    if len(ignored) > MAX_IGNORED_TEXT:
        raise LayerListingError(f"ignored_layers: {len(ignored)} characters; at most {MAX_IGNORED_TEXT}", status=413)
    try:
        current = IgnoreMatcher(ignored)
    except ValueError as e:
        raise LayerListingError(f"ignored_layers: {e}") from None
    try:
        header = read_header(path, max_header=max_header)
    except CheckpointError as e:
        raise LayerListingError(str(e).replace(path, os.path.basename(path)), status=422) from None
    shapes = header.shapes()
    try:
        detected = detect_family(shapes)
    except UnknownFamilyError:
        detected = None
    prefix = detected.prefix if detected else ""
    presets: dict[str, list[str]] = {}
    weight_only: dict[str, list[str]] = {}
    if detected is not None:
        presets = {p: preset_ignore(detected.family, p, detected.naming, detected.num_blocks)
                   for p in PRESETS if p != "none"}
        weight_only = {p: wo for p in presets if (wo := preset_weight_only(detected.family, p, detected.naming))}
    matchers = {p: IgnoreMatcher(patterns) for p, patterns in presets.items()}
    wo_matchers = {p: IgnoreMatcher(patterns) for p, patterns in weight_only.items()}
    try:
        layers = _rows(header, prefix, matchers, wo_matchers, current)
    except ValueError as e:  # a layer name too long for a regex
        raise LayerListingError(f"ignored_layers: {e}", status=422) from None
    layers.sort(key=lambda r: _natural(r["name"]))
    return {"file": os.path.basename(path), "family": detected.describe() if detected else None,
            "family_id": detected.family if detected else None, "prefix": prefix, "presets": presets,
            "weight_only_presets": weight_only,
            "unused_patterns": current.unused(r["name"] for r in layers), "layers": layers}


def _rows(header: Header, prefix: str, matchers: dict[str, IgnoreMatcher], wo_matchers: dict[str, IgnoreMatcher],
          current: IgnoreMatcher) -> list[dict]:
    layers = []
    for key, info in header.tensors.items():
        if not key.endswith(".weight") or len(info.shape) < 2:
            continue
        name = key[: -len(".weight")]
        short = name[len(prefix):] if prefix and name.startswith(prefix) else name
        layers.append({
            "name": short, "block": block_of(short), "shape": list(info.shape), "dtype": info.dtype,
            "bytes": info.nbytes, "params": math.prod(info.shape),
            "kind": "linear" if len(info.shape) == 2 else "conv",
            "presets": {p: m.match(short) for p, m in matchers.items()},
            "weight_only": {p: hit for p, m in wo_matchers.items() if (hit := m.match(short))},
            "ignored_by": current.match(short),
        })
    return layers


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
