"""One-time numeric probes of the torch GEMM recipes on a real device (run once per device by ``detect.detect_caps``).

Each probe runs a tiny GEMM on reference-quantized inputs and compares it with the eager reference: a recipe that
raises *or* returns wrong numbers (rowwise on some sm_120 / Windows builds) is switched off for the process. The
Triton kernels are probed the same way (an importable Triton can still fail to compile: no C compiler, a broken
triton-windows install, a GPU its version does not know), so a failure there means the torch paths, not a crash.
On sm_90+ the TMA GEMM is probed as well: a failure there switches only TMA off (the pointer kernel runs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import torch

from . import reference as ref
from . import torch_gemm
from .caps import DeviceCaps

log = logging.getLogger("comfyui_dit_quant")
PROBE_TOL = 1e-2
BF16 = torch.bfloat16


def _agrees(run: Callable[[], torch.Tensor], expected: torch.Tensor, name: str) -> bool:
    try:
        out = run()
    except Exception as e:  # this is the probe: any failure means "not available"
        log.info("probe %s: unavailable (%s)", name, (str(e).splitlines() or [type(e).__name__])[0])
        return False
    err = ((out.float() - expected.float()).abs().mean() / expected.float().abs().mean().clamp(min=1e-12)).item()
    if not err < PROBE_TOL:
        log.warning("probe %s: wrong results (relative error %.3g); not used", name, err)
        return False
    return True


@torch.no_grad()
def probe_caps(caps: DeviceCaps, device: torch.device) -> dict[str, bool]:
    """Confirmed values for the torch-recipe fields of ``caps`` (only fields that are True get probed)."""
    gen = torch.Generator().manual_seed(0)
    m, n, k = 32, 256, 256
    x = torch.randn(m, k, generator=gen).to(device, BF16)
    w = torch.randn(n, k, generator=gen).to(device)
    bias = torch.randn(n, generator=gen).to(device, BF16)
    result: dict[str, bool] = {}
    if caps.scaled_mm_rowwise or caps.scaled_mm:
        wq, ws = ref.quant_fp8_per_token(w)
        xq, xs = ref.quant_fp8_per_token(x)
        expected = ref.scaled_mm(xq, wq, xs, ws.reshape(-1), bias, BF16)
        row_s = ws.reshape(1, -1).contiguous()
        if caps.scaled_mm_rowwise:
            ok = _agrees(lambda: torch_gemm.scaled_gemm(xq, wq, xs, row_s, bias, BF16), expected, "rowwise")
            result["scaled_mm_rowwise"] = ok
            result["fp16_rowwise"] = ok and caps.fp16_rowwise and _agrees(
                lambda: torch_gemm.scaled_gemm(xq, wq, xs, row_s, bias.half(), torch.float16), expected, "rowwise fp16")
        if caps.scaled_mm:
            ts = ws.amax().reshape(())
            wt = ref.cast_fp8(w, ts)
            xt, xts = ref.quant_fp8_per_tensor(x)
            exp_t = ref.scaled_mm(xt, wt, xts, ts, bias, BF16)
            result["scaled_mm"] = _agrees(lambda: torch_gemm.scaled_gemm(xt, wt, xts, ts, bias, BF16), exp_t,
                                          "tensorwise")
    if caps.cublas_blockwise:  # K = 512: K/128 = 4 blocks, a layout cuBLASLt supports (the policy gates the rest)
        kb = 4 * 128
        xb = torch.randn(m, kb, generator=gen).to(device, BF16)
        wk = torch.randn(n, kb, generator=gen).to(device)
        wb = ref.amax_to_scale(ref.block_amax(wk, 128, 128), ref.FP8_MAX)
        wbq = ref.cast_fp8(wk, ref.expand_blocks(wb, n, kb, 128, 128))
        xg, xgs = ref.quant_fp8_per_group(xb, 128)
        exp_b = ref.block_scaled_mm(xg, wbq, xgs, wb, 128, 128, bias, BF16)
        xgs_m = xgs.t().contiguous().t()
        result["cublas_blockwise"] = _agrees(lambda: torch_gemm.blockwise_gemm(xg, wbq, xgs_m, wb, bias, BF16), exp_b,
                                             "blockwise")
    if caps.int_mm:
        iscale = ref.amax_to_scale(w.abs().amax(dim=1, keepdim=True), ref.INT8_MAX)
        wi = ref.cast_int8(w, iscale)
        xi, xis = ref.quant_int8_per_token(x)
        exp_i = ref.scaled_mm(xi, wi, xis, iscale.reshape(-1), bias, BF16)
        result["int_mm"] = _agrees(lambda: torch_gemm.int_gemm(xi[:5], wi, xis[:5], iscale, bias, BF16), exp_i[:5],
                                   "int_mm")
    if caps.triton:
        result["triton"] = _triton_works(caps, x, w, bias)
    return result


def _triton_works(caps: DeviceCaps, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> bool:
    """The weight-only kernel (every Triton-capable GPU's FP8 path) and, with FP8 tensor cores, the block-scaled
    one compile and agree with the reference; on sm_90+ the TMA GEMM too (its failure only switches TMA off).
    Heuristic tile configs: a probe never starts a tuning run."""
    try:
        from . import triton_gemm as tg
        from . import triton_quant as tq
        from .triton_configs import gemm_config
    except Exception as e:  # an import that fails is the probe's answer
        log.info("probe triton: unavailable (%s)", (str(e).splitlines() or [type(e).__name__])[0])
        return False
    m, k = x.shape
    n = w.shape[0]
    wq, ws = ref.quant_fp8_per_token(w)
    ws = ws.reshape(-1)
    expected = ref.weight_only_mm(x, wq, ws, None, bias, BF16)
    cc = caps.capability  # the configs this GPU runs (Hopper's 8-bit tiles differ from the generic ones)
    cfg = gemm_config(m, n, k, None, True, cc)
    if not _agrees(lambda: tg.weight_only_mm(x, wq, ws, None, bias, BF16, cfg=cfg), expected, "triton weight-only"):
        return False
    if not caps.fp8_tensor_cores:
        return True
    wb = ref.amax_to_scale(ref.block_amax(w, 128, 128), ref.FP8_MAX)
    wbq = ref.cast_fp8(w, ref.expand_blocks(wb, n, k, 128, 128))
    xg, xgs = ref.quant_fp8_per_group(x, 128)
    exp_b = ref.block_scaled_mm(xg, wbq, xgs, wb, 128, 128, bias, BF16)

    def block() -> torch.Tensor:
        xq, xs = tq.quant_fp8_per_group(x, 128)
        return tg.block_scaled_mm(xq, wbq, xs, wb, 128, 128, bias, BF16, cfg=gemm_config(m, n, k, 128, False, cc))

    if not _agrees(block, exp_b, "triton block"):
        return False
    if cc is not None and tuple(cc) >= (9, 0):
        _probe_tma(x, wq, ws, bias, cc)
    return True


def _probe_tma(x: torch.Tensor, wq: torch.Tensor, ws: torch.Tensor, bias: torch.Tensor,
               capability: tuple[int, int]) -> bool:
    """The TMA GEMM (``triton_tma_gemm``, the sm_90 heuristic's 8-bit kernel) at the heuristic's config: where it
    raises or computes wrong numbers it is switched off (``disable``) and the pointer kernel runs instead."""
    from . import triton_tma_gemm as tt
    from .triton_configs import gemm_config

    m, k = x.shape
    n = wq.shape[0]
    cfg = replace(gemm_config(m, n, k, None, False, capability), tma=True)
    xq, xs = ref.quant_fp8_per_token(x)
    expected = ref.scaled_mm(xq, wq, xs, ws, bias, BF16)
    if _agrees(lambda: tt.scaled_mm(xq, wq, xs, ws, bias, BF16, cfg), expected, "triton tma"):
        return True
    tt.disable("the one-time probe failed (see the probe triton tma line)")
    return False
