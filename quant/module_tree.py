"""``rebuild_tree``: a copy-on-write walk of a module tree — a new tree over the same tensors with chosen layers
replaced (FP8 storage, INT8 conversion), the input left untouched and ComfyUI's per-module load state dropped."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

# Per-module state ComfyUI's ModelPatcher writes at load time: it belongs to the patcher of the source tree.
_RUNTIME_ATTRS = ("comfy_patched_weights", "prev_comfy_cast_weights", "comfy_force_cast_weights", "_v", "_prefetch",
                  "weight_lowvram_function", "bias_lowvram_function")
_ROOT_RUNTIME_ATTRS = ("model_loaded_weight_memory", "lowvram_patch_counter", "model_lowvram",
                       "current_weight_patches_uuid", "model_offload_buffer_memory")


def _shallow_copy(m: nn.Module) -> nn.Module:
    new = copy.copy(m)
    for k, v in list(new.__dict__.items()):
        if isinstance(v, dict | list | set):
            new.__dict__[k] = copy.copy(v)
    for k in _RUNTIME_ATTRS:
        new.__dict__.pop(k, None)
    for k in ("weight_function", "bias_function"):
        if k in new.__dict__:
            new.__dict__[k] = []
    return new


def rebuild_tree(root: nn.Module, convert: Callable[[str, nn.Module], bool],
                 build: Callable[[str, nn.Module, nn.Module, torch.Tensor], nn.Module],
                 device: torch.device | str | None = None,
                 source: Callable[[str, torch.Tensor], torch.Tensor] | None = None
                 ) -> tuple[nn.Module, dict[int, nn.Module]]:
    """A new module tree over the same tensors; ``root`` is left untouched.

    Every module is a shallow copy (ComfyUI's per-module load state dropped) whose parameters are new
    ``Parameter`` objects over the same storage (moved to ``device`` if given; ``source(key, tensor)`` picks the
    tensor for a state-dict key, e.g. a patcher's unpatched backup). For each module with ``convert(name, m)``
    true, ``build(name, old, copy, weight)`` returns its replacement: ``copy`` has every tensor but ``weight``,
    which is passed in. Modules reachable twice stay one module. Returns (new root, {id(old): new}).
    """
    modules: dict[int, nn.Module] = {}
    params: dict[int, nn.Parameter] = {}

    def src(key: str, t: torch.Tensor) -> torch.Tensor:
        t = source(key, t) if source is not None else t
        t = t.detach()
        return t if device is None else t.to(device)

    def walk(m: nn.Module, name: str) -> nn.Module:
        if id(m) in modules:
            return modules[id(m)]
        prefix = f"{name}." if name else ""
        new = _shallow_copy(m)
        modules[id(m)] = new
        rebuild = convert(name, m)
        for pname, p in m._parameters.items():
            if p is None or (rebuild and pname == "weight"):
                continue
            if id(p) not in params:
                params[id(p)] = nn.Parameter(src(prefix + pname, p), requires_grad=p.requires_grad)
            new._parameters[pname] = params[id(p)]
        for bname, b in m._buffers.items():
            if b is not None:
                new._buffers[bname] = src(prefix + bname, b)
        for cname, child in m._modules.items():
            new._modules[cname] = None if child is None else walk(child, prefix + cname)
        if rebuild:
            new = modules[id(m)] = build(name, m, new, src(prefix + "weight", m._parameters["weight"]))
        return new

    new_root = walk(root, "")
    for k in _ROOT_RUNTIME_ATTRS:
        new_root.__dict__.pop(k, None)
    return new_root, modules
