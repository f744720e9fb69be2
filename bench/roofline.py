"""Roofline times for one linear: what a scheme's kernels could take at the GPU's datasheet peaks, activation
quantization included, so a measured time is judged against the limit and not only against bf16.

Model (dense, no reuse beyond one read of each operand): activation quantization (FP8 / INT8 schemes) reads the
bf16 [M, K] input and writes its 1-byte codes and scales, bandwidth-bound; the GEMM then moves its operands
(codes or bf16 input, the weight as stored, bias, the bf16 [M, N] output) and does 2·M·N·K operations at the peak
of its compute type; its time is max(compute, memory). Weight-only computes in bf16 (Triton converts codes in
registers); ``dequant_mm`` first writes the bf16 weight and reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peaks:
    """Dense datasheet peaks: TFLOP/s (bf16, fp8), TOP/s (int8), TB/s (memory)."""

    bf16: float
    fp8: float | None
    int8: float | None
    hbm: float


# Matched against the lower-cased device name, first hit wins (docs: ../shared/notes/kernels.md, "Peaks").
PEAKS: list[tuple[str, Peaks]] = [
    ("h200", Peaks(989, 1979, 1979, 4.8)),
    ("h100", Peaks(989, 1979, 1979, 3.35)),
    ("l40s", Peaks(362, 733, 733, 0.864)),
    ("4090", Peaks(165, 330, 661, 1.008)),
    ("a100", Peaks(312, None, 624, 2.039)),
    ("3090", Peaks(71, None, 284, 0.936)),
]

BF16, CODE, SCALE = 2, 1, 4  # bytes per element


def peaks_for(device_name: str) -> Peaks | None:
    name = device_name.lower()
    return next((p for key, p in PEAKS if key in name), None)


def weight_bytes(n: int, k: int, scheme: str, block: int = 128) -> int:
    """Bytes of one layer's stored weight and scales under ``scheme`` (a benchmark label)."""
    if scheme in ("bf16", "comfy_fp8_fast"):
        return n * k * (BF16 if scheme == "bf16" else CODE) + (SCALE if scheme != "bf16" else 0)
    if scheme.endswith("block"):
        return n * k * CODE + -(-n // block) * -(-k // block) * SCALE
    if scheme == "fp8_tensor":
        return n * k * CODE + SCALE
    return n * k * CODE + n * SCALE  # per-channel: fp8_channel, int8, fp8_weight_only


def roofline_ms(m: int, n: int, k: int, scheme: str, backend: str, peaks: Peaks) -> float | None:
    """Roofline milliseconds of ``scheme`` (a benchmark label) through ``backend``; None without the peak."""
    out = m * n * BF16 + n * BF16  # output + bias
    weight = weight_bytes(n, k, scheme)
    ops = 2.0 * m * n * k
    quant_s = 0.0
    if scheme == "bf16" or scheme.startswith("fp8_weight_only"):
        peak, act = peaks.bf16, m * k * BF16
        if backend == "dequant_mm":  # the bf16 weight written, then read by the GEMM
            quant_s = (weight + n * k * BF16) / (peaks.hbm * 1e12)
            weight = n * k * BF16
    else:
        peak = peaks.int8 if scheme == "int8" else peaks.fp8
        act = m * k * CODE
        scales = 0 if scheme in ("fp8_tensor", "comfy_fp8_fast") else \
            m * -(-k // 128) * SCALE if scheme.endswith("block") else m * SCALE
        quant_s = (m * k * BF16 + act + scales) / (peaks.hbm * 1e12)  # read bf16, write codes (+ scales)
    if peak is None:
        return None
    gemm_s = max(ops / (peak * 1e12), (act + weight + out) / (peaks.hbm * 1e12))
    return (quant_s + gemm_s) * 1e3
