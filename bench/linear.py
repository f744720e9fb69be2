"""Quantized linear vs bf16 ``F.linear`` on Wan-14B shapes, each scheme including activation quantization.

Baselines: bf16 ``F.linear``; ComfyUI core's ``fp8_e4m3fn_fast`` recipe (weight cast to FP8 unscaled, input clamped
and cast at scale 1, per-tensor ``_scaled_mm``). Each scheme is timed through the dispatch (``auto=<backend>``: what
``auto`` picks here, custom-op overhead included) and then through every other backend that can run it: on CUDA
every implementation of the scheme (cuBLAS blockwise and the Triton kernels included, even where the policy would
not pick them: a failure is recorded as ``error``), on CPU the policy's candidates. ``policy`` says whether the
policy lists that backend for this device. Median of CUDA-event timings with rotating inputs;
TFLOPS = 2·M·N·K / t; ``rel_err`` = mean|out - bf16| / mean|bf16|. Beside each row: ``roof_ms``, the roofline
time at the GPU's datasheet peaks (``bench/roofline.py``: bytes moved and operations, activation quantization
included; empty for GPUs not in its table and on CPU), ``of_roof`` = roof_ms / ms (1.0 = at the limit),
``peak_mib`` (``torch.cuda.max_memory_allocated`` over the row's calls, inputs included) and ``weight_mib`` (the
scheme's stored weight and scales).

    python bench/linear.py [--m 256,4096,32760,75600] [--json bench/results/linear-<gpu>.json] [--budget 200]
    python bench/linear.py --device cpu --m 64 --shapes 256x512 --iters 3   # smoke run

On sm_90+ the 8-bit Triton backends (``TMA_BACKENDS``) are timed twice, as ``<backend>[tma]`` (the TMA kernel,
``kernels/triton_tma_gemm.py``) and ``<backend>[pointer]`` (the pointer kernel), side by side at the same config;
a ``[tma]`` row whose TMA kernel was switched off (failed probe or launch) records that as its error.

Time on an H200 with the defaults: 4 M x 3 shapes x 18 timed entries (bf16, ComfyUI fp8 fast, 6 schemes x 2
backends, 4 of them twice for TMA / pointer) x (1 check + 5 warm-up + 20 timed) calls = 1.8e16 FLOP: ~25 s at 790
TFLOP/s, ~45 s at 400; plus the Triton JIT (10 GEMM variants x 2 tile configs + the quantizers, ~25 kernels at 1-3 s
each) and input generation: 1.5-2.5 minutes, under 4. ``--budget`` skips the shapes that would start after that
many seconds (the JSON is rewritten after every shape, so a run stopped by ``timeout`` keeps what it measured).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCHEMES, WAN_SHAPES, bench, environment, rel_error, save, write
from roofline import peaks_for, roofline_ms, weight_bytes

from comfyui_dit_quant.kernels.detect import detect_caps
from comfyui_dit_quant.kernels.dispatch import backend_for
from comfyui_dit_quant.kernels.select import run_named
from comfyui_dit_quant.kernels.table import candidates
from comfyui_dit_quant.quant.schemes import get_scheme

ROTATE = 3
# Every implementation of each scheme (CUDA): timed whether or not the policy would pick it on this device.
IMPLEMENTATIONS = {
    "fp8_tensor": ["scaled_mm_tensorwise", "triton_scaled"],
    "fp8_channel": ["scaled_mm_rowwise", "triton_scaled"],
    "fp8_block": ["scaled_mm_blockwise", "triton_block"],
    "int8": ["int_mm", "triton_int8"],
    "fp8_weight_only": ["triton_weight_only", "dequant_mm"],
}
# 8-bit Triton GEMMs with a TMA variant (kernels/triton_tma_gemm.py, sm_90+): timed twice there, TMA forced on
# ("<backend>[tma]") and off ("<backend>[pointer]"), whatever the config (heuristic or tuned) says.
TMA_BACKENDS = ("triton_scaled", "triton_block", "triton_int8")
COLUMNS = ["M", "K", "N", "scheme", "backend", "policy", "ms", "roof_ms", "of_roof", "tflops", "speedup", "rel_err",
           "peak_mib", "weight_mib", "error"]
MIB = 2**20


def comfy_fp8_fast(x: torch.Tensor, w_t: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None,
                   one: torch.Tensor) -> torch.Tensor:
    """ComfyUI core's fp8_e4m3fn_fast: clamp the input to the e4m3 range, cast with scale 1, per-tensor GEMM."""
    x8 = x.clamp(-448, 448).to(torch.float8_e4m3fn)
    return torch._scaled_mm(x8, w_t, one, w_scale, bias=bias, out_dtype=x.dtype)


