"""``bench/roofline.py``: roofline times of a linear per scheme at datasheet peaks (H200, Wan-14B shapes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from roofline import peaks_for, roofline_ms, weight_bytes

H200 = peaks_for("NVIDIA H200")
M, N, K = 32760, 13824, 5120


def test_peaks_table() -> None:
    assert H200 is not None and (H200.bf16, H200.fp8, H200.hbm) == (989, 1979, 4.8)
    assert peaks_for("NVIDIA A100-SXM4-80GB").fp8 is None and peaks_for("Quadro P1000") is None


def test_bf16_is_compute_bound_at_the_peak() -> None:
    assert roofline_ms(M, N, K, "bf16", "F.linear", H200) == pytest.approx(2 * M * N * K / 989e12 * 1e3, rel=1e-9)


def test_fp8_roofline_includes_activation_quantization() -> None:
    gemm = 2 * M * N * K / 1979e12 * 1e3
    quant = (M * K * 3 + M * 4) / 4.8e12 * 1e3  # read bf16, write codes and per-token scales
    assert roofline_ms(M, N, K, "fp8_channel", "triton_scaled", H200) == pytest.approx(gemm + quant, rel=1e-9)
    ratio = roofline_ms(M, N, K, "bf16", "F.linear", H200) / roofline_ms(M, N, K, "fp8_channel", "x", H200)
    assert 1.85 < ratio < 1.95  # the 2.0x FP8 limit, less the quantization pass
    assert roofline_ms(M, N, K, "fp8_channel", "x", peaks_for("A100")) is None  # no FP8 peak


def test_small_m_is_memory_bound_and_weight_bytes() -> None:
    t = roofline_ms(16, N, K, "fp8_weight_only", "triton_weight_only", H200)
    assert t == pytest.approx((16 * K * 2 + N * K + N * 4 + 16 * N * 2 + N * 2) / 4.8e12 * 1e3, rel=1e-9)
    assert roofline_ms(16, N, K, "fp8_weight_only", "dequant_mm", H200) > 2.5 * t  # the bf16 weight round trip
    assert weight_bytes(N, K, "fp8_block") == N * K + 108 * 40 * 4
    assert weight_bytes(N, K, "bf16") == 2 * N * K
