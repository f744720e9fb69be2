"""Quantized layouts of other tools that this pack does not read, recognised by their tensor names so such a file is
refused by name instead of loading as a plain model with its packed layers missing.

- ``<l>.qweight`` (+ ``wscales``, ``smooth_factor``, ``proj_down``, ``proj_up``): nunchaku SVDQuant
  (``SVDQW4A4Linear``, ``AWQW4A16Linear``), AutoAWQ / GPTQ;
- ``<l>.weight.absmax``, ``<l>.weight.quant_state.bitsandbytes__*``, ``<l>.SCB``: bitsandbytes NF4 / FP4 / LLM.int8;
- ``<l>.weight_packed`` (+ ``weight_shape``): llm-compressor / compressed-tensors pack-quantized (int4);
- ``<l>.weight._data`` + ``<l>.weight._scale``: optimum-quanto.
"""

from __future__ import annotations

from .safetensors_io import CheckpointError, Header

FORMAT = "foreign"
# (test on a key, the tool, what to load it with)
KINDS: tuple[tuple[str, str, str], ...] = (
    (".qweight", "nunchaku SVDQuant / AWQ / GPTQ 4-bit packed weights", "ComfyUI-nunchaku's loader (SVDQuant)"),
    (".weight.absmax", "bitsandbytes 4-bit (NF4 / FP4)", "a bitsandbytes-aware loader"),
    (".SCB", "bitsandbytes LLM.int8", "a bitsandbytes-aware loader"),
    (".weight_packed", "compressed-tensors pack-quantized (int4)", "vLLM / compressed-tensors"),
    (".weight._data", "optimum-quanto", "optimum-quanto"),
)


def kind(header: Header) -> tuple[str, str, str] | None:
    """(key, tool, what to use) for the first key of a layout listed above, or None."""
    for key in sorted(header.tensors):
        for suffix, tool, use in KINDS:
            if key.endswith(suffix) or (suffix == ".weight.absmax" and ".weight.quant_state." in key):
                return key, tool, use
    return None


def error(header: Header) -> CheckpointError:
    found = kind(header)
    assert found is not None
    key, tool, use = found
    return CheckpointError(f"{header.path}: key {key!r} belongs to {tool}, a layout this pack does not read (it "
                           f"reads bf16 / fp16 / fp32, FP8 and INT8 files); load it with {use}, or quantize the "
                           "bf16 model with this pack")
