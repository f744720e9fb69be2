"""Hand-made safetensors files, valid or hostile, byte by byte (no library validation in the way)."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def raw_safetensors(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    """Write ``<u64 header length><header JSON (or bytes as given)><data>``; ``length`` overrides the prefix."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)
    return path


def entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
