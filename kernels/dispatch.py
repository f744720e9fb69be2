"""The one entry point every quantized linear goes through, and the choice of backend behind it.

``quant_linear`` calls the ``comfyui_dit_quant::quant_linear`` custom op (``kernels/op.py``), so
``torch.compile(fullgraph=True)`` sees one opaque node per layer. Inside it the backend is chosen once per
(device, scheme, shape, block, request) from the device's capabilities and the kernel table (``table.py``), cached;
the choice is logged once and can be read back for reports with ``backend_for``.
"""

from __future__ import annotations

import torch

from .op import quant_linear_op
from .select import select_kernel
from .table import IMPLEMENTATIONS, REQUESTS, SCHEMES, Choice

BACKENDS = REQUESTS  # what a caller may request; the kernels that run are table.IMPLEMENTATIONS

__all__ = ["BACKENDS", "IMPLEMENTATIONS", "SCHEMES", "backend_for", "choice_for", "quant_linear"]


def _check(scheme: str, backend: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; supported: {', '.join(SCHEMES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; supported: {', '.join(BACKENDS)}")


def choice_for(device: torch.device | str, scheme: str, n: int, k: int, requested: str = "auto",
               block_n: int = 0, block_k: int = 0) -> Choice:
    """The kernel ``quant_linear`` runs for these arguments, with its note and refusals (cached; logs once)."""
    _check(scheme, requested)
    device = torch.device(device)
    return select_kernel(device.type, device.index or 0, scheme, n, k, block_n, block_k, requested)


def backend_for(device: torch.device | str, scheme: str, n: int, k: int, requested: str = "auto",
                block_n: int = 0, block_k: int = 0) -> str:
    """The name of the kernel ``quant_linear`` runs for these arguments."""
    return choice_for(device, scheme, n, k, requested, block_n, block_k).backend


def quant_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    input_scale: torch.Tensor | None,
    scheme: str,
    block_n: int = 0,
    block_k: int = 0,
    backend: str = "auto",
) -> torch.Tensor:
    """``y = x @ W.T + bias`` for a quantized ``W`` ([N, K] codes + scales); output in ``x``'s dtype.

    ``block_n`` / ``block_k`` are the weight block size for block-scaled weights (0 = not block-scaled).
    Activations are quantized dynamically as the scheme says (a static ``input_scale`` for fp8_tensor when given).
    """
    _check(scheme, backend)
    k = weight.shape[1]
    if x.shape[-1] != k:
        raise ValueError(f"quantized linear expects last dim {k}, got input of shape {tuple(x.shape)}")
    return quant_linear_op(x, weight, weight_scale, bias, input_scale, scheme, block_n, block_k, backend)
