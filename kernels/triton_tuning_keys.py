"""Keys and candidate tile configs of the Triton GEMM tuning (``triton_tuning``): what a tuned config is specific
to (device, Triton version, kernel mode, M bucket, N, K) and which configs are worth timing for a shape."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

import torch

from .triton_configs import (
    GemmConfig,
    fits_registers,
    gemm_config,
    register_kind,
    smem_bytes,
)

MAX_CANDIDATES = 5
SMEM_LIMIT = 200 * 1024  # bytes of shared memory a candidate's pipeline may need (H100/H200 have 227 KB per block)
HOPPER_SM_SMEM = 233472  # shared memory of one sm_90 SM (228 KB), 1 KB of it reserved per resident block
LARGE_M = 8192  # M buckets are powers of two up to this; every larger M shares one bucket
LARGE_M_BUCKET = 2 * LARGE_M


# --- keys ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """What a cache file and its keys are specific to. ``smem``: shared memory a block may use (bytes)."""

    name: str  # slug of the device name, e.g. "NVIDIA_H200"
    capability: tuple[int, int]
    triton: str
    smem: int = SMEM_LIMIT


def slug(text: str) -> str:
    """``"NVIDIA H200"`` → ``"NVIDIA_H200"``: letters, digits, ``.`` and ``-`` kept, other runs → ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "unknown"


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "none"
    return slug(triton.__version__)


@functools.cache
def device_info(index: int) -> DeviceInfo:
    """``DeviceInfo`` of CUDA device ``index`` (cached per process)."""
    props = torch.cuda.get_device_properties(index)
    optin = getattr(props, "shared_memory_per_block_optin", 0) or SMEM_LIMIT
    return DeviceInfo(slug(props.name), (props.major, props.minor), _triton_version(), min(SMEM_LIMIT, optin))


def m_bucket(m: int) -> int:
    """The M bucket: the next power of two (1, 2, 4, ..., 8192); every M above 8192 → ``LARGE_M_BUCKET``."""
    if m > LARGE_M:
        return LARGE_M_BUCKET
    return 1 << max(0, m - 1).bit_length()


def kernel_mode(group_n: int, group_k: int | None, weight_only: bool, int8: bool) -> str:
    """``block-128x128``, ``scaled``, ``int8``, ``weight_only`` or ``weight_only-128x128``."""
    mode = "weight_only" if weight_only else "int8" if int8 else "block" if group_k is not None else "scaled"
    return mode if group_k is None else f"{mode}-{group_n}x{group_k}"


def shape_key(info: DeviceInfo, m: int, n: int, k: int, group_n: int, group_k: int | None, weight_only: bool,
              int8: bool) -> str:
    b = m_bucket(m)
    bucket = f"m{b}" if b <= LARGE_M else f"m>{LARGE_M}"
    cc = f"sm{info.capability[0]}{info.capability[1]}"
    return f"{info.name}/{cc}/triton{info.triton}/{kernel_mode(group_n, group_k, weight_only, int8)}/{bucket}/n{n}/k{k}"


# --- candidates ----------------------------------------------------------------------------------------------------


def _next_pow2(x: int) -> int:
    return 1 << max(0, x - 1).bit_length()