def backends_to_time(device: torch.device, name: str, n: int, k: int, block: tuple[int, int] | None,
                     auto: str) -> list[tuple[str, bool]]:
    """(backend, listed by the policy) for one scheme, the auto choice and eager excluded."""
    caps = detect_caps(device.type, device.index or 0)
    listed = [c.backend for c in candidates(caps, name, n, k, block)]
    names = list(listed)
    if device.type == "cuda":
        triton = importlib.util.find_spec("triton") is not None
        names += [b for b in IMPLEMENTATIONS[name] if b not in names and (triton or not b.startswith("triton"))]
    return [(b, b in listed) for b in names if b not in (auto, "eager")]


def variants(device: torch.device, backend: str) -> list[tuple[str, bool | None]]:
    """(row name, TMA forced on / off, None = as configured) for one backend on ``device``."""
    if (device.type == "cuda" and backend in TMA_BACKENDS and torch.cuda.get_device_capability(device) >= (9, 0)
            and importlib.util.find_spec("triton") is not None):
        return [(f"{backend}[tma]", True), (f"{backend}[pointer]", False)]
    return [(backend, None)]


def tma_forced(on: bool | None) -> contextlib.AbstractContextManager[None]:
    if on is None:
        return contextlib.nullcontext()
    from comfyui_dit_quant.kernels import triton_tma_gemm

    return triton_tma_gemm.forced(on)


def tma_off_reason() -> str | None:
    """Why the TMA kernel is switched off in this process (a failed probe or launch), None when it is on."""
    from comfyui_dit_quant.kernels import triton_tma_gemm

    return triton_tma_gemm.disabled()


