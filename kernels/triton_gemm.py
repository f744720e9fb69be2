"""Scaled GEMMs in Triton: ``C = (A * a_scale) @ (B * b_scale).T + bias``, B stored [N, K] (codes).

Two kernels:

``_scaled_gemm_kernel`` (8-bit A and B, constexpr flags):

- block-scaled FP8: ``1 x bk`` A scales x ``bn x bk`` B scales, fp32 promotion every scale group of K
  (``acc += dot(a, b) * sa[:, None] * sb[None, :]``);
- per-tensor / per-token x per-channel FP8 and INT8: plain accumulation (fp32, or int32 for INT8), scales in the
  epilogue; FP8 dots promote to fp32 every BLOCK_K (``max_num_imprecise_acc``: sm_90 otherwise keeps Triton's
  default of reduced-precision tensor-core accumulation over all of K). The dot accumulates into ``acc``
  (``acc = tl.dot(a, b, acc)``, not ``acc += tl.dot(a, b)``): on Hopper that keeps one wgmma group in flight
  (``wgmma.wait_group 1`` in the K loop, checked by ``bench/compiled_audit.py``).

``_weight_only_kernel``: bf16/fp16 A, FP8 B codes converted exactly to A's dtype in registers, B scales per
channel (epilogue) or per block (promoted per group). It computes the transposed tile (``W @ X^T``) so that the
converted weight is the MMA's register operand: no round trip through shared memory before each MMA, wgmma (and a
group in flight, per-channel) on Hopper at every M. Triton has an e4m3 type only on sm_89+; below that (A100,
RTX 30xx) the codes are read as uint8 and decoded from their bits (``B_BITS``): no FP8 hardware needed.

Bias and the output dtype are fused in the epilogues; M, N and K tails are masked.

On Hopper (sm_90+) the 8-bit kernel's tiles come by TMA instead (``triton_tma_gemm``, same math, fewer
registers in the compiled code): ``_launch`` takes it when the config says ``tma`` and the operands are
TMA-aligned, and falls back to ``_scaled_gemm_kernel`` otherwise or after a failed TMA launch.

What still waits for every MMA on Hopper (``wgmma.wait_group 0`` in the loop; Triton makes a dot asynchronous only
when its accumulator is a loop-carried value that nothing else reads): the block-scaled loops (each step's
partial product is read to be scaled; promoting one step late with a second accumulator was compiled and still
waits, at 255 registers and spills; two dots per iteration wait [0, 0]; ``tl.range(warp_specialize=True)`` is
ignored at 8 warps and at 4 needs TMA loads and then waits [0, 0] too; promoting less often is exact only for
equal scales) and, in Triton 3.9, the INT8 loop (int32 accumulator) even in the accumulate-into form and with TMA
loads. Those loops rely on a second resident warpgroup issuing its MMA while one scales (8-warp tiles, or two
4-warp blocks per SM: the audit's ``resident_warpgroups`` rule), as DeepGEMM's and CUTLASS's block-scaled
Hopper kernels do with their ping-pong consumer warpgroups.

Tile configs: a caller's ``cfg`` wins; otherwise ``triton_tuning.select_config`` (tuned at first use per GPU and
shape bucket on CUDA, cached on disk; the ``triton_configs`` heuristic elsewhere and under the interpreter).
"""

from __future__ import annotations

import functools
from dataclasses import replace

import torch
import triton
import triton.language as tl

from .triton_configs import GemmConfig, gemm_config
from .triton_rounding import e4m3_bits_to_float, round_to_bf16
from .triton_tiles import scale_strides as _strides
from .triton_tiles import store_scaled
from .triton_tiles import tile as _tile
from .triton_tuning import select_config

# Decided when the kernels are decorated (as Triton decides interpretation): the interpreter's bf16 dot is wrong.
_INTERPRETED = bool(triton.knobs.runtime.interpret)


