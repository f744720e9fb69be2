"""Shared by the Triton GEMMs (``triton_gemm``'s pointer kernels and ``triton_tma_gemm``): the grouped tile order
and the strides a scale tensor is read with."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


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


def scale_strides(scale: torch.Tensor) -> tuple[int, int]:
    """(row, group) strides of a scale tensor: [] → (0, 0); [R] or [R, 1] → (s, 0); [R, G] → its strides."""
    if scale.dim() == 0 or scale.numel() == 1:
        return 0, 0
    if scale.dim() == 1 or scale.shape[1] == 1:
        return scale.stride(0), 0
    return scale.stride(0), scale.stride(1)
