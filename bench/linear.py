"""Quantized linear vs bf16 ``F.linear`` on Wan-14B shapes, each scheme including activation quantization.

Baselines: bf16 ``F.linear``; ComfyUI core's ``fp8_e4m3fn_fast`` recipe (per-tensor ``_scaled_mm`` with the input
clamped and cast at scale 1); cuBLAS blockwise (when the device has it). Each scheme is timed for every backend
this device can run (``auto`` first). Median of CUDA-event timings with rotating inputs; TFLOPS = 2·M·N·K / t.

    python bench/linear.py [--m 256,4096,32760,75600] [--json bench/results/linear-<gpu>.json]
    python bench/linear.py --device cpu --m 64 --shapes 256x512   # smoke run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench, environment, rel_error, write  # noqa: E402

from comfyui_dit_quant.kernels import backends  # noqa: E402
from comfyui_dit_quant.kernels.caps import detect_caps  # noqa: E402
from comfyui_dit_quant.kernels.policy import candidates, choose  # noqa: E402
from comfyui_dit_quant.quant.schemes import get_scheme  # noqa: E402

SCHEMES = {"fp8_tensor": {}, "fp8_channel": {}, "fp8_block": {"block_size": "128x128"}, "int8": {},
           "fp8_weight_only": {}}
WAN_SHAPES = [(5120, 5120), (5120, 13824), (13824, 5120)]  # (K, N)
ROTATE = 3


def comfy_fp8_fast(x: torch.Tensor, w_t: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None,
                   one: torch.Tensor) -> torch.Tensor:
    """ComfyUI core's fp8_e4m3fn_fast: clamp the input to the e4m3 range, cast with scale 1, per-tensor GEMM."""
    x8 = x.clamp(-448, 448).to(torch.float8_e4m3fn)
    return torch._scaled_mm(x8, w_t, one, w_scale, bias=bias, out_dtype=x.dtype)


def run_shape(m: int, k: int, n: int, device: torch.device, iters: int) -> list[dict[str, Any]]:
    gen = torch.Generator(device=device).manual_seed(0)
    xs = [torch.randn(m, k, device=device, dtype=torch.bfloat16, generator=gen) for _ in range(ROTATE)]
    w = torch.randn(n, k, device=device, dtype=torch.bfloat16, generator=gen) / k**0.5
    bias = torch.randn(n, device=device, dtype=torch.bfloat16, generator=gen)
    flops = 2.0 * m * n * k
    ref = F.linear(xs[0], w, bias)
    t_bf16 = bench(lambda i: F.linear(xs[i % ROTATE], w, bias), device, iters=iters)
    rows = [{"M": m, "K": k, "N": n, "scheme": "bf16", "backend": "F.linear", "ms": t_bf16,
             "tflops": flops / t_bf16 / 1e9, "speedup": 1.0, "rel_err": 0.0}]

    def add(scheme: str, backend: str, fn: Any) -> None:
        try:
            err = rel_error(fn(0), ref)
            t = bench(fn, device, iters=iters)
        except Exception as e:  # noqa: BLE001 - a benchmark records what failed and goes on
            rows.append({"M": m, "K": k, "N": n, "scheme": scheme, "backend": backend, "error": str(e)[:200]})
            return
        rows.append({"M": m, "K": k, "N": n, "scheme": scheme, "backend": backend, "ms": t,
                     "tflops": flops / t / 1e9, "speedup": t_bf16 / t, "rel_err": err})

    caps = detect_caps(device.type, device.index or 0)
    if caps.scaled_mm:
        w8 = w.to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=device)
        add("comfy_fp8_fast", "scaled_mm_tensorwise", lambda i: comfy_fp8_fast(xs[i % ROTATE], w8, one, bias, one))
    for name, opts in SCHEMES.items():
        scheme = get_scheme(name, **opts)
        stored = scheme.quantize(w)
        wq, ws = stored["weight"], stored["weight_scale"]
        block = scheme.block
        auto = choose(caps, name, n, k, block).backend
        add(name, f"auto={auto}", lambda i, wq=wq, ws=ws, s=scheme: s.linear(xs[i % ROTATE], wq, ws, bias))
        for c in candidates(caps, name, n, k, block):
            if c.backend in (auto, "eager"):
                continue
            add(name, c.backend, lambda i, wq=wq, ws=ws, b=c.backend, nm=name, blk=block: backends.run(
                b, xs[i % ROTATE], wq, ws, bias, None, nm, blk, torch.bfloat16))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m", default="256,4096,32760,75600", help="token counts, comma-separated")
    p.add_argument("--shapes", default=",".join(f"{k}x{n}" for k, n in WAN_SHAPES), help="KxN list")
    p.add_argument("--device", default="cuda")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--json", default=None, help="write raw results here (e.g. bench/results/linear-h200.json)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for m in (int(v) for v in args.m.split(",")):
            for shape in args.shapes.split(","):
                k, n = (int(v) for v in shape.lower().split("x"))
                rows += run_shape(m, k, n, device, args.iters)
    write(rows, environment(device), args.json,
          ["M", "K", "N", "scheme", "backend", "ms", "tflops", "speedup", "rel_err", "error"])


if __name__ == "__main__":
    main()
