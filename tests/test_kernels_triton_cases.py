"""Triton kernels under ``TRITON_INTERPRET=1`` (CPU) against their eager twins on the same quantized inputs.

Triton decides interpretation when it is imported and when kernels are decorated, so these cases run only in a
process started with ``TRITON_INTERPRET=1`` (``test_kernels_triton.py`` starts one); elsewhere this module skips
itself and the rest of the suite is unaffected. Outputs are poisoned with NaN before every run; shapes are odd
(M = 1, 17, 130; K and N not multiples of the blocks).
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("runs in the TRITON_INTERPRET=1 subprocess of test_kernels_triton.py", allow_module_level=True)
pytest.importorskip("triton")

import torch  # noqa: E402

from comfyui_dit_quant.kernels import reference as ref  # noqa: E402
from comfyui_dit_quant.kernels import triton_backend as tb  # noqa: E402
from comfyui_dit_quant.kernels import triton_gemm as tg  # noqa: E402
from comfyui_dit_quant.kernels import triton_quant as tq  # noqa: E402
from comfyui_dit_quant.kernels.backends import eager  # noqa: E402
from comfyui_dit_quant.quant.schemes import get_scheme  # noqa: E402

TOL = 1e-3
MS = [1, 17, 130]
N, K = 72, 200  # not multiples of any block below
DTYPES = [torch.bfloat16, torch.float16]


def rel_err(out: torch.Tensor, expected: torch.Tensor) -> float:
    assert torch.isfinite(out).all(), "unwritten (NaN-poisoned) outputs"
    return ((out.float() - expected.float()).abs().mean() / expected.float().abs().mean()).item()


def poisoned(m: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.full((m, N), float("nan"), dtype=dtype)


def inputs(m: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, K, generator=gen) * 3).to(dtype)
    w = torch.randn(N, K, generator=gen)
    bias = torch.randn(N, generator=gen).to(dtype)
    return x, w, bias


# --- activation quantization -----------------------------------------------------------------------------------


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "group"), [("fp8_token", 0), ("fp8_group", 16), ("fp8_group", 32), ("fp8_group", 128),
                                             ("int8_token", 0), ("fp8_tensor", 0), ("fp8_static", 0)])
def test_activation_quant(m: int, dtype: torch.dtype, kind: str, group: int) -> None:
    x, _, _ = inputs(m, dtype, m)
    x[0, :40] = 0  # an all-zero group (for group 32) and an outlier
    x[-1, -1] = 300.0
    if kind == "fp8_token":
        got, want = tq.quant_fp8_per_token(x), ref.quant_fp8_per_token(x)
    elif kind == "fp8_group":
        got, want = tq.quant_fp8_per_group(x, group), ref.quant_fp8_per_group(x, group)
        if m == 17:
            m_major = tq.quant_fp8_per_group(x, group, m_major=True)
            assert m_major[1].stride(0) == 1 and torch.equal(m_major[1], want[1])
    elif kind == "int8_token":
        got, want = tq.quant_int8_per_token(x), ref.quant_int8_per_token(x)
    elif kind == "fp8_tensor":
        got, want = tq.quant_fp8_per_tensor(x), ref.quant_fp8_per_tensor(x)
    else:
        s = torch.tensor(0.005)
        got, want = tq.quant_fp8_per_tensor(x, s), ref.quant_fp8_per_tensor(x, s)
    assert got[0].dtype == want[0].dtype and got[1].shape == want[1].shape
    torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=0)
    assert (got[0].float() != want[0].float()).float().mean().item() < 1e-3  # codes: same rounding


def test_zero_rows_stay_finite() -> None:
    x = torch.zeros(3, K, dtype=torch.bfloat16)
    q, s = tq.quant_fp8_per_group(x, 64)
    assert torch.isfinite(s).all() and (s > 0).all() and (q.float() == 0).all()


# --- GEMMs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("block", [(32, 64), (16, 128)])
def test_block_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, block: tuple[int, int]) -> None:
    x, w, b = inputs(m, dtype, 10 + m)
    ws = ref.amax_to_scale(ref.block_amax(w, *block), ref.FP8_MAX)
    wq = ref.cast_fp8(w, ref.expand_blocks(ws, N, K, *block))
    xq, xs = ref.quant_fp8_per_group(x, block[1])
    b = b if bias else None
    out = tg.block_scaled_mm(xq, wq, xs, ws, *block, b, dtype, out=poisoned(m, dtype))
    assert rel_err(out, ref.block_scaled_mm(xq, wq, xs, ws, *block, b, dtype)) < TOL


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kind", ["fp8_token", "fp8_tensor", "int8"])
def test_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, kind: str) -> None:
    x, w, b = inputs(m, dtype, 20 + m)
    if kind == "int8":
        ws = ref.amax_to_scale(w.abs().amax(dim=1, keepdim=True), ref.INT8_MAX)
        wq, ws = ref.cast_int8(w, ws), ws.reshape(-1)
        xq, xs = ref.quant_int8_per_token(x)
    elif kind == "fp8_token":
        wq, ws = ref.quant_fp8_per_token(w)
        ws = ws.reshape(-1)
        xq, xs = ref.quant_fp8_per_token(x)
    else:
        wq, ws = ref.quant_fp8_per_tensor(w)
        xq, xs = ref.quant_fp8_per_tensor(x)
    b = b if bias else None
    out = tg.scaled_mm(xq, wq, xs, ws, b, dtype, out=poisoned(m, dtype))
    assert rel_err(out, ref.scaled_mm(xq, wq, xs, ws, b, dtype)) < TOL


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("granularity", ["tensor", "channel", "block"])
def test_weight_only_gemm(m: int, dtype: torch.dtype, bias: bool, granularity: str) -> None:
    x, w, b = inputs(m, dtype, 30 + m)
    block = (32, 64) if granularity == "block" else None
    if block:
        ws = ref.amax_to_scale(ref.block_amax(w, *block), ref.FP8_MAX)
        wq = ref.cast_fp8(w, ref.expand_blocks(ws, N, K, *block))
    elif granularity == "channel":
        wq, ws = ref.quant_fp8_per_token(w)
        ws = ws.reshape(-1)
    else:
        wq, ws = ref.quant_fp8_per_tensor(w)
    b = b if bias else None
    out = tg.weight_only_mm(x, wq, ws, block, b, dtype, out=poisoned(m, dtype))
    assert rel_err(out, ref.weight_only_mm(x, wq, ws, block, b, dtype)) < TOL


# --- backends end to end (fused quantization + GEMM) vs the eager backend ---------------------------------------


@pytest.mark.parametrize(("backend", "scheme", "block"), [
    ("triton_block", "fp8_block", (32, 64)), ("triton_scaled", "fp8_channel", None),
    ("triton_scaled", "fp8_tensor", None), ("triton_int8", "int8", None),
    ("triton_weight_only", "fp8_weight_only", (16, 32)), ("triton_weight_only", "fp8_channel", None)])
def test_triton_backend_end_to_end(backend: str, scheme: str, block: tuple[int, int] | None) -> None:
    opts = {"block_size": block} if scheme == "fp8_block" else {}
    if scheme == "fp8_weight_only":
        opts = {"granularity": "block", "block_size": block}
    x, w, b = inputs(17, torch.bfloat16, 40)
    stored = get_scheme(scheme, **opts).quantize(w)
    wq, ws = stored["weight"], stored["weight_scale"]
    out = tb.run(backend, scheme, x, wq, ws, b, None, block, torch.bfloat16)
    twin = "fp8_weight_only" if backend == "triton_weight_only" else scheme  # sm_80 fallback: weight-only numbers
    assert rel_err(out, eager(x, wq, ws, b, None, twin, block, torch.bfloat16)) < TOL
