"""Rename tables between diffusers and ComfyUI-native state-dict keys.

A family's table is a list of ``KeyRule``: a diffusers module path and the ComfyUI module path it becomes
(``{i}`` stands for a block index). A key maps by its longest matching rule; whatever follows the module path
(``.weight``, ``.bias``, ``.weight_scale``, ``.input_scale``, ...) is kept. A key no rule covers raises
``KeyMapError``: keys are never dropped silently.

Ops other than a rename (the loader must apply them to the tensors, including their scales):

``fuse`` (diffusers -> ComfyUI) / ``split`` (ComfyUI -> diffusers)
    ComfyUI holds one tensor where diffusers holds ``parts`` (e.g. HunyuanVideo 1.5 ``to_q``/``to_k``/``to_v``
    -> ``img_attn.qkv``): the target is ``torch.cat(parts, dim=0)`` in rule order. Quantized parts with their
    own per-tensor scales must be requantized to one common scale before fusing; a per-tensor scale split
    from a fused tensor applies to every part.
``swap_halves``
    the same tensor with its two halves along dim 0 exchanged (shift/scale order of an AdaLN modulation);
    per-tensor (scalar) scales are unchanged, per-row scales swap with their rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["to_comfyui", "to_diffusers"]
DIRECTIONS: tuple[str, ...] = ("to_comfyui", "to_diffusers")


class KeyMapError(ValueError):
    """A key cannot be mapped (no rule, or a fused group is incomplete)."""


class FusedKeyError(KeyMapError):
    """A ComfyUI key holds several diffusers tensors: it has no single diffusers name."""

    def __init__(self, key: str, parts: Sequence[str]) -> None:
        self.key = key
        self.parts = tuple(parts)
        super().__init__(f"{key!r} is fused from {list(self.parts)}; use plan_state_dict_keys() to split it")


@dataclass(frozen=True)
class KeyRule:
    """``diffusers`` module path <-> ``comfyui`` module path; ``part``/``parts`` for fused tensors."""

    diffusers: str
    comfyui: str
    op: Literal["rename", "fuse", "swap_halves"] = "rename"
    part: int = 0
    parts: int = 1


@dataclass(frozen=True)
class KeyMapEntry:
    """One target tensor and the source tensor(s) it is made from."""

    target: str
    sources: tuple[str, ...]
    op: str = "rename"
    part: int | None = None  # split: which of ``num_parts`` equal dim-0 chunks of the single source
    num_parts: int | None = None


def _compile(template: str) -> re.Pattern[str]:
    body = re.escape(template).replace(re.escape("{i}"), r"(\d+)")
    return re.compile(rf"^{body}(?P<rest>\..*)?$")


def _fill(template: str, indices: Sequence[str]) -> str:
    it = iter(indices)
    return re.sub(r"\{i\}", lambda _m: next(it), template)


@dataclass
class KeyMap:
    """Compiled rule table of one family (identity when ``rules`` is None)."""

    rules: tuple[KeyRule, ...] | None
    _fwd: list[tuple[re.Pattern[str], KeyRule]] = field(init=False, repr=False)
    _rev: list[tuple[re.Pattern[str], KeyRule]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rules = self.rules or ()
        for side in ("diffusers", "comfyui"):
            paths = [getattr(r, side) for r in rules]
            dup = {p for p in paths if paths.count(p) > 1}
            if side == "comfyui":  # fused parts share their ComfyUI path
                dup = {p for p in dup if not all(r.op == "fuse" for r in rules if r.comfyui == p)}
            if dup:
                raise ValueError(f"duplicate {side} paths in key rules: {sorted(dup)}")
        # Longest (deepest) module path first, so the most specific rule wins.
        self._fwd = [(_compile(r.diffusers), r) for r in sorted(rules, key=lambda r: -r.diffusers.count("."))]
        self._rev = [(_compile(r.comfyui), r) for r in sorted(rules, key=lambda r: -r.comfyui.count("."))]

    @property
    def identity(self) -> bool:
        return self.rules is None

    def rule_for(self, key: str, direction: Direction) -> tuple[KeyRule, str, tuple[str, ...]] | None:
        """(rule, rest of key after the module path, block indices) of the longest match, or None."""
        table = self._fwd if direction == "to_comfyui" else self._rev
        for rx, rule in table:
            m = rx.match(key)
            if m:
                return rule, m.group("rest") or "", tuple(m.groups()[:-1])
        return None

    def _target(self, rule: KeyRule, rest: str, idx: tuple[str, ...], direction: Direction) -> str:
        template = rule.comfyui if direction == "to_comfyui" else rule.diffusers
        return _fill(template, idx) + rest

    def fused_parts(self, comfy_key: str) -> tuple[str, ...]:
        """Diffusers keys fused into ``comfy_key`` in order, or () when it is not fused."""
        if self.identity:
            return ()
        found = self.rule_for(comfy_key, "to_diffusers")
        if found is None or found[0].op != "fuse":
            return ()
        rule, rest, idx = found
        group = sorted((r for r in self.rules or () if r.comfyui == rule.comfyui), key=lambda r: r.part)
        return tuple(_fill(r.diffusers, idx) + rest for r in group)

    def map_key(self, key: str, direction: Direction) -> str:
        """Mapped name of ``key``; a fused diffusers part maps to its fused ComfyUI key."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if self.identity:
            return key
        found = self.rule_for(key, direction)
        if found is None:
            raise KeyMapError(f"no {direction} rule for key {key!r}")
        rule, rest, idx = found
        if direction == "to_diffusers" and rule.op == "fuse":
            raise FusedKeyError(key, self.fused_parts(key))
        return self._target(rule, rest, idx, direction)

    def plan(self, keys: Iterable[str], direction: Direction) -> list[KeyMapEntry]:
        """Every target tensor with its sources and op; raises ``KeyMapError`` naming unmapped keys."""
        keys = list(keys)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if self.identity:
            return [KeyMapEntry(k, (k,)) for k in keys]
        missing = [k for k in keys if self.rule_for(k, direction) is None]
        if missing:
            raise KeyMapError(f"{len(missing)} key(s) have no {direction} rule: {_short(missing)}")
        entries: list[KeyMapEntry] = []
        fused: dict[str, dict[int, str]] = {}
        fused_n: dict[str, int] = {}
        for k in keys:
            rule, rest, idx = self.rule_for(k, direction)  # type: ignore[misc]
            target = self._target(rule, rest, idx, direction)
            if rule.op == "fuse" and direction == "to_comfyui":
                fused.setdefault(target, {})[rule.part] = k
                fused_n[target] = rule.parts
            elif rule.op == "fuse":
                parts = self.fused_parts(k)
                entries += [KeyMapEntry(p, (k,), "split", i, len(parts)) for i, p in enumerate(parts)]
            else:
                entries.append(KeyMapEntry(target, (k,), rule.op))
        for target, got in fused.items():
            if len(got) != fused_n[target]:
                raise KeyMapError(
                    f"fused {target!r} needs {fused_n[target]} parts, got {sorted(got.values())}"
                )
            entries.append(KeyMapEntry(target, tuple(got[i] for i in sorted(got)), "fuse"))
        return entries


def _short(keys: Sequence[str], n: int = 8) -> str:
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(repr(k) for k in keys[:n]) + more
