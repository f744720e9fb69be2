"""``detect_family``: which supported model a state dict holds, from key names and shapes only."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from .registry import FAMILIES
from .spec import DetectedModel, Shapes, UnknownFamilyError

# Tried first, in this order; any other prefix ending in "." is found from the families' anchor keys.
KNOWN_PREFIXES: tuple[str, ...] = ("", "model.diffusion_model.", "diffusion_model.", "model.", "transformer.")


def _candidate_prefixes(keys: Sequence[str]) -> list[str]:
    found: dict[str, None] = dict.fromkeys(KNOWN_PREFIXES)
    anchors = [a for spec in FAMILIES.values() for a in spec.anchors]
    for k in keys:
        for a in anchors:
            if k.endswith(a):
                p = k[: -len(a)]
                if p == "" or p.endswith("."):
                    found.setdefault(p, None)
    return sorted(found, key=len)


def strip_prefix(shapes: Shapes, prefix: str) -> dict[str, Sequence[int]]:
    """The entries of ``shapes`` under ``prefix``, with the prefix removed (others are left out)."""
    n = len(prefix)
    return {k[n:]: v for k, v in shapes.items() if k.startswith(prefix)}


def detect_family(shapes: Mapping[str, Sequence[int]]) -> DetectedModel:
    """Detect family, variant, naming and key prefix from ``key -> shape`` (e.g. a safetensors header).

    Raises ``UnknownFamilyError`` (a ``ValueError``) listing a few keys and the supported families.
    """
    keys = list(shapes)
    for prefix in _candidate_prefixes(keys):
        sub = strip_prefix(shapes, prefix) if prefix else dict(shapes)
        if not sub:
            continue
        for spec in FAMILIES.values():
            found = spec.detect(sub)
            if found is not None:
                return dataclasses.replace(found, prefix=prefix)
    sample = ", ".join(repr(k) for k in sorted(keys)[:6]) or "(no keys)"
    more = f" ... ({len(keys)} keys)" if len(keys) > 6 else ""
    labels = ", ".join(f"{s.label} ({s.name})" for s in FAMILIES.values())
    raise UnknownFamilyError(
        f"not a supported diffusion transformer; keys seen: {sample}{more}. Supported families: {labels}"
    )
