"""One Wan-14B-shaped transformer block forward (diffusers' ``WanTransformerBlock``: dim 5120, ffn 13824, 40
heads, bf16 attention), bf16 vs each scheme (its linears quantized with ``quantize_model``, backends auto).

    python bench/dit_block.py [--frames 21 --height 30 --width 52] [--json bench/results/dit_block-<gpu>.json]
    python bench/dit_block.py --device cpu --dim 256 --ffn 512 --heads 2 --frames 2 --height 8 --width 8  # smoke

Time on an H200 with the defaults: ~2e13 FLOP of linears + ~2e13 of attention per forward (~0.1 s in bf16),
7 configurations x (1 check + 2 warm-up + 10 timed) forwards: well under a minute. The JSON is rewritten after
every scheme, so a run stopped by ``timeout`` keeps what it measured.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCHEMES, bench, environment, rel_error, save, write

from comfyui_dit_quant.quant.model import quantize_model
from comfyui_dit_quant.quant.schemes import get_scheme

COLUMNS = ["tokens", "scheme", "backends", "ms", "speedup", "rel_err", "error"]


def build(dim: int, ffn: int, heads: int, frames: int, height: int, width: int, text: int,
          device: torch.device) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """The block and its inputs: latent ``frames x height x width`` patches (patch 1x2x2), ``text`` text tokens.
    Rotary embeddings as diffusers' ``WanTransformer3DModel`` builds them (``WanRotaryPosEmbed`` on the latent)."""
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTransformerBlock

    torch.manual_seed(0)
    block = WanTransformerBlock(dim, ffn, heads, cross_attn_norm=True).to(device, torch.bfloat16).eval()
    latent = torch.zeros(1, 16, frames, height * 2, width * 2, device=device)
    rotary = WanRotaryPosEmbed(dim // heads, (1, 2, 2), 1024).to(device)(latent)
    x = torch.randn(1, frames * height * width, dim, device=device, dtype=torch.bfloat16)
    context = torch.randn(1, text, dim, device=device, dtype=torch.bfloat16)
    temb = torch.randn(1, 6, dim, device=device, dtype=torch.bfloat16) * 0.1
    return block, (x, context, temb, rotary)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=5120)
    p.add_argument("--ffn", type=int, default=13824)
    p.add_argument("--heads", type=int, default=40)
    p.add_argument("--frames", type=int, default=21)  # 480p, 81 frames: 21 x 30 x 52 = 32,760 tokens
    p.add_argument("--height", type=int, default=30)
    p.add_argument("--width", type=int, default=52)
    p.add_argument("--text", type=int, default=512)
    p.add_argument("--device", default="cuda")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--schemes", default=None, help="labels to run (default all): " + ",".join(s[0] for s in SCHEMES))
    p.add_argument("--budget", type=float, default=0.0,
                   help="seconds: schemes that would start later are skipped (0 = no limit)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    env = environment(device)
    block, inputs = build(args.dim, args.ffn, args.heads, args.frames, args.height, args.width, args.text, device)
    tokens = inputs[0].shape[1]
    env["block"] = {"dim": args.dim, "ffn": args.ffn, "heads": args.heads, "tokens": tokens, "text": args.text}
    labels = None if args.schemes is None else set(args.schemes.split(","))
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    with torch.inference_mode():
        ref = block(*inputs)
        t_bf16 = bench(lambda i: block(*inputs), device, warmup=args.warmup, iters=args.iters)
        rows.append({"tokens": tokens, "scheme": "bf16", "backends": "", "ms": t_bf16, "speedup": 1.0,
                     "rel_err": 0.0})
        print(f"bf16: {t_bf16:.2f} ms ({tokens} tokens)", flush=True)
        for label, name, opts in SCHEMES:
            if labels is not None and label not in labels:
                continue
            if args.budget and time.monotonic() - start > args.budget:
                rows.append({"tokens": tokens, "scheme": label, "error": f"skipped: time budget {args.budget:.0f} s"})
                continue
            qblock = copy.deepcopy(block)
            try:
                report = quantize_model(qblock, get_scheme(name, **opts))
                used = ", ".join(f"{b} x{c}" for b, c in sorted(report.backends().items()))
                err = rel_error(qblock(*inputs), ref)
                t = bench(lambda i, qb=qblock: qb(*inputs), device, warmup=args.warmup, iters=args.iters)
                row = {"tokens": tokens, "scheme": label, "backends": used, "ms": t, "speedup": t_bf16 / t,
                       "rel_err": err}
            except Exception as e:  # a benchmark records what failed and goes on
                row = {"tokens": tokens, "scheme": label, "error": f"{type(e).__name__}: {e}"[:300]}
            rows.append(row)
            print(f"{label}: {row.get('ms', row.get('error'))} ({time.monotonic() - start:.0f} s elapsed)", flush=True)
            save(rows, env, args.json, elapsed_s=time.monotonic() - start)
            del qblock
            if device.type == "cuda":
                torch.cuda.empty_cache()
    write(rows, env, args.json, COLUMNS, elapsed_s=time.monotonic() - start)


if __name__ == "__main__":
    main()
