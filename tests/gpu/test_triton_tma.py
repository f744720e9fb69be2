"""The Hopper TMA GEMM (``kernels/triton_tma_gemm.py``) compiled for the real GPU (sm_90+) at the heuristic configs,
against the eager reference on the same quantized inputs, and the pointer kernel on the same call (``forced``).
The main tier's ragged K (712) is not TMA-aligned, so these cases use K = 720 (16-byte rows, a K tail of 80)."""

from __future__ import annotations

import pytest
import torch
from kernel_cases import gpu_skip_reason

pytestmark = pytest.mark.gpu
if (_reason := gpu_skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)
if torch.cuda.get_device_capability() < (9, 0):
    pytest.skip("TMA GEMM: sm_90+ only", allow_module_level=True)
pytest.importorskip("triton")

from kernel_cases import GPU_MS, check_block_gemm, check_scaled_gemm  # noqa: E402

N, K = 328, 720


@pytest.fixture
def tma_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    calls: list = []
    real = tt.launch
    monkeypatch.setattr(tt, "launch", lambda *a, **kw: calls.append(a[-1]) or real(*a, **kw))
    return calls


def _tma_on() -> None:
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    assert tt.disabled() is None, f"TMA switched off: {tt.disabled()}"


@pytest.mark.parametrize("m", GPU_MS)
@pytest.mark.parametrize("kind", ["fp8_token", "fp8_tensor", "int8"])
def test_tma_scaled_gemm(m: int, kind: str, cuda: torch.device, tma_calls: list) -> None:
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    err = check_scaled_gemm(m, N, K, torch.bfloat16, True, kind, cuda)
    _tma_on()
    assert len(tma_calls) == 1 and tma_calls[0].tma
    with tt.forced(False):
        pointer = check_scaled_gemm(m, N, K, torch.bfloat16, True, kind, cuda)
    assert len(tma_calls) == 1
    print(f"{kind} M={m}: relative error TMA {err:.3g}, pointer {pointer:.3g}")


@pytest.mark.parametrize("m", GPU_MS)
def test_tma_block_scaled_gemm(m: int, cuda: torch.device, tma_calls: list) -> None:
    check_block_gemm(m, N, K, torch.float16, False, (128, 128), cuda)
    _tma_on()
    assert len(tma_calls) == 1 and tma_calls[0].tma
