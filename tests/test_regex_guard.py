"""re: ignore patterns whose matching time could explode are refused before they run; real ones still work."""

from __future__ import annotations

import re
import time

import pytest

from comfyui_dit_quant.quant.ignore import MAX_NAME, MAX_PATTERNS, IgnoreMatcher
from comfyui_dit_quant.quant.regex_guard import MAX_LENGTH, UnsafeRegexError, check_regex

CATASTROPHIC = "^([a-z_.0-9]|[a-z_.0-9]|[a-z_.0-9])*$Z"  # issue #16: 3.5 s at 16 characters, x3 per character
LEGIT = [r"^(?:blocks\.)?\d+\.ffn\.\d+$", r"^(model\.)?blocks\.\d{1,2}\.cross_attn",
         r"blocks\.(0|39)\.", r".*norm.*", r"^head\.", r"blocks\.\d+\.(attn|ffn)", r"(q|k|v)$", r"[^.]+\.weight$",
         r"(?:blocks|transformer_blocks)\.\d+\..*", r"(?i)NORM", r"(a|b)*c", r"blocks\.[0-9]{1,2}\.ffn", r".*a.*b"]


@pytest.mark.parametrize("regex", LEGIT)
def test_legitimate_patterns_pass(regex: str) -> None:
    check_regex(regex)


@pytest.mark.parametrize(("regex", "why"), [
    (CATASTROPHIC, "exponential"),
    (r"(a+)+$", "exponential"),
    (r"(a|ab)*c", "exponential"),
    (r"(\w|\d\d)+x", "exponential"),
    (r"(.*)*x", "exponential"),
    (r"(|a)*x", "exponential"),
    (r".*.*.*Z", "3 variable-length repeats"),
    (r"(.*a){5}Z", "5 variable-length repeats"),
    (r"(a|a){20}", "1048576 ways"),
    ("a" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH}"),
])
def test_explosive_patterns_are_refused(regex: str, why: str) -> None:
    with pytest.raises(UnsafeRegexError, match=re.escape(why)):
        check_regex(regex)


def test_refused_patterns_cost_nothing_and_name_the_pattern() -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match=re.escape(f"ignore pattern 're:{CATASTROPHIC}' refused")):
        IgnoreMatcher(f"head, re:{CATASTROPHIC}")
    assert time.perf_counter() - start < 0.1
    with pytest.raises(ValueError, match="invalid regex in ignore pattern 're:blocks\\('"):
        IgnoreMatcher("re:blocks(")


def test_matching_still_works_and_limits_hold() -> None:
    m = IgnoreMatcher("re:blocks\\.(0|39)\\.\nre:.*norm.*")
    assert m.match("blocks.39.ffn.0") == r"re:blocks\.(0|39)\." and m.match("blocks.3.ffn.0") is None
    assert m.match("blocks.3.norm_q") == "re:.*norm.*"
    with pytest.raises(ValueError, match=f"at most {MAX_PATTERNS}"):
        IgnoreMatcher([f"layer{i}" for i in range(MAX_PATTERNS + 1)])
    with pytest.raises(ValueError, match="too long to match"):
        m.match("a" * (MAX_NAME + 1))
    assert IgnoreMatcher("head").match("a" * (MAX_NAME + 1)) is None  # only regexes are bounded


def test_worst_allowed_pattern_is_fast_on_long_names() -> None:
    """Degree 2 is the most allowed: 1000 names of 60 characters (real DiT names are shorter) take ~0.2 s; the
    refused degree 3 takes ~60x longer (and each more character multiplies it)."""
    m = IgnoreMatcher("re:.*.*Z")
    names = [f"blocks.{i}." + "x" * 50 for i in range(1000)]
    start = time.perf_counter()
    assert not any(m.match(n) for n in names)
    assert time.perf_counter() - start < 2.0
