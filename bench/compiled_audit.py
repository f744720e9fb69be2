"""Compiled-kernel audit: every Triton kernel of the pack, compiled ahead of time for sm_90a, sm_89 and sm_80 on
this (CPU) machine with Triton's bundled ptxas, at every tile config the heuristic (``triton_configs.gemm_config``)
and the tuner (``triton_tuning.candidates``) may pick. No GPU needed.

Per kernel x config x target one row with exactly the keys ``kernel``, ``config``, ``target``, ``registers``,
``spill_bytes`` (ptxas -v spill stores + loads), ``shared_memory_bytes`` (Triton's launch metadata), ``mma``
(``"wgmma"`` / ``"mma.sync"`` / ``"none"``), ``wgmma_waits`` (every ``wgmma.wait_group N`` in the PTX, in order)
and ``tma`` (``cp.async.bulk.tensor`` present). Arguments are specialized as the launcher would at Wan-14B shapes
(Triton's own ``native_specialize_impl`` on CPU tensors and the real strides: 16-aligned pointers and strides,
stride 1 a constant).

    python bench/compiled_audit.py [--targets sm_90a,sm_89,sm_80] [--only heuristic] [--jobs 2]
        [--json bench/results/compiled/triton-<version>.json]

``check`` lists what violates the rules (zero spills, shared memory within the target's limit, native FP8 MMA on
sm_89 / sm_90a (wgmma on sm_90a), on sm_90a epilogue-scaled FP8 K loops with a wgmma group in flight — the
block-scaled loop waits by construction, see ``Spec.pipelined`` — and, for every sm_90a GEMM loop that waits for
each wgmma, at least two warpgroups resident per SM (``resident_warpgroups``), so one warpgroup's scale promotion
overlaps another's MMA; TMA loads in the TMA kernel's rows); each problem names kernel, config, target.

The 8-bit modes' TMA variant (``kernels/triton_tma_gemm.py``, rows ``gemm_tma_<mode>``) is compiled on sm_90a at
every config of the pointer kernel's rows (a config's ``tma`` flag does not change its name), with host tensor
descriptors for A and B (``Desc``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "compiled"
KEYS = ("kernel", "config", "target", "registers", "spill_bytes", "shared_memory_bytes", "mma", "wgmma_waits", "tma")

# Per-SM limits of sm_90 (H100 / H200) for the occupancy rule: 64K 32-bit registers (allocated per warp in units of
# 256), 64 warps, 32 blocks, 228 KB of shared memory with 1 KB reserved per block.
SM90_REGISTERS, SM90_WARPS, SM90_BLOCKS, SM90_SMEM, SMEM_RESERVED = 65536, 64, 32, 233472, 1024
# target -> (compute capability, shared memory a block may opt into, bytes; the tuner's limit is min(200 KB, this))
TARGETS: dict[str, tuple[int, int]] = {"sm_90a": (90, 232448), "sm_89": (89, 101376), "sm_80": (80, 166912)}
FP8_TARGETS = ("sm_90a", "sm_89")
# Representative shapes: M per heuristic bucket (<= 16, 32, 64, <= 512, large) and Wan-14B N x K.
MS = (16, 32, 64, 512, 32760)
N, K = 13824, 5120
SCALE_BLOCK = 128


@dataclass(frozen=True)
class Spec:
    """One compilation: a kernel (by audit name) at one config for one target."""

    kernel: str
    config: str
    target: str
    fn_name: str  # "gemm" | "weight_only" | "tma" | "quant" | "quant_groups" | "int8_epilogue"
    args: tuple[tuple[str, Any], ...]  # runtime values (``Ptr`` for pointers) and constexprs
    num_warps: int
    num_stages: int
    fp8_dot: bool = False  # an FP8 x FP8 dot: native FP8 MMA expected (wgmma on sm_90a)
    # a wgmma group in flight in the K loop expected on sm_90a: FP8 with epilogue scales. Not the block-scaled loop:
    # Triton makes a dot asynchronous only when nothing but the next dot reads its accumulator, and each step's
    # partial product is read to be scaled (kernels/triton_gemm.py's docstring says what was tried)
    pipelined: bool = False
    heuristic: bool = False  # some M bucket's heuristic config (not only a tuning candidate)
    tma: bool = False  # TMA loads (``cp.async.bulk.tensor``) expected: the TMA kernel


@dataclass
class Result:
    spec: Spec
    row: dict[str, Any]
    loop_waits: list[int] = field(default_factory=list)  # wgmma.wait_group values inside loops
    fp8_mma: bool = False  # an e4m3 MMA instruction is present
    load_bytes: int = 0  # widest global load / store of one thread (16 = 128-bit vectors)
    store_bytes: int = 0
    error: str | None = None


# --- what to compile ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ptr:
    """A pointer argument of this element type (a small CPU tensor stands in when the kernel is specialized)."""

    dtype: torch.dtype


@dataclass(frozen=True)
class Desc:
    """A host TMA descriptor of this element type, global shape and block shape (``TensorDescriptor``)."""

    dtype: torch.dtype
    shape: tuple[int, int]
    block: tuple[int, int]


def _t(dtype: torch.dtype) -> Ptr:
    return Ptr(dtype)


def _portable(args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Launch arguments with tensors replaced by ``Ptr`` (specs travel to worker processes)."""
    return tuple((k, Ptr(v.dtype) if isinstance(v, torch.Tensor) else v) for k, v in args.items())


