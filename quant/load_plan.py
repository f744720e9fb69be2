"""Quantizing the planned Linear weights of a high-precision checkpoint at load (ComfyUI-free).

Which layers: ``quant.plan.plan_state_dict``, the same rules as the CLI converter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Mapping

import torch

from .formats.layer_state import LayerTensors, encode_layer
from .formats.safetensors_io import Header, read_tensor
from .schemes import Scheme

ProgressFn = Callable[[int, int, str], None]
TRIM_EVERY_BYTES = 64 * 1024**2


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand heap memory freed by the C allocator back to the OS (glibc; a no-op elsewhere).

    glibc raises its mmap threshold after large frees, so the freed high-precision weights and float32 working
    copies end up as heap holes between the kept quantized tensors; without a trim they stay resident.
    """
    if _TRIM is not None:
        _TRIM(0)


def quantize_layer(layer: str, weight: torch.Tensor, scheme: Scheme,
                   device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The marked quantized entries (``<layer>.weight``, ``.weight_scale``, marker) of one weight, on the CPU."""
    stored = scheme.quantize(weight.to(device))
    parts = encode_layer(LayerTensors(scheme, stored["weight"].cpu(), stored["weight_scale"].cpu()))
    return {f"{layer}.{k}": v for k, v in parts.items()}


def quantize_state_dict(
    sd: dict[str, torch.Tensor],
    layers: Mapping[str, Scheme],
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> None:
    """Replace each planned layer's weight in ``sd`` by its scheme's marked entries, one layer at a time.

    The math runs on ``device`` in the weight's own precision (float32 working copies per row chunk); results
    go back to the CPU. Each high-precision weight is dropped from ``sd`` as soon as it is quantized.
    """
    for i, (layer, scheme) in enumerate(layers.items()):
        sd.update(quantize_layer(layer, sd.pop(f"{layer}.weight"), scheme, device))
        if progress is not None:
            progress(i + 1, len(layers), layer)


def read_quantized_state_dict(
    header: Header,
    layers: Mapping[str, Scheme],
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> dict[str, torch.Tensor]:
    """Read ``header.path`` tensor by tensor (plain reads in file order, no memory map) and quantize each planned
    weight with its scheme as soon as it is read, so at most one high-precision weight is resident beyond what is
    kept."""
    planned = {f"{layer}.weight": layer for layer in layers}
    sd: dict[str, torch.Tensor] = {}
    done = freed = 0
    with open(header.path, "rb") as f:
        for key in sorted(header.tensors, key=lambda k: header.tensors[k].offsets[0]):
            tensor = read_tensor(f, header, key)
            layer = planned.get(key)
            if layer is None:
                sd[key] = tensor
                continue
            sd.update(quantize_layer(layer, tensor, layers[layer], device))
            freed += tensor.numel() * tensor.element_size()
            del tensor
            if freed >= TRIM_EVERY_BYTES:
                release_freed_memory()
                freed = 0
            done += 1
            if progress is not None:
                progress(done, len(planned), layer)
    release_freed_memory()
    return sd
