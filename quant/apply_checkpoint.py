"""Load a ``QuantizedCheckpoint`` into a module built with the same names (e.g. a diffusers transformer):
each quantized layer's ``nn.Linear`` becomes a ``QuantLinear`` holding the stored tensors, the rest loads as
usual. Every tensor must land somewhere and every parameter must be given (no silently random layers)."""

from __future__ import annotations

from torch import nn

from .formats.checkpoint import QuantizedCheckpoint
from .linear import QuantLinear
from .model import set_submodule


def load_checkpoint_into(module: nn.Module, ckpt: QuantizedCheckpoint, backend: str = "auto") -> list[str]:
    """Replace and load in place; returns the quantized layer names. ``ValueError`` on missing/extra keys."""
    quant_keys = set()
    for name, scheme in ckpt.layers.items():
        lin = module.get_submodule(name)
        t = ckpt.layer_tensors(name)
        if not isinstance(lin, nn.Linear) or tuple(t["weight"].shape) != (lin.out_features, lin.in_features):
            raise ValueError(f"layer {name!r}: checkpoint weight {list(t['weight'].shape)} does not fit {lin}")
        bias = ckpt.tensors.get(f"{name}.bias")
        q = QuantLinear.from_tensors(scheme, t["weight"], t["weight_scale"],
                                     None if bias is None else bias.to(lin.bias.dtype if lin.bias is not None
                                                                       else bias.dtype),
                                     t.get("input_scale"), backend=backend)
        set_submodule(module, name, q)
        quant_keys |= {f"{name}.{p}" for p in ("weight", "weight_scale", "input_scale", "bias")}
    plain = {k: v for k, v in ckpt.tensors.items() if k not in quant_keys}
    res = module.load_state_dict(plain, strict=False)
    missing = [k for k in res.missing_keys if k not in quant_keys]
    if missing or res.unexpected_keys:
        raise ValueError(f"checkpoint does not match the module: missing {missing[:8]}, "
                         f"unexpected {res.unexpected_keys[:8]}")
    return list(ckpt.layers)
