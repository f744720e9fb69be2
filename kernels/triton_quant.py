"""Fused dynamic activation quantization (Triton): one pass over the activations writes codes and scales — FP8
per-token and INT8 per-token (one program per row), per-tensor with a given scale, and per-token-group ``1 x g``
(one program per row and tile of groups, held as a [groups, g] tile). Numerics follow ``kernels.reference``
(scale = max(amax, eps) / qmax, saturate, round to nearest even).

Per-token rows: each thread holds ``VEC`` = 16 consecutive elements (two 16-byte bf16 loads, one 16-byte store of
16 codes; the compiled-kernel audit checks the widths). A row of up to ``ROW_MAX`` elements is read once and held
in registers (amax, then quantize: one read, one write); longer rows are read twice in ``CHUNK``-element steps.
The per-tensor scale comes from ``torch.aminmax`` (one read, no |x| temporary)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import reference as ref
from .triton_rounding import round_half_even, round_to_e4m3

VEC = 16  # consecutive elements per thread: 16-byte stores of 1-byte codes, 2 x 16-byte loads of bf16
ROW_MAX = 16384  # rows up to this many elements are held in registers (<= 32 per thread at 16 warps)
CHUNK = 4096  # elements per loop step of longer rows (8 warps x 32 threads x VEC)
GROUP_TILE = 1024  # elements per program for per-group quantization


@triton.jit
def _quantize(v, scale, qmax, INT8: tl.constexpr):
    y = v / scale
    if INT8:
        return tl.minimum(tl.maximum(round_half_even(y), -qmax), qmax)
    return round_to_e4m3(tl.minimum(tl.maximum(y, -qmax), qmax))


@triton.jit
def _quant_kernel(x_ptr, q_ptr, s_ptr, K, stride_xm, stride_qm, stride_sm, qmax, eps,
                  FIXED_SCALE: tl.constexpr, INT8: tl.constexpr, SINGLE: tl.constexpr, BLOCK: tl.constexpr):
    """One row per program. ``SINGLE``: BLOCK >= K, the row is loaded once."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * stride_xm
    q_row = q_ptr + row * stride_qm
    offs = tl.arange(0, BLOCK)
    if SINGLE:
        mask = offs < K
        v = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
        if FIXED_SCALE:
            scale = tl.load(s_ptr).to(tl.float32)
        else:
            scale = tl.maximum(tl.max(tl.abs(v), axis=0), eps) / qmax
            tl.store(s_ptr + row * stride_sm, scale)
        tl.store(q_row + offs, _quantize(v, scale, qmax, INT8).to(q_ptr.dtype.element_ty), mask=mask)
    else:
        if FIXED_SCALE:
            scale = tl.load(s_ptr).to(tl.float32)
        else:
            amax = tl.zeros([BLOCK], dtype=tl.float32)
            for off in range(0, K, BLOCK):
                mask = off + offs < K
                v = tl.load(x_row + off + offs, mask=mask, other=0.0).to(tl.float32)
                amax = tl.maximum(amax, tl.abs(v))
            scale = tl.maximum(tl.max(amax, axis=0), eps) / qmax
            tl.store(s_ptr + row * stride_sm, scale)
        for off in range(0, K, BLOCK):
            mask = off + offs < K
            v = tl.load(x_row + off + offs, mask=mask, other=0.0).to(tl.float32)
            tl.store(q_row + off + offs, _quantize(v, scale, qmax, INT8).to(q_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _quant_groups_kernel(x_ptr, q_ptr, s_ptr, K, num_groups, stride_xm, stride_qm, stride_sm, stride_sg, eps,
                         GROUP: tl.constexpr, GROUPS_PER_PROGRAM: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    gs = tl.program_id(1) * GROUPS_PER_PROGRAM + tl.arange(0, GROUPS_PER_PROGRAM)
    cols = gs[:, None] * GROUP + tl.arange(0, GROUP)[None, :]
    mask = cols < K
    v = tl.load(x_ptr + row * stride_xm + cols, mask=mask, other=0.0).to(tl.float32)
    scale = tl.maximum(tl.max(tl.abs(v), axis=1), eps) / 448.0
    tl.store(s_ptr + row * stride_sm + gs * stride_sg, scale, mask=gs < num_groups)
    y = round_to_e4m3(tl.minimum(tl.maximum(v / scale[:, None], -448.0), 448.0))
    tl.store(q_ptr + row * stride_qm + cols, y.to(q_ptr.dtype.element_ty), mask=mask)


def _row_args(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, fixed: bool, stride_sm: int
              ) -> tuple[dict, int]:
    """``_quant_kernel``'s arguments (pointers, sizes, constexprs) and its warp count for one launch: the row in
    registers when it fits (``VEC`` elements per thread, up to 16 warps), else ``CHUNK`` steps with 8 warps."""
    k = x.shape[1]
    int8 = q.dtype == torch.int8
    single = k <= ROW_MAX
    block = max(32 * VEC, triton.next_power_of_2(k)) if single else CHUNK
    warps = min(16, block // (32 * VEC)) if single else CHUNK // (32 * VEC)
    args = dict(x_ptr=x, q_ptr=q, s_ptr=scale, K=k, stride_xm=x.stride(0), stride_qm=q.stride(0),
                stride_sm=stride_sm, qmax=ref.INT8_MAX if int8 else ref.FP8_MAX, eps=ref.AMAX_EPS,
                FIXED_SCALE=fixed, INT8=int8, SINGLE=single, BLOCK=block)
    return args, warps


def _launch(x: torch.Tensor, dtype: torch.dtype, scale: torch.Tensor, fixed: bool, stride_sm: int
            ) -> torch.Tensor:
    m, k = x.shape
    x = x if x.stride(-1) == 1 else x.contiguous()
    q = torch.empty((m, k), dtype=dtype, device=x.device)
    args, warps = _row_args(x, q, scale, fixed, stride_sm)
    _quant_kernel[(m,)](**args, num_warps=warps)
    return q


def _groups_args(x: torch.Tensor, q: torch.Tensor, s: torch.Tensor, group: int) -> tuple[dict, int, tuple]:
    """``_quant_groups_kernel``'s arguments, warp count and grid for one launch."""
    m, k = x.shape
    g = ref.ceil_div(k, group)
    per_program = min(triton.next_power_of_2(g), max(1, GROUP_TILE // group))
    args = dict(x_ptr=x, q_ptr=q, s_ptr=s, K=k, num_groups=g, stride_xm=x.stride(0), stride_qm=q.stride(0),
                stride_sm=s.stride(0), stride_sg=s.stride(1), eps=ref.AMAX_EPS, GROUP=group,
                GROUPS_PER_PROGRAM=per_program)
    warps = max(1, min(4, per_program * group // (32 * VEC)))  # VEC elements per thread where the tile allows
    return args, warps, (m, triton.cdiv(g, per_program))


def _describe(args: dict, warps: int) -> str:
    if "BLOCK" in args:
        return f"BLOCK {args['BLOCK']} {'single pass' if args['SINGLE'] else 'two passes'} warps {warps}"
    return f"BLOCK {args['GROUPS_PER_PROGRAM']}x{args['GROUP']} warps {warps}"


def audit_launches(k: int, dtype: torch.dtype, fixed: bool) -> list[tuple[dict, int, str]]:
    """(arguments, warps, config) of the per-token / per-tensor kernel for a K-wide bf16 row and for a row too
    long for one pass (4 K), as ``_launch`` passes them (CPU tensors stand in for the pointers): what
    ``bench/compiled_audit.py`` compiles."""
    out = []
    for width in (k, 4 * max(k, ROW_MAX)):
        x = torch.empty((2, width), dtype=torch.bfloat16)
        q = torch.empty((2, width), dtype=dtype)
        s = torch.empty((), dtype=torch.float32) if fixed else torch.empty((2, 1), dtype=torch.float32)
        args, warps = _row_args(x, q, s, fixed, 0 if fixed else 1)
        out.append((args, warps, _describe(args, warps)))
    return out


def audit_group_launches(k: int, group: int) -> list[tuple[dict, int, str]]:
    """As ``audit_launches``, for the per-group kernel (row-major scales)."""
    x = torch.empty((2, k), dtype=torch.bfloat16)
    q = torch.empty((2, k), dtype=ref.FP8_DTYPE)
    s = torch.empty((2, ref.ceil_div(k, group)), dtype=torch.float32)
    args, warps, _ = _groups_args(x, q, s, group)
    return [(args, warps, _describe(args, warps))]


def quant_fp8_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[M, K] → e4m3 codes, float32 scales [M, 1]."""
    s = torch.empty((x.shape[0], 1), dtype=torch.float32, device=x.device)
    return _launch(x, ref.FP8_DTYPE, s, False, s.stride(0)), s


def quant_int8_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[M, K] → int8 codes in [-127, 127], float32 scales [M, 1]."""
    s = torch.empty((x.shape[0], 1), dtype=torch.float32, device=x.device)
    return _launch(x, torch.int8, s, False, s.stride(0)), s


def quant_fp8_per_group(x: torch.Tensor, group: int, m_major: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """[M, K] → e4m3 codes, float32 scales [M, ceil(K/group)] (row-major, or M-major for cuBLAS blockwise).
    ``group`` is a power of two (the scheme's block width)."""
    m, k = x.shape
    g = ref.ceil_div(k, group)
    x = x if x.stride(-1) == 1 else x.contiguous()
    q = torch.empty((m, k), dtype=ref.FP8_DTYPE, device=x.device)
    s = torch.empty((g, m), dtype=torch.float32, device=x.device).t() if m_major else \
        torch.empty((m, g), dtype=torch.float32, device=x.device)
    args, warps, grid = _groups_args(x, q, s, group)
    _quant_groups_kernel[grid](**args, num_warps=warps)
    return q, s


def quant_fp8_per_tensor(x: torch.Tensor, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[M, K] → e4m3 codes with one scale [] (dynamic: amax / 448 from ``torch.aminmax``, one extra read and
    no |x| temporary)."""
    if scale is None:
        lo, hi = torch.aminmax(x)
        scale = ref.amax_to_scale(torch.maximum(hi.float(), -lo.float()), ref.FP8_MAX)
    scale = scale.to(device=x.device, dtype=torch.float32).reshape(())
    return _launch(x, ref.FP8_DTYPE, scale, True, 0), scale
