"""The one entry point every quantized linear goes through, and the choice of backend behind it.

``quant_linear`` takes plain tensors and simple arguments (no objects), so it can become a ``torch.library``
custom op without changing its callers. The backend is chosen once per (device, scheme, shape, request) and
cached; the choice is logged once and can be read back for reports with ``backend_for``.
"""

from __future__ import annotations

import logging
from functools import cache

import torch

from . import reference as ref

log = logging.getLogger("comfyui_dit_quant")

SCHEMES = ("fp8_tensor", "fp8_channel", "fp8_block", "fp8_weight_only", "int8")
BACKENDS = ("auto", "cublas", "triton", "eager")


def _check(scheme: str, backend: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; supported: {', '.join(SCHEMES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; supported: {', '.join(BACKENDS)}")


@cache
def _select(device_type: str, device_index: int, scheme: str, n: int, k: int, requested: str) -> str:
    """Pick the backend for one (device, scheme, shape). Only the eager reference exists in this version."""
    chosen = "eager"
    if requested not in ("auto", chosen):
        log.warning("backend %r is not available for %s on %s (N=%d, K=%d); using %r",
                    requested, scheme, device_type, n, k, chosen)
    else:
        log.info("%s on %s (N=%d, K=%d): backend %s", scheme, device_type, n, k, chosen)
    return chosen


def backend_for(device: torch.device | str, scheme: str, n: int, k: int, requested: str = "auto") -> str:
    """The backend ``quant_linear`` uses for these arguments (cached; logs once)."""
    _check(scheme, requested)
    device = torch.device(device)
    return _select(device.type, device.index or 0, scheme, n, k, requested)


def _eager(
    x2: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    input_scale: torch.Tensor | None,
    scheme: str,
    block: tuple[int, int] | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    if scheme == "fp8_weight_only":
        return ref.weight_only_mm(x2, weight, weight_scale, block, bias, out_dtype)
    if scheme == "fp8_block":
        assert block is not None
        x_q, x_s = ref.quant_fp8_per_group(x2, block[1])
        return ref.block_scaled_mm(x_q, weight, x_s, weight_scale, *block, bias, out_dtype)
    if scheme == "fp8_tensor":
        x_q, x_s = ref.quant_fp8_per_tensor(x2, input_scale)
    elif scheme == "fp8_channel":
        x_q, x_s = ref.quant_fp8_per_token(x2)
    else:  # int8
        x_q, x_s = ref.quant_int8_per_token(x2)
    return ref.scaled_mm(x_q, weight, x_s, weight_scale, bias, out_dtype)


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
    n, k = weight.shape
    if x.shape[-1] != k:
        raise ValueError(f"quantized linear expects last dim {k}, got input of shape {tuple(x.shape)}")
    backend_for(x.device, scheme, n, k, backend)
    block = (block_n, block_k) if block_n and block_k else None
    x2 = x.reshape(-1, k)
    out = _eager(x2, weight, weight_scale, bias, input_scale, scheme, block, x.dtype)
    return out.reshape(*x.shape[:-1], n)
