"""The scheme widget's choices and the "auto" pick per device (ComfyUI-free)."""

from __future__ import annotations

from ..quant.schemes import Scheme, get_scheme

# widget label → (scheme name, options without block_size)
SCHEME_CHOICES: dict[str, tuple[str, dict]] = {
    "fp8 per-tensor": ("fp8_tensor", {}),
    "fp8 per-token x channel": ("fp8_channel", {}),
    "fp8 block": ("fp8_block", {}),
    "fp8 weight-only (per-channel)": ("fp8_weight_only", {"granularity": "channel"}),
    "fp8 weight-only (block)": ("fp8_weight_only", {"granularity": "block"}),
    "int8 W8A8": ("int8", {}),
}
SCHEME_LABELS = ("auto", *SCHEME_CHOICES)
USES_BLOCK = ("fp8 block", "fp8 weight-only (block)")


def auto_scheme_name(device_type: str, capability: tuple[int, int] | None = None) -> tuple[str, str]:
    """(widget label, reason) of the best scheme for a device type; ``capability`` is CUDA's (major, minor)."""
    if device_type == "cuda" and capability is not None:
        if capability >= (8, 9):
            return "fp8 per-token x channel", f"sm_{capability[0]}{capability[1]} has FP8 tensor cores"
        if capability >= (8, 0):
            return "int8 W8A8", f"sm_{capability[0]}{capability[1]} has INT8 but no FP8 tensor cores"
        return "fp8 weight-only (per-channel)", f"sm_{capability[0]}{capability[1]}: no FP8/INT8 GEMM path"
    if device_type == "npu":
        return "int8 W8A8", "Ascend NPUs run INT8 W8A8"
    return "fp8 weight-only (per-channel)", f"{device_type}: halves weight memory, compute stays high precision"


def build_scheme(label: str, block_size: str) -> Scheme:
    """The scheme for a widget label (not "auto"); raises ValueError on a bad block size."""
    name, options = SCHEME_CHOICES[label]
    if label in USES_BLOCK:
        options = {**options, "block_size": block_size}
    return get_scheme(name, **options)
