"""The Hopper TMA variant of the 8-bit scaled GEMM (``kernels.triton_tma_gemm``) against the eager reference on the
same quantized inputs, and when ``triton_gemm`` takes it or falls back to the pointer kernel.

The kernel runs need ``TRITON_INTERPRET=1`` (the interpreter runs tensor-descriptor loads on the CPU, rows and
columns past the tensor zero-filled): ``test_kernels_triton.py`` runs this module in its interpreter subprocess,
where a config with ``tma=True`` asks for the TMA kernel explicitly. Shapes are odd: M = 1, 17, 130 and N = 200
(tails of every tile), K = 208 (a K tail; 208-byte rows are 16-byte aligned) or 256 for 128-wide scale blocks.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from kernel_cases import check_block_gemm, check_scaled_gemm

from comfyui_dit_quant.kernels import reference as ref
from comfyui_dit_quant.kernels.triton_configs import GemmConfig

interpreted = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                 reason="runs in the TRITON_INTERPRET=1 subprocess of test_kernels_triton.py")
MS = [1, 17, 130]
N, K = 200, 208
DTYPE_BIAS = [(torch.bfloat16, True), (torch.float16, False)]
TMA = GemmConfig(64, 64, 128, 1, 4, 2, tma=True)
TMA_WIDE = GemmConfig(64, 128, 64, 8, 4, 3, tma=True)  # BLOCK_K 64: divides a 64-wide scale group


@pytest.fixture
def tma_calls(monkeypatch: pytest.MonkeyPatch) -> list[GemmConfig]:
    """Configs the TMA kernel ran with; the pointer kernel may not run at all."""
    from comfyui_dit_quant.kernels import triton_gemm as tg
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    calls: list[GemmConfig] = []
    real = tt.launch

    def launch(*args, **kwargs):
        calls.append(args[-1])
        return real(*args, **kwargs)

    def no_pointer_kernel(*args, **kwargs):
        raise AssertionError("the pointer kernel ran")

    monkeypatch.setattr(tt, "launch", launch)
    monkeypatch.setattr(tg, "_scaled_gemm_kernel", type("K", (), {"__getitem__": lambda s, g: no_pointer_kernel})())
    tt.enable()
    return calls


@interpreted
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize(("dtype", "bias"), DTYPE_BIAS)
@pytest.mark.parametrize("kind", ["fp8_token", "fp8_tensor", "int8"])
@pytest.mark.parametrize("cfg", [TMA, TMA_WIDE], ids=["64x64x128", "64x128x64"])
def test_tma_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, kind: str, cfg: GemmConfig,
                         tma_calls: list[GemmConfig]) -> None:
    check_scaled_gemm(m, N, K, dtype, bias, kind, cfg=cfg)
    assert tma_calls == [cfg]


@interpreted
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize(("dtype", "bias"), DTYPE_BIAS)
@pytest.mark.parametrize(("block", "k", "cfg"), [((128, 128), 256, TMA), ((128, 128), K, TMA),
                                                 ((32, 64), K, TMA_WIDE)], ids=["128x128-k256", "128x128-k208",
                                                                                 "32x64-k208"])
def test_tma_block_scaled_gemm(m: int, dtype: torch.dtype, bias: bool, block: tuple[int, int], k: int,
                               cfg: GemmConfig, tma_calls: list[GemmConfig]) -> None:
    check_block_gemm(m, N, k, dtype, bias, block, cfg=cfg)
    assert tma_calls == [cfg]


def _operands(k: int = K, offset: int = 0) -> tuple[torch.Tensor, ...]:
    """Per-token FP8 operands; ``offset`` > 0: A starts ``offset`` bytes into its storage (base not 16-aligned)."""
    gen = torch.Generator().manual_seed(5)
    x, w = torch.randn(17, k, generator=gen), torch.randn(N, k, generator=gen)
    xq, xs = ref.quant_fp8_per_token(x)
    wq, ws = ref.quant_fp8_per_token(w)
    if offset:
        store = torch.zeros(offset + xq.numel(), dtype=torch.uint8)
        store[offset:] = xq.view(torch.uint8).reshape(-1)
        xq = store[offset:].view(torch.float8_e4m3fn).view(17, k)
    return xq, xs, wq, ws.reshape(-1)


@interpreted
@pytest.mark.parametrize(("k", "offset"), [(200, 0), (K, 8)], ids=["row-stride-200-bytes", "base-offset-8"])
def test_misaligned_operands_take_the_pointer_kernel(monkeypatch: pytest.MonkeyPatch, k: int, offset: int) -> None:
    from comfyui_dit_quant.kernels import triton_gemm as tg
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    monkeypatch.setattr(tt, "launch", lambda *a, **kw: pytest.fail("TMA on misaligned operands"))
    xq, xs, wq, ws = _operands(k, offset)
    assert not tt.aligned(xq) and tt.aligned(wq) == (k % 16 == 0)
    out = tg.scaled_mm(xq, wq, xs, ws, None, torch.bfloat16, cfg=TMA)
    err = ((out.float() - ref.scaled_mm(xq, wq, xs, ws, None, torch.bfloat16).float()).abs().mean()).item()
    assert err < 1e-3, err


@interpreted
def test_a_failing_tma_launch_switches_tma_off(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A TMA launch that raises (a Triton / driver without working TMA): the same call returns the pointer kernel's
    result, TMA stays off for the process, logged once."""
    from comfyui_dit_quant.kernels import triton_gemm as tg
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("cuTensorMapEncodeTiled failed")

    monkeypatch.setattr(tt, "launch", broken)
    tt.enable()
    xq, xs, wq, ws = _operands()
    expected = ref.scaled_mm(xq, wq, xs, ws, None, torch.bfloat16)
    try:
        for _ in range(2):
            out = tg.scaled_mm(xq, wq, xs, ws, None, torch.bfloat16, cfg=TMA)
            assert ((out.float() - expected.float()).abs().mean() / expected.float().abs().mean()).item() < 1e-3
        assert calls == [1] and "cuTensorMapEncodeTiled" in (tt.disabled() or "")
        assert sum("TMA GEMM disabled" in r.getMessage() for r in caplog.records) == 1
    finally:
        tt.enable()


