"""Shared fixtures: synthetic checkpoints in ComfyUI key names, written with the pack's own safetensors writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_dit_quant.quant.formats.safetensors_io import SafetensorsWriter, atomic_output


def wan_comfy_shapes(dim: int = 64, ffn: int = 128, layers: int = 2, in_dim: int = 16, out_dim: int = 16,
                     text_dim: int = 32, freq_dim: int = 32) -> dict[str, tuple[int, ...]]:
    """Key → shape of a Wan 2.1 transformer in ComfyUI-native (original Wan) key names, scaled down."""
    s: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (dim, in_dim, 1, 2, 2), "patch_embedding.bias": (dim,),
        "text_embedding.0.weight": (dim, text_dim), "text_embedding.0.bias": (dim,),
        "text_embedding.2.weight": (dim, dim), "text_embedding.2.bias": (dim,),
        "time_embedding.0.weight": (dim, freq_dim), "time_embedding.0.bias": (dim,),
        "time_embedding.2.weight": (dim, dim), "time_embedding.2.bias": (dim,),
        "time_projection.1.weight": (dim * 6, dim), "time_projection.1.bias": (dim * 6,),
        "head.modulation": (1, 2, dim), "head.head.weight": (out_dim * 4, dim), "head.head.bias": (out_dim * 4,),
    }
    for b in range(layers):
        p = f"blocks.{b}."
        s[p + "modulation"] = (1, 6, dim)
        for attn in ("self_attn", "cross_attn"):
            for proj in "qkvo":
                s[f"{p}{attn}.{proj}.weight"] = (dim, dim)
                s[f"{p}{attn}.{proj}.bias"] = (dim,)
            s[f"{p}{attn}.norm_q.weight"] = (dim,)
            s[f"{p}{attn}.norm_k.weight"] = (dim,)
        s[p + "norm3.weight"] = (dim,)
        s[p + "norm3.bias"] = (dim,)
        s[p + "ffn.0.weight"] = (ffn, dim)
        s[p + "ffn.0.bias"] = (ffn,)
        s[p + "ffn.2.weight"] = (dim, ffn)
        s[p + "ffn.2.bias"] = (dim,)
    return s


def write_random_checkpoint(path: Path, shapes: dict[str, tuple[int, ...]], dtype: torch.dtype = torch.bfloat16,
                            seed: int = 0, prefix: str = "",
                            fill: Callable[[str, torch.Tensor], torch.Tensor] | None = None) -> Path:
    """Stream a random checkpoint to disk one tensor at a time (works for files larger than RAM headroom)."""
    gen = torch.Generator().manual_seed(seed)
    names = sorted(shapes)
    with atomic_output(path) as f:
        w = SafetensorsWriter(f, [(prefix + n, dtype, shapes[n]) for n in names])
        for n in names:
            t = (torch.randn(shapes[n], generator=gen) * 0.05).to(dtype)
            if fill is not None:
                t = fill(n, t)
            w.write(prefix + n, t)
        w.close()
    return path


def write_tiny_wan_and_lora(models: Path) -> None:
    """``tiny_wan_bf16.safetensors`` (a Wan 2.1 shape ComfyUI detects: heads = dim / 128, text dim 4096) and a
    rank-4 ``tiny_lora.safetensors`` on its self-attention and FFN layers, in ``models``."""
    write_random_checkpoint(models / "tiny_wan_bf16.safetensors",
                            wan_comfy_shapes(dim=256, ffn=512, layers=2, text_dim=4096, freq_dim=256))
    gen, lora = torch.Generator().manual_seed(3), {}
    for b in range(2):
        for name, (n, k) in [*((f"self_attn.{p}", (256, 256)) for p in "qkvo"), ("ffn.0", (512, 256)),
                             ("ffn.2", (256, 512))]:
            key = f"diffusion_model.blocks.{b}.{name}"
            lora[key + ".lora_up.weight"] = (torch.randn(n, 4, generator=gen) * 0.05).to(torch.bfloat16)
            lora[key + ".lora_down.weight"] = (torch.randn(4, k, generator=gen) * 0.05).to(torch.bfloat16)
    save_file(lora, str(models / "tiny_lora.safetensors"))


@pytest.fixture
def wan_bf16_file(tmp_path: Path) -> Iterator[Path]:
    yield write_random_checkpoint(tmp_path / "wan_tiny_bf16.safetensors", wan_comfy_shapes())
