"""Quantization schemes and their registry (``registry.py``: the one list users choose from)."""

from __future__ import annotations

from typing import Any

from .base import NonFiniteWeightError, Scheme
from .block_size import DEFAULT_BLOCK, format_block_size, parse_block_size
from .fp8_block import FP8Block
from .fp8_channel import FP8Channel
from .fp8_tensor import FP8Tensor
from .fp8_weight_only import FP8WeightOnly
from .int8 import Int8
from .registry import CHOICE_KEYS, CHOICES, SCHEME_CLASSES, SCHEME_NAMES, SchemeChoice, choice, get_scheme


def from_config(config: dict[str, Any]) -> Scheme:
    """Rebuild a scheme from ``Scheme.config()``."""
    options = {k: v for k, v in config.items() if k != "scheme"}
    return get_scheme(config["scheme"], **options)


__all__ = [
    "CHOICES", "CHOICE_KEYS", "DEFAULT_BLOCK", "SCHEME_CLASSES", "SCHEME_NAMES", "FP8Block", "FP8Channel",
    "FP8Tensor", "FP8WeightOnly", "Int8", "NonFiniteWeightError", "Scheme", "SchemeChoice", "choice",
    "format_block_size", "from_config", "get_scheme", "parse_block_size",
]
