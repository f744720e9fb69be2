"""The one list of schemes users choose from: the node widget, the CLI ``--scheme``, the demo and the benchmarks
read it. Each choice is a scheme with fixed options; its label comes from the scheme itself (``Scheme.label``), so
the widget, the CLI help, the summaries and ``describe()`` say the same thing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Scheme
from .block_size import DEFAULT_BLOCK
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


@dataclass(frozen=True)
class SchemeChoice:
    """One user choice: ``key`` (CLI ``--scheme``, demo, benchmarks), the scheme and its fixed options, and whether
    it takes a block size."""

    key: str
    scheme: str
    options: tuple[tuple[str, str], ...] = ()
    uses_block: bool = False

    def build(self, block_size: str | None = None) -> Scheme:
        """The scheme; ``block_size`` (e.g. "128x128", None = default) only for choices that take one."""
        options: dict[str, Any] = dict(self.options)
        if self.uses_block:
            options["block_size"] = DEFAULT_BLOCK if block_size is None else block_size
        elif block_size is not None:
            raise ValueError(f"a block size applies to {', '.join(c.key for c in CHOICES if c.uses_block)}, "
                             f"not {self.key}")
        return get_scheme(self.scheme, **options)

    @property
    def label(self) -> str:
        return self.build().label


CHOICES: tuple[SchemeChoice, ...] = (
    SchemeChoice("fp8_tensor", "fp8_tensor"),
    SchemeChoice("fp8_channel", "fp8_channel"),
    SchemeChoice("fp8_block", "fp8_block", uses_block=True),
    SchemeChoice("fp8_weight_only", "fp8_weight_only", (("granularity", "channel"),)),
    SchemeChoice("fp8_weight_only_block", "fp8_weight_only", (("granularity", "block"),), uses_block=True),
    SchemeChoice("int8", "int8"),
)
CHOICE_KEYS = tuple(c.key for c in CHOICES)


def choice(key: str) -> SchemeChoice:
    """The choice with this key or label; ValueError naming the choices otherwise."""
    for c in CHOICES:
        if key in (c.key, c.label):
            return c
    raise ValueError(f"unknown scheme {key!r}; choose from: {', '.join(CHOICE_KEYS)}")
