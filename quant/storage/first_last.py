"""``first_last_layers``: the first and the last weighted layer of each top-level part of a model (kept in
high precision by ``apply_fp8_storage(keep_first_last=True)``; see the package docstring for why)."""

from __future__ import annotations

from torch import nn


def _is_weighted(m: nn.Module | None) -> bool:
    """A Linear or a convolution of any kind (transposed included: it is a layer of the forward path too)."""
    return isinstance(m, nn.Linear | nn.modules.conv._ConvNd)


def first_last_layers(root: nn.Module) -> dict[str, str]:
    """``{layer name: reason}``: the first and the last weighted layer (Linear / ConvNd) of each top-level part.

    Parts are the direct children of ``root`` holding a weighted layer (a VAE's ``encoder`` / ``decoder``,
    TAESD's ``taesd_encoder`` / ``taesd_decoder``, Wan VAE's ``conv1`` / ``conv2`` quant convs), after descending
    through wrappers with a single such child; a ``root`` that is itself a layer is its own part. Within a part,
    layers are ordered as the modules are registered (``named_modules``), which for VAEs is their forward order
    (checked on ComfyUI's TAESD, Wan 2.1 / 2.2 and KL VAEs by the integration tests); a part with one layer gives
    it once. Names are relative to ``root`` (a module reachable twice has its first name), reasons read
    "first layer of encoder", "last layer of encoder" or "only layer of conv1".
    """
    names: dict[int, str] = {}
    for name, m in root.named_modules():
        if _is_weighted(m):
            names.setdefault(id(m), name)
    if not names:
        return {}
    container, prefix = root, ""
    parts: list[tuple[str, nn.Module]] = []
    while not _is_weighted(container):
        parts = [(prefix + n, c) for n, c in container.named_children()
                 if any(_is_weighted(m) for m in c.modules())]
        if len(parts) != 1 or _is_weighted(parts[0][1]):
            break
        prefix, container = parts[0][0] + ".", parts[0][1]
    else:
        parts = [(prefix.removesuffix("."), container)]
    out: dict[str, str] = {}
    for part_name, part in parts:
        layers = list(dict.fromkeys(names[id(m)] for m in part.modules() if _is_weighted(m)))
        label = part_name or "the model"
        if len(layers) == 1:
            out.setdefault(layers[0], f"only layer of {label}")
        else:
            out.setdefault(layers[0], f"first layer of {label}")
            out.setdefault(layers[-1], f"last layer of {label}")
    return out
