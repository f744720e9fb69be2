"""Shared by the Triton GEMMs (``triton_gemm``'s pointer kernels and ``triton_tma_gemm``): the grouped tile order,
the 8-bit GEMMs' epilogue and the strides a scale tensor is read with."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_rounding import round_to_bf16


@triton.jit
def tile(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """This program's (row, column) tile, grouped GROUP_M tile rows at a time (better L2 reuse of B)."""
    pid = tl.program_id(0)
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    size_m = tl.minimum(num_m - first_m, GROUP_M)
    return first_m + (pid % group) % size_m, (pid % group) // size_m


@triton.jit
def store_scaled(acc, c_ptr, as_row, bs_col, bias_ptr, offs_m, offs_n, mask_m, mask_n, stride_cm, stride_cn,
                 PROMOTE: tl.constexpr, A_SCALED: tl.constexpr, HAS_BIAS: tl.constexpr):
    """The 8-bit GEMMs' epilogue: epilogue scales (unless the K loop promoted per block), bias, bf16 rounding to
    nearest even, output cast, masked store of the [BLOCK_M, BLOCK_N] tile."""
    out = acc.to(tl.float32)
    if not PROMOTE:
        out = out * tl.load(bs_col, mask=mask_n, other=0.0)[None, :]
        if A_SCALED:
            out = out * tl.load(as_row, mask=mask_m, other=0.0)[:, None]
    if HAS_BIAS:
        out += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    c_ptrs = c_ptr + offs_m[:, None].to(tl.int64) * stride_cm + offs_n[None, :] * stride_cn
    if c_ptr.dtype.element_ty == tl.bfloat16:
        out = round_to_bf16(out)
    tl.store(c_ptrs, out.to(c_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def scale_strides(scale: torch.Tensor) -> tuple[int, int]:
    """(row, group) strides of a scale tensor: [] → (0, 0); [R] or [R, 1] → (s, 0); [R, G] → its strides."""
    if scale.dim() == 0 or scale.numel() == 1:
        return 0, 0
    if scale.dim() == 1 or scale.shape[1] == 1:
        return scale.stride(0), 0
    return scale.stride(0), scale.stride(1)
