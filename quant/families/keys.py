"""Key-name conversion between diffusers and ComfyUI-native names, per family (rules in ``keymap``)."""

from __future__ import annotations

from collections.abc import Iterable

from .keymap import Direction, FusedKeyError, KeyMapEntry, KeyMapError
from .registry import get_family


def to_comfyui(family: str, key: str) -> str:
    """ComfyUI name of a diffusers key or module name; a fused part gives its fused key (e.g. ``...qkv``)."""
    return get_family(family).keymap.map_key(key, "to_comfyui")


def to_diffusers(family: str, key: str) -> str:
    """Diffusers name of a ComfyUI key or module name; ``FusedKeyError`` (with ``.parts``) for a fused one."""
    return get_family(family).keymap.map_key(key, "to_diffusers")


def fused_parts(family: str, comfy_key: str) -> tuple[str, ...]:
    """Diffusers keys concatenated (dim 0, in order) into ``comfy_key``; () when it is not fused."""
    return get_family(family).keymap.fused_parts(comfy_key)


def plan_state_dict_keys(family: str, keys: Iterable[str], direction: Direction) -> list[KeyMapEntry]:
    """Every target tensor with its source key(s) and op ("rename", "fuse", "split", "swap_halves")."""
    return get_family(family).keymap.plan(keys, direction)


def map_state_dict_keys(family: str, keys: Iterable[str], direction: Direction) -> dict[str, str]:
    """``source key -> target key`` for every key; ``KeyMapError`` naming the keys that cannot be mapped.

    Names only: fused parts map to their fused key (many to one) and ``swap_halves`` tensors look like
    renames, so a loader that moves tensors must use ``plan_state_dict_keys``. A fused ComfyUI key (one
    source, several targets) has no single target: it is reported as an error here.
    """
    keys = list(keys)
    spec = get_family(family)
    out: dict[str, str] = {}
    bad: list[str] = []
    for k in keys:
        try:
            out[k] = spec.keymap.map_key(k, direction)
        except FusedKeyError:
            bad.append(f"{k} (fused; use plan_state_dict_keys)")
        except KeyMapError:
            bad.append(k)
    if bad:
        more = f" ... (+{len(bad) - 8} more)" if len(bad) > 8 else ""
        raise KeyMapError(f"{len(bad)} {spec.label} key(s) cannot be mapped {direction}: {bad[:8]}{more}")
    return out
