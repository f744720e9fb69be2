"""The scheme widget's choices (the registry's labels) and the "auto" pick per device (ComfyUI-free)."""

from __future__ import annotations

from .schemes import CHOICES, Scheme, choice

SCHEME_LABELS = ("auto", *(c.label for c in CHOICES))
USES_BLOCK = tuple(c.label for c in CHOICES if c.uses_block)


def _label(key: str) -> str:
    return choice(key).label


def auto_scheme_name(device_type: str, capability: tuple[int, int] | None = None) -> tuple[str, str]:
    """(widget label, reason) of the best scheme for a device type; ``capability`` is CUDA's (major, minor)."""
    if device_type == "cuda" and capability is not None:
        sm = f"sm_{capability[0]}{capability[1]}"
        if capability >= (8, 9):
            return _label("fp8_channel"), f"{sm} has FP8 tensor cores"
        if capability >= (8, 0):
            return _label("int8"), f"{sm} has INT8 but no FP8 tensor cores"
        return _label("fp8_weight_only"), f"{sm}: no FP8/INT8 GEMM path"
    if device_type == "npu":
        return _label("int8"), "Ascend NPUs run INT8 W8A8"
    return _label("fp8_weight_only"), f"{device_type}: halves weight memory, compute stays high precision"


def build_scheme(label: str, block_size: str) -> Scheme:
    """The scheme for a widget label (not "auto"); raises ValueError on a bad block size."""
    c = choice(label)
    return c.build(block_size if c.uses_block else None)
