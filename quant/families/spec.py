"""Shared types of the family modules: what a detection returns and what a family provides."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .keymap import KeyMap

Shapes = Mapping[str, Sequence[int]]
NAMINGS: tuple[str, ...] = ("comfyui", "diffusers")
PRESETS: tuple[str, ...] = ("default", "none", "quality")


class UnknownFamilyError(ValueError):
    """The keys belong to no supported model family."""


@dataclass(frozen=True)
class DetectedModel:
    """What ``detect_family`` found in a state dict (sizes are None when not found)."""

    family: str  # "wan" | "qwen_image" | "hunyuan_video15"
    variant: str  # "t2v_14b", "i2v_14b", "ti2v_5b", "vace_14b", "qwen_image", "hunyuan_video15_sr", ...
    naming: str  # "comfyui" | "diffusers"
    prefix: str = ""  # stripped from every key, e.g. "model.diffusion_model."
    comfy_model: str = ""  # ComfyUI model_base class: "WAN21", "WAN22", "QwenImage", ...
    dim: int | None = None  # hidden size
    num_blocks: int | None = None  # main transformer blocks (not VACE / refiner blocks)
    in_channels: int | None = None  # latent channels in (patch embedding input, per patch position)
    out_channels: int | None = None  # latent channels out
    note: str = ""

    def describe(self) -> str:
        """One line for logs and the UI."""
        sizes = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("dim", self.dim),
                ("blocks", self.num_blocks),
                ("in", self.in_channels),
                ("out", self.out_channels),
            )
            if v is not None
        )
        label = FAMILY_LABELS.get(self.family, self.family)
        where = f", prefix {self.prefix!r}" if self.prefix else ""
        note = f"; {self.note}" if self.note else ""
        return f"{label} [{self.variant}] ({sizes}; {self.naming} names{where}){note}"


FAMILY_LABELS: dict[str, str] = {
    "wan": "Wan 2.1/2.2",
    "qwen_image": "Qwen-Image",
    "hunyuan_video15": "HunyuanVideo 1.5",
}


@dataclass(frozen=True)
class FamilySpec:
    """Everything the pack knows about one family."""

    name: str
    label: str
    detect: Callable[[Shapes], DetectedModel | None]  # keys already without prefix
    anchors: tuple[str, ...]  # keys whose presence suggests the family (used to find a prefix)
    keymap: KeyMap
    preset: Callable[[str, str, int | None], list[str]]  # (preset, naming, num_blocks) -> patterns
    # naming -> patterns, a subset of the "default" preset: layers whose matmul M is the batch size (modulation).
    # Activation quantization buys nothing there, so the default preset stores them FP8 weight-only instead.
    weight_only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def count_blocks(shapes: Shapes, container: str) -> int | None:
    """Number of ``<container>.<i>.`` blocks (max index + 1), or None when there are none."""
    rx = re.compile(rf"^{re.escape(container)}\.(\d+)\.")
    idx = [int(m.group(1)) for k in shapes if (m := rx.match(k))]
    return max(idx) + 1 if idx else None


def out_per_patch(shapes: Shapes, head_key: str, conv_key: str) -> int | None:
    """Output features of ``head_key`` divided by the patch volume of the patch-embedding ``conv_key``."""
    out, conv = shapes.get(head_key), shapes.get(conv_key)
    if out is None or conv is None or len(out) == 0:
        return None
    volume = 1
    for p in conv[2:]:
        volume *= int(p)
    return int(out[0]) // volume


def dim_at(shapes: Shapes, key: str, axis: int) -> int | None:
    """``shapes[key][axis]`` or None when the key or axis is missing."""
    shape = shapes.get(key)
    if shape is None:
        return None
    try:
        return int(shape[axis])
    except IndexError:
        return None


def block_preset(name: str, default: Sequence[str], blocks: str, num_blocks: int | None) -> list[str]:
    """``none`` → []; ``default`` → ``default``; ``quality`` → ``default`` plus the first and (when the count is
    known) the last transformer block of the ``blocks`` container."""
    if name == "none":
        return []
    out = list(default)
    if name == "quality":
        out.append(f"{blocks}.0")
        if num_blocks and num_blocks > 1:
            out.append(f"{blocks}.{num_blocks - 1}")
    return out
