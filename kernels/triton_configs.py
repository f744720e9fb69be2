"""Tile configurations for the Triton GEMMs: the shipped heuristic, by M bucket and (on CUDA) GPU generation.

``gemm_config`` is what runs where nothing is tuned: on the CPU under ``TRITON_INTERPRET=1``, with
``COMFYUI_DIT_QUANT_TUNE=0`` (or during CUDA graph capture) for shapes not tuned yet, and as the first candidate of
every tuning. On CUDA, ``triton_gemm`` asks ``triton_tuning.select_config``, which times a few alternatives against
it at the first use of each (GPU, Triton version, kernel mode, M bucket, N, K) and caches the fastest on disk
(``$COMFYUI_DIT_QUANT_CACHE_DIR``, default ``~/.cache/comfyui-dit-quant``; see ``triton_tuning``). Callers that
pass a ``GemmConfig`` explicitly get exactly that config.

With the GPU's compute capability (``capability``) the heuristic also fits the target, as the compiled-kernel
audit (``bench/compiled_audit.py``) showed it must:

- Hopper (sm_90): FP8 / INT8 tiles are at least 64 rows, the M of one warpgroup MMA (``wgmma``). A 16- or 32-row
  tile has no wgmma and Hopper has no FP8 ``mma.sync``: Triton would upcast the codes to fp16 and lose the FP8 rate.
- Block-scaled weight-only, sm_89 block-scaled FP8 and sm_80 weight-only (e4m3 decoded from bits,
  BLOCK_K <= 64) use 8-warp tiles of 64x128 / 128x64 above M = 32: 4-warp 64x128 tiles (and 128x128 ones there)
  reach 255 registers and spill (``register_kind``, ``fits_registers``).
- Hopper 8-bit GEMMs load their tiles by TMA (``tma=True``: ``triton_tma_gemm``; the pointer kernel where the
  operands are not TMA-aligned). Compiled for sm_90a (Triton 3.9) at every config the heuristic or the tuner may
  pick, the TMA kernel needs fewer registers (128x128x128 / 8 warps: 156 vs 169 FP8 per token, 192 vs 213
  block-scaled, 126 vs 128 INT8; 64x128x128 / 4 warps: 148 vs 177 FP8, 163 vs 226 block-scaled), no spills, 24-40
  bytes more shared memory (its barriers) and the same wgmma waits (a group in flight in the epilogue-scaled FP8
  loops), without per-thread address arithmetic or masks in its K loop (``tests/test_compiled_audit.py`` checks
  this against the committed table). Runtime is unmeasured so far: ``bench/linear.py`` times both on sm_90, and
  the tuner times the pointer twin of the heuristic too (``triton_tuning_keys.candidates``), so a GPU where TMA is
  slower keeps the pointer kernel.
- The software pipeline fits the GPU's shared memory per block (``SMEM_BY_CAPABILITY``): e.g. the weight-only
  128x128x128 x 3 stages tile (160 KB) does not fit an sm_89 / sm_86 block (99 KB); BLOCK_K halves first (down to
  32, and only while it divides the scale group), then stages drop (down to 2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Shared memory a block may opt into (bytes), by compute capability; others (sm_86, sm_89, sm_120): 99 KB.
SMEM_BY_CAPABILITY: dict[tuple[int, int], int] = {(8, 0): 166912, (8, 7): 166912, (9, 0): 232448,
                                                   (10, 0): 232448, (10, 3): 232448}
SMEM_DEFAULT = 101376
SMEM_CAP = 200 * 1024  # what a pipeline may plan for at most (the rest: Triton's scratch, the epilogue)


@dataclass(frozen=True)
class GemmConfig:
    block_m: int
    block_n: int
    block_k: int
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3
    tma: bool = False  # 8-bit GEMMs on sm_90+: the TMA kernel (``triton_tma_gemm``) where the operands allow


def smem_limit(capability: tuple[int, int] | None) -> int:
    """Bytes of shared memory a pipeline may use on a GPU of this capability (``SMEM_CAP`` when unknown)."""
    if capability is None:
        return SMEM_CAP
    return min(SMEM_CAP, SMEM_BY_CAPABILITY.get(tuple(capability), SMEM_DEFAULT))


def smem_bytes(cfg: GemmConfig, weight_only: bool) -> int:
    """An upper bound of the shared memory the kernel holds: ``stages x (A tile + B tile)`` (A bf16/fp16 when
    weight-only, else 1-byte codes; B always 1-byte codes), weight-only + one more BLOCK_N x BLOCK_K bytes of
    layout-conversion scratch (the audit measured at most 512 bytes more: block scales)."""
    a_bytes = 2 if weight_only else 1
    staged = cfg.block_n * cfg.block_k if weight_only else 0
    return cfg.num_stages * (cfg.block_m * cfg.block_k * a_bytes + cfg.block_n * cfg.block_k) + staged


def fit_smem(cfg: GemmConfig, weight_only: bool, limit: int, group_k: int | None = None) -> GemmConfig:
    """``cfg`` with BLOCK_K halved (>= 32, dividing ``group_k``), then fewer stages (>= 2), until it fits."""
    while smem_bytes(cfg, weight_only) > limit:
        half = cfg.block_k // 2
        if half >= 32 and (group_k is None or group_k % half == 0):
            cfg = replace(cfg, block_k=half)
        elif cfg.num_stages > 2:
            cfg = replace(cfg, num_stages=cfg.num_stages - 1)
        else:
            break
    return cfg


def register_kind(group_k: int | None, weight_only: bool, capability: tuple[int, int] | None) -> str:
    """How register-hungry the kernel is, from the audit: ``"decoding"`` (weight-only below sm_89: e4m3 decoded
    from bits), ``"promoted"`` (block-scaled weight-only: partial product + accumulator), ``"ada_block"``
    (block-scaled FP8 on sm_89's mma.sync), else ``"plain"``. Outside "plain", 4-warp 64x128 tiles spill."""
    cc = None if capability is None else tuple(capability)
    if weight_only and cc is not None and cc < (8, 9):
        return "decoding"
    if group_k is not None and weight_only:
        return "promoted"
    if group_k is not None and cc is not None and cc[0] == 8 and cc >= (8, 9):
        return "ada_block"
    return "plain"


def fits_registers(cfg: GemmConfig, kind: str) -> bool:
    """A tuning alternative stays under 255 registers (no spills) for a kernel of this ``register_kind``: the
    accumulator under 64 fp32 values per thread, and with decoding at most 64 weight codes per thread per step."""
    threads = 32 * cfg.num_warps
    if kind == "plain":
        return True
    if cfg.block_m * cfg.block_n // threads >= 64:
        return False
    return kind != "decoding" or cfg.block_n * cfg.block_k // threads <= 64


def gemm_config(m: int, n: int, k: int, group_k: int | None = None, weight_only: bool = False,
                capability: tuple[int, int] | None = None) -> GemmConfig:
    """A config for an [M, K] x [K, N] GEMM. ``group_k``: scale group along K (BLOCK_K must divide it).
    ``capability``: the CUDA GPU's (major, minor), None = unknown (the interpreter, the probes)."""
    bk = 128 if group_k is None else min(128, group_k)
    cc = None if capability is None else tuple(capability)
    hopper_8bit = cc is not None and cc[0] == 9 and not weight_only
    kind = register_kind(group_k, weight_only, cc)
    heavy, decoding = kind != "plain", kind == "decoding"
    if m <= 16:
        cfg = GemmConfig(64, 64, bk, 1, 4, 3) if hopper_8bit else GemmConfig(16, 64, bk, 1, 4, 4 if weight_only else 3)
    elif m <= 32 or (m <= 64 and not heavy):
        cfg = GemmConfig(64 if hopper_8bit or m > 32 else 32, 64 if n < 4096 else 128, bk, 8, 4, 4)
    elif m <= 512:
        cfg = GemmConfig(64, 128, min(bk, 64) if decoding else bk, 8, 8 if heavy else 4, 4)
    elif decoding or kind == "ada_block":
        cfg = GemmConfig(128, 64, min(bk, 64) if decoding else bk, 8, 8, 3)
    else:
        cfg = GemmConfig(128, 128, bk, 8, 8, 3)
    if hopper_8bit:
        cfg = replace(cfg, tma=True)
    return cfg if capability is None else fit_smem(cfg, weight_only, smem_limit(capability), group_k)
