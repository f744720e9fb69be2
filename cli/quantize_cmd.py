"""``quantize IN OUT --scheme ...``: streaming conversion of a safetensors checkpoint."""

from __future__ import annotations

import argparse
import sys

from ..quant.convert import convert_file
from ..quant.schemes import SCHEME_NAMES, get_scheme

SCHEME_CHOICES = (*SCHEME_NAMES, "fp8_weight_only_block")


def build_scheme(name: str, block_size: str | None):
    """Map a CLI scheme name (+ block size) to a scheme object."""
    if name == "fp8_weight_only_block":
        return get_scheme("fp8_weight_only", granularity="block", block_size=block_size)
    if name == "fp8_block":
        return get_scheme("fp8_block", block_size=block_size)
    if block_size is not None:
        raise ValueError(f"--block-size applies to fp8_block and fp8_weight_only_block, not {name}")
    return get_scheme(name)


def quantize_command(args: argparse.Namespace) -> int:
    scheme = build_scheme(args.scheme, args.block_size)

    def progress(done: int, total: int, layer: str) -> None:
        if sys.stderr.isatty() or done == total or done % 50 == 0:
            print(f"\r[{done}/{total}] {layer[:70]:<70}", end="" if done < total else "\n", file=sys.stderr)

    result = convert_file(args.input, args.output, scheme, family=args.family, preset=args.preset,
                          ignore=args.ignore, fmt=args.format, min_features=args.min_features,
                          progress=progress)
    if result.family is not None:
        print(f"family: {result.family.describe()}")
    print(f"wrote {args.output} ({result.format} format)")
    print(result.report.summary())
    return 0
