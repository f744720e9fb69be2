"""ComfyUI's per-call patch hooks on a layer (low-VRAM LoRA), run by duck typing: no ComfyUI import."""

from __future__ import annotations

import torch
from torch import nn


def apply_patch_hooks(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ComfyUI's per-call patch hooks (``*_lowvram_function`` then ``*_function``: LoRA in low-VRAM mode)
    on a high-precision copy of a layer's weight and bias. Plain attributes, so no ComfyUI import is needed."""
    out = {"weight": weight, "bias": bias}
    for name, t in out.items():
        if t is None:
            continue
        lowvram = getattr(module, f"{name}_lowvram_function", None)
        if lowvram is not None:
            t = lowvram(t)
        for f in getattr(module, f"{name}_function", ()):
            t = f(t)
        out[name] = t
    return out["weight"], out["bias"]
