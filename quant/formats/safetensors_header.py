"""Validate a safetensors header as the safetensors library does, before anything trusts it.

Checked: the header length (capped at ``MAX_HEADER`` bytes, 100 MB as in the library), UTF-8 JSON whose nesting
is at most ``MAX_DEPTH`` deep (checked before parsing, so no ``RecursionError``), a JSON object whose
``__metadata__`` is null or a str -> str map and whose other entries each hold a known ``dtype``, a ``shape`` of
non-negative ints and ``data_offsets`` of two non-negative ints; each tensor's byte count equals its element
count times the dtype size, and the tensors, sorted by offset, tile the data section exactly (no overlap, no
gap, nothing after the last one). Every failure is a ``CheckpointError`` naming the file and the key.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import CheckpointError

MAX_HEADER = 100_000_000  # the safetensors library's limit
MAX_DEPTH = 8  # a valid header nests 3 deep ({ key: { shape: [ ] } })
MAX_NDIM = 64
# Bits per element of every dtype the safetensors format defines.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64,
    "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def check_header_length(path: str, n: int, size: int) -> None:
    """The 8-byte length prefix ``n`` of a file of ``size`` bytes."""
    if n > MAX_HEADER:
        raise CheckpointError(f"{path}: not a safetensors file: its header length {n} exceeds the format's "
                              f"{MAX_HEADER // 1_000_000} MB limit")
    if n < 2:
        raise CheckpointError(f"{path}: not a safetensors file (header length {n})")
    if n > size - 8:
        raise CheckpointError(f"{path}: not a safetensors file or truncated (header length {n}, file size {size})")


def _check_depth(path: str, raw: bytes) -> None:
    """Refuse JSON nested deeper than ``MAX_DEPTH`` without recursing: strip strings, keep brackets, then peel
    innermost pairs ``MAX_DEPTH`` times; anything left is deeper (or unbalanced, which JSON refuses anyway)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        peeled = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(peeled) == len(brackets):
            break
        brackets = peeled
    if brackets:
        raise CheckpointError(f"{path}: safetensors header nests deeper than {MAX_DEPTH} levels")


def parse_header_json(path: str, raw: bytes) -> dict[str, Any]:
    """The header bytes as a JSON object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: safetensors header is not UTF-8: {e}") from e
    if not text.startswith("{"):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object")
    _check_depth(path, raw)
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, or an integer of over 4300 digits
        raise CheckpointError(f"{path}: safetensors header is not valid JSON: {e}") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object")
    return header


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_metadata(path: str, meta: object) -> dict[str, str]:
    """``__metadata__``: null or a map of strings to strings."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: __metadata__ is a {type(meta).__name__}, expected a map of strings")
    for k, v in meta.items():
        if not isinstance(v, str):
            raise CheckpointError(f"{path}: __metadata__ key {k!r} holds a {type(v).__name__}, expected a string")
    return meta


def check_entry(path: str, key: str, entry: object, data_len: int) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    """(dtype, shape, offsets) of one tensor entry, each checked against the format and the data size."""
    where = f"{path}: tensor {key!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: header entry is a {type(entry).__name__}, expected an object")
    missing = [f for f in ("dtype", "shape", "data_offsets") if f not in entry]
    if missing:
        raise CheckpointError(f"{where}: header entry has no {', '.join(missing)}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise CheckpointError(f"{where}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_uint(d) for d in shape):
        raise CheckpointError(f"{where}: shape {_short(shape)} is not a list of at most {MAX_NDIM} non-negative "
                              "integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)):
        raise CheckpointError(f"{where}: data_offsets {_short(offsets)} are not two non-negative integers")
    begin, end = offsets
    if begin > end:
        raise CheckpointError(f"{where}: data_offsets [{begin}, {end}] begin after they end")
    if end > data_len:
        raise CheckpointError(f"{path}: truncated: tensor {key!r} ends at byte {end} of the data section but the "
                              f"file holds only {data_len} data bytes")
    numel, limit = 1, 8 * data_len  # stop multiplying once past what the data section could hold
    for d in shape:
        numel *= d
        if numel > limit:
            raise CheckpointError(f"{where}: shape {_short(shape)} of {dtype} holds more elements than the "
                                  f"{data_len}-byte data section")
    bits = numel * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        raise CheckpointError(f"{where}: shape {shape} of {dtype} is {_bytes(bits)}, but data_offsets "
                              f"[{begin}, {end}] hold {end - begin} bytes")
    return dtype, tuple(shape), (begin, end)


def check_layout(path: str, offsets: dict[str, tuple[int, int]], data_len: int) -> None:
    """The tensors, sorted by offset, cover the data section exactly: no overlap, no gap, no trailing bytes."""
    pos, prev = 0, None
    for key, (begin, end) in sorted(offsets.items(), key=lambda kv: kv[1]):
        if begin < pos:
            raise CheckpointError(f"{path}: tensor {key!r} (bytes {begin}-{end}) overlaps tensor {prev!r} "
                                  f"(ends at byte {pos})")
        if begin > pos:
            raise CheckpointError(f"{path}: tensor {key!r} starts at byte {begin} of the data section, leaving a "
                                  f"gap after byte {pos}")
        pos, prev = end, key
    if pos != data_len:
        raise CheckpointError(f"{path}: {data_len - pos} bytes after the last tensor's data (the header's offsets "
                              f"end at byte {pos} of {data_len})")


def _short(v: object) -> str:
    text = json.dumps(v) if isinstance(v, (list, dict, str, int, float, bool, type(None))) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _bytes(bits: int) -> str:
    return f"{bits / 8} bytes" if bits % 8 else f"{bits // 8} bytes"
