"""Finiteness checks that work on every dtype a checkpoint holds, FP8 included (torch has no isfinite for FP8)."""

from __future__ import annotations

import torch

# FP8 bit patterns that are not finite: e4m3fn has only NaN (S.1111.111); e5m2 has inf and NaN (S.11111.xx).
_FP8_NONFINITE = {
    torch.float8_e4m3fn: (0x7F, 0x7F),
    torch.float8_e5m2: (0x7C, 0x7C),
}


def all_finite(t: torch.Tensor) -> bool:
    """True when ``t`` has no NaN or inf; integer tensors are always finite. FP8 is read from its bits (no upcast)."""
    if t.dtype in _FP8_NONFINITE:
        mask, pattern = _FP8_NONFINITE[t.dtype]
        return not bool(((t.view(torch.uint8) & mask) == pattern).any())
    if not (t.is_floating_point() or t.is_complex()):
        return True
    return bool(torch.isfinite(t).all())
