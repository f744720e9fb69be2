"""Ignored-layer matching: which layers stay in high precision.

An ignore spec is a list of patterns, written comma- or newline-separated (``parse_ignore``). Whitespace is
stripped, empty entries are dropped and a line starting with ``#`` is a comment. Layer names are dotted module
names (``blocks.0.self_attn.q``), matched case-sensitively. Pattern kinds:

``re:<regex>``
    ``re.search`` on the full layer name (``re:^blocks\\.(0|39)\\.``). A ``re:`` entry runs to the end of its
    line, so a regex may contain commas. An invalid regex raises ``ValueError`` naming the pattern, and so does
    one whose matching time could explode (nested or overlapping repeats, see ``quant.regex_guard``); regexes
    are matched only against names of at most ``MAX_NAME`` characters.
glob (contains ``*``, ``?`` or ``[``)
    ``fnmatch`` on the full name, or on any dotted ancestor of it: ``blocks.*.ffn.*`` and ``*proj_out*``
    match as usual, and ``transformer_blocks.*.norm1`` also covers ``transformer_blocks.3.norm1.linear``.
bare word (no dot, no glob character)
    matches a layer having it as a whole dotted component: ``img_mlp`` matches
    ``transformer_blocks.0.img_mlp.net.0.proj``, ``head`` matches ``head.head`` but not ``heads.x``.
dotted name (no glob character)
    matches that module and everything beneath it: ``blocks.0.self_attn`` matches ``blocks.0.self_attn`` and
    ``blocks.0.self_attn.q``, but not ``blocks.0.self_attn_x`` nor ``blocks.10.self_attn``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from .regex_guard import check_regex

REGEX_PREFIX = "re:"
MAX_PATTERNS = 1000
MAX_NAME = 512
_GLOB_CHARS = frozenset("*?[")

__all__ = ["REGEX_PREFIX", "IgnoreMatcher", "parse_ignore"]


def _split_line(line: str) -> list[str]:
    """Entries of one line: a ``re:`` entry keeps the rest of the line, commas included."""
    out: list[str] = []
    rest = line
    while rest:
        head, sep, tail = rest.partition(",")
        if head.strip().startswith(REGEX_PREFIX):
            out.append(rest.strip())
            break
        out.append(head.strip())
        rest = tail if sep else ""
    return out


def parse_ignore(spec: str | Iterable[str] | None) -> list[str]:
    """Patterns of an ignore spec (string or iterable of strings), in order, without duplicates."""
    if spec is None:
        return []
    chunks = [spec] if isinstance(spec, str) else list(spec)
    seen: dict[str, None] = {}
    for chunk in chunks:
        for line in str(chunk).splitlines():
            if line.strip().startswith("#"):
                continue
            for entry in _split_line(line):
                if entry:
                    seen.setdefault(entry, None)
    return list(seen)


def _short(pattern: str) -> str:
    return repr(pattern) if len(pattern) <= 80 else repr(pattern[:77] + "...")


class _Rule:
    """One compiled pattern."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.regex: re.Pattern[str] | None = None
        if pattern.startswith(REGEX_PREFIX):
            self.kind = "regex"
            try:
                check_regex(pattern[len(REGEX_PREFIX) :])
                self.regex = re.compile(pattern[len(REGEX_PREFIX) :])
            except re.error as e:
                raise ValueError(f"invalid regex in ignore pattern {pattern!r}: {e}") from e
            except (ValueError, RecursionError) as e:
                raise ValueError(f"ignore pattern {_short(pattern)} refused: {e}") from e
        elif _GLOB_CHARS.intersection(pattern):
            self.kind = "glob"
        elif "." not in pattern:
            self.kind = "word"
        else:
            self.kind = "prefix"

    def match(self, name: str) -> bool:
        if self.kind == "regex":
            assert self.regex is not None
            if len(name) > MAX_NAME:
                raise ValueError(f"layer name of {len(name)} characters ({name[:40]!r}...) is too long to match "
                                 f"against {_short(self.pattern)}; at most {MAX_NAME}")
            return self.regex.search(name) is not None
        if self.kind == "word":
            return self.pattern in name.split(".")
        if self.kind == "prefix":
            return name == self.pattern or name.startswith(self.pattern + ".")
        parts = name.split(".")
        return any(fnmatch.fnmatchcase(".".join(parts[:i]), self.pattern) for i in range(len(parts), 0, -1))


class IgnoreMatcher:
    """Match layer names against ignore patterns (syntax in the module docstring)."""

    def __init__(self, patterns: str | Iterable[str] | None = None) -> None:
        self.patterns: tuple[str, ...] = tuple(parse_ignore(patterns))
        if len(self.patterns) > MAX_PATTERNS:
            raise ValueError(f"{len(self.patterns)} ignore patterns; at most {MAX_PATTERNS} are allowed")
        self._rules = [_Rule(p) for p in self.patterns]

    def match(self, name: str) -> str | None:
        """The first pattern matching ``name``, or None."""
        for rule in self._rules:
            if rule.match(name):
                return rule.pattern
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.match(name) is not None

    def unused(self, names: Iterable[str]) -> list[str]:
        """Patterns that match none of ``names`` (typos, wrong naming scheme)."""
        names = list(names)
        return [r.pattern for r in self._rules if not any(r.match(n) for n in names)]

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"IgnoreMatcher({list(self.patterns)!r})"
