"""Shared benchmark helpers: environment record, timing (CUDA events; perf_counter on CPU smoke runs), output."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent


def environment(device: torch.device) -> dict[str, Any]:
    """GPU name, torch / CUDA / Triton versions and the git commit, for the results file."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "capability": list(torch.cuda.get_device_capability(device)) if cuda else None,
        "torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton_version,
        "commit": commit, "dirty": dirty, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def bench(fn: Callable[[int], Any], device: torch.device, warmup: int = 5, iters: int = 20) -> float:
    """Median milliseconds of ``fn(i)`` (``i`` rotates inputs so caches do not flatter the result)."""
    for i in range(warmup):
        fn(i)
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for i in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(i)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for i in range(iters):
            t0 = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).abs().mean() / ref.float().abs().mean()).item()


def write(rows: list[dict[str, Any]], env: dict[str, Any], path: str | None, columns: list[str]) -> None:
    """Print a table and (optionally) write ``{"environment": ..., "results": rows}`` as JSON."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"environment": env, "results": rows}, indent=1))
        print(f"wrote {path}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
