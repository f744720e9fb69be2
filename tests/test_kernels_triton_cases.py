"""Triton kernels under ``TRITON_INTERPRET=1`` (CPU) against their eager twins on the same quantized inputs.

Triton decides interpretation when it is imported and when kernels are decorated, so these cases run only in a
process started with ``TRITON_INTERPRET=1`` (``test_kernels_triton.py`` starts one); elsewhere this module skips
itself and the rest of the suite is unaffected. The checks are shared with the GPU tier (``kernel_cases.py``,
``tests/gpu/test_triton_kernels.py``). Outputs are poisoned with NaN before every run; shapes are odd
(M = 1, 17, 130; K and N not multiples of the blocks).
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("runs in the TRITON_INTERPRET=1 subprocess of test_kernels_triton.py", allow_module_level=True)
pytest.importorskip("triton")

import torch
from kernel_cases import (
    ACT_KINDS,
    DTYPES,
    END_TO_END,
    GEMM_BLOCKS,
    SCALED_KINDS,
    WEIGHT_ONLY_GRANULARITIES,
    check_activation_quant,
    check_backend_end_to_end,
    check_block_gemm,
    check_scaled_gemm,
    check_weight_only_gemm,
    check_zero_rows,
)

MS = [1, 17, 130]
N, K = 72, 200  # not multiples of any block below


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "group"), ACT_KINDS)
def test_activation_quant(m: int, dtype: torch.dtype, kind: str, group: int) -> None:
    check_activation_quant(m, K, dtype, kind, group, m_major=m == 17)


@pytest.mark.parametrize("kind", ["fp8_token", "int8_token", "fp8_tensor", "fp8_static"])
def test_activation_quant_rows_too_long_for_one_pass(kind: str) -> None:
    """Rows longer than ``triton_quant.ROW_MAX`` take the two-pass path (amax, then quantize, in CHUNK steps)."""
    from comfyui_dit_quant.kernels import triton_quant as tq

    k = tq.ROW_MAX + tq.CHUNK + 40  # three chunks, the last one partial
    args, _ = tq._row_args(torch.empty(1, k), torch.empty(1, k, dtype=torch.int8), torch.empty(1, 1), False, 1)
    assert not args["SINGLE"]
    check_activation_quant(3, k, torch.bfloat16, kind, 0)


def test_zero_rows_stay_finite() -> None:
    check_zero_rows(K)


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("block", GEMM_BLOCKS)
def test_block_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, block: tuple[int, int]) -> None:
    check_block_gemm(m, N, K, dtype, bias, block)


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kind", SCALED_KINDS)
def test_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, kind: str) -> None:
    check_scaled_gemm(m, N, K, dtype, bias, kind)


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("granularity", WEIGHT_ONLY_GRANULARITIES)
def test_weight_only_gemm(m: int, dtype: torch.dtype, bias: bool, granularity: str) -> None:
    check_weight_only_gemm(m, N, K, dtype, bias, granularity)


@pytest.mark.parametrize("m", [1, 17, 130])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("granularity", WEIGHT_ONLY_GRANULARITIES)
def test_weight_only_gemm_decoding_e4m3_bits(m: int, dtype: torch.dtype, granularity: str) -> None:
    """The A100 / RTX 30xx path (Triton has no e4m3 type below sm_89): codes read as uint8, decoded in registers."""
    check_weight_only_gemm(m, N, K, dtype, True, granularity, decode_bits=True)


@pytest.mark.parametrize(("backend", "scheme", "block"), END_TO_END)
def test_triton_backend_end_to_end(backend: str, scheme: str, block: tuple[int, int] | None) -> None:
    check_backend_end_to_end(backend, scheme, block, m=17, n=N, k=K)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("bias", [False, True])
def test_int8_epilogue_matches_the_torch_epilogue(dtype: torch.dtype, bias: bool) -> None:
    from comfyui_dit_quant.kernels import torch_gemm
    from comfyui_dit_quant.kernels.triton_epilogue import int8_epilogue

    gen = torch.Generator().manual_seed(0)
    m, n, k = 37, 200, 64
    x_q = torch.randint(-127, 128, (m, k), generator=gen, dtype=torch.int8)
    w_q = torch.randint(-127, 128, (n, k), generator=gen, dtype=torch.int8)
    x_s, w_s = torch.rand(m, 1, generator=gen) / 100, torch.rand(n, generator=gen) / 100
    b = torch.randn(n, generator=gen).to(dtype) if bias else None
    expected = torch_gemm.int_gemm(x_q, w_q, x_s, w_s, b, dtype)
    out = int8_epilogue(torch_gemm.int_acc(x_q, w_q), x_s, w_s, b, dtype)
    assert out.dtype == dtype and out.shape == (m, n)
    err = ((out.float() - expected.float()).abs().max() / expected.float().abs().max()).item()
    assert err < 1e-2 if dtype != torch.float32 else err < 1e-6, err
