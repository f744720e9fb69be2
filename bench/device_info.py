"""The device record: versions, the probed capabilities (vs what the version rules expected) and the backend each
request picks per scheme on Wan-14B layers. Seconds to run; ``gpu_session.sh`` runs it first.

    python bench/device_info.py [--device cuda] [--json bench/results/device-<gpu>.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SCHEMES, WAN_SHAPES, environment, save

from comfyui_dit_quant.kernels.detect import detect_caps
from comfyui_dit_quant.kernels.table import REQUESTS, choose
from comfyui_dit_quant.quant.schemes import get_scheme


def choices(device: torch.device) -> list[dict[str, Any]]:
    """One row per scheme x Wan shape: the backend (and fallback note) of every request."""
    caps = detect_caps(device.type, device.index or 0)
    rows = []
    for label, name, opts in SCHEMES + [("fp8_block-64", "fp8_block", {"block_size": "64x64"})]:
        block = get_scheme(name, **opts).block
        for k, n in WAN_SHAPES:
            row: dict[str, Any] = {"scheme": label, "KxN": f"{k}x{n}"}
            for req in REQUESTS:
                c = choose(caps, name, n, k, block, req)
                row[req] = c.backend + (f" ({c.note})" if c.note else "")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    device = torch.device(args.device)
    env = environment(device)  # runs the probes (their failures are logged above)
    rows = choices(device)
    print(json.dumps({k: v for k, v in env.items() if k not in ("auto", "argv")}, indent=1))
    width = max(len(r["scheme"]) for r in rows)
    print(f"{'scheme':{width}} {'KxN':11} " + " ".join(f"{req:22}" for req in REQUESTS))
    for r in rows:
        cells = [r[req].split(" (")[0] + ("*" if " (" in r[req] else "") for req in REQUESTS]
        print(f"{r['scheme']:{width}} {r['KxN']:11} " + " ".join(f"{c:22}" for c in cells))
    print("* = fallback (the note is in the JSON)")
    save(rows, env, args.json)
    if args.json:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
