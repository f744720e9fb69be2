"""Kernel cases shared by the Triton interpreter run on CPU (``test_kernels_triton_cases.py``) and the GPU tier
(``tests/gpu/``): each ``check_*`` runs one Triton kernel and its eager twin (``kernels.reference``) on the *same*
quantized inputs and asserts a relative error ``mean|out - ref| / mean|ref|`` below ``TOL``.

Importing this module imports no Triton module: the checks import the kernels when they run, so Triton is imported
by the process that runs them, after that process has decided ``TRITON_INTERPRET``. Inputs are drawn on the CPU
(the same numbers on every device), then moved to ``device``; outputs are poisoned with NaN before every run.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

import torch

from comfyui_dit_quant.kernels import reference as ref

if TYPE_CHECKING:
    from comfyui_dit_quant.kernels.triton_configs import GemmConfig

TOL = 1e-3
DTYPES = [torch.bfloat16, torch.float16]
# (kind, group) of the activation quantizers; group 0: per token / per tensor.
ACT_KINDS = [("fp8_token", 0), ("fp8_group", 16), ("fp8_group", 32), ("fp8_group", 128), ("int8_token", 0),
             ("fp8_tensor", 0), ("fp8_static", 0)]
GEMM_BLOCKS = [(32, 64), (16, 128)]
SCALED_KINDS = ["fp8_token", "fp8_tensor", "int8"]
WEIGHT_ONLY_GRANULARITIES = ["tensor", "channel", "block"]
WEIGHT_ONLY_BLOCK = (32, 64)
# (backend, scheme, block) for the fused quantization + GEMM runners of ``triton_backend``.
END_TO_END = [("triton_block", "fp8_block", (32, 64)), ("triton_scaled", "fp8_channel", None),
              ("triton_scaled", "fp8_tensor", None), ("triton_int8", "int8", None),
              ("triton_weight_only", "fp8_weight_only", (16, 32)), ("triton_weight_only", "fp8_channel", None)]

# GPU tier: token counts (one per GEMM config bucket of ``triton_configs``) and a ragged shape (N, K multiples of
# 8, not of 16 or of any block). DIT_QUANT_GPU_QUICK=1 (``bench/gpu_session.sh --quick``) trims the matrix.
GPU_QUICK = os.environ.get("DIT_QUANT_GPU_QUICK") == "1"
GPU_MS = [17, 4096] if GPU_QUICK else [1, 17, 130, 4096]
GPU_RAGGED = (328, 712)  # (N, K): 2 full 128-wide N tiles + 72, 5 full 128-deep K tiles + 72
# (dtype, bias) pairs run for every M; the other two pairs run for one M (bias and dtype are constexprs).
GPU_DTYPE_BIAS = [(torch.bfloat16, True), (torch.float16, False)]
GPU_DTYPE_BIAS_EXTRA = [(torch.bfloat16, False), (torch.float16, True)]
GPU_EXTRA_M = 130


def gpu_skip_reason() -> str | None:
    """Why the GPU tier cannot run in this process (None when it can)."""
    if not torch.cuda.is_available():
        return "no CUDA device: GPU tier skipped"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1: the GPU tier tests compiled kernels"
    return None


def gpu_matrix(ms: list[int] | None = None) -> list[tuple[int, torch.dtype, bool]]:
    """(M, dtype, bias) cases of the GPU tier: every M with the main pairs, plus the other pairs at one M."""
    ms = GPU_MS if ms is None else ms
    cases = [(m, dt, b) for m in ms for dt, b in GPU_DTYPE_BIAS]
    extra_m = GPU_EXTRA_M if GPU_EXTRA_M in ms else ms[-1]
    return cases + [(extra_m, dt, b) for dt, b in GPU_DTYPE_BIAS_EXTRA]


def matrix_id(case: tuple[int, torch.dtype, bool]) -> str:
    m, dtype, bias = case
    return f"m{m}-{str(dtype).removeprefix('torch.')}-{'bias' if bias else 'nobias'}"


def _triton() -> tuple[ModuleType, ModuleType, ModuleType]:
    from comfyui_dit_quant.kernels import triton_backend, triton_gemm, triton_quant

    return triton_quant, triton_gemm, triton_backend


def rel_err(out: torch.Tensor, expected: torch.Tensor) -> float:
    assert torch.isfinite(out).all(), "unwritten (NaN-poisoned) or non-finite outputs"
    return ((out.float() - expected.float()).abs().mean() / expected.float().abs().mean()).item()


def inputs(m: int, n: int, k: int, dtype: torch.dtype, seed: int,
           device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Activations ``x`` [M, K] (std 3) in ``dtype``, a float32 weight [N, K] and a bias [N] in ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, k, generator=gen) * 3).to(dtype)
    w = torch.randn(n, k, generator=gen)
    bias = torch.randn(n, generator=gen).to(dtype)
    return x.to(device), w.to(device), bias.to(device)


def poisoned(m: int, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.full((m, n), float("nan"), dtype=dtype, device=device)


def block_weight(w: torch.Tensor, block: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 codes and the [ceil(N/bn), ceil(K/bk)] scale grid of a block-scaled weight."""
    n, k = w.shape
    ws = ref.amax_to_scale(ref.block_amax(w, *block), ref.FP8_MAX)
    return ref.cast_fp8(w, ref.expand_blocks(ws, n, k, *block)), ws


