"""Each hostile safetensors file of issue #16 is refused with the pack's error, naming the file and the key."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_header import MAX_DEPTH, MAX_HEADER
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError, read_header
from comfyui_dit_quant.quant.layer_listing import LayerListingError, list_layers

from hostile_files import entry, raw_safetensors

F32x4 = entry("F32", [4], 0, 16)
DEEP = b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}"

# (case, header, data, expected message fragment, key the message must name or None)
CASES = [
    ("negative offsets", {"w": entry("F32", [4], -16, 0)}, b"\0" * 16, "are not two non-negative integers", "w"),
    ("offsets reversed", {"w": entry("F32", [0], 16, 0)}, b"\0" * 16, "begin after they end", "w"),
    ("overlapping", {"a": F32x4, "b": F32x4}, b"\0" * 16, "overlaps tensor", "b"),
    ("gap", {"a": F32x4, "b": entry("F32", [4], 32, 48)}, b"\0" * 48, "leaving a gap after byte 16", "b"),
    ("trailing bytes", {"a": F32x4}, b"\0" * 20, "4 bytes after the last tensor", None),
    ("truncated", {"a": entry("F32", [8], 0, 32)}, b"\0" * 16, "truncated", "a"),
    ("huge shape", {"a": entry("F32", [2**31, 2**31], 0, 16)}, b"\0" * 16, "holds more elements than", "a"),
    ("shape vs bytes", {"a": entry("F32", [3], 0, 16)}, b"\0" * 16, "is 12 bytes, but data_offsets [0, 16] hold 16",
     "a"),
    ("negative dim", {"a": entry("F32", [-4], 0, 16)}, b"\0" * 16, "is not a list of at most", "a"),
    ("bool dim", {"a": entry("F32", [True, 4], 0, 16)}, b"\0" * 16, "is not a list of at most", "a"),
    ("string offsets", {"a": {"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]}}, b"\0" * 16,
     "are not two non-negative integers", "a"),
    ("three offsets", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]}}, b"\0" * 16,
     "are not two non-negative integers", "a"),
    ("offsets a dict", {"a": {"dtype": "F32", "shape": [4], "data_offsets": {"0": 16}}}, b"\0" * 16,
     "are not two non-negative integers", "a"),
    ("unknown dtype", {"a": entry("F128", [4], 0, 16)}, b"\0" * 16, "unknown dtype 'F128'", "a"),
    ("dtype not a string", {"a": {"dtype": 7, "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16,
     "unknown dtype 7", "a"),
    ("no shape", {"a": {"dtype": "F32", "data_offsets": [0, 16]}}, b"\0" * 16, "has no shape", "a"),
    ("entry a list", {"a": [1, 2]}, b"", "header entry is a list", "a"),
    ("entry a string", {"a": "F32"}, b"", "header entry is a str", "a"),
    ("header a list", [1, 2], b"", "is not a JSON object", None),
    ("header null", None, b"", "is not a JSON object", None),
    ("header a string", "x", b"", "is not a JSON object", None),
    ("deep nesting", DEEP, b"", f"nests deeper than {MAX_DEPTH} levels", None),
    ("metadata value int", {"__metadata__": {"k": 1}}, b"", "__metadata__ key 'k' holds a int", None),
    ("metadata a list", {"__metadata__": [["a", "b"]]}, b"", "__metadata__ is a list", None),
    ("metadata a string", {"__metadata__": "abc"}, b"", "__metadata__ is a str", None),
    ("not JSON", b"{not json}", b"", "is not valid JSON", None),
    ("not UTF-8", b'{"\xff": 1}', b"", "is not UTF-8", None),
    ("5000-digit integer", b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 0]}}',
     b"", "is not valid JSON", None),
]


@pytest.mark.parametrize(("case", "header", "data", "message", "key"), CASES, ids=[c[0] for c in CASES])
def test_hostile_header_is_refused_by_name(tmp_path: Path, case: str, header: object, data: bytes, message: str,
                                           key: str | None) -> None:
    path = raw_safetensors(tmp_path / "h.safetensors", header, data)
    with pytest.raises(CheckpointError) as err:
        read_header(path)
    text = str(err.value)
    assert str(path) in text and message in text, text
    if key is not None:
        assert repr(key) in text, text
    with pytest.raises(CheckpointError):  # the whole-file reader goes through the same check
        read_checkpoint(path)
    with pytest.raises(LayerListingError) as listed:  # the route: a 422 naming the file, not a 500
        list_layers(str(path))
    assert listed.value.status == 422 and "h.safetensors" in str(listed.value)


def test_header_over_the_cap_says_so(tmp_path: Path) -> None:
    path = raw_safetensors(tmp_path / "big.safetensors", {}, length=MAX_HEADER + 1)
    with pytest.raises(CheckpointError, match="exceeds the format's 100 MB limit"):
        read_header(path)
    path = raw_safetensors(tmp_path / "short.safetensors", {"a": F32x4}, length=5000)
    with pytest.raises(CheckpointError, match=r"truncated \(header length 5000"):
        read_header(path)
    (tmp_path / "tiny.safetensors").write_bytes(struct.pack("<Q", 0))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_header(tmp_path / "tiny.safetensors")


def test_route_caps_the_header_it_reads(tmp_path: Path) -> None:
    pad = {"__metadata__": {"pad": "x" * 5000}, "a": F32x4}
    path = raw_safetensors(tmp_path / "padded.safetensors", pad, b"\0" * 16)
    assert read_header(path).tensors["a"].shape == (4,)
    with pytest.raises(LayerListingError, match="exceeds the 4096-byte limit here") as err:
        list_layers(str(path), max_header=4096)
    assert err.value.status == 422


def test_valid_edge_cases_are_accepted(tmp_path: Path) -> None:
    header = {"__metadata__": None, "z": entry("F32", [0, 4], 0, 0), "a": F32x4, "b": entry("F4", [4], 16, 18),
              "c": entry("U16", [1], 18, 20)}
    h = read_header(raw_safetensors(tmp_path / "ok.safetensors", header, b"\0" * 20))
    assert h.metadata == {} and h.tensors["z"].shape == (0, 4) and h.tensors["b"].nbytes == 2
    assert [k for k, _ in sorted(h.tensors.items(), key=lambda kv: kv[1].offsets)] == ["z", "a", "b", "c"]


def test_block_size_of_letters_names_file_and_layer(tmp_path: Path) -> None:
    body = {"format_version": 1, "layers": {"a": {"scheme": "fp8_block", "block_size": ["x", 1]}}}
    path = raw_safetensors(tmp_path / "m.safetensors", {"__metadata__": {"comfyui_dit_quant": json.dumps(body)}})
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert str(path) in str(err.value) and "layer 'a'" in str(err.value)
    assert "expected two integers such as [128, 128]" in str(err.value) and "invalid literal" not in str(err.value)