def test_tma_is_used_only_where_it_can_run() -> None:
    """sm_90+ (or the interpreter), aligned 2-D operands, not disabled."""
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    a, b = torch.zeros(3, 32, dtype=torch.int8), torch.zeros(5, 32, dtype=torch.int8)
    assert tt.usable(a, b, (9, 0), False) and tt.usable(a, b, (10, 0), False) and tt.usable(a, b, None, True)
    assert not tt.usable(a, b, (8, 9), False) and not tt.usable(a, b, None, False)
    assert tt.aligned(a[:, :24]) and not tt.aligned(torch.zeros(3, 40, dtype=torch.int8)[:, :8])
    assert not tt.aligned(a.t()) and not tt.aligned(torch.zeros(3, 24, dtype=torch.int8))
    tt.disable("test")
    try:
        assert tt.disabled() == "test" and not tt.usable(a, b, (9, 0), False)
    finally:
        tt.enable()
    assert tt.usable(a, b, (9, 0), False)


@interpreted
@pytest.mark.parametrize("forced", [False, True])
def test_forced_overrides_the_config(tma_calls: list[GemmConfig], monkeypatch: pytest.MonkeyPatch,
                                     forced: bool) -> None:
    """``forced`` (the benchmarks' TMA / pointer comparison): one kernel whatever the config's ``tma``."""
    from comfyui_dit_quant.kernels import triton_gemm as tg
    from comfyui_dit_quant.kernels import triton_tma_gemm as tt

    if not forced:
        monkeypatch.undo()  # the pointer kernel must run: no stand-in raising for it
        monkeypatch.setattr(tt, "launch", lambda *a, **kw: pytest.fail("TMA ran while forced off"))
    xq, xs, wq, ws = _operands()
    expected = ref.scaled_mm(xq, wq, xs, ws, None, torch.bfloat16)
    with tt.forced(forced):
        out = tg.scaled_mm(xq, wq, xs, ws, None, torch.bfloat16, cfg=replace(TMA, tma=not forced))
    assert ((out.float() - expected.float()).abs().mean() / expected.float().abs().mean()).item() < 1e-3
    assert tma_calls == ([replace(TMA, tma=False)] if forced else [])
    assert tt._forced is None


def test_linear_benchmark_times_both_kernels_on_hopper(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import linear

    cuda = torch.device("cuda", 0)
    assert linear.variants(torch.device("cpu"), "triton_scaled") == [("triton_scaled", None)]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert linear.variants(cuda, "triton_block") == [("triton_block[tma]", True), ("triton_block[pointer]", False)]
    assert linear.variants(cuda, "triton_weight_only") == [("triton_weight_only", None)]
    assert linear.variants(cuda, "scaled_mm_rowwise") == [("scaled_mm_rowwise", None)]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    assert linear.variants(cuda, "triton_int8") == [("triton_int8", None)]
