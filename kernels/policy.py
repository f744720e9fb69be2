"""Which backend runs a quantized linear: a pure function of ``DeviceCaps``, scheme, shape and request.

Backend names (also what the quantization report shows per layer):

- ``scaled_mm_tensorwise`` / ``scaled_mm_rowwise`` / ``scaled_mm_blockwise``: ``torch._scaled_mm`` (cuBLASLt on
  CUDA, the CPU kernel on CPU) with per-tensor, per-token x per-channel or 1x128 x 128x128 scales.
- ``int_mm``: ``torch._int_mm`` with the per-token x per-channel scales and bias applied after.
- ``dequant_mm``: weight dequantized to the activation dtype, then ``F.linear`` (weight-only without Triton).
- ``triton_block``, ``triton_scaled`` (per-tensor / per-token FP8), ``triton_int8``, ``triton_weight_only``: the
  bundled Triton kernels (CUDA only).
- ``npu_quant_matmul``: Ascend NPU INT8 (``torch_npu.npu_dynamic_quant`` + ``npu_quant_matmul``, ``npu_backend``).
- ``eager``: the float32 reference (``kernels.reference``), which runs everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import npu_backend
from .caps import DeviceCaps

GEMM_ALIGN = 16
TORCH_BACKENDS = ("scaled_mm_tensorwise", "scaled_mm_rowwise", "scaled_mm_blockwise", "int_mm", "dequant_mm")
TRITON_BACKENDS = ("triton_block", "triton_scaled", "triton_int8", "triton_weight_only")
NPU_BACKENDS = ("npu_quant_matmul",)
IMPLEMENTATIONS = (*TORCH_BACKENDS, *TRITON_BACKENDS, *NPU_BACKENDS, "eager")
# Requests a user can make (QuantLinear.backend, node widgets): "cublas" and "torch" both mean the torch paths.
REQUESTS = ("auto", "cublas", "torch", "triton", "eager")
CUBLAS_BLOCK = (128, 128)


@dataclass(frozen=True)
class Choice:
    backend: str
    note: str = ""  # why this is a fallback ("" when it is the scheme's native fast path)


def candidates(caps: DeviceCaps, scheme: str, n: int, k: int, block: tuple[int, int] | None) -> list[Choice]:
    """Backends this device can run for ``scheme``, best first; always ends with ``eager``."""
    out: list[Choice] = []
    fp8 = caps.fp8_tensor_cores
    if scheme == "fp8_tensor":
        if caps.scaled_mm:
            out.append(Choice("scaled_mm_tensorwise"))
        if caps.triton and fp8:
            out.append(Choice("triton_scaled"))
    elif scheme == "fp8_channel":
        if caps.scaled_mm_rowwise:
            out.append(Choice("scaled_mm_rowwise"))
        if caps.triton and fp8:
            out.append(Choice("triton_scaled"))
    elif scheme == "fp8_block":
        if caps.cublas_blockwise and block == CUBLAS_BLOCK and not (n % 128 or k % 128):
            out.append(Choice("scaled_mm_blockwise"))
        if caps.triton and fp8:
            out.append(Choice("triton_block"))
    elif scheme == "int8":
        if caps.npu_int8:
            why = npu_backend.unsupported_reason(n, k)
            if why is not None:
                return [Choice("eager", why)]
            out.append(Choice("npu_quant_matmul"))
        if caps.int_mm:
            out.append(Choice("int_mm"))
        if caps.triton:
            out.append(Choice("triton_int8"))
    if scheme == "fp8_weight_only" or (scheme.startswith("fp8") and caps.device_type == "cuda" and not fp8):
        note = "" if scheme == "fp8_weight_only" else "no FP8 tensor cores: weight-only FP8, activations unquantized"
        if caps.triton:
            out.append(Choice("triton_weight_only", note))
        if caps.device_type in ("cuda", "cpu"):
            out.append(Choice("dequant_mm", note))
    out.append(Choice("eager", "no fast path on this device" if caps.device_type == "cuda" else ""))
    return out


def choose(caps: DeviceCaps, scheme: str, n: int, k: int, block: tuple[int, int] | None = None,
           requested: str = "auto") -> Choice:
    """The backend for one layer. ``auto`` on CPU stays ``eager`` (the torch CPU kernels give the same numbers at
    the same speed; request ``torch`` to use them)."""
    if requested == "eager":
        return Choice("eager")
    if n % GEMM_ALIGN or k % GEMM_ALIGN:
        return Choice("eager", f"N={n}, K={k} not multiples of {GEMM_ALIGN}")
    options = candidates(caps, scheme, n, k, block)
    if requested == "auto":
        return Choice("eager") if caps.device_type == "cpu" else options[0]
    family = TRITON_BACKENDS if requested == "triton" else TORCH_BACKENDS
    for c in options:
        if c.backend in family:
            return c
    best = Choice("eager") if caps.device_type == "cpu" else options[0]
    return Choice(best.backend, f"requested {requested!r} is not available for {scheme} on {caps.describe()}")
