"""Tile configs for the Triton GEMMs tuned per GPU and shape bucket, at first use, cached on disk.

``triton_gemm`` asks ``select_config`` for a config whenever its caller gives none:

1. On anything but a real CUDA device (CPU, ``TRITON_INTERPRET=1``) it returns the shipped heuristic
   (``triton_configs.gemm_config``) and touches nothing else.
2. On CUDA it looks the shape up in the tuning cache (a dict per process, loaded lazily from a JSON file once).
3. On a miss it times ``candidates`` (the heuristic first, then up to four alternatives) with the caller's ``run``
   on the caller's own tensors, keeps the fastest, stores it and rewrites the file, and logs one INFO line
   (``tuned <key>: <config> (<x> ms vs default <y> ms)``). Tuning is skipped (the heuristic is returned, cached
   configs are still used) while a CUDA graph is being captured, inside ``torch.compile`` tracing, and when
   ``COMFYUI_DIT_QUANT_TUNE=0``.

Keys (``shape_key``): device name, compute capability, Triton version, kernel mode (block-scaled FP8 with its scale
block, epilogue-scaled FP8, INT8, FP8 weight-only with its block if any), an M bucket (the next power of two up to
8192, one bucket above) and the exact N and K, e.g. ``NVIDIA_H200/sm90/triton3.5.0/block-128x128/m256/n5120/k13824``.

The cache is one JSON file per device and Triton version (``triton_gemm-<device>-sm<cc>-triton<version>.json``) in
``$COMFYUI_DIT_QUANT_CACHE_DIR``, else ``$XDG_CACHE_HOME/comfyui-dit-quant``, else ``~/.cache/comfyui-dit-quant``.
A missing, unreadable, corrupt or other-schema file is ignored (with a warning); it is rewritten atomically (temp
file + ``os.replace``, merged with what another process wrote meanwhile) after each newly tuned key; an unwritable
directory is logged once and the tuned configs then live in memory only. Delete the file to tune again.
``python -m comfyui_dit_quant.kernels.triton_tuning [FILE ...]`` prints cache files (default: those in the cache
directory), with each tuned config's time against the heuristic's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .triton_configs import GemmConfig, gemm_config
from .triton_tuning_cache import (  # noqa: F401 - re-exported: the module's public surface
    _LOCK,
    ENV_CACHE_DIR,
    SCHEMA,
    _parse_config,
    _read,
    _store,
    cache_dir,
    cache_file,
    clear_stores,
)
from .triton_tuning_keys import (  # noqa: F401 - re-exported
    LARGE_M,
    LARGE_M_BUCKET,
    MAX_CANDIDATES,
    SMEM_LIMIT,
    DeviceInfo,
    candidates,
    describe,
    device_info,
    kernel_mode,
    m_bucket,
    shape_key,
    slug,
    smem_bytes,
)

log = logging.getLogger("comfyui_dit_quant")

ENV_TUNE = "COMFYUI_DIT_QUANT_TUNE"

Run = Callable[[GemmConfig], None]
Timer = Callable[[Callable[[], None]], float]


# --- when to tune ----------------------------------------------------------------------------------------------------


def _interpreting() -> bool:
    triton = sys.modules.get("triton")
    if triton is not None:
        try:
            return bool(triton.knobs.runtime.interpret)
        except AttributeError:  # older Triton: no knobs
            pass
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on", "yes")


def _capturing() -> bool:
    """A CUDA graph is being captured on the current stream, or ``torch.compile`` is tracing."""
    compiling = getattr(torch.compiler, "is_compiling", None)
    if compiling is not None and compiling():
        return True
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


# (device info, M bucket, N, K, group_n, group_k, weight_only, int8) -> a cached or tuned config
_RESOLVED: dict[tuple, GemmConfig] = {}


def clear_memory() -> None:
    """Forget every cache loaded in this process (the next lookup reads the files again, as a new process would)."""
    _RESOLVED.clear()
    clear_stores()


def tuning_enabled() -> bool:
    """``COMFYUI_DIT_QUANT_TUNE`` is not 0 / false / off / no (default: on)."""
    return os.environ.get(ENV_TUNE, "1").strip().lower() not in ("0", "false", "off", "no")


def uses_cache(device: torch.device) -> bool:
    """Tuned configs apply (are looked up, and may be tuned): compiled Triton on a CUDA device."""
    return device.type == "cuda" and not _interpreting()


# --- timing and selection --------------------------------------------------------------------------------------------


def cuda_timer(fn: Callable[[], None], warmup: int = 2, target_ms: float = 30.0, max_reps: int = 20) -> float:
    """Median milliseconds of ``fn`` on the current CUDA stream (CUDA events). The first warm-up call compiles (its
    errors propagate); the number of timed calls adapts to the kernel's duration (3 to ``max_reps``)."""
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    reps = int(min(max_reps, max(3, target_ms / max(start.elapsed_time(end), 1e-3))))
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in events:
        s.record()
        fn()
        e.record()
    events[-1][1].synchronize()
    times = sorted(s.elapsed_time(e) for s, e in events)
    return times[len(times) // 2]


def _tune(key: str, m: int, cands: list[GemmConfig], run: Run, timer: Timer) -> tuple[GemmConfig, dict[str, Any]]:
    timed: list[tuple[float, int, GemmConfig]] = []
    first_error: Exception | None = None
    for i, cfg in enumerate(cands):
        try:
            ms = timer(lambda cfg=cfg: run(cfg))
        except Exception as e:  # a candidate that does not compile / fit is skipped
            log.debug("tuning %s: %s failed: %s: %s", key, describe(cfg), type(e).__name__, e)
            first_error = first_error or e
            continue
        timed.append((ms, i, cfg))
    if not timed:
        assert first_error is not None
        raise first_error
    ms, _, best = min(timed)  # ties: the earlier candidate (the heuristic first)
    default_ms = next((t for t, i, _ in timed if i == 0), None)
    log.info("tuned %s: %s (%.4g ms vs default %s)", key, describe(best), ms,
             "failed" if default_ms is None else f"{default_ms:.4g} ms")
    entry = {"config": asdict(best), "ms": round(ms, 6),
             "default_ms": None if default_ms is None else round(default_ms, 6), "m": m, "timed": len(timed),
             "candidates": len(cands)}
    return best, entry


def select_config(device: torch.device, m: int, n: int, k: int, group_n: int, group_k: int | None,
                  weight_only: bool, int8: bool, run: Run, timer: Timer | None = None) -> GemmConfig:
    """The tile config for one GEMM on ``device``: cached, else tuned with ``run`` (which launches the GEMM with a
    given config on the caller's tensors) where tuning is allowed, else the heuristic. See the module docstring.
    ``run`` may be called several times per candidate; the caller launches once more with the returned config."""
    if not uses_cache(device):
        return gemm_config(m, n, k, group_k, weight_only)
    index = device.index if device.index is not None else torch.cuda.current_device()
    info = device_info(index)
    heuristic = gemm_config(m, n, k, group_k, weight_only, info.capability)
    memo = (info, m_bucket(m), n, k, group_n, group_k, weight_only, int8)
    cfg = _RESOLVED.get(memo)  # every call of a layer after its first: one dict lookup
    if cfg is not None:
        return cfg
    key = shape_key(info, m, n, k, group_n, group_k, weight_only, int8)
    store = _store(info)
    cfg = store.get(key)
    if cfg is not None and (group_k is None or group_k % cfg.block_k == 0):
        _RESOLVED[memo] = cfg
        return cfg
    if not tuning_enabled() or _capturing():
        return heuristic
    with _LOCK:
        cfg = store.configs.get(key)  # another thread may have tuned it meanwhile
        if cfg is not None and (group_k is None or group_k % cfg.block_k == 0):
            return cfg
        cands = candidates(m, n, k, group_k, weight_only, int8, info.smem, info.capability)
        if len(cands) == 1:  # nothing to compare: no compile, no timing, nothing stored
            _RESOLVED[memo] = heuristic
            return heuristic
        with torch.cuda.device(index) if torch.cuda.is_available() else contextlib.nullcontext():
            cfg, entry = _tune(key, m, cands, run, timer or cuda_timer)
        store.put(key, cfg, entry)
    _RESOLVED[memo] = cfg
    return cfg


# --- printing cache files ---------------------------------------------------------------------------------------------


def _print_file(path: Path) -> None:
    try:
        entries = _read(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        print(f"{path}: unusable ({type(e).__name__}: {e})")
        return
    print(f"{path}: {len(entries)} tuned configs")
    for key, e in entries.items():
        cfg = _parse_config(e["config"])
        ms, default = e.get("ms"), e.get("default_ms")
        timing = f"{ms:.4g} ms" if isinstance(ms, (int, float)) else "? ms"
        if isinstance(ms, (int, float)) and ms > 0 and isinstance(default, (int, float)):
            timing += f" ({default / ms:.2f}x vs default {default:.4g} ms)"
        print(f"  {key}: {describe(cfg)}  {timing}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    paths = [Path(a) for a in args] or sorted(cache_dir().glob("triton_gemm-*.json"))
    if not paths:
        print(f"no tuning cache files in {cache_dir()}")
    for p in paths:
        _print_file(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