def _gemm_args(mode: str, m: int, cfg: Any, target: str) -> dict[str, Any]:
    """Launch arguments of ``triton_gemm._scaled_gemm_kernel`` for one mode, as ``_launch`` passes them."""
    fp8, bf16, f32 = torch.float8_e4m3fn, torch.bfloat16, torch.float32
    g_k = -(-K // SCALE_BLOCK)
    a_dtype = {"int8": torch.int8}.get(mode, bf16 if mode.startswith("weight_only") else fp8)
    b_bits = mode.endswith("bits")
    b_dtype = torch.int8 if mode == "int8" else torch.uint8 if b_bits else fp8
    block = "block" in mode
    weight_only = mode.startswith("weight_only")
    # (stride_asm, stride_ask, stride_bsn, stride_bsk) as _strides gives them
    if mode == "fp8_tensor":
        scales = (0, 0, 0, 0)
    elif block:
        scales = (g_k, 1, g_k, 1)
    else:  # per-token [M, 1] x per-channel [N]
        scales = (1, 0, 1, 0)
    if weight_only:  # triton_gemm._weight_only_kernel
        return dict(
            a_ptr=_t(a_dtype), b_ptr=_t(b_dtype), c_ptr=_t(bf16), bs_ptr=_t(f32), bias_ptr=_t(bf16),
            M=m, N=N, K=K, stride_am=K, stride_ak=1, stride_bn=K, stride_bk=1, stride_cm=N, stride_cn=1,
            stride_bsn=scales[2], stride_bsk=scales[3], GROUP_N=SCALE_BLOCK if block else 1,
            GROUP_K=SCALE_BLOCK if block else cfg.block_k, PROMOTE=block, HAS_BIAS=True, DOT_F32=False,
            B_BITS=b_bits, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m)
    return dict(
        a_ptr=_t(a_dtype), b_ptr=_t(b_dtype), c_ptr=_t(bf16), as_ptr=_t(f32), bs_ptr=_t(f32), bias_ptr=_t(bf16),
        M=m, N=N, K=K, stride_am=K, stride_ak=1, stride_bn=K, stride_bk=1, stride_cm=N, stride_cn=1,
        stride_asm=scales[0], stride_ask=scales[1], stride_bsn=scales[2], stride_bsk=scales[3],
        GROUP_N=SCALE_BLOCK if block else 1, GROUP_K=SCALE_BLOCK if block else cfg.block_k, PROMOTE=block,
        A_SCALED=True, INT8=mode == "int8", HAS_BIAS=True, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m)


def _tma_args(mode: str, m: int, cfg: Any) -> dict[str, Any]:
    """Launch arguments of ``triton_tma_gemm._tma_gemm_kernel`` for one 8-bit mode, as ``launch`` passes them."""
    ptr = _gemm_args(mode, m, cfg, "sm_90a")
    dtype = ptr["a_ptr"].dtype
    descs = {"a_desc": Desc(dtype, (m, K), (cfg.block_m, cfg.block_k)),
             "b_desc": Desc(dtype, (N, K), (cfg.block_n, cfg.block_k))}
    skip = ("a_ptr", "b_ptr", "stride_am", "stride_ak", "stride_bn", "stride_bk", "A_SCALED")
    return {**descs, **{k: v for k, v in ptr.items() if k not in skip}}


# mode -> targets it runs on (no e4m3 type / FP8 dots below sm_89: weight-only decodes bits there)
GEMM_MODES: dict[str, tuple[str, ...]] = {
    "fp8_tensor": FP8_TARGETS, "fp8_token": FP8_TARGETS, "fp8_block": FP8_TARGETS, "int8": tuple(TARGETS),
    "weight_only": FP8_TARGETS, "weight_only_block": FP8_TARGETS,
    "weight_only_bits": ("sm_80",), "weight_only_block_bits": ("sm_80",),
}
# 8-bit modes with a TMA variant (``triton_tma_gemm``, sm_90+), audited on sm_90a at every config of the mode
TMA_MODES = ("fp8_tensor", "fp8_token", "fp8_block", "int8")


def gemm_configs(mode: str, target: str, only_heuristic: bool = False, ms: Iterable[int] = MS
                 ) -> list[tuple[Any, bool]]:
    """(config, is a heuristic pick) for every config the heuristic or the tuner may pick for ``mode`` at the
    token counts ``ms`` (one per M bucket)."""
    from comfyui_dit_quant.kernels.triton_configs import gemm_config
    from comfyui_dit_quant.kernels.triton_tuning_keys import SMEM_LIMIT, candidates

    group_k = SCALE_BLOCK if "block" in mode else None
    weight_only, int8 = mode.startswith("weight_only"), mode == "int8"
    smem = min(SMEM_LIMIT, TARGETS[target][1])
    cc = divmod(TARGETS[target][0], 10)
    heuristic = {replace(gemm_config(m, N, K, group_k, weight_only, cc), tma=False) for m in MS}
    out: list[Any] = []
    for m in ms:
        cands = [gemm_config(m, N, K, group_k, weight_only, cc)] if only_heuristic else \
            candidates(m, N, K, group_k, weight_only, int8, smem, cc)
        out += [c for c in dict.fromkeys(replace(c, tma=False) for c in cands) if c not in out]  # both kernels
    return [(c, c in heuristic) for c in out]


def config_name(cfg: Any) -> str:
    return (f"{cfg.block_m}x{cfg.block_n}x{cfg.block_k} warps {cfg.num_warps} stages {cfg.num_stages} "
            f"group_m {cfg.group_m}")


def quant_specs(target: str) -> list[Spec]:
    """The activation-quantization kernels as ``triton_quant`` launches them for a K = 5120 row."""
    from comfyui_dit_quant.kernels import triton_quant as tq

    specs = []
    kinds = [("quant_int8_per_token", torch.int8, False)]
    if target in FP8_TARGETS:
        kinds += [("quant_fp8_per_token", torch.float8_e4m3fn, False),
                  ("quant_fp8_per_tensor", torch.float8_e4m3fn, True)]
    for name, dtype, fixed in kinds:
        for args, warps, cfg in tq.audit_launches(K, dtype, fixed):
            specs.append(Spec(name, cfg, target, "quant", _portable(args), warps, 1))
    if target in FP8_TARGETS:
        for args, warps, cfg in tq.audit_group_launches(K, SCALE_BLOCK):
            specs.append(Spec("quant_fp8_per_group", cfg, target, "quant_groups", _portable(args), warps, 1))
    return specs


def epilogue_specs(target: str) -> list[Spec]:
    """The INT8 GEMM epilogue (``_int_mm``'s int32 result → scaled bf16 + bias) as ``triton_epilogue`` launches it
    on a Wan FFN layer (M = 32760, N = 13824)."""
    from comfyui_dit_quant.kernels import triton_epilogue as te

    m, n = 32760, 13824
    args = {"acc_ptr": Ptr(torch.int32), "xs_ptr": Ptr(torch.float32), "ws_ptr": Ptr(torch.float32),
            "bias_ptr": Ptr(torch.bfloat16), "out_ptr": Ptr(torch.bfloat16), "M": m, "N": n, "stride_am": n,
            "stride_om": n, "HAS_BIAS": True, "BLOCK_M": te.BLOCK_M, "BLOCK_N": te.BLOCK_N}
    return [Spec("int8_epilogue", f"{te.BLOCK_M}x{te.BLOCK_N}_w{te.NUM_WARPS}", target, "int8_epilogue",
                 _portable(args), te.NUM_WARPS, 1)]


def tma_specs(mode: str, target: str, only_heuristic: bool, ms: Iterable[int], wanted: set[str] | None
              ) -> list[Spec]:
    """The TMA kernel (``gemm_tma_<mode>``) at every config of an 8-bit mode, on sm_90a."""
    name = f"gemm_tma_{mode}"
    if mode not in TMA_MODES or target != "sm_90a" or (wanted is not None and name not in wanted):
        return []
    return [Spec(name, config_name(cfg), target, "tma", tuple(_tma_args(mode, 32760, cfg).items()), cfg.num_warps,
                 cfg.num_stages, fp8_dot=mode.startswith("fp8"), pipelined=mode in ("fp8_tensor", "fp8_token"),
                 heuristic=heur, tma=True)
            for cfg, heur in gemm_configs(mode, target, only_heuristic, ms)]


def specs(targets: Iterable[str] = tuple(TARGETS), only_heuristic: bool = False,
          kernels: Iterable[str] | None = None, ms: Iterable[int] = MS) -> list[Spec]:
    """Every (kernel, config, target) to compile: GEMM configs of the M buckets of ``ms``, then the quantizers."""
    wanted = None if kernels is None else set(kernels)
    out: list[Spec] = []
    for target in targets:
        for mode, runs_on in GEMM_MODES.items():
            if target not in runs_on:
                continue
            if wanted is not None and f"gemm_{mode}" not in wanted:
                out += tma_specs(mode, target, only_heuristic, ms, wanted)
                continue
            for cfg, heur in gemm_configs(mode, target, only_heuristic, ms):
                args = _gemm_args(mode, 32760, cfg, target)
                fn_name = "weight_only" if mode.startswith("weight_only") else "gemm"
                out.append(Spec(f"gemm_{mode}", config_name(cfg), target, fn_name, tuple(args.items()),
                                cfg.num_warps, cfg.num_stages, fp8_dot=mode.startswith("fp8"),
                                pipelined=mode in ("fp8_tensor", "fp8_token"), heuristic=heur))
            out += tma_specs(mode, target, only_heuristic, ms, wanted)
        out += [s for s in quant_specs(target) + epilogue_specs(target) if wanted is None or s.kernel in wanted]
    return out


# --- compiling and reading the code --------------------------------------------------------------------------------


def _kernel_fn(name: str) -> Any:
    if name in ("gemm", "weight_only"):
        from comfyui_dit_quant.kernels import triton_gemm as tg
        return tg._scaled_gemm_kernel if name == "gemm" else tg._weight_only_kernel
    if name == "tma":
        from comfyui_dit_quant.kernels import triton_tma_gemm as tt
        return tt._tma_gemm_kernel
    if name == "int8_epilogue":
        from comfyui_dit_quant.kernels import triton_epilogue as te
        return te._int8_epilogue_kernel
    from comfyui_dit_quant.kernels import triton_quant as tq
    return tq._quant_kernel if name == "quant" else tq._quant_groups_kernel


def _source(fn: Any, args: dict[str, Any]) -> Any:
    """An ``ASTSource`` specialized as the launcher specializes these arguments."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend
    from triton.compiler import ASTSource

    signature: dict[str, str] = {}
    constexprs: dict[tuple[int, ...], Any] = {}
    attrs: dict[tuple[int, ...], Any] = {}
    for i, p in enumerate(fn.params):
        value = args[p.name]
        if isinstance(value, Ptr):
            value = torch.empty(16, dtype=value.dtype)
        elif isinstance(value, Desc):
            from triton.tools.tensor_descriptor import TensorDescriptor
            value = TensorDescriptor(torch.empty(16, 16, dtype=value.dtype), list(value.shape),
                                     [value.shape[1], 1], list(value.block))
        if p.is_constexpr:
            signature[p.name], constexprs[(i,)] = "constexpr", value
            continue
        kind, key = native_specialize_impl(BaseBackend, value, False, True, True)
        signature[p.name] = kind
        if kind == "constexpr":
            constexprs[(i,)] = key
        elif isinstance(key, str):
            attrs[(i,)] = BaseBackend.parse_attr(key)
    return ASTSource(fn, signature, constexprs=constexprs, attrs=attrs)


def ptxas_usage(ptx: str, target: str) -> tuple[int, int]:
    """(registers, spill bytes = stores + loads) from ``ptxas -v`` with Triton's bundled ptxas."""
    from triton.backends.nvidia.compiler import get_ptxas

    ptxas = get_ptxas(TARGETS[target][0]).path
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        # the flags Triton's own make_cubin passes (Triton 3.9: line info, --regAllocOptLevel=2)
        proc = subprocess.run([ptxas, "-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name={target}", str(src),
                               "-o", str(Path(d) / "k.cubin")],
                              capture_output=True, text=True, check=True)
    log = proc.stdout + proc.stderr
    regs = re.search(r"Used (\d+) registers", log)
    stores = re.search(r"(\d+) bytes spill stores", log)
    loads = re.search(r"(\d+) bytes spill loads", log)
    if regs is None:
        raise RuntimeError(f"ptxas -v printed no register count: {log[-500:]}")
    return int(regs.group(1)), int(stores.group(1) if stores else 0) + int(loads.group(1) if loads else 0)


_LABEL = re.compile(r"^\s*(\$L__\w+):")
_BRANCH = re.compile(r"\bbra(?:\.uni)?\s+(\$L__\w+);")
_ACCESS = re.compile(r"\b(ld|st)\.global[.\w]*?(?:\.v(\d))?\.[bfsu](8|16|32|64)\b")
_WAIT = re.compile(r"wgmma\.wait_group\.sync\.aligned\s+(\d+);")


def loop_waits(ptx: str) -> list[int]:
    """``wgmma.wait_group`` values inside loops: between a label and a later branch back to it."""
    lines = ptx.splitlines()
    where = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line))}
    inside: set[int] = set()
    for i, line in enumerate(lines):
        for target in _BRANCH.findall(line):
            start = where.get(target)
            if start is not None and start < i:
                inside.update(range(start, i + 1))
    return [int(m.group(1)) for i in sorted(inside) if (m := _WAIT.search(lines[i]))]