def run_shape(m: int, k: int, n: int, device: torch.device, iters: int, warmup: int,
              labels: set[str] | None) -> list[dict[str, Any]]:
    gen = torch.Generator(device=device).manual_seed(0)
    xs = [torch.randn(m, k, device=device, dtype=torch.bfloat16, generator=gen) for _ in range(ROTATE)]
    w = torch.randn(n, k, device=device, dtype=torch.bfloat16, generator=gen) / k**0.5
    bias = torch.randn(n, device=device, dtype=torch.bfloat16, generator=gen)
    flops = 2.0 * m * n * k
    ref = F.linear(xs[0], w, bias)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_bf16 = bench(lambda i: F.linear(xs[i % ROTATE], w, bias), device, warmup=warmup, iters=iters)
    base = {"M": m, "K": k, "N": n}
    rows = [{**base, "scheme": "bf16", "backend": "F.linear", "ms": t_bf16, "tflops": flops / t_bf16 / 1e9,
             "speedup": 1.0, "rel_err": 0.0,
             "peak_mib": torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None}]

    peaks = peaks_for(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    roof = roofline_ms(m, n, k, "bf16", "F.linear", peaks) if peaks else None
    rows[0].update(roof_ms=roof, of_roof=roof / t_bf16 if roof else None, weight_mib=weight_bytes(n, k, "bf16") / MIB)

    def add(scheme: str, backend: str, fn: Any, **info: Any) -> None:
        roof = roofline_ms(m, n, k, scheme, backend, peaks) if peaks else None
        extra = {"roof_ms": roof, "weight_mib": weight_bytes(n, k, scheme) / MIB}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            err = rel_error(fn(0), ref)  # the first call also compiles (Triton JIT): not timed
            t = bench(fn, device, warmup=warmup, iters=iters)
        except Exception as e:  # a benchmark records what failed and goes on
            rows.append({**base, "scheme": scheme, "backend": backend, **info, **extra,
                         "error": f"{type(e).__name__}: {e}"[:300]})
            return
        if device.type == "cuda":
            extra["peak_mib"] = torch.cuda.max_memory_allocated(device) / MIB
        rows.append({**base, "scheme": scheme, "backend": backend, **info, **extra, "ms": t,
                     "of_roof": roof / t if roof else None, "tflops": flops / t / 1e9, "speedup": t_bf16 / t,
                     "rel_err": err})

    caps = detect_caps(device.type, device.index or 0)
    if caps.scaled_mm and (labels is None or "comfy_fp8_fast" in labels):
        w8 = w.to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=device)
        add("comfy_fp8_fast", "scaled_mm_tensorwise", lambda i: comfy_fp8_fast(xs[i % ROTATE], w8, one, bias, one))
        del w8
    for label, name, opts in SCHEMES:
        if labels is not None and label not in labels:
            continue
        scheme = get_scheme(name, **opts)
        stored = scheme.quantize(w)
        wq, ws = stored["weight"], stored["weight_scale"]
        block = scheme.block
        auto = backend_for(device, name, n, k, "auto", *(block or (0, 0)))
        add(label, f"auto={auto}", lambda i, wq=wq, ws=ws, s=scheme: s.linear(xs[i % ROTATE], wq, ws, bias),
            auto=auto, policy=True)
        for b, listed in backends_to_time(device, name, n, k, block, auto):
            for row, tma in variants(device, b):
                with tma_forced(tma):
                    add(label, row, lambda i, wq=wq, ws=ws, b=b, nm=name, blk=block: run_named(
                        b, xs[i % ROTATE], wq, ws, bias, None, nm, blk, torch.bfloat16), policy=listed)
                if tma and tma_off_reason():  # the TMA kernel did not run: the row timed the pointer kernel
                    rows[-1].update(ms=None, tflops=None, speedup=None, error=f"TMA off: {tma_off_reason()}"[:300])
        del stored, wq, ws
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", default="256,4096,32760,75600", help="token counts, comma-separated")
    p.add_argument("--shapes", default=",".join(f"{k}x{n}" for k, n in WAN_SHAPES), help="KxN list")
    p.add_argument("--device", default="cuda")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--schemes", default=None,
                   help="labels to run (default all): comfy_fp8_fast," + ",".join(s[0] for s in SCHEMES))
    p.add_argument("--budget", type=float, default=0.0,
                   help="seconds: shapes that would start later are skipped (0 = no limit)")
    p.add_argument("--json", default=None, help="write raw results here (e.g. bench/results/linear-h200.json)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    labels = None if args.schemes is None else set(args.schemes.split(","))
    env = environment(device)
    print(f"device: {env['device']}; auto: {env.get('auto')}", flush=True)
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    with torch.inference_mode():
        for m in (int(v) for v in args.m.split(",")):
            for shape in args.shapes.split(","):
                k, n = (int(v) for v in shape.lower().split("x"))
                elapsed = time.monotonic() - start
                if args.budget and elapsed > args.budget:
                    rows.append({"M": m, "K": k, "N": n, "scheme": "-", "backend": "-",
                                 "error": f"skipped: time budget {args.budget:.0f} s spent"})
                    print(f"M={m} {k}x{n}: skipped (budget)", flush=True)
                    continue
                shape_rows = run_shape(m, k, n, device, args.iters, args.warmup, labels)
                rows += shape_rows
                print(f"M={m} {k}x{n}: {len(shape_rows)} rows, {time.monotonic() - start:.0f} s elapsed", flush=True)
                save(rows, env, args.json, elapsed_s=time.monotonic() - start)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    write(rows, env, args.json, COLUMNS, elapsed_s=time.monotonic() - start)


if __name__ == "__main__":
    main()
