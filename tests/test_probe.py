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
    caps = DeviceCaps("cuda", (9, 0) if fp8 else (8, 6), (2, 13), triton=True)
    assert probe_caps(caps, CPU) == {"triton": True}
    assert calls == (["weight_only", "block"] if fp8 else ["weight_only"])
    # a kernel that compiles but computes garbage is switched off too
    monkeypatch.setattr(tg, "block_scaled_mm" if fp8 else "weight_only_mm", lambda *a, **k: torch.zeros(32, 256))
    assert probe_caps(caps, CPU) == {"triton": False}