@triton.jit
def _scaled_gemm_kernel(a_ptr, b_ptr, c_ptr, as_ptr, bs_ptr, bias_ptr, M, N, K,
                        stride_am, stride_ak, stride_bn, stride_bk, stride_cm, stride_cn,
                        stride_asm, stride_ask, stride_bsn, stride_bsk,
                        GROUP_N: tl.constexpr, GROUP_K: tl.constexpr, PROMOTE: tl.constexpr,
                        A_SCALED: tl.constexpr, INT8: tl.constexpr, HAS_BIAS: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid_m, pid_n = _tile(M, N, BLOCK_M, BLOCK_N, GROUP_M)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    a_ptrs = a_ptr + offs_m[:, None].to(tl.int64) * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + offs_k[:, None] * stride_bk + offs_n[None, :].to(tl.int64) * stride_bn
    as_row = as_ptr + offs_m * stride_asm
    bs_col = bs_ptr + (offs_n // GROUP_N) * stride_bsn

    if INT8:  # noqa: SIM108 - Triton constexpr branch
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        mask_k = k0 + offs_k < K
        a = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        if PROMOTE:  # waits for each MMA by construction: see the module docstring
            kg = k0 // GROUP_K
            sb = tl.load(bs_col + kg * stride_bsk, mask=mask_n, other=0.0)
            part = tl.dot(a, b, out_dtype=tl.float32) * sb[None, :]
            if A_SCALED:
                sa = tl.load(as_row + kg * stride_ask, mask=mask_m, other=0.0)
                part = part * sa[:, None]
            acc += part
        elif INT8:
            acc = tl.dot(a, b, acc)
        else:  # FP8 x FP8: Hopper accumulates FP8 dots imprecisely unless told to promote (here: every tile)
            acc = tl.dot(a, b, acc, max_num_imprecise_acc=BLOCK_K)
        a_ptrs += BLOCK_K * stride_ak
        b_ptrs += BLOCK_K * stride_bk

    store_scaled(acc, c_ptr, as_row, bs_col, bias_ptr, offs_m, offs_n, mask_m, mask_n, stride_cm, stride_cn,
                 PROMOTE, A_SCALED, HAS_BIAS)


@triton.jit
def _weight_only_kernel(a_ptr, b_ptr, c_ptr, bs_ptr, bias_ptr, M, N, K,
                        stride_am, stride_ak, stride_bn, stride_bk, stride_cm, stride_cn, stride_bsn, stride_bsk,
                        GROUP_N: tl.constexpr, GROUP_K: tl.constexpr, PROMOTE: tl.constexpr, HAS_BIAS: tl.constexpr,
                        DOT_F32: tl.constexpr, B_BITS: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    """Weight-only, transposed: ``acc[BLOCK_N, BLOCK_M] = W_tile @ X_tile^T``. The weight converted in registers
    is the MMA's first operand, which Hopper's wgmma reads from registers: no staging of the converted tile
    through shared memory, and (per-channel scales) a wgmma group in flight. The wgmma M is BLOCK_N (>= 64) and
    its N is BLOCK_M, so small token counts keep wgmma too."""
    pid_m, pid_n = _tile(M, N, BLOCK_M, BLOCK_N, GROUP_M)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_m = offs_m < M
    mask_n = offs_n < N
    w_ptrs = b_ptr + offs_n[:, None].to(tl.int64) * stride_bn + offs_k[None, :] * stride_bk
    x_ptrs = a_ptr + offs_k[:, None] * stride_ak + offs_m[None, :].to(tl.int64) * stride_am
    bs_row = bs_ptr + (offs_n // GROUP_N) * stride_bsn

    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        mask_k = k0 + offs_k < K
        x = tl.load(x_ptrs, mask=mask_k[:, None] & mask_m[None, :], other=0.0)
        if B_BITS:  # e4m3 codes as uint8 (no e4m3 type on this GPU): decode the bits
            w = e4m3_bits_to_float(tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0))
        else:
            w = tl.load(w_ptrs, mask=mask_n[:, None] & mask_k[None, :], other=0.0)
        w = w.to(x.dtype)  # exact: e4m3 values are bf16 / fp16 values
        if DOT_F32:  # interpreter only: its bf16 dot multiplies raw bits
            w = w.to(tl.float32)
            x = x.to(tl.float32)
        if PROMOTE:  # block scales: one partial product per scale group, promoted in fp32
            sb = tl.load(bs_row + (k0 // GROUP_K) * stride_bsk, mask=mask_n, other=0.0)
            acc += tl.dot(w, x, out_dtype=tl.float32) * sb[:, None]
        else:
            acc = tl.dot(w, x, acc)
        w_ptrs += BLOCK_K * stride_bk
        x_ptrs += BLOCK_K * stride_ak

    out = acc
    if not PROMOTE:
        out = out * tl.load(bs_row, mask=mask_n, other=0.0)[:, None]
    if HAS_BIAS:
        out += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[:, None]
    c_ptrs = c_ptr + offs_m[None, :].to(tl.int64) * stride_cm + offs_n[:, None] * stride_cn
    if c_ptr.dtype.element_ty == tl.bfloat16:
        out = round_to_bf16(out)
    tl.store(c_ptrs, out.to(c_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_m[None, :])


def _launch(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor | None, b_scale: torch.Tensor,
            bias: torch.Tensor | None, out_dtype: torch.dtype, out: torch.Tensor | None,
            group_n: int, group_k: int | None, weight_only: bool, cfg: GemmConfig | None,
            b_bits: bool = False) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[0]
    if out is None:
        out = torch.empty((m, n), dtype=out_dtype, device=a.device)
    b_scale = b_scale.float()
    a_scale = b_scale if a_scale is None else a_scale.float()
    int8 = a.dtype == torch.int8
    cc = _capability(a.device)

    def launch(c: GemmConfig) -> None:
        if group_k is not None and group_k % c.block_k:
            raise ValueError(f"BLOCK_K={c.block_k} must divide the scale group {group_k}")
        grid = (triton.cdiv(m, c.block_m) * triton.cdiv(n, c.block_n),)
        if weight_only:
            _weight_only_kernel[grid](
                a, b, out, b_scale, b_scale if bias is None else bias, m, n, k,
                a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
                *_strides(b_scale), GROUP_N=group_n, GROUP_K=group_k or c.block_k, PROMOTE=group_k is not None,
                HAS_BIAS=bias is not None, DOT_F32=a.dtype == torch.bfloat16 and _INTERPRETED, B_BITS=b_bits,
                BLOCK_M=c.block_m, BLOCK_N=c.block_n, BLOCK_K=c.block_k, GROUP_M=c.group_m,
                num_warps=c.num_warps, num_stages=c.num_stages)
            return
        if _tma_usable(a, b, cc, c.tma):
            _tma_launch(a, b, out, a_scale, b_scale, bias, group_n, group_k, c)
            return
        _scaled_gemm_kernel[grid](
            a, b, out, a_scale, b_scale, b_scale if bias is None else bias, m, n, k,
            a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1),
            *_strides(a_scale), *_strides(b_scale),
            GROUP_N=group_n, GROUP_K=group_k or c.block_k, PROMOTE=group_k is not None,
            A_SCALED=not weight_only, INT8=int8, HAS_BIAS=bias is not None,
            BLOCK_M=c.block_m, BLOCK_N=c.block_n, BLOCK_K=c.block_k, GROUP_M=c.group_m,
            num_warps=c.num_warps, num_stages=c.num_stages)

    if cfg is None:  # tuned at first use on CUDA (timing writes `out`: the launch below rewrites it), else heuristic
        cfg = gemm_config(m, n, k, group_k, weight_only, cc) if _INTERPRETED else \
            select_config(a.device, m, n, k, group_n, group_k, weight_only, int8, launch)
    launch(cfg)
    return out


@functools.cache
def _tma_module():
    """``triton_tma_gemm``, or None where this Triton has no host tensor descriptors."""
    try:
        from . import triton_tma_gemm
    except ImportError:
        return None
    return triton_tma_gemm


def _tma_usable(a: torch.Tensor, b: torch.Tensor, cc: tuple[int, int] | None, requested: bool = True) -> bool:
    """A config's ``tma`` (``requested``) applies: sm_90+ (or the interpreter), not disabled, operands aligned."""
    tt = _tma_module()
    return tt is not None and tt.usable(a, b, cc, _INTERPRETED, requested)


def _tma_launch(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                bias: torch.Tensor | None, group_n: int, group_k: int | None, c: GemmConfig) -> None:
    """The TMA kernel (``triton_tma_gemm``). A launch that raises (other than for resources, which a tuning
    run skips) switches TMA off for the process and runs the pointer kernel instead."""
    tt = _tma_module()
    try:
        tt.launch(a, b, out, a_scale, b_scale, bias, (*_strides(a_scale), *_strides(b_scale)), group_n, group_k, c)
    except triton.runtime.errors.OutOfResources:
        raise
    except Exception as e:  # a Triton / driver whose TMA path does not work: the pointer kernel (logged once)
        tt.disable(f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
        _launch(a, b, a_scale, b_scale, bias, out.dtype, out, group_n, group_k, False, replace(c, tma=False))


def block_scaled_mm(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                    block_n: int, block_k: int, bias: torch.Tensor | None, out_dtype: torch.dtype,
                    out: torch.Tensor | None = None, cfg: GemmConfig | None = None) -> torch.Tensor:
    """FP8 [M, K] x FP8 [N, K]; ``a_scale`` [M, ceil(K/bk)], ``b_scale`` [ceil(N/bn), ceil(K/bk)]."""
    return _launch(a, b, a_scale, b_scale, bias, out_dtype, out, block_n, block_k, False, cfg)


def scaled_mm(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
              bias: torch.Tensor | None, out_dtype: torch.dtype, out: torch.Tensor | None = None,
              cfg: GemmConfig | None = None) -> torch.Tensor:
    """FP8 or INT8 [M, K] x [N, K]; ``a_scale`` [] or [M, 1], ``b_scale`` [] or [N]; scales in the epilogue."""
    return _launch(a, b, a_scale, b_scale, bias, out_dtype, out, 1, None, False, cfg)


@functools.cache
def _cuda_capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def _capability(device: torch.device) -> tuple[int, int] | None:
    """The CUDA device's compute capability (asked once per device), None elsewhere."""
    if device.type != "cuda":
        return None
    return _cuda_capability(device.index if device.index is not None else torch.cuda.current_device())


def _lacks_e4m3(index: int) -> bool:
    """Triton has an e4m3 type only from sm_89 on."""
    return _cuda_capability(index) < (8, 9)


def weight_only_mm(x: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor, block: tuple[int, int] | None,
                   bias: torch.Tensor | None, out_dtype: torch.dtype, out: torch.Tensor | None = None,
                   cfg: GemmConfig | None = None, decode_bits: bool | None = None) -> torch.Tensor:
    """bf16/fp16 [M, K] x FP8 [N, K] with [] / [N] scales (epilogue) or a block grid (promoted per bk).

    ``decode_bits``: read the codes as uint8 and decode them in registers; None = where Triton lacks e4m3 (CUDA
    below sm_89)."""
    if decode_bits is None:
        decode_bits = b.is_cuda and _lacks_e4m3(b.device.index if b.device.index is not None
                                                else torch.cuda.current_device())
    if decode_bits:
        b = b.view(torch.uint8)
    group_n, group_k = block if block is not None else (1, None)
    return _launch(x, b, None, b_scale, bias, out_dtype, out, group_n, group_k, True, cfg, decode_bits)
