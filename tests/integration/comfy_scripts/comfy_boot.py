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