def access_bytes(ptx: str, op: str) -> int:
    """Widest ``ld.global`` (op "ld") or ``st.global`` ("st") of one thread, bytes."""
    widths = [int(v or 1) * int(bits) // 8 for o, v, bits in _ACCESS.findall(ptx) if o == op]
    return max(widths, default=0)


def read_ptx(ptx: str) -> dict[str, Any]:
    mma = "wgmma" if "wgmma.mma_async" in ptx else "mma.sync" if re.search(r"\bmma\.sync", ptx) else "none"
    fp8 = bool(re.search(r"(wgmma\.mma_async|mma\.sync)\S*\.e4m3", ptx))
    return {"mma": mma, "wgmma_waits": [int(v) for v in _WAIT.findall(ptx)],
            "tma": "cp.async.bulk.tensor" in ptx, "fp8_mma": fp8, "loop_waits": loop_waits(ptx),
            "load_bytes": access_bytes(ptx, "ld"), "store_bytes": access_bytes(ptx, "st")}


def compile_one(spec: Spec) -> Result:
    """Compile ``spec`` (Triton's on-disk cache makes a repeat cheap), run ptxas -v, read the PTX."""
    import triton
    from triton.backends.compiler import GPUTarget

    row: dict[str, Any] = {"kernel": spec.kernel, "config": spec.config, "target": spec.target}
    try:
        src = _source(_kernel_fn(spec.fn_name), dict(spec.args))
        k = triton.compile(src, target=GPUTarget("cuda", TARGETS[spec.target][0], 32),
                           options={"num_warps": spec.num_warps, "num_stages": spec.num_stages})
        ptx = k.asm["ptx"]
        regs, spill = ptxas_usage(ptx, spec.target)
        info = read_ptx(ptx)
    except Exception as e:  # a kernel that does not compile is a row with an error
        row.update(registers=None, spill_bytes=None, shared_memory_bytes=None, mma="none", wgmma_waits=[],
                   tma=False)
        return Result(spec, row, error=f"{type(e).__name__}: {e}"[:400])
    row.update(registers=regs, spill_bytes=spill, shared_memory_bytes=int(k.metadata.shared), mma=info["mma"],
               wgmma_waits=info["wgmma_waits"], tma=info["tma"])
    return Result(spec, row, info["loop_waits"], info["fp8_mma"], info["load_bytes"], info["store_bytes"])


def audit(spec_list: list[Spec], jobs: int = 1) -> list[Result]:
    if jobs <= 1:
        return [compile_one(s) for s in spec_list]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(compile_one, spec_list))


