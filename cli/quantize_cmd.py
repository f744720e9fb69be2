"""``quantize IN OUT --scheme ...``: streaming conversion of a safetensors checkpoint."""

from __future__ import annotations

import argparse
import sys

from ..quant.convert import convert_file
from ..quant.schemes import CHOICE_KEYS, CHOICES, Scheme, choice

SCHEME_CHOICES = CHOICE_KEYS
SCHEME_HELP = "; ".join(f"{c.key}: {c.label}" for c in CHOICES)


def build_scheme(name: str, block_size: str | None) -> Scheme:
    """Map a CLI scheme name (+ block size) to a scheme object."""
    c = choice(name)
    if block_size is not None and not c.uses_block:
        raise ValueError(f"--block-size applies to {', '.join(x.key for x in CHOICES if x.uses_block)}, not {name}")
    return c.build(block_size)


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
