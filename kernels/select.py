"""Cached backend selection: ``DeviceCaps`` (detected and probed once per device) + ``policy.choose``, logged
once per (device, scheme, shape, block, request)."""

from __future__ import annotations

import logging
from functools import cache

from .caps import detect_caps
from .policy import choose

log = logging.getLogger("comfyui_dit_quant")


@cache
def select_backend(device_type: str, device_index: int, scheme: str, n: int, k: int, block_n: int, block_k: int,
                   requested: str) -> str:
    """The backend name for one layer on one device (cached; logs the choice once, as a warning if a fallback)."""
    caps = detect_caps(device_type, device_index)
    block = (block_n, block_k) if block_n and block_k else None
    choice = choose(caps, scheme, n, k, block, requested)
    if choice.note:
        log.warning("%s [N=%d, K=%d] on %s: backend %s (%s)", scheme, n, k, caps.describe(), choice.backend,
                    choice.note)
    else:
        log.info("%s [N=%d, K=%d] on %s: backend %s", scheme, n, k, caps.describe(), choice.backend)
    return choice.backend
