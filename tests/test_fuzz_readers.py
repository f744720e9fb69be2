"""Fuzz (hypothesis, bounded in time) of the header parser and every file reader: whatever the bytes, the only
exceptions are the pack's own (``CheckpointError`` and its siblings), never IndexError / TypeError / RecursionError
/ a torch RuntimeError, and a file the pack accepts is one the safetensors library accepts too."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from comfyui_dit_quant.cli.inspect_cmd import inspect_file
from comfyui_dit_quant.quant.convert import convert_file
from comfyui_dit_quant.quant.families import UnknownFamilyError
from comfyui_dit_quant.quant.families.keymap import KeyMapError
from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.formats.modelopt import read_modelopt
from comfyui_dit_quant.quant.formats.safetensors_header import DTYPE_BITS
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError, read_header
from comfyui_dit_quant.quant.layer_listing import LayerListingError, list_layers
from comfyui_dit_quant.quant.schemes import FP8Tensor

PACK_ERRORS = (CheckpointError, UnknownFamilyError, LayerListingError, KeyMapError)
# CI runs a fixed, seeded 120 examples per test (~10 s); DIT_QUANT_FUZZ_EXAMPLES=5000 explores further (random seed).
EXAMPLES = int(os.environ.get("DIT_QUANT_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 120, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NAMES = ["blocks.0.ffn.0.weight", "blocks.0.ffn.0.weight_scale", "blocks.0.ffn.0.input_scale",
         "blocks.0.ffn.0.scale_weight", "scaled_fp8", "head.head.weight", "head.head.bias", "x"]
DTYPES = ["F32", "BF16", "F16", "F8_E4M3", "U8", "I8", "I64", "F4", "F6_E2M3", "U16", "BOOL"]
MARKERS = [b'{"format": "float8_e4m3fn"}', b'{"format": "int8_tensorwise"}', b'{"format": "mxfp8"}']
# Format headers and comfy_quant markers are kept well-formed JSON objects here: malformed ones are issue #16 item 3
# (the format readers and inspect), fuzzed by test_fuzz_format_metadata_shapes below.
METADATA = [json.dumps({"format_version": 1, "layers": {"blocks.0.ffn.0": {"scheme": "fp8_tensor"}}}),
            json.dumps({"format_version": 1, "layers": {"blocks.0.ffn.0": {"scheme": "fp8_block",
                                                                            "block_size": [2, 2]}}}),
            json.dumps({"format_version": 2}), json.dumps({"layers": {"blocks.0.ffn.0": {"format": "float8_e4m3fn"}}}),
            "{bad", ""]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=4), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                                              max_size=3),
                    max_leaves=6)


@st.composite
def safetensors_bytes(draw: st.DrawFn) -> bytes:
    """A valid file (a few small tensors, marker tensors with JSON configs), then one mutation of it."""
    header: dict[str, object] = {}
    data = b""
    for name in draw(st.lists(st.sampled_from([*NAMES, "blocks.0.ffn.0.comfy_quant"]), max_size=5, unique=True)):
        if name.endswith("comfy_quant"):
            dtype, blob = "U8", draw(st.sampled_from(MARKERS))
            shape = [len(blob)]
        else:
            dtype = draw(st.sampled_from(DTYPES))
            shape = draw(st.lists(st.integers(0, 8), max_size=3))
            numel = 1
            for d in shape:
                numel *= d
            bits = numel * DTYPE_BITS[dtype]
            if bits % 8:
                shape, bits = [8], 8 * DTYPE_BITS[dtype]
            blob = draw(st.binary(min_size=bits // 8, max_size=bits // 8))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    meta = draw(st.none() | st.dictionaries(st.sampled_from(["comfyui_dit_quant", "_quantization_metadata",
                                                             "format", "note"]), st.sampled_from(METADATA),
                                            max_size=2))
    if meta is not None:
        header["__metadata__"] = meta
    length = None
    kind = draw(st.sampled_from(["none", "offsets", "shape", "dtype", "entry", "metadata", "truncate", "append",
                                 "header", "length", "raw"]))
    key = draw(st.sampled_from(sorted(header))) if header else None
    if kind in ("offsets", "shape", "dtype", "entry") and key is not None and key != "__metadata__":
        field = {"offsets": "data_offsets", "shape": "shape", "dtype": "dtype"}.get(kind)
        if field is None:
            header[key] = draw(JSON)
        else:
            header[key][field] = draw(JSON | st.lists(st.integers(-2**65, 2**65), max_size=3))  # type: ignore[index]
    elif kind == "metadata":
        header["__metadata__"] = draw(JSON)
    elif kind == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "append":
        data += draw(st.binary(min_size=1, max_size=16))
    elif kind == "header":
        return _pack(draw(JSON | st.binary(max_size=64)), data, None)
    elif kind == "length":
        length = draw(st.integers(0, 2**64 - 1))
    elif kind == "raw":
        return draw(st.binary(max_size=96))
    return _pack(header, data, length)


def _pack(header: object, data: bytes, length: int | None) -> bytes:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(blob) if length is None else length) + blob + data


def _call(reader, *args) -> object:
    try:
        return reader(*args)
    except PACK_ERRORS:
        return None


def _library_accepts(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="np") as f:
            f.keys()
        return True
    except Exception:
        return False


@FUZZ
@given(safetensors_bytes())
def test_fuzz_header_parser(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.safetensors"
        path.write_bytes(content)
        header = _call(read_header, path)
        if header is not None:  # whatever the pack accepts, the library accepts
            assert _library_accepts(path)


@FUZZ
@given(safetensors_bytes())
def test_fuzz_every_reader(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.safetensors"
        path.write_bytes(content)
        _call(read_checkpoint, path)
        _call(inspect_file, str(path))
        _call(list_layers, str(path), "re:.*ffn.*")
        _call(read_modelopt, path)
        _call(lambda: convert_file(path, Path(d) / "out" / "q.safetensors", FP8Tensor(), family="none"))
        assert sorted(p.name for p in (Path(d) / "out").glob(".*")) == []  # no partial left by a refusal


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(["comfyui_dit_quant", "_quantization_metadata", "marker"]), JSON, st.binary(max_size=8))
def test_fuzz_format_metadata_shapes(entry: str, value: object, junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.safetensors"
        if entry == "marker":  # a comfy_quant marker tensor holding any JSON value, or bytes that are not UTF-8
            blob = json.dumps(value).encode() if junk[:1] != b"\xff" else junk
            header = {"a.comfy_quant": {"dtype": "U8", "shape": [len(blob)], "data_offsets": [0, len(blob)]}}
            path.write_bytes(_pack(header, blob, None))
        else:
            path.write_bytes(_pack({"__metadata__": {entry: json.dumps(value)}}, b"", None))
        _call(read_checkpoint, path)
        _call(inspect_file, str(path))