# --- activation quantization -----------------------------------------------------------------------------------


def check_activation_quant(m: int, k: int, dtype: torch.dtype, kind: str, group: int,
                           device: torch.device | str = "cpu", m_major: bool = False) -> None:
    """Fused quantizer vs reference: scales to 1e-6, codes identical but for < 0.1% (rounding ties).
    ``m_major``: also check the M-major scale layout of the per-group quantizer (cuBLAS blockwise)."""
    tq, _, _ = _triton()
    x, _, _ = inputs(m, 72, k, dtype, m)
    x[0, :40] = 0  # an all-zero group (for group 32) and an outlier
    x[-1, -1] = 300.0
    x = x.to(device)
    if kind == "fp8_token":
        got, want = tq.quant_fp8_per_token(x), ref.quant_fp8_per_token(x)
    elif kind == "fp8_group":
        got, want = tq.quant_fp8_per_group(x, group), ref.quant_fp8_per_group(x, group)
        if m_major:
            mm = tq.quant_fp8_per_group(x, group, m_major=True)
            # Same kernel, scales written M-major: same values (compared with the reference below).
            assert mm[1].stride(0) == 1 and torch.equal(mm[1], got[1])
            assert torch.equal(mm[0].view(torch.uint8), got[0].view(torch.uint8))
    elif kind == "int8_token":
        got, want = tq.quant_int8_per_token(x), ref.quant_int8_per_token(x)
    elif kind == "fp8_tensor":
        got, want = tq.quant_fp8_per_tensor(x), ref.quant_fp8_per_tensor(x)
    else:
        s = torch.tensor(0.005)
        got, want = tq.quant_fp8_per_tensor(x, s), ref.quant_fp8_per_tensor(x, s)
    assert got[0].dtype == want[0].dtype and got[1].shape == want[1].shape
    assert got[0].device == x.device and got[1].device == x.device
    torch.testing.assert_close(got[1], want[1].to(got[1].device), rtol=1e-6, atol=0)
    mismatch = (got[0].float() != want[0].float()).float().mean().item()
    assert mismatch < 1e-3, f"{mismatch:.2%} of the codes differ"  # codes: same rounding


def check_zero_rows(k: int, device: torch.device | str = "cpu") -> None:
    tq, _, _ = _triton()
    x = torch.zeros(3, k, dtype=torch.bfloat16, device=device)
    q, s = tq.quant_fp8_per_group(x, 64)
    assert torch.isfinite(s).all() and (s > 0).all() and (q.float() == 0).all()


# --- GEMMs on the same quantized inputs ---------------------------------------------------------------------------


def check_block_gemm(m: int, n: int, k: int, dtype: torch.dtype, bias: bool, block: tuple[int, int],
                     device: torch.device | str = "cpu", seed: int | None = None,
                     cfg: GemmConfig | None = None) -> float:
    _, tg, _ = _triton()
    x, w, b = inputs(m, n, k, dtype, 10 + m if seed is None else seed, device)
    wq, ws = block_weight(w, block)
    xq, xs = ref.quant_fp8_per_group(x, block[1])
    b = b if bias else None
    out = tg.block_scaled_mm(xq, wq, xs, ws, *block, b, dtype, out=poisoned(m, n, dtype, device), cfg=cfg)
    err = rel_err(out, ref.block_scaled_mm(xq, wq, xs, ws, *block, b, dtype))
    assert err < TOL, f"relative error {err:.3g}"
    return err


