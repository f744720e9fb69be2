"""The one-time probes (``kernels.probe``) on the CPU: torch's CPU recipes are confirmed, and a Triton that is
importable but cannot run, or runs wrong, is switched off (the policy then takes the torch paths) instead of
failing at the first sampling step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from comfyui_dit_quant.kernels import reference as ref
from comfyui_dit_quant.kernels.caps import DeviceCaps, expected_caps
from comfyui_dit_quant.kernels.probe import probe_caps
from comfyui_dit_quant.kernels.table import choose

pytest.importorskip("triton")
CPU = torch.device("cpu")


def test_cpu_recipes_are_confirmed() -> None:
    caps = expected_caps("cpu", torch_version=(2, 13))
    assert caps.scaled_mm and caps.int_mm and not caps.triton
    result = probe_caps(caps, CPU)
    assert result == {f: True for f in result} and {"scaled_mm", "int_mm"} <= set(result)


def test_triton_that_cannot_run_is_switched_off() -> None:
    """Here the Triton kernels cannot launch (no GPU driver, no interpreter): the probe says no, it does not raise."""
    caps = DeviceCaps("cpu", None, (2, 13), triton=True)
    assert probe_caps(caps, CPU) == {"triton": False}
    ampere = DeviceCaps("cuda", (8, 0), (2, 13), triton=True, int_mm=True)
    assert choose(replace(ampere, triton=False), "fp8_channel", 5120, 5120).backend == "dequant_mm"
    assert choose(ampere, "fp8_channel", 5120, 5120).backend == "triton_weight_only"


@pytest.mark.parametrize("fp8", [False, True], ids=["ampere", "hopper"])
def test_triton_probe_checks_numbers(monkeypatch: pytest.MonkeyPatch, fp8: bool) -> None:
    from comfyui_dit_quant.kernels import triton_gemm as tg
    from comfyui_dit_quant.kernels import triton_quant as tq
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    calls: list[str] = []

    def weight_only(x, wq, ws, block, bias, dtype, cfg=None):
        calls.append("weight_only")
        return ref.weight_only_mm(x, wq, ws, block, bias, dtype)

    def block_mm(xq, wq, xs, ws, bn, bk, bias, dtype, cfg=None):
        calls.append("block")
        return ref.block_scaled_mm(xq, wq, xs, ws, bn, bk, bias, dtype)

    monkeypatch.setattr(tg, "weight_only_mm", weight_only)
    monkeypatch.setattr(tg, "block_scaled_mm", block_mm)
    monkeypatch.setattr(tq, "quant_fp8_per_group", ref.quant_fp8_per_group)
    monkeypatch.setattr(tt, "scaled_mm", lambda *a, **kw: calls.append("tma") or ref.scaled_mm(*a[:6]))
    caps = DeviceCaps("cuda", (9, 0) if fp8 else (8, 6), (2, 13), triton=True)
    assert probe_caps(caps, CPU) == {"triton": True}
    assert calls == (["weight_only", "block", "tma"] if fp8 else ["weight_only"])
    # a kernel that compiles but computes garbage is switched off too
    monkeypatch.setattr(tg, "block_scaled_mm" if fp8 else "weight_only_mm", lambda *a, **k: torch.zeros(32, 256))
    assert probe_caps(caps, CPU) == {"triton": False}


@pytest.mark.parametrize("failure", ["raises", "wrong numbers"])
def test_a_broken_tma_gemm_is_switched_off_not_triton(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """sm_90: the TMA GEMM is probed after the pointer kernels; when its launch raises (or its numbers are wrong)
    only TMA is switched off, ``triton_gemm`` then never launches it, and Triton stays on."""
    from comfyui_dit_quant.kernels import triton_gemm as tg
    from comfyui_dit_quant.kernels import triton_quant as tq
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    def broken(*args, **kwargs):
        if failure == "raises":
            raise RuntimeError("TMA descriptor rejected by the driver")
        return torch.zeros(32, 256, dtype=torch.bfloat16)

    monkeypatch.setattr(tg, "weight_only_mm", lambda x, wq, ws, block, bias, dtype, cfg=None:
                        ref.weight_only_mm(x, wq, ws, block, bias, dtype))
    monkeypatch.setattr(tg, "block_scaled_mm", lambda xq, wq, xs, ws, bn, bk, bias, dtype, cfg=None:
                        ref.block_scaled_mm(xq, wq, xs, ws, bn, bk, bias, dtype))
    monkeypatch.setattr(tq, "quant_fp8_per_group", ref.quant_fp8_per_group)
    monkeypatch.setattr(tt, "scaled_mm", broken)
    tt.enable()
    try:
        a = torch.zeros(64, 128, dtype=torch.float8_e4m3fn)
        assert tg._tma_usable(a, a, (9, 0))
        assert probe_caps(DeviceCaps("cuda", (8, 9), (2, 13), triton=True), CPU) == {"triton": True}
        assert tt.disabled() is None  # Ada: no TMA kernel, nothing probed
        assert probe_caps(DeviceCaps("cuda", (9, 0), (2, 13), triton=True), CPU) == {"triton": True}
        assert tt.disabled() is not None and not tg._tma_usable(a, a, (9, 0))
    finally:
        tt.enable()
