"""Shared benchmark helpers: environment record, timing (CUDA events; perf_counter on CPU smoke runs), output."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from comfyui_dit_quant.quant.schemes import CHOICES

ROOT = Path(__file__).resolve().parent.parent
# (label, scheme, options): the schemes the benchmarks time, in this order.
SCHEMES: list[tuple[str, str, dict[str, Any]]] = [
    (c.key, c.scheme, {**dict(c.options), **({"block_size": "128x128"} if c.uses_block else {})}) for c in CHOICES
]
WAN_SHAPES = [(5120, 5120), (5120, 13824), (13824, 5120)]  # (K, N) of Wan 14B: attention, FFN up, FFN down


def source_hash() -> str:
    """sha256 (16 hex digits) of the pack's Python sources (kernels/, quant/, bench/): identifies the code that ran
    where there is no git checkout (the device machine gets a copy of the working tree without .git)."""
    h = hashlib.sha256()
    for sub in ("kernels", "quant", "bench"):
        for p in sorted((ROOT / sub).rglob("*.py")):
            h.update(str(p.relative_to(ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _git() -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, dirty


def caps_record(device: torch.device) -> dict[str, Any]:
    """Probed capabilities of ``device`` and what the version rules expected (a difference = a failed probe)."""
    from comfyui_dit_quant.kernels.detect import detect_caps, version_caps

    caps = detect_caps(device.type, device.index or 0)
    record: dict[str, Any] = {"caps": asdict(caps), "caps_describe": caps.describe()}
    if device.type == "cuda":
        expected = version_caps("cuda", device.index or 0)
        record["expected_caps"] = asdict(expected)
        record["probes_disabled"] = [k for k, v in asdict(expected).items() if v != record["caps"][k]]
    return record


def auto_choices(device: torch.device, shapes: list[tuple[int, int]] = WAN_SHAPES) -> dict[str, dict[str, str]]:
    """``{scheme label: {"KxN": backend}}``: what ``auto`` runs on this device (the cached dispatch choice)."""
    from comfyui_dit_quant.kernels.dispatch import backend_for
    from comfyui_dit_quant.quant.schemes import get_scheme

    out: dict[str, dict[str, str]] = {}
    for label, name, opts in SCHEMES:
        block = get_scheme(name, **opts).block or (0, 0)
        out[label] = {f"{k}x{n}": backend_for(device, name, n, k, "auto", *block) for k, n in shapes}
    return out


def environment(device: torch.device) -> dict[str, Any]:
    """GPU name, torch / CUDA / Triton versions, git commit or source hash, and the device's probed capabilities
    with the backend ``auto`` picks per scheme, for the results file."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    commit, dirty = _git()
    cuda = device.type == "cuda"
    env = {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "capability": list(torch.cuda.get_device_capability(device)) if cuda else None,
        "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None, "triton": triton_version,
        "driver": _driver() if cuda else None, "commit": commit, "dirty": dirty, "source_hash": source_hash(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": platform.node(), "argv": sys.argv,
    }
    try:
        env.update(caps_record(device))
        env["auto"] = auto_choices(device)
    except Exception as e:  # the record must not stop a benchmark
        env["caps_error"] = f"{type(e).__name__}: {e}"[:300]
    return env


def _driver() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True, timeout=20).stdout.split("\n")[0].strip()
    except (OSError, subprocess.SubprocessError):
        return None


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


def save(rows: list[dict[str, Any]], env: dict[str, Any], path: str | None, **extra: Any) -> None:
    """Write ``{"environment": ..., "results": rows, **extra}`` as JSON, atomically (called after every step, so
    a run stopped by a time limit still leaves its results so far)."""
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    Path(tmp).write_text(json.dumps({"environment": env, "results": rows, **extra}, indent=1))
    os.replace(tmp, path)


def write(rows: list[dict[str, Any]], env: dict[str, Any], path: str | None, columns: list[str],
          **extra: Any) -> None:
    """Print a table and (optionally) write the JSON results (``save``)."""
    print_table(rows, columns)
    save(rows, env, path, **extra)
    if path:
        print(f"wrote {path}")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) if rows else len(c) for c in columns]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)
