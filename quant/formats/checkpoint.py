"""The in-memory form every checkpoint format is read into and written from.

Per quantized layer ``<l>`` the tensors are always named ``<l>.weight`` (codes), ``<l>.weight_scale`` and,
when present, ``<l>.input_scale``; format-specific markers (``comfy_quant`` tensors, legacy ``scale_weight``
names, header metadata) exist only on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..schemes import Scheme


@dataclass
class QuantizedCheckpoint:
    tensors: dict[str, torch.Tensor]
    layers: dict[str, Scheme] = field(default_factory=dict)
    format: str = "plain"
    metadata: dict[str, str] = field(default_factory=dict)

    def layer_tensors(self, layer: str) -> dict[str, torch.Tensor]:
        """The stored tensors of one quantized layer (``weight``, ``weight_scale``, maybe ``input_scale``)."""
        out = {}
        for part in ("weight", "weight_scale", "input_scale"):
            t = self.tensors.get(f"{layer}.{part}")
            if t is not None:
                out[part] = t
        return out


def layer_of(key: str) -> str:
    """``blocks.0.ffn.0.weight`` -> ``blocks.0.ffn.0``."""
    return key.rpartition(".")[0]
