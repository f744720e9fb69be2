"""Giving a rebuilt module tree its own ModelPatcher without touching the source model's."""

from __future__ import annotations

from collections.abc import Callable

import torch


def unpatched_weights(patcher) -> Callable[[str, torch.Tensor], torch.Tensor]:
    """The unpatched tensor of a key: the patcher's backup when a patch is applied, else the live tensor."""
    backup = getattr(patcher, "backup", {}) or {}

    def source(key: str, t: torch.Tensor) -> torch.Tensor:
        bk = backup.get(key)
        return bk.weight if bk is not None else t

    return source


def patcher_for_model(old, model: torch.nn.Module):
    """A plain ModelPatcher for ``model`` carrying ``old``'s patches, options and hooks (not its load state)."""
    p = old.clone(disable_dynamic=True, model_override=(model, ({}, {}, {}, set())))
    p.size = 0  # clone() copies the source size; ours is smaller
    p.hook_backup = {}
    p.cached_hook_patches = {}
    p.parent = None
    return p
