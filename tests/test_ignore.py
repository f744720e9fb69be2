"""Ignore-pattern parsing and matching (``quant.ignore``)."""

from __future__ import annotations

import pytest

from comfyui_dit_quant.quant.ignore import IgnoreMatcher, parse_ignore


def test_parse_none_and_empty() -> None:
    assert parse_ignore(None) == []
    assert parse_ignore("") == []
    assert parse_ignore(" ,\n , ") == []


def test_parse_commas_newlines_comments_and_duplicates() -> None:
    spec = """
    # keep the embedders
    patch_embedding, time_embedding ,
      head
    #blocks.0
    head, blocks.*.ffn.*
    """
    assert parse_ignore(spec) == ["patch_embedding", "time_embedding", "head", "blocks.*.ffn.*"]


def test_parse_iterable() -> None:
    assert parse_ignore(["a, b", "c", "", "# x", "a"]) == ["a", "b", "c"]


def test_parse_regex_keeps_commas() -> None:
    assert parse_ignore("head, re:^blocks\\.[0-9]{1,2}\\.ffn\nimg_mlp") == [
        "head",
        "re:^blocks\\.[0-9]{1,2}\\.ffn",
        "img_mlp",
    ]


def test_exact_dotted_name_and_children() -> None:
    m = IgnoreMatcher(["blocks.0.self_attn"])
    assert m.match("blocks.0.self_attn") == "blocks.0.self_attn"
    assert m.match("blocks.0.self_attn.q") == "blocks.0.self_attn"
    assert m.match("blocks.0.self_attn_x.q") is None
    assert m.match("blocks.10.self_attn.q") is None
    assert m.match("x.blocks.0.self_attn.q") is None


def test_dotted_prefix_does_not_match_longer_index() -> None:
    m = IgnoreMatcher("blocks.1")
    assert m.match("blocks.1.ffn.0")
    assert m.match("blocks.10.ffn.0") is None


def test_bare_word_matches_whole_component() -> None:
    m = IgnoreMatcher("img_mlp, head")
    assert m.match("transformer_blocks.0.img_mlp.net.0.proj") == "img_mlp"
    assert m.match("blocks.0.img_mlp.net.0.proj") == "img_mlp"
    assert m.match("head.head") == "head"
    assert m.match("heads.0") is None
    assert m.match("blocks.0.img_mlp_extra.x") is None
    assert m.match("time_embedding") is None


def test_top_level_bare_word() -> None:
    m = IgnoreMatcher(["time_embedding"])
    assert m.match("time_embedding.0") == "time_embedding"
    assert m.match("time_embedding") == "time_embedding"


def test_globs() -> None:
    m = IgnoreMatcher(["blocks.*.ffn.*", "*proj_out*"])
    assert m.match("blocks.3.ffn.0") == "blocks.*.ffn.*"
    assert m.match("blocks.3.self_attn.q") is None
    assert m.match("proj_out") == "*proj_out*"
    assert m.match("vace_blocks.0.proj_out") == "*proj_out*"


def test_glob_matches_ancestor_module() -> None:
    m = IgnoreMatcher("transformer_blocks.*.norm1")
    assert m.match("transformer_blocks.3.norm1.linear") == "transformer_blocks.*.norm1"
    assert m.match("transformer_blocks.3.norm1_context.linear") is None
    assert m.match("transformer_blocks.3.attn.to_q") is None


def test_glob_question_mark_and_class() -> None:
    m = IgnoreMatcher(["blocks.?.ffn.0", "blocks.[12]?.ffn.2"])
    assert m.match("blocks.7.ffn.0")
    assert m.match("blocks.17.ffn.0") is None
    assert m.match("blocks.17.ffn.2")
    assert m.match("blocks.37.ffn.2") is None


def test_regex_search() -> None:
    m = IgnoreMatcher(r"re:^blocks\.(0|39)\.")
    assert m.match("blocks.0.self_attn.q") == r"re:^blocks\.(0|39)\."
    assert m.match("blocks.39.ffn.2")
    assert m.match("blocks.3.ffn.2") is None
    assert IgnoreMatcher("re:proj").match("blocks.0.proj_in") == "re:proj"  # search, not fullmatch
    assert IgnoreMatcher("re:^proj_out$").match("vace_blocks.0.proj_out") is None


def test_bad_regex_names_pattern() -> None:
    with pytest.raises(ValueError, match=r"re:blocks\.\(0"):
        IgnoreMatcher(["head", "re:blocks.(0"])


def test_first_matching_pattern_is_returned() -> None:
    m = IgnoreMatcher(["re:ffn", "blocks.0"])
    assert m.match("blocks.0.ffn.0") == "re:ffn"
    assert m.match("blocks.0.self_attn.q") == "blocks.0"


def test_case_sensitive() -> None:
    assert IgnoreMatcher("Head").match("head.head") is None


def test_bool_len_contains_and_unused() -> None:
    assert not IgnoreMatcher(None)
    assert not IgnoreMatcher("# only a comment")
    m = IgnoreMatcher("head, img_emb, blocks.9")
    assert m and len(m) == 3
    assert "head.head" in m and "blocks.0.ffn.0" not in m
    assert m.unused(["head.head", "blocks.0.ffn.0"]) == ["img_emb", "blocks.9"]
    assert "img_emb" in repr(m)


def test_empty_matcher_matches_nothing() -> None:
    assert IgnoreMatcher([]).match("anything") is None
