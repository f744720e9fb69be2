"""The supported families, by name."""

from __future__ import annotations

from . import hunyuan_video15, qwen_image, wan
from .spec import FamilySpec

FAMILIES: dict[str, FamilySpec] = {s.name: s for s in (wan.SPEC, qwen_image.SPEC, hunyuan_video15.SPEC)}


def get_family(name: str) -> FamilySpec:
    """The ``FamilySpec`` called ``name``; ``ValueError`` listing the supported ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; supported: {', '.join(FAMILIES)}") from None