def scaled_operands(kind: str, x: torch.Tensor, w: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x codes, x scales, w codes, w scales) for the epilogue-scaled GEMM: INT8 or FP8 per token x per channel,
    or FP8 per tensor."""
    if kind == "int8":
        ws = ref.amax_to_scale(w.abs().amax(dim=1, keepdim=True), ref.INT8_MAX)
        wq, ws = ref.cast_int8(w, ws), ws.reshape(-1)
        xq, xs = ref.quant_int8_per_token(x)
    elif kind == "fp8_token":
        wq, ws = ref.quant_fp8_per_token(w)
        ws = ws.reshape(-1)
        xq, xs = ref.quant_fp8_per_token(x)
    else:
        wq, ws = ref.quant_fp8_per_tensor(w)
        xq, xs = ref.quant_fp8_per_tensor(x)
    return xq, xs, wq, ws


def check_scaled_gemm(m: int, n: int, k: int, dtype: torch.dtype, bias: bool, kind: str,
                      device: torch.device | str = "cpu", seed: int | None = None, tol: float = TOL,
                      cfg: GemmConfig | None = None) -> float:
    _, tg, _ = _triton()
    x, w, b = inputs(m, n, k, dtype, 20 + m if seed is None else seed, device)
    xq, xs, wq, ws = scaled_operands(kind, x, w)
    b = b if bias else None
    out = tg.scaled_mm(xq, wq, xs, ws, b, dtype, out=poisoned(m, n, dtype, device), cfg=cfg)
    err = rel_err(out, ref.scaled_mm(xq, wq, xs, ws, b, dtype))
    assert err < tol, f"relative error {err:.3g}"
    return err


def check_weight_only_gemm(m: int, n: int, k: int, dtype: torch.dtype, bias: bool, granularity: str,
                           device: torch.device | str = "cpu", seed: int | None = None,
                           cfg: GemmConfig | None = None, decode_bits: bool | None = None) -> float:
    _, tg, _ = _triton()
    x, w, b = inputs(m, n, k, dtype, 30 + m if seed is None else seed, device)
    block = WEIGHT_ONLY_BLOCK if granularity == "block" else None
    if block:
        wq, ws = block_weight(w, block)
    elif granularity == "channel":
        wq, ws = ref.quant_fp8_per_token(w)
        ws = ws.reshape(-1)
    else:
        wq, ws = ref.quant_fp8_per_tensor(w)
    b = b if bias else None
    out = tg.weight_only_mm(x, wq, ws, block, b, dtype, out=poisoned(m, n, dtype, device), cfg=cfg,
                            decode_bits=decode_bits)
    err = rel_err(out, ref.weight_only_mm(x, wq, ws, block, b, dtype))
    assert err < TOL, f"relative error {err:.3g}"
    return err


# --- backends end to end (fused quantization + GEMM) vs the eager backend ---------------------------------------


def check_backend_end_to_end(backend: str, scheme: str, block: tuple[int, int] | None, m: int = 17, n: int = 72,
                             k: int = 200, dtype: torch.dtype = torch.bfloat16,
                             device: torch.device | str = "cpu") -> float:
    from comfyui_dit_quant.kernels.eager_backend import eager
    from comfyui_dit_quant.kernels.table import kernel_named
    from comfyui_dit_quant.quant.schemes import get_scheme

    opts = {"block_size": block} if scheme == "fp8_block" else {}
    if scheme == "fp8_weight_only":
        opts = {"granularity": "block", "block_size": block}
    x, w, b = inputs(m, n, k, dtype, 40, device)
    stored = get_scheme(scheme, **opts).quantize(w)
    wq, ws = stored["weight"], stored["weight_scale"]
    out = kernel_named(backend, scheme).run(x, wq, ws, b, None, block, dtype)
    assert out.dtype == dtype and out.shape == (m, n)
    twin = "fp8_weight_only" if backend == "triton_weight_only" else scheme  # sm_80 fallback: weight-only numbers
    err = rel_err(out, eager(x, wq, ws, b, None, twin, block, dtype))
    assert err < TOL, f"relative error {err:.3g}"
    return err


# (label, scheme, options) for the GPU tier's whole-scheme tests
GPU_SCHEMES = [
    ("fp8_tensor", "fp8_tensor", {}),
    ("fp8_channel", "fp8_channel", {}),
    ("fp8_block-128", "fp8_block", {"block_size": "128x128"}),
    ("fp8_block-64", "fp8_block", {"block_size": "64x64"}),
    ("fp8_weight_only", "fp8_weight_only", {}),
    ("fp8_weight_only-tensor", "fp8_weight_only", {"granularity": "tensor"}),
    ("fp8_weight_only-block128", "fp8_weight_only", {"granularity": "block", "block_size": "128x128"}),
    ("int8", "int8", {}),
]
