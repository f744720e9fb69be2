"""Quantization schemes and their registry."""

from __future__ import annotations

from typing import Any

from .base import NonFiniteWeightError, Scheme
from .block_size import DEFAULT_BLOCK, format_block_size, parse_block_size
from .fp8_block import FP8Block
from .fp8_channel import FP8Channel
from .fp8_tensor import FP8Tensor
from .fp8_weight_only import FP8WeightOnly
from .int8 import Int8

SCHEME_CLASSES: dict[str, type[Scheme]] = {
    cls.name: cls for cls in (FP8Tensor, FP8Channel, FP8Block, FP8WeightOnly, Int8)
}
SCHEME_NAMES = tuple(SCHEME_CLASSES)


def get_scheme(name: str, **options: Any) -> Scheme:
    """Build a scheme by name, e.g. ``get_scheme("fp8_block", block_size="128x128")``."""
    cls = SCHEME_CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown scheme {name!r}; supported: {', '.join(SCHEME_NAMES)}")
    return cls(**options)


def from_config(config: dict[str, Any]) -> Scheme:
    """Rebuild a scheme from ``Scheme.config()``."""
    options = {k: v for k, v in config.items() if k != "scheme"}
    return get_scheme(config["scheme"], **options)


__all__ = [
    "DEFAULT_BLOCK", "SCHEME_CLASSES", "SCHEME_NAMES", "FP8Block", "FP8Channel", "FP8Tensor", "FP8WeightOnly",
    "Int8", "NonFiniteWeightError", "Scheme", "format_block_size", "from_config", "get_scheme",
    "parse_block_size",
]
