"""The Hopper (sm_90+) TMA variant of the 8-bit scaled GEMM: ``C = (A * a_scale) @ (B * b_scale).T + bias``.

Same math and epilogue as ``triton_gemm._scaled_gemm_kernel`` (FP8 per-tensor, per-token x per-channel and
block-scaled, INT8 per-token x per-channel; fused scales, bias, bf16 RTNE rounding, output cast), but A [M, K]
and B [N, K] tiles are fetched by the Tensor Memory Accelerator through host-side tensor descriptors
(``triton.tools.tensor_descriptor.TensorDescriptor``, ``desc.load``): one ``cp.async.bulk.tensor`` per tile
instead of per-thread ``cp.async`` with address arithmetic and masks. TMA zero-fills rows and columns past
M / N / K, so the K loop has no masks; the store is masked as in the pointer kernel.

Compiled for sm_90a with Triton 3.9 (``bench/compiled_audit.py``, rows ``gemm_tma_*``): fewer registers than
the pointer kernel at every config, no spills, the epilogue-scaled FP8 loops keep one wgmma group in flight.
Compiled and not used (sm_90a, Triton 3.9, FP8 per token): a persistent-tile form (grid = SMs, tiles strided, as
in Triton's persistent matmul tutorial): 163 registers at 128x128x128 / 8 warps and at 64x128x128 / 4 warps (156
and 148 here), the same waits; with ``tl.range(flatten=True)`` 179 registers and 131 KB of shared memory (98 KB
here) for the 8-warp tile. ``tl.range(warp_specialize=True)``: ignored at 8 warps; at 4 warps it specializes
(setmaxnreg) but the consumer waits for every wgmma group (waits [0, 0]). No compiled-code reason for either.

TMA needs a 16-byte aligned base, a row stride that is a multiple of 16 bytes and unit stride along K
(``usable``); ``triton_gemm._launch`` takes the pointer kernel wherever that does not hold, below sm_90, where a
probe or a first launch failed (``disable``), and under the interpreter unless a config asks for TMA.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from .triton_configs import GemmConfig
from .triton_tiles import scale_strides, store_scaled, tile

log = logging.getLogger("comfyui_dit_quant")

_disabled: str | None = None  # why TMA is off for this process (a failed probe or first launch), None = on
_forced: bool | None = None  # benchmarks: TMA on / off whatever the config says (``forced``), None = the config's


def disable(reason: str) -> None:
    """Switch the TMA kernel off for this process; the pointer kernel runs instead."""
    global _disabled
    if _disabled is None:
        log.warning("Triton TMA GEMM disabled, the pointer kernel runs instead: %s", reason)
    _disabled = reason


def enable() -> None:
    """Undo ``disable`` (tests)."""
    global _disabled
    _disabled = None


def disabled() -> str | None:
    return _disabled


def aligned(t: torch.Tensor) -> bool:
    """A 2-D tensor a TMA descriptor can address: 16-byte aligned base, 16-byte row stride, unit last stride."""
    return (t.dim() == 2 and t.stride(1) == 1 and t.data_ptr() % 16 == 0
            and (t.stride(0) * t.element_size()) % 16 == 0 and t.shape[0] > 0 and t.shape[1] > 0)


@contextlib.contextmanager
def forced(on: bool | None) -> Iterator[None]:
    """Within: every 8-bit GEMM takes the TMA kernel (``on``, where ``usable``) or the pointer kernel (not ``on``),
    whatever its config says; None changes nothing. For benchmarks comparing the two (not thread-safe; a tuning run
    inside would time one kernel under every candidate's name)."""
    global _forced
    before, _forced = _forced, on if on is not None else _forced
    try:
        yield
    finally:
        _forced = before


def usable(a: torch.Tensor, b: torch.Tensor, capability: tuple[int, int] | None, interpreted: bool,
           requested: bool = True) -> bool:
    """The TMA kernel runs these operands: ``requested`` (a config's ``tma``, unless ``forced``), on sm_90+ CUDA
    (or the interpreter), not disabled, aligned."""
    if not (requested if _forced is None else _forced) or _disabled is not None:
        return False
    if not (interpreted or (capability is not None and capability >= (9, 0))):
        return False
    return aligned(a) and aligned(b)


@triton.jit
def _tma_gemm_kernel(a_desc, b_desc, c_ptr, as_ptr, bs_ptr, bias_ptr, M, N, K,
                     stride_cm, stride_cn, stride_asm, stride_ask, stride_bsn, stride_bsk,
                     GROUP_N: tl.constexpr, GROUP_K: tl.constexpr, PROMOTE: tl.constexpr, INT8: tl.constexpr,
                     HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                     GROUP_M: tl.constexpr):
    """``a_desc`` [M, K] blocks [BLOCK_M, BLOCK_K], ``b_desc`` [N, K] blocks [BLOCK_N, BLOCK_K] (8-bit codes)."""
    pid_m, pid_n = tile(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    row = pid_m * BLOCK_M
    col = pid_n * BLOCK_N
    offs_m = row + tl.arange(0, BLOCK_M)
    offs_n = col + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    as_row = as_ptr + offs_m * stride_asm
    bs_col = bs_ptr + (offs_n // GROUP_N) * stride_bsn

    if INT8:  # noqa: SIM108 - Triton constexpr branch
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):  # tiles past M / N / K arrive zero-filled: no masks
        a = a_desc.load([row, k0])
        b = b_desc.load([col, k0])
        if PROMOTE:  # block scales: each step's partial product is scaled (waits for its MMA by construction)
            kg = k0 // GROUP_K
            sb = tl.load(bs_col + kg * stride_bsk, mask=mask_n, other=0.0)
            sa = tl.load(as_row + kg * stride_ask, mask=mask_m, other=0.0)
            acc += tl.dot(a, b.T, out_dtype=tl.float32) * sb[None, :] * sa[:, None]
        elif INT8:
            acc = tl.dot(a, b.T, acc)
        else:  # promote FP8 partial sums to fp32 every BLOCK_K (as the pointer kernel)
            acc = tl.dot(a, b.T, acc, max_num_imprecise_acc=BLOCK_K)

    store_scaled(acc, c_ptr, as_row, bs_col, bias_ptr, offs_m, offs_n, mask_m, mask_n, stride_cm, stride_cn,
                 PROMOTE, True, HAS_BIAS)


def launch(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
           bias: torch.Tensor | None, scale_strides: tuple[int, int, int, int], group_n: int, group_k: int | None,
           cfg: GemmConfig) -> None:
    """Run the TMA kernel on aligned 8-bit ``a`` [M, K] and ``b`` [N, K] (``usable``) into ``out`` [M, N].
    ``scale_strides``: (row, group) strides of ``a_scale`` then of ``b_scale`` (``triton_gemm._strides``)."""
    m, k = a.shape
    n = b.shape[0]
    a_desc = TensorDescriptor(a, [m, k], [a.stride(0), 1], [cfg.block_m, cfg.block_k])
    b_desc = TensorDescriptor(b, [n, k], [b.stride(0), 1], [cfg.block_n, cfg.block_k])
    grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(n, cfg.block_n),)
    _tma_gemm_kernel[grid](
        a_desc, b_desc, out, a_scale, b_scale, b_scale if bias is None else bias, m, n, k,
        out.stride(0), out.stride(1), *scale_strides,
        GROUP_N=group_n, GROUP_K=group_k or cfg.block_k, PROMOTE=group_k is not None, INT8=a.dtype == torch.int8,
        HAS_BIAS=bias is not None, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
        GROUP_M=cfg.group_m, num_warps=cfg.num_warps, num_stages=cfg.num_stages)


def scaled_mm(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
              bias: torch.Tensor | None, out_dtype: torch.dtype, cfg: GemmConfig) -> torch.Tensor:
    """The TMA kernel alone (no fallback; ``triton_gemm.scaled_mm`` is the caller's entry): epilogue-scaled FP8 /
    INT8, ``a_scale`` [] or [M, 1], ``b_scale`` [] or [N]. Used by the one-time probe (``kernels.probe``)."""
    out = torch.empty((a.shape[0], b.shape[0]), dtype=out_dtype, device=a.device)
    a_scale, b_scale = a_scale.float(), b_scale.float()
    launch(a, b, out, a_scale, b_scale, bias, (*scale_strides(a_scale), *scale_strides(b_scale)), 1, None, cfg)
    return out
