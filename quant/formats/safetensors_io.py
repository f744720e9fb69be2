"""Safetensors at the byte level: read a header without the data, and write a file tensor by tensor.

``SafetensorsWriter`` writes the header first from a plan of (name, dtype, shape), then streams each tensor's
bytes in order, so a converter holds one tensor at a time. Output goes through ``atomic_write.atomic_output``:
a temporary file in the target folder renamed into place only when complete.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import torch

from .atomic_write import OutputWriteError, atomic_output
from .errors import CheckpointError
from .safetensors_header import (
    MAX_HEADER,
    check_entry,
    check_header_length,
    check_layout,
    check_metadata,
    parse_header_json,
)

DTYPE_TO_ST: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
ST_TO_DTYPE = {v: k for k, v in DTYPE_TO_ST.items()}

__all__ = ["DTYPE_TO_ST", "ST_TO_DTYPE", "CheckpointError", "Header", "OutputWriteError", "SafetensorsWriter",
           "TensorInfo", "atomic_output", "read_header", "read_tensor", "save_tensors", "tensor_to_bytes"]


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors dtype string, e.g. "BF16", "F8_E4M3"
    shape: tuple[int, ...]
    offsets: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.offsets[1] - self.offsets[0]

    @property
    def torch_dtype(self) -> torch.dtype | None:
        return ST_TO_DTYPE.get(self.dtype)


@dataclass(frozen=True)
class Header:
    path: str
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: v.shape for k, v in self.tensors.items()}


def read_header(path: str | os.PathLike, max_header: int = MAX_HEADER) -> Header:
    """Parse and validate a safetensors header (no tensor data is read); see ``safetensors_header``.

    ``max_header`` lowers the header size accepted (the route's per-request bound); every failure is a
    ``CheckpointError`` naming the file and key."""
    path = str(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: a folder, not a safetensors file: pass one .safetensors file (a NVIDIA "
                              "ModelOpt export folder loads with the ModelOpt Checkpoint Loader / inspect FOLDER)")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(9)
            raw = head[:8]
            if len(raw) < 8:
                raise CheckpointError(f"{path}: not a safetensors file (only {size} bytes)")
            other = other_format(head)
            if other:
                raise CheckpointError(f"{path}: not a safetensors file: {other}")
            f.seek(8)
            (n,) = struct.unpack("<Q", raw)
            if max_header < n <= MAX_HEADER:
                raise CheckpointError(f"{path}: safetensors header of {n} bytes exceeds the {max_header}-byte "
                                      "limit here")
            check_header_length(path, n, size)
            blob = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read safetensors header: {e.strerror or e}") from e
    if len(blob) != n:
        raise CheckpointError(f"{path}: truncated while reading the header")
    header = parse_header_json(path, blob)
    metadata = check_metadata(path, header.pop("__metadata__", None))
    data_len = size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    for key, entry in header.items():
        tensors[key] = TensorInfo(*check_entry(path, key, entry, data_len))
    check_layout(path, {k: v.offsets for k, v in tensors.items()}, data_len)
    return Header(path, tensors, dict(metadata), 8 + n)


def other_format(head: bytes) -> str:
    """What a file whose first 9 bytes are ``head`` is instead of safetensors, and what to use ("" if unknown).
    A safetensors header starts at byte 8 with ``{``; "GGUF" as a length prefix would exceed the header limit."""
    if head.startswith(b"GGUF"):
        return ("it is a GGUF file; load it with ComfyUI-GGUF's 'Unet Loader (GGUF)' (this pack reads "
                ".safetensors files)")
    if head[8:9] != b"{" and (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        return ("it is a PyTorch pickle checkpoint (torch.save: .pt / .pth / .ckpt / .bin); save its state dict "
                "with safetensors (safetensors.torch.save_file) and load that")
    if head.startswith(b"{"):
        return ("it is a JSON file (a sharded checkpoint's .index.json?); pass one .safetensors file, or a NVIDIA "
                "ModelOpt export folder to the ModelOpt Checkpoint Loader / inspect FOLDER")
    return ""


def tensor_to_bytes(t: torch.Tensor) -> memoryview:
    """Raw little-endian bytes of a tensor of any dtype (fp8 and bf16 included)."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


class SafetensorsWriter:
    """Write a safetensors file whose layout is known up front: ``plan`` lists (name, dtype, shape) in order;
    then ``write(name, tensor)`` must be called for each entry in that order."""

    def __init__(self, f: BinaryIO, plan: Sequence[tuple[str, torch.dtype, Sequence[int]]],
                 metadata: Mapping[str, str] | None = None) -> None:
        header: dict[str, object] = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        offset = 0
        self._expected: list[tuple[str, torch.dtype, tuple[int, ...], int]] = []
        for name, dtype, shape in plan:
            nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
            header[name] = {"dtype": DTYPE_TO_ST[dtype], "shape": list(shape),
                            "data_offsets": [offset, offset + nbytes]}
            self._expected.append((name, dtype, tuple(shape), nbytes))
            offset += nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        self._f, self._next = f, 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if self._next >= len(self._expected):
            raise ValueError(f"unexpected tensor {name!r}: all planned tensors are written")
        exp_name, dtype, shape, nbytes = self._expected[self._next]
        if name != exp_name or tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise ValueError(f"tensor {name!r} {tensor.dtype} {tuple(tensor.shape)} does not match the plan entry "
                             f"{exp_name!r} {dtype} {shape}")
        self._f.write(tensor_to_bytes(tensor))
        self._next += 1

    def close(self) -> None:
        if self._next != len(self._expected):
            missing = self._expected[self._next][0]
            raise ValueError(f"safetensors write incomplete: {missing!r} and later tensors were not written")


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                 metadata: Mapping[str, str] | None = None) -> None:
    """Atomically save an in-memory dict of tensors (sorted by name)."""
    names = sorted(tensors)
    with atomic_output(path) as f:
        w = SafetensorsWriter(f, [(n, tensors[n].dtype, tensors[n].shape) for n in names], metadata)
        for n in names:
            w.write(n, tensors[n])
        w.close()


def read_tensor(f: BinaryIO, header: Header, key: str) -> torch.Tensor:
    """Read one tensor with plain file reads (no memory map: a converter's resident memory stays one tensor)."""
    info = header.tensors[key]
    dtype = info.torch_dtype
    if dtype is None:
        raise CheckpointError(f"{header.path}: key {key!r} has dtype {info.dtype}, which is not supported")
    buf = bytearray(info.nbytes)
    f.seek(header.data_start + info.offsets[0])
    if f.readinto(buf) != info.nbytes:
        raise CheckpointError(f"{header.path}: truncated while reading key {key!r}")
    if not buf:
        return torch.empty(info.shape, dtype=dtype)
    return torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(info.shape)
