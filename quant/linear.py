"""``QuantLinear``: an ``nn.Linear`` replacement that holds a scheme's stored tensors.

Stateless at run time: ``forward`` reads its tensors and calls the dispatch; nothing is written per call, so
two CFG passes (or two threads) can share a layer.
"""

from __future__ import annotations

import torch
from torch import nn

from .schemes import Scheme


class QuantLinear(nn.Module):
    """Linear layer with quantized weight codes (``weight``), float32 ``weight_scale`` and optional
    ``input_scale``; bias kept in high precision. ``backend`` is a request ("auto" lets the dispatch choose)."""

    def __init__(self, in_features: int, out_features: int, scheme: Scheme, bias: bool = True,
                 device: torch.device | str | None = None, bias_dtype: torch.dtype = torch.bfloat16,
                 backend: str = "auto") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.scheme = scheme
        self.backend = backend
        probe = scheme.empty_tensors(out_features, in_features)
        w, s = probe["weight"], probe["weight_scale"]  # meta probes: allocate on ``device`` (None = default)
        self.weight = nn.Parameter(torch.empty(w.shape, dtype=w.dtype, device=device), requires_grad=False)
        self.register_buffer("weight_scale", torch.empty(s.shape, dtype=s.dtype, device=device))
        self.register_buffer("input_scale", None)
        self.bias = (nn.Parameter(torch.zeros(out_features, device=device, dtype=bias_dtype), requires_grad=False)
                     if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, scheme: Scheme, backend: str = "auto") -> QuantLinear:
        """Quantize an existing ``nn.Linear`` (its weight stays untouched)."""
        stored = scheme.quantize(linear.weight.data)
        return cls.from_tensors(scheme, stored["weight"], stored["weight_scale"],
                                None if linear.bias is None else linear.bias.data, backend=backend)

    @classmethod
    def from_tensors(cls, scheme: Scheme, weight: torch.Tensor, weight_scale: torch.Tensor,
                     bias: torch.Tensor | None = None, input_scale: torch.Tensor | None = None,
                     backend: str = "auto") -> QuantLinear:
        """Wrap already-quantized tensors (e.g. read from a checkpoint) without copying them."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self.out_features, self.in_features = weight.shape
        self.scheme, self.backend = scheme, backend
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.register_buffer("weight_scale", weight_scale.float())
        self.register_buffer("input_scale", None if input_scale is None else input_scale.float())
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():  # nn.Linear raises here too; never return an integer "result"
            raise RuntimeError(f"QuantLinear expects a floating-point input, got {x.dtype}")
        bias = self.bias
        if bias is not None and bias.dtype != x.dtype:
            bias = bias.to(x.dtype)
        return self.scheme.linear(x, self.weight, self.weight_scale, bias, self.input_scale, self.backend)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.scheme.dequantize(self.weight, self.weight_scale, dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"scheme={self.scheme.describe()}, bias={self.bias is not None}")
