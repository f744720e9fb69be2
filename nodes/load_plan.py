"""Quantizing the planned Linear weights of a high-precision state dict at load (ComfyUI-free).

Which layers: ``quant.plan.plan_state_dict``, the same rules as the CLI converter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..quant.schemes import Scheme
from .layer_state import LayerTensors, encode_layer

ProgressFn = Callable[[int, int, str], None]


def quantize_state_dict(
    sd: dict[str, torch.Tensor],
    layers: Sequence[str],
    scheme: Scheme,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> None:
    """Replace each planned layer's weight in ``sd`` by its marked quantized entries, one layer at a time.

    The math runs on ``device`` in the weight's own precision (float32 working copies per row chunk); results
    go back to the CPU. Each high-precision weight is dropped from ``sd`` as soon as it is quantized.
    """
    for i, layer in enumerate(layers):
        w = sd.pop(f"{layer}.weight")
        stored = scheme.quantize(w.to(device))
        del w
        parts = encode_layer(LayerTensors(scheme, stored["weight"].cpu(), stored["weight_scale"].cpu()))
        sd.update({f"{layer}.{k}": v for k, v in parts.items()})
        if progress is not None:
            progress(i + 1, len(layers), layer)