def check(results: list[Result]) -> list[str]:
    """Every rule a row breaks, as ``kernel [config] on target: what``."""
    problems = []
    for r in results:
        s, row = r.spec, r.row
        where = f"{s.kernel} [{s.config}] on {s.target}"
        if r.error:
            problems.append(f"{where}: does not compile: {r.error}")
            continue
        if row["spill_bytes"]:
            problems.append(f"{where}: spills {row['spill_bytes']} bytes ({row['registers']} registers)")
        if row["shared_memory_bytes"] > TARGETS[s.target][1]:
            problems.append(f"{where}: {row['shared_memory_bytes']} bytes of shared memory > the target's "
                            f"{TARGETS[s.target][1]}")
        if s.fp8_dot and s.target in FP8_TARGETS and not r.fp8_mma:
            problems.append(f"{where}: no native FP8 MMA (mma: {row['mma']})")
        if s.fp8_dot and s.target == "sm_90a" and row["mma"] != "wgmma":
            problems.append(f"{where}: no wgmma (mma: {row['mma']})")
        if s.pipelined and s.target == "sm_90a" and not any(w >= 1 for w in r.loop_waits):
            problems.append(f"{where}: no wgmma group in flight in the K loop (loop waits {r.loop_waits})")
        if s.target == "sm_90a" and r.loop_waits and not any(r.loop_waits):
            wgs = resident_warpgroups(row["registers"], row["shared_memory_bytes"], s.num_warps)
            if wgs < 2:
                problems.append(f"{where}: waits for every wgmma with {wgs} warpgroup(s) resident per SM: nothing "
                                f"overlaps the scale promotion ({row['registers']} registers, "
                                f"{row['shared_memory_bytes']} B shared memory)")
        if s.tma and not row["tma"]:
            problems.append(f"{where}: no TMA load (cp.async.bulk.tensor)")
    return problems


