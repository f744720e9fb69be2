"""The start every script here shares: ComfyUI on the CPU, then this repository importable as
``comfyui_dit_quant`` (ComfyUI itself imports the pack by folder; the scripts import it by package name)."""

import os
import sys
import tempfile


def boot(repo: str) -> None:
    """Call before importing any ComfyUI or pack module."""
    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    from comfy.cli_args import args

    args.cpu = True
    import nodes  # noqa: F401  (ComfyUI's own import order: its nodes before a custom pack)

    parent = tempfile.mkdtemp()
    os.symlink(repo, os.path.join(parent, "comfyui_dit_quant"))
    sys.path.insert(0, parent)


def cos(a, b) -> float:
    """Cosine similarity of two tensors, flattened."""
    import torch

    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def wan_cond(seed: int) -> list:
    """A random text conditioning for the tiny Wan test models (8 tokens of umT5 width 4096)."""
    import torch

    return [[torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(seed)), {}]]


def wan_sample(model):
    """KSampler, 2 euler steps at cfg 2 on a 1x8x8 latent of the tiny Wan test models; the latent, flattened."""
    import nodes
    import torch

    latent = {"samples": torch.zeros(1, 16, 1, 8, 8)}
    (out,) = nodes.common_ksampler(model, 7, 2, 2.0, "euler", "simple", wan_cond(1), wan_cond(2), latent)
    return out["samples"].float().flatten()
