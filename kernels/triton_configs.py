"""Tile configurations for the Triton GEMMs: the shipped heuristic, by M bucket.

``gemm_config`` is what runs where nothing is tuned: on the CPU under ``TRITON_INTERPRET=1``, with
``COMFYUI_DIT_QUANT_TUNE=0`` (or during CUDA graph capture) for shapes not tuned yet, and as the first candidate of
every tuning. On CUDA, ``triton_gemm`` asks ``triton_tuning.select_config``, which times a few alternatives against
it at the first use of each (GPU, Triton version, kernel mode, M bucket, N, K) and caches the fastest on disk
(``$COMFYUI_DIT_QUANT_CACHE_DIR``, default ``~/.cache/comfyui-dit-quant``; see ``triton_tuning``). Callers that
pass a ``GemmConfig`` explicitly get exactly that config.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GemmConfig:
    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3


def gemm_config(m: int, n: int, k: int, group_k: int | None = None, weight_only: bool = False) -> GemmConfig:
    """A config for an [M, K] x [K, N] GEMM. ``group_k``: scale group along K (BLOCK_K must divide it)."""
    bk = 128 if group_k is None else min(128, group_k)
    if m <= 16:
        return GemmConfig(16, 64, bk, 1, 4, 4 if weight_only else 3)
    if m <= 64:
        return GemmConfig(32 if m <= 32 else 64, 64 if n < 4096 else 128, bk, 8, 4, 4)
    if m <= 512:
        return GemmConfig(64, 128, bk, 8, 4, 4)
    return GemmConfig(128, 128, bk, 8, 8, 3)