def candidates(m: int, n: int, k: int, group_k: int | None = None, weight_only: bool = False, int8: bool = False,
               smem_limit: int = SMEM_LIMIT, capability: tuple[int, int] | None = None) -> list[GemmConfig]:
    """Configs worth timing for one GEMM: the heuristic first (always), then up to ``MAX_CANDIDATES - 1``
    alternatives typical of Hopper / Ampere FP8 / INT8 GEMMs (tile shape, BLOCK_K, warps, pipeline depth).

    Alternatives keep BLOCK_K a divisor of ``group_k`` (the scale group the block-scaled kernel promotes on),
    BLOCK_K >= 32 for FP8 / INT8 dots (16 for the bf16 / fp16 dots of weight-only), tiles no larger than the
    problem needs, the pipeline within ``smem_limit`` bytes of shared memory, and on Hopper (``capability`` 9.x)
    8-bit tiles of at least 64 rows (the wgmma M), and for register-hungry kernels (``fits_registers``) no tile
    the audit saw spill. Only tiles the compiled-kernel audit (``bench/compiled_audit.py``,
    every mode on sm_90a / sm_89 / sm_80) compiles without register spills are listed: 128-row tiles with 4 warps,
    128x256 and 256x128 spill on sm_90a and are gone; 64x128x128 with 4 warps (vLLM's H200 pick) is first above
    M = 512. On Hopper, kernels that wait for each wgmma (block-scaled promotion, INT8) keep 4-warp tiles only
    where two blocks fit one SM's shared memory: a lone warpgroup per SM would leave the tensor cores idle while
    it scales each partial product (the audit's ``resident_warpgroups`` rule). Where the heuristic loads by TMA
    (Hopper 8-bit, ``GemmConfig.tma``) its pointer-kernel twin comes second (one more candidate) and the
    alternatives use TMA too. A shape whose list is the heuristic alone is not timed at all (``select_config``)."""
    h = gemm_config(m, n, k, group_k, weight_only, capability)
    bk = h.block_k
    hopper_8bit = capability is not None and capability[0] == 9 and not weight_only
    kind = register_kind(group_k, weight_only, capability)
    waits_each_mma = capability is not None and capability[0] == 9 and (group_k is not None or int8)
    if m <= 16:
        alts = [(64, 32, bk, 1, 4, 4), (64, 128, bk, 1, 4, 3), (64, 64, bk, 1, 4, 4)] if hopper_8bit else \
            [(16, 32, bk, 1, 4, 4), (16, 128, bk, 1, 4, 4), (16, 64, bk, 1, 4, 5), (16, 64, 2 * bk, 1, 4, 3),
             (16, 64, bk // 2, 1, 4, 6), (32, 64, bk, 1, 4, 4)]
    elif m <= 64:
        bm = h.block_m
        alts = [(bm, 192 - h.block_n, bk, 8, 4, 4), (bm, h.block_n, bk, 8, 4, 5), (bm, 256, bk, 8, 8, 3),
                (bm, 128, bk // 2, 8, 4, 5), (bm, 64, 2 * bk, 8, 4, 3), (bm, 128, bk // 2, 8, 8, 4),
                (bm, 64, bk // 2, 8, 4, 4)]  # 192 - bn: 64 <-> 128
    elif m <= 512:
        alts = [(128, 128, bk, 8, 8, 3), (64, 256, bk, 8, 8, 3), (64, 64, bk, 8, 4, 4), (64, 128, bk // 2, 8, 4, 5),
                (64, 128, bk, 8, 4, 3), (64, 128, bk, 8, 8, 3), (128, 64, bk, 8, 8, 3), (64, 128, bk // 2, 8, 8, 4)]
    else:
        alts = [(64, 128, bk, 8, 4, 4), (128, 128, bk // 2, 8, 8, 4), (128, 128, bk, 8, 8, 4),
                (64, 128, bk // 2, 8, 4, 5), (64, 128, bk, 8, 4, 3), (64, 128, bk, 8, 8, 4), (128, 64, bk, 8, 8, 4),
                (64, 128, bk // 2, 8, 8, 4)]
    min_bk = 16 if weight_only else 32
    max_m = max(h.block_m, _next_pow2(m))
    max_n = max(h.block_n, _next_pow2(n))
    max_k = max(h.block_k, _next_pow2(k))
    out = [h, replace(h, tma=False)] if h.tma else [h]  # TMA vs the pointer kernel at the heuristic's tile
    limit = MAX_CANDIDATES + len(out) - 1
    for bm, bn, bk_, gm, warps, stages in alts:
        if len(out) == limit:
            break
        c = GemmConfig(bm, bn, bk_, gm, warps, stages, h.tma)
        if (c in out or bk_ < min_bk or bk_ > 256 or (group_k is not None and group_k % bk_)
                or bm > max_m or bn > max_n or bk_ > max_k or smem_bytes(c, weight_only) > smem_limit
                or (hopper_8bit and bm < 64) or not fits_registers(c, kind)
                or (waits_each_mma and warps < 8 and 2 * (smem_bytes(c, weight_only) + 1024) > HOPPER_SM_SMEM)):
            continue
        out.append(c)
    return out


def describe(cfg: GemmConfig) -> str:
    return (f"BLOCK {cfg.block_m}x{cfg.block_n}x{cfg.block_k} group_m {cfg.group_m} warps {cfg.num_warps} "
            f"stages {cfg.num_stages}" + (" tma" if cfg.tma else ""))
