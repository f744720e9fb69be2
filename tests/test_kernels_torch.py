"""Torch backends (``torch._scaled_mm`` tensorwise/rowwise, ``torch._int_mm``, dequant + F.linear) on CPU against
the eager reference, through the dispatch (``backend="torch"``) and directly."""

from __future__ import annotations

import pytest
import torch

from comfyui_dit_quant.kernels import reference as ref
from comfyui_dit_quant.kernels import torch_backend as tb
from comfyui_dit_quant.kernels import torch_gemm
from comfyui_dit_quant.kernels.dispatch import backend_for, quant_linear
from comfyui_dit_quant.kernels.eager_backend import eager
from comfyui_dit_quant.quant.schemes import get_scheme

TOL = 1e-3
CASES = [("fp8_tensor", {}, tb.scaled_mm_tensorwise), ("fp8_channel", {}, tb.scaled_mm_rowwise),
         ("int8", {}, tb.int_mm), ("fp8_weight_only", {}, tb.dequant_mm),
         ("fp8_weight_only", {"granularity": "block", "block_size": "32x64"}, tb.dequant_mm)]


def rel_err(out: torch.Tensor, expected: torch.Tensor) -> float:
    return ((out.float() - expected.float()).abs().mean() / expected.float().abs().mean()).item()


@pytest.mark.parametrize(("name", "opts", "runner"), CASES)
@pytest.mark.parametrize("m", [1, 17, 130])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bias", [False, True])
def test_torch_backend_matches_reference(name: str, opts: dict, runner, m: int, dtype: torch.dtype,
                                         bias: bool) -> None:
    gen = torch.Generator().manual_seed(m)
    n, k = 80, 144
    scheme = get_scheme(name, **opts)
    stored = scheme.quantize(torch.randn(n, k, generator=gen))
    w, ws = stored["weight"], stored["weight_scale"]
    x = torch.randn(m, k, generator=gen).to(dtype)
    b = torch.randn(n, generator=gen).to(dtype) if bias else None
    expected = eager(x, w, ws, b, None, name, scheme.block, dtype)
    if runner is tb.dequant_mm:
        # Its twin: the same GEMM on the weight dequantized to the activation dtype (that rounding, 2^-9 relative
        # in bf16, is the path's own: ~1.6e-3 vs the float32 reference, like any bf16 linear).
        w_half = ref.dequantize_weight(w, ws, scheme.block, dtype)
        expected = ref.weight_only_mm(x, w_half, torch.ones(()), None, b, dtype)
    out = runner(x, w, ws, b, None, scheme.block, dtype)
    assert out.dtype == dtype and out.shape == (m, n)
    assert rel_err(out, expected) < TOL


def test_static_input_scale_and_fp32_output() -> None:
    gen = torch.Generator().manual_seed(1)
    stored = get_scheme("fp8_tensor").quantize(torch.randn(32, 64, generator=gen))
    x = torch.randn(20, 64, generator=gen)
    s = torch.tensor(0.01)
    expected = eager(x, stored["weight"], stored["weight_scale"], None, s, "fp8_tensor", None, torch.float32)
    out = tb.scaled_mm_tensorwise(x, stored["weight"], stored["weight_scale"], torch.zeros(32), s, None,
                                  torch.float32)
    assert rel_err(out, expected) < TOL


def test_int_mm_pads_small_m_exactly() -> None:
    gen = torch.Generator().manual_seed(2)
    xq = torch.randint(-127, 128, (3, 64), generator=gen, dtype=torch.int8)
    wq = torch.randint(-127, 128, (48, 64), generator=gen, dtype=torch.int8)
    xs, ws = torch.rand(3, 1) + 0.5, torch.rand(48) + 0.5
    out = torch_gemm.int_gemm(xq, wq, xs, ws, None, torch.float32)
    torch.testing.assert_close(out, ref.scaled_mm(xq, wq, xs, ws, None, torch.float32))


@pytest.mark.parametrize(("name", "backend"), [("fp8_tensor", "scaled_mm_tensorwise"),
                                               ("fp8_channel", "scaled_mm_rowwise"), ("int8", "int_mm")])
def test_dispatch_torch_request_on_cpu(name: str, backend: str) -> None:
    gen = torch.Generator().manual_seed(3)
    scheme = get_scheme(name)
    stored = scheme.quantize(torch.randn(64, 96, generator=gen))
    x = torch.randn(2, 9, 96, generator=gen, dtype=torch.bfloat16)
    assert backend_for("cpu", name, 64, 96, "torch") == backend
    out = quant_linear(x, stored["weight"], stored["weight_scale"], None, None, name, backend="torch")
    expected = quant_linear(x, stored["weight"], stored["weight_scale"], None, None, name, backend="eager")
    assert out.shape == (2, 9, 64) and rel_err(out, expected) < TOL
