"""The cached choice of kernel per (device, scheme, shape, block, request): ``DeviceCaps`` (detected and probed
once per device) + ``table.choose``, logged once."""

from __future__ import annotations

import logging
from functools import cache

import torch

from .detect import detect_caps
from .kernel import Block
from .table import M_SPLIT, Choice, choose, kernel_named

log = logging.getLogger("comfyui_dit_quant")


def select_kernel(device_type: str, device_index: int, scheme: str, n: int, k: int, block_n: int, block_k: int,
                  requested: str, m: int = 0) -> Choice:
    """The kernel for one layer on one device at ``m`` rows (0: small); cached per M bucket (``table.M_SPLIT``)."""
    large = m > M_SPLIT if M_SPLIT else False
    return _select(device_type, device_index, scheme, n, k, block_n, block_k, requested, large)


@cache
def _select(device_type: str, device_index: int, scheme: str, n: int, k: int, block_n: int, block_k: int,
            requested: str, large: bool) -> Choice:
    """Cached; logs the choice once, as a warning if a fallback."""
    caps = detect_caps(device_type, device_index)
    block = (block_n, block_k) if block_n and block_k else None
    choice = choose(caps, scheme, n, k, block, requested, M_SPLIT + 1 if large else 0)
    rows = f", M > {M_SPLIT}" if large else ""
    if choice.note:
        log.warning("%s [N=%d, K=%d%s] on %s: backend %s (%s)", scheme, n, k, rows, caps.describe(), choice.backend,
                    choice.note)
    else:
        log.info("%s [N=%d, K=%d%s] on %s: backend %s", scheme, n, k, rows, caps.describe(), choice.backend)
    return choice


def run_named(name: str, x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
              bias: torch.Tensor | None, input_scale: torch.Tensor | None, scheme: str, block: Block,
              out_dtype: torch.dtype) -> torch.Tensor:
    """Run the kernel ``name`` for ``scheme`` on ``x2``'s device directly, bypassing the choice (tests, bench)."""
    caps = detect_caps(x2.device.type, x2.device.index or 0)
    return kernel_named(name, scheme, caps).run(x2, weight, weight_scale, bias, input_scale, block, out_dtype)