def resident_warpgroups(registers: int, shared_memory_bytes: int, num_warps: int) -> int:
    """Warpgroups (4 warps) of this kernel resident on one sm_90 SM: blocks per SM as registers, shared memory,
    warps and blocks allow, times the block's warpgroups. A loop that waits for each wgmma (block-scaled: each
    partial product is read to be scaled) keeps the tensor cores busy only through another resident warpgroup
    issuing its MMA meanwhile (the ping-pong of DeepGEMM's and CUTLASS's block-scaled Hopper kernels)."""
    warp_regs = -(-registers * 32 // 256) * 256
    by_regs = SM90_REGISTERS // (warp_regs * num_warps)
    by_smem = SM90_SMEM // (shared_memory_bytes + SMEM_RESERVED)
    blocks = min(by_regs, by_smem, SM90_WARPS // num_warps, SM90_BLOCKS)
    return blocks * num_warps // 4


def rows(results: list[Result]) -> list[dict[str, Any]]:
    return [{k: r.row[k] for k in KEYS} for r in results]


def default_path() -> Path:
    import triton

    return RESULTS / f"triton-{triton.__version__}.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--only", choices=["heuristic"], default=None, help="the heuristic configs only")
    p.add_argument("--kernels", default=None, help="audit names, comma-separated (default all)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json", default=None, help="output (default bench/results/compiled/triton-<version>.json)")
    args = p.parse_args(argv)
    todo = specs(args.targets.split(","), args.only == "heuristic",
                 None if args.kernels is None else args.kernels.split(","))
    t0 = time.monotonic()
    results = audit(todo, args.jobs)
    print(f"{len(results)} compilations in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    for r in results:
        row = r.row
        print(f"{row['target']:7} {row['kernel']:28} {row['config']:40} regs {row['registers']} spill "
              f"{row['spill_bytes']} smem {row['shared_memory_bytes']} {row['mma']} waits {row['wgmma_waits']} "
              f"loop {r.loop_waits} ld/st {r.load_bytes}/{r.store_bytes} B"
              + (" (heuristic)" if r.spec.heuristic else "") + (f" ERROR {r.error}" if r.error else ""))
    path = Path(args.json) if args.json else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows(results), indent=1) + "\n")
    problems = check(results)
    print("\n".join(problems) or "no problems", file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
