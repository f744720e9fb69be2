"""The Triton kernels compiled for the real GPU (no interpreter) against their eager twins on the same quantized
inputs: activation quantizers, block-scaled / epilogue-scaled (FP8, INT8) / weight-only GEMMs and the fused
backends, for every GEMM config bucket (M = 1, 17, 130, 4096), ragged N and K, bias on/off, bf16/fp16 outputs.
The checks are the interpreter's (``kernel_cases.py``)."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import gpu_skip_reason

pytestmark = pytest.mark.gpu
if (_reason := gpu_skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)
pytest.importorskip("triton")

from kernel_cases import (  # noqa: E402
    ACT_KINDS,
    DTYPES,
    END_TO_END,
    GEMM_BLOCKS,
    GPU_MS,
    GPU_RAGGED,
    SCALED_KINDS,
    TOL,
    WEIGHT_ONLY_GRANULARITIES,
    check_activation_quant,
    check_backend_end_to_end,
    check_block_gemm,
    check_scaled_gemm,
    check_weight_only_gemm,
    check_zero_rows,
    gpu_matrix,
    matrix_id,
)

N, K = GPU_RAGGED
MATRIX = gpu_matrix()
IDS = [matrix_id(c) for c in MATRIX]
BLOCKS = [*GEMM_BLOCKS, (128, 128)]  # + the default block size (the cuBLAS-compatible one)


def test_kernels_are_compiled_not_interpreted() -> None:
    from comfyui_dit_quant.kernels import triton_gemm

    assert not triton_gemm._INTERPRETED


@pytest.mark.parametrize("m", GPU_MS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "group"), ACT_KINDS)
def test_activation_quant(m: int, dtype: torch.dtype, kind: str, group: int, cuda: torch.device) -> None:
    check_activation_quant(m, K, dtype, kind, group, cuda, m_major=True)


@pytest.mark.parametrize(("kind", "group"), [("fp8_token", 0), ("fp8_group", 128), ("int8_token", 0)])
def test_activation_quant_wide_rows(kind: str, group: int, cuda: torch.device) -> None:
    """Wan's widest activation row (FFN down projection, K = 13824)."""
    check_activation_quant(130, 13824, torch.bfloat16, kind, group, cuda, m_major=True)


def test_zero_rows_stay_finite(cuda: torch.device) -> None:
    check_zero_rows(K, cuda)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{bn}x{bk}" for bn, bk in BLOCKS])
@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_block_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, block: tuple[int, int],
                           cuda: torch.device) -> None:
    check_block_gemm(m, N, K, dtype, bias, block, cuda)


@pytest.mark.parametrize("kind", SCALED_KINDS)
@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, kind: str, cuda: torch.device) -> None:
    check_scaled_gemm(m, N, K, dtype, bias, kind, cuda)


@pytest.mark.parametrize("granularity", WEIGHT_ONLY_GRANULARITIES)
@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_weight_only_gemm(m: int, dtype: torch.dtype, bias: bool, granularity: str, cuda: torch.device) -> None:
    check_weight_only_gemm(m, N, K, dtype, bias, granularity, cuda)


@pytest.mark.parametrize("granularity", WEIGHT_ONLY_GRANULARITIES)
@pytest.mark.parametrize(("m", "dtype", "bias"), MATRIX, ids=IDS)
def test_weight_only_gemm_decoding_e4m3_bits(m: int, dtype: torch.dtype, bias: bool, granularity: str,
                                             cuda: torch.device) -> None:
    """The path A100 / RTX 30xx take automatically (no e4m3 type in Triton below sm_89), forced here."""
    check_weight_only_gemm(m, N, K, dtype, bias, granularity, cuda, decode_bits=True)


@pytest.mark.parametrize("m", GPU_MS)
@pytest.mark.parametrize(("backend", "scheme", "block"), END_TO_END)
def test_triton_backend_end_to_end(backend: str, scheme: str, block: tuple[int, int] | None, m: int,
                                   cuda: torch.device) -> None:
    check_backend_end_to_end(backend, scheme, block, m=m, n=N, k=K, device=cuda)


@pytest.mark.parametrize("kind", SCALED_KINDS)
def test_scaled_gemm_large_k(kind: str, cuda: torch.device) -> None:
    """K = 13824 (Wan FFN down) in one pass. Triton's FP8 ``tl.dot`` on sm_90 defaults to imprecise tensor-core
    accumulation (``max_num_imprecise_acc`` = 2**30); ``triton_gemm`` asks for fp32 promotion every BLOCK_K, so the
    epilogue-scaled FP8 path must stay as precise as INT8's exact int32 accumulation."""
    err = check_scaled_gemm(130, 256, 13824, torch.bfloat16, True, kind, cuda, seed=5, tol=2e-2)
    print(f"{kind} K=13824: relative error vs the float32 reference {err:.3g}")
    assert err < TOL, f"{kind} K=13824: relative error {err:.3g} >= {TOL}"


@pytest.mark.parametrize("block", [(128, 128), (64, 64)], ids=["128x128", "64x64"])
def test_block_scaled_gemm_large_k(block: tuple[int, int], cuda: torch.device) -> None:
    """The block-scaled path promotes to float32 every scale group, so it stays precise at large K."""
    err = check_block_gemm(130, 256, 13824, torch.bfloat16, True, block, cuda, seed=6)
    print(f"block {block} K=13824: relative error {err:.3g}")
