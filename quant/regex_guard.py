"""Refuse ``re:`` patterns whose matching time can explode, before they run (Python's ``re`` backtracks and
holds the GIL while it does, so no thread or time budget can stop a bad pattern once started).

A pattern is parsed with the ``re`` module's own parser and scored by a worst-case backtracking model:

* a variable-length repeat (``*``, ``+``, ``?``, ``{m,n}``) that contains another variable-length repeat, or an
  alternation whose branches can start with the same character (or match nothing), is refused: such nesting is
  exponential (``(a+)+``, ``(a|a)*``, ``([a-z]|[a-z0-9])*``);
* a pattern's *degree* is the number of variable-length repeats in sequence (a fixed ``{k}`` repeat counts its body
  k times; a repeat ending the pattern does not count, it cannot be backtracked into; a short bounded one such as
  ``?`` or ``{1,3}`` multiplies the paths instead, by its number of choices). Matching costs about
  ``len(name) ** (degree + 1)`` steps, so at most ``MAX_DEGREE`` is allowed (``.*norm.*``: 1, ``.*a.*b``: 2);
* ambiguous alternations multiply the paths tried; at most ``MAX_PATHS`` are allowed.

``re:blocks\\.(0|39)\\.``, ``re:.*norm.*``, ``re:^head\\.``, ``re:blocks\\.\\d+\\.(attn|ffn)`` all pass.
"""

from __future__ import annotations

try:  # Python >= 3.11
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse  # type: ignore[no-redef]

import re

MAX_LENGTH = 500
MAX_DEGREE = 2
MAX_PATHS = 64
MAX_BOUNDED_CHOICES = 8  # a repeat of at most this many extra copies counts as choices (paths), not degree
_C = sre_parse  # the opcode constants live in the parser's namespace
_REPEATS = {op for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if (op := getattr(_C, n, None))}
_PROBES = [chr(i) for i in range(128)] + ["\u00e9", "\u0660", "\u4e00", "\u2028"]


class UnsafeRegexError(ValueError):
    """A pattern refused because its matching time could explode; the message says why."""


def check_regex(regex: str) -> None:
    """Raise ``UnsafeRegexError`` (a ``ValueError``) for a pattern too long or of explosive matching cost, and
    ``re.error`` for an invalid one."""
    if len(regex) > MAX_LENGTH:
        raise UnsafeRegexError(f"regex of {len(regex)} characters; at most {MAX_LENGTH} are allowed")
    tree = sre_parse.parse(regex)
    ignore_case = bool(tree.state.flags & re.IGNORECASE)
    degree, paths = _cost(list(tree), ignore_case, top=True)
    if degree > MAX_DEGREE:
        raise UnsafeRegexError(f"{degree} variable-length repeats (*, +, {{m,}}) in sequence; at most "
                               f"{MAX_DEGREE} are allowed, since the matching time grows as the layer name's "
                               f"length to the power {degree + 1}")
    if paths > MAX_PATHS:
        raise UnsafeRegexError(f"alternatives that overlap (branches starting with the same character) give "
                               f"{paths} ways to match; at most {MAX_PATHS} are allowed")


def _cost(items: list, ic: bool, top: bool = False) -> tuple[int, int]:
    """(degree, paths) of a sequence of parsed items."""
    degree, paths = 0, 1
    last = len(items) - 1
    for i, (op, av) in enumerate(items):
        d, p = _item_cost(op, av, ic)
        if top and i == last and op in _REPEATS:
            d = 0  # a trailing repeat is never re-entered on failure
        degree, paths = degree + d, min(paths * p, 10**9)
    return degree, paths


def _item_cost(op, av, ic: bool) -> tuple[int, int]:
    if op in _REPEATS:
        lo, hi, body = av
        d, p = _cost(list(body), ic)
        if lo == hi:
            return d * lo, min(p ** min(lo, 64), 10**9)
        if d or p > 1:
            raise UnsafeRegexError("a repeated group holds another variable-length repeat or overlapping "
                                   "alternatives (as in (a+)+ or (a|a)*), whose matching time is exponential")
        if hi - lo <= MAX_BOUNDED_CHOICES:  # ``?``, ``{2,4}``: a few choices, not one per character of the name
            return 0, hi - lo + 1
        return 1, 1
    if op == _C.SUBPATTERN:
        return _cost(list(av[-1]), ic)
    if op == getattr(_C, "ATOMIC_GROUP", None):
        return _cost(list(av), ic)
    if op in (_C.ASSERT, _C.ASSERT_NOT):
        return _cost(list(av[1]), ic)
    if op == _C.BRANCH:
        branches = [list(b) for b in av[1]]
        costs = [_cost(b, ic) for b in branches]
        degree = max(c[0] for c in costs)
        if _overlapping(branches, ic):
            return degree, min(sum(c[1] for c in costs), 10**9)
        return degree, max(c[1] for c in costs)
    if op == _C.GROUPREF_EXISTS:
        parts = [list(x) for x in av[1:] if x is not None]
        costs = [_cost(x, ic) for x in parts]
        return max(c[0] for c in costs), sum(c[1] for c in costs)
    return 0, 1


def _overlapping(branches: list[list], ic: bool) -> bool:
    """Whether two branches can start with the same character (or one can match the empty string)."""
    seen: set[str] = set()
    for b in branches:
        if sre_parse.SubPattern(sre_parse.State(), b).getwidth()[0] == 0:
            return True
        first = _first_chars(b, ic)
        if first & seen:
            return True
        seen |= first
    return False


def _first_chars(items: list, ic: bool) -> set[str]:
    """Probe characters the sequence can start with (over-approximated: unknown constructs accept all)."""
    for op, av in items:
        if op == _C.AT:
            continue  # anchors consume nothing
        if op in (_C.LITERAL, _C.NOT_LITERAL, _C.ANY, _C.IN):
            return {c for c in _PROBES if _accepts(op, av, c, ic)}
        break
    return set(_PROBES)


def _accepts(op, av, c: str, ic: bool) -> bool:
    chars = {c, c.lower(), c.upper()} if ic else {c}
    if op == _C.LITERAL:
        return chr(av) in chars
    if op == _C.NOT_LITERAL:
        return chr(av) not in chars
    if op == _C.ANY:
        return True
    negate = any(o == _C.NEGATE for o, _ in av)  # IN
    hit = any(_in_member(o, a, ch) for o, a in av if o != _C.NEGATE for ch in chars)
    return hit != negate


def _in_member(op, av, c: str) -> bool:
    if op == _C.LITERAL:
        return chr(av) == c
    if op == _C.RANGE:
        return av[0] <= ord(c) <= av[1]
    if op == _C.CATEGORY:
        cls = {_C.CATEGORY_DIGIT: r"\d", _C.CATEGORY_NOT_DIGIT: r"\D", _C.CATEGORY_SPACE: r"\s",
               _C.CATEGORY_NOT_SPACE: r"\S", _C.CATEGORY_WORD: r"\w", _C.CATEGORY_NOT_WORD: r"\W"}.get(av)
        return cls is None or re.fullmatch(cls, c) is not None
    return True
