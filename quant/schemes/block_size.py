"""Parsing and validation of a ``bn x bk`` block size."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_BLOCK = (128, 128)
_MIN, _MAX = 16, 1024


def parse_block_size(value: str | Sequence[int] | None) -> tuple[int, int]:
    """``"128x128"``, ``"64"`` (square), ``(128, 128)`` or None (default) → a validated ``(bn, bk)``.

    Each side must be a power of two between 16 and 1024: the kernels tile K by ``bk`` and the scale grid must
    divide the GEMM tiles evenly.
    """
    if value is None:
        return DEFAULT_BLOCK
    if isinstance(value, str):
        parts = value.lower().replace("*", "x").replace(",", "x").split("x")
        try:
            dims = [int(p.strip()) for p in parts]
        except ValueError:
            raise ValueError(f"block size {value!r}: expected 'BNxBK' such as '128x128'") from None
    else:
        try:
            dims = [int(v) for v in value]
        except (TypeError, ValueError):
            raise ValueError(f"block size {value!r}: expected two integers such as [128, 128]") from None
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2:
        raise ValueError(f"block size {value!r}: expected two numbers 'BNxBK' such as '128x128'")
    for d in dims:
        if d < _MIN or d > _MAX or d & (d - 1):
            raise ValueError(
                f"block size {value!r}: {d} does not divide the kernel tiles; each side must be a power of two "
                f"between {_MIN} and {_MAX} (e.g. 64x64, 128x128)")
    return dims[0], dims[1]


def format_block_size(block: tuple[int, int]) -> str:
    return f"{block[0]}x{block[1]}"
