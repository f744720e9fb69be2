"""Every GEMM backend on the GPU, kernel by kernel and end to end.

- The torch recipes on already-quantized operands (``torch._scaled_mm`` tensorwise / rowwise / cuBLAS blockwise,
  ``torch._int_mm``) against the eager reference on the same inputs, where the probed capabilities allow them.
- Every runner of ``kernels.select.run_named`` (torch and Triton: fused activation quantization + GEMM) against the
  eager backend on the same quantized weight (relative error < 1e-3), and against float32 ``F.linear`` on the
  original weight (the quantization error itself: relative error < 6e-2 FP8 / 2e-2 INT8, cosine > 0.998).

Shapes are aligned as real layers are (N, K multiples of 128), M in the GPU tier's buckets.
"""

from __future__ import annotations

import pytest
import torch
from kernel_cases import gpu_skip_reason

pytestmark = pytest.mark.gpu
if (_reason := gpu_skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

import torch.nn.functional as F  # noqa: E402
from kernel_cases import (  # noqa: E402
    GPU_MS,
    TOL,
    block_weight,
    gpu_matrix,
    inputs,
    matrix_id,
    rel_err,
    scaled_operands,
)

from comfyui_dit_quant.kernels import reference as ref  # noqa: E402
from comfyui_dit_quant.kernels import torch_gemm as tb  # noqa: E402
from comfyui_dit_quant.kernels.caps import DeviceCaps  # noqa: E402
from comfyui_dit_quant.kernels.eager_backend import eager  # noqa: E402
from comfyui_dit_quant.kernels.select import run_named  # noqa: E402
from comfyui_dit_quant.quant.schemes import get_scheme  # noqa: E402

N, K = 384, 640
MATRIX = gpu_matrix()
IDS = [matrix_id(c) for c in MATRIX]
COSINE = 0.998


def need(caps: DeviceCaps, field: str) -> None:
    if not getattr(caps, field):
        pytest.skip(f"{field} is off on {caps.describe()} (version rules or a failed probe)")


# --- torch recipes on the same quantized operands ---------------------------------------------------------------


@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_scaled_mm_tensorwise(m: int, dtype: torch.dtype, bias: bool, caps: DeviceCaps, cuda: torch.device) -> None:
    need(caps, "scaled_mm")
    x, w, b = inputs(m, N, K, dtype, 50 + m, cuda)
    xq, xs, wq, ws = scaled_operands("fp8_tensor", x, w)
    b = b if bias else None
    out = tb.scaled_gemm(xq, wq, xs, ws.reshape(()), b, dtype)
    assert out.dtype == dtype and out.shape == (m, N)
    assert rel_err(out, ref.scaled_mm(xq, wq, xs, ws, b, dtype)) < TOL


@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_scaled_mm_rowwise(m: int, dtype: torch.dtype, bias: bool, caps: DeviceCaps, cuda: torch.device) -> None:
    need(caps, "scaled_mm_rowwise")
    x, w, b = inputs(m, N, K, dtype, 60 + m, cuda)
    xq, xs, wq, ws = scaled_operands("fp8_token", x, w)
    b = b if bias else None
    native = tb.HALF if caps.fp16_rowwise else (torch.bfloat16,)  # as the two scaled_mm_rowwise entries do
    out = tb.scaled_gemm(xq, wq, xs.contiguous(), ws.reshape(1, -1).contiguous(), b, dtype, native)
    assert out.dtype == dtype and out.shape == (m, N)
    assert rel_err(out, ref.scaled_mm(xq, wq, xs, ws, b, dtype)) < TOL


@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_scaled_mm_blockwise(m: int, dtype: torch.dtype, bias: bool, caps: DeviceCaps, cuda: torch.device) -> None:
    need(caps, "cublas_blockwise")
    x, w, b = inputs(m, N, K, dtype, 70 + m, cuda)
    wq, ws = block_weight(w, (128, 128))
    xq, xs = ref.quant_fp8_per_group(x, 128)
    b = b if bias else None
    out = tb.blockwise_gemm(xq, wq, xs.t().contiguous().t(), ws, b, dtype)
    assert out.dtype == dtype and out.shape == (m, N)
    assert rel_err(out, ref.block_scaled_mm(xq, wq, xs, ws, 128, 128, b, dtype)) < TOL


@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_int_mm(m: int, dtype: torch.dtype, bias: bool, caps: DeviceCaps, cuda: torch.device) -> None:
    need(caps, "int_mm")
    x, w, b = inputs(m, N, K, dtype, 80 + m, cuda)
    xq, xs, wq, ws = scaled_operands("int8", x, w)
    b = b if bias else None
    out = tb.int_gemm(xq, wq, xs, ws, b, dtype)  # M < 17 is zero-padded
    assert out.dtype == dtype and out.shape == (m, N)
    assert rel_err(out, ref.scaled_mm(xq, wq, xs, ws, b, dtype)) < TOL


def test_float32_outputs(caps: DeviceCaps, cuda: torch.device) -> None:
    """float32 activations: the GEMMs write float32, bias and cast after (the non-native epilogue)."""
    x, w, b = inputs(33, N, K, torch.float32, 90, cuda)
    if caps.scaled_mm:
        xq, xs, wq, ws = scaled_operands("fp8_tensor", x, w)
        out = tb.scaled_gemm(xq, wq, xs, ws.reshape(()), b, torch.float32)
        assert out.dtype == torch.float32 and rel_err(out, ref.scaled_mm(xq, wq, xs, ws, b, torch.float32)) < TOL
    if caps.int_mm:
        xq, xs, wq, ws = scaled_operands("int8", x, w)
        out = tb.int_gemm(xq, wq, xs, ws, b, torch.float32)
        assert out.dtype == torch.float32 and rel_err(out, ref.scaled_mm(xq, wq, xs, ws, b, torch.float32)) < TOL


# --- every runner end to end ------------------------------------------------------------------------------------

# (runner, scheme, options, the caps field it needs)
RUNNERS = [
    ("scaled_mm_tensorwise", "fp8_tensor", {}, "scaled_mm"),
    ("scaled_mm_rowwise", "fp8_channel", {}, "scaled_mm_rowwise"),
    ("scaled_mm_blockwise", "fp8_block", {"block_size": "128x128"}, "cublas_blockwise"),
    ("int_mm", "int8", {}, "int_mm"),
    ("dequant_mm", "fp8_weight_only", {}, None),
    ("dequant_mm", "fp8_weight_only", {"granularity": "block", "block_size": "128x128"}, None),
    ("triton_scaled", "fp8_tensor", {}, "fp8_tensor_cores"),
    ("triton_scaled", "fp8_channel", {}, "fp8_tensor_cores"),
    ("triton_block", "fp8_block", {"block_size": "128x128"}, "fp8_tensor_cores"),
    ("triton_block", "fp8_block", {"block_size": "64x64"}, "fp8_tensor_cores"),
    ("triton_int8", "int8", {}, "triton"),
    ("triton_weight_only", "fp8_weight_only", {}, "triton"),
    ("triton_weight_only", "fp8_weight_only", {"granularity": "block", "block_size": "128x128"}, "triton"),
    ("triton_weight_only", "fp8_channel", {}, "triton"),  # the policy's fallback for GPUs without FP8 tensor cores
    ("eager", "fp8_block", {"block_size": "128x128"}, None),
]
# Triton runners: every M with bf16 + bias, one fp16 case (the kernel tests cover dtype x bias at every M).
TRITON_MATRIX = [(m, torch.bfloat16, True) for m in GPU_MS] + [(GPU_MS[-1], torch.float16, False)]
RUNNER_CASES = [(r, s, o, f, *c) for r, s, o, f in RUNNERS
                for c in (TRITON_MATRIX if r.startswith("triton") else MATRIX)]


def runner_id(case: tuple) -> str:
    r, s, o, _, *c = case
    opt = "-".join(str(v) for v in o.values())
    return "-".join(p for p in (r, s, opt, matrix_id(tuple(c))) if p)


@pytest.mark.parametrize(("runner", "scheme_name", "opts", "field", "m", "dtype", "bias"), RUNNER_CASES,
                         ids=[runner_id(c) for c in RUNNER_CASES])
def test_runner_end_to_end(runner: str, scheme_name: str, opts: dict, field: str | None, m: int, dtype: torch.dtype,
                           bias: bool, caps: DeviceCaps, cuda: torch.device) -> None:
    if field is not None:
        need(caps, field)
    if runner.startswith("triton"):
        need(caps, "triton")
    x, w, b = inputs(m, N, K, dtype, 100 + m, cuda)
    b = b if bias else None
    scheme = get_scheme(scheme_name, **opts)
    stored = scheme.quantize(w)
    wq, ws = stored["weight"], stored["weight_scale"]
    assert wq.device == ws.device == x.device
    out = run_named(runner, x, wq, ws, b, None, scheme_name, scheme.block, dtype)
    assert out.dtype == dtype and out.shape == (m, N) and out.device == x.device
    if runner == "dequant_mm":
        # Its twin: the same GEMM on the weight dequantized to the activation dtype (the path's own rounding).
        w_half = ref.dequantize_weight(wq, ws, scheme.block, dtype)
        expected = ref.weight_only_mm(x, w_half, torch.ones((), device=cuda), None, b, dtype)
    else:
        twin = "fp8_weight_only" if runner == "triton_weight_only" else scheme_name
        expected = eager(x, wq, ws, b, None, twin, scheme.block, dtype)
    err = rel_err(out, expected)
    assert err < TOL, f"vs eager on the same quantized weight: relative error {err:.3g}"
    exact = F.linear(x.float(), w, None if b is None else b.float())
    err_q = rel_err(out, exact)
    cos = F.cosine_similarity(out.float().flatten(), exact.flatten(), dim=0).item()
    bound = 2e-2 if scheme_name == "int8" else 6e-2
    assert err_q < bound and cos > COSINE, f"vs float32 F.linear: relative error {err_q:.3g}, cosine {cos:.5f}"

