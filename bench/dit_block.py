"""One Wan-14B-shaped transformer block forward (diffusers' ``WanTransformerBlock``: dim 5120, ffn 13824, 40
heads, bf16 attention), bf16 vs each scheme (its linears quantized with ``quantize_model``, backends auto).

    python bench/dit_block.py [--tokens 32760] [--json bench/results/dit_block-<gpu>.json]
    python bench/dit_block.py --device cpu --dim 256 --ffn 512 --heads 2 --frames 2 --height 8 --width 8  # smoke
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench, environment, rel_error, write  # noqa: E402

from comfyui_dit_quant.quant.model import quantize_model  # noqa: E402
from comfyui_dit_quant.quant.schemes import get_scheme  # noqa: E402

SCHEMES = {"fp8_tensor": {}, "fp8_channel": {}, "fp8_block": {"block_size": "128x128"}, "int8": {},
           "fp8_weight_only": {}}


def build(dim: int, ffn: int, heads: int, frames: int, height: int, width: int, text: int,
          device: torch.device) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """The block and its inputs: latent ``frames x height x width`` patches (patch 1x2x2), 512 text tokens."""
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
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    block, inputs = build(args.dim, args.ffn, args.heads, args.frames, args.height, args.width, args.text, device)
    tokens = inputs[0].shape[1]
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        ref = block(*inputs)
        t_bf16 = bench(lambda i: block(*inputs), device, warmup=2, iters=args.iters)
        rows.append({"tokens": tokens, "scheme": "bf16", "backends": "", "ms": t_bf16, "speedup": 1.0,
                     "rel_err": 0.0})
        for name, opts in SCHEMES.items():
            qblock = copy.deepcopy(block)
            report = quantize_model(qblock, get_scheme(name, **opts))
            used = ", ".join(f"{b} x{c}" for b, c in sorted(report.backends().items()))
            err = rel_error(qblock(*inputs), ref)
            t = bench(lambda i, qb=qblock: qb(*inputs), device, warmup=2, iters=args.iters)
            rows.append({"tokens": tokens, "scheme": name, "backends": used, "ms": t, "speedup": t_bf16 / t,
                         "rel_err": err})
            del qblock
    write(rows, environment(device), args.json, ["tokens", "scheme", "backends", "ms", "speedup", "rel_err"])


if __name__ == "__main__":
    main()
