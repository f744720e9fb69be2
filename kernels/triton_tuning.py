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
import functools
import json
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .triton_configs import GemmConfig, gemm_config

log = logging.getLogger("comfyui_dit_quant")

SCHEMA = 1
ENV_CACHE_DIR = "COMFYUI_DIT_QUANT_CACHE_DIR"
ENV_TUNE = "COMFYUI_DIT_QUANT_TUNE"
MAX_CANDIDATES = 5
SMEM_LIMIT = 200 * 1024  # bytes of shared memory a candidate's pipeline may need (H100/H200 have 227 KB per block)
LARGE_M = 8192  # M buckets are powers of two up to this; every larger M shares one bucket
LARGE_M_BUCKET = 2 * LARGE_M

Run = Callable[[GemmConfig], None]
Timer = Callable[[Callable[[], None]], float]


# --- keys ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """What a cache file and its keys are specific to. ``smem``: shared memory a block may use (bytes)."""

    name: str  # slug of the device name, e.g. "NVIDIA_H200"
    capability: tuple[int, int]
    triton: str
    smem: int = SMEM_LIMIT


def slug(text: str) -> str:
    """``"NVIDIA H200"`` → ``"NVIDIA_H200"``: letters, digits, ``.`` and ``-`` kept, other runs → ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "unknown"


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "none"
    return slug(triton.__version__)


@functools.cache
def device_info(index: int) -> DeviceInfo:
    """``DeviceInfo`` of CUDA device ``index`` (cached per process)."""
    props = torch.cuda.get_device_properties(index)
    optin = getattr(props, "shared_memory_per_block_optin", 0) or SMEM_LIMIT
    return DeviceInfo(slug(props.name), (props.major, props.minor), _triton_version(), min(SMEM_LIMIT, optin))


def m_bucket(m: int) -> int:
    """The M bucket: the next power of two (1, 2, 4, ..., 8192); every M above 8192 → ``LARGE_M_BUCKET``."""
    if m > LARGE_M:
        return LARGE_M_BUCKET
    return 1 << max(0, m - 1).bit_length()


def kernel_mode(group_n: int, group_k: int | None, weight_only: bool, int8: bool) -> str:
    """``block-128x128``, ``scaled``, ``int8``, ``weight_only`` or ``weight_only-128x128``."""
    mode = "weight_only" if weight_only else "int8" if int8 else "block" if group_k is not None else "scaled"
    return mode if group_k is None else f"{mode}-{group_n}x{group_k}"


def shape_key(info: DeviceInfo, m: int, n: int, k: int, group_n: int, group_k: int | None, weight_only: bool,
              int8: bool) -> str:
    b = m_bucket(m)
    bucket = f"m{b}" if b <= LARGE_M else f"m>{LARGE_M}"
    cc = f"sm{info.capability[0]}{info.capability[1]}"
    return f"{info.name}/{cc}/triton{info.triton}/{kernel_mode(group_n, group_k, weight_only, int8)}/{bucket}/n{n}/k{k}"


# --- candidates ----------------------------------------------------------------------------------------------------


def smem_bytes(cfg: GemmConfig, weight_only: bool) -> int:
    """Shared memory the software pipeline holds: ``stages x (A tile + B tile)`` (A bf16/fp16 when weight-only,
    else 1-byte codes; B always 1-byte codes)."""
    return cfg.num_stages * (cfg.block_m * cfg.block_k * (2 if weight_only else 1) + cfg.block_n * cfg.block_k)


def _next_pow2(x: int) -> int:
    return 1 << max(0, x - 1).bit_length()


def candidates(m: int, n: int, k: int, group_k: int | None = None, weight_only: bool = False, int8: bool = False,
               smem_limit: int = SMEM_LIMIT) -> list[GemmConfig]:
    """Configs worth timing for one GEMM: the heuristic first (always), then up to ``MAX_CANDIDATES - 1``
    alternatives typical of Hopper / Ampere FP8 / INT8 GEMMs (tile shape, BLOCK_K, warps, pipeline depth).

    Alternatives keep BLOCK_K a divisor of ``group_k`` (the scale group the block-scaled kernel promotes on),
    BLOCK_K >= 32 for FP8 / INT8 dots (16 for the bf16 / fp16 dots of weight-only), tiles no larger than the
    problem needs, and the pipeline within ``smem_limit`` bytes of shared memory."""
    h = gemm_config(m, n, k, group_k, weight_only)
    bk = h.block_k
    if m <= 16:
        alts = [(16, 32, bk, 1, 4, 4), (16, 128, bk, 1, 4, 4), (16, 64, bk, 1, 4, 5), (16, 64, 2 * bk, 1, 4, 3),
                (16, 64, bk // 2, 1, 4, 6), (32, 64, bk, 1, 4, 4)]
    elif m <= 64:
        bm = h.block_m
        alts = [(bm, 192 - h.block_n, bk, 8, 4, 4), (bm, h.block_n, bk, 8, 4, 5), (bm, 256, bk, 8, 8, 3),
                (bm, 128, bk // 2, 8, 4, 5), (bm, 64, 2 * bk, 8, 4, 3)]  # 192 - bn: 64 <-> 128
    elif m <= 512:
        alts = [(128, 128, bk, 8, 8, 3), (64, 256, bk, 8, 8, 3), (64, 64, bk, 8, 4, 4), (64, 128, bk // 2, 8, 4, 5),
                (64, 128, bk, 8, 4, 3)]
    else:
        alts = [(128, 256, bk, 8, 8, 3), (256, 128, bk, 8, 8, 3), (128, 128, bk, 8, 4, 4),
                (128, 256, bk // 2, 8, 8, 4), (128, 128, bk // 2, 8, 4, 5), (64, 128, bk, 8, 4, 4),
                (128, 128, bk // 2, 8, 4, 3), (64, 128, bk // 2, 8, 4, 4)]  # the last two fit ~100 KB (sm_89)
    min_bk = 16 if weight_only else 32
    max_m = max(h.block_m, _next_pow2(m))
    max_n = max(h.block_n, _next_pow2(n))
    max_k = max(h.block_k, _next_pow2(k))
    out = [h]
    for bm, bn, bk_, gm, warps, stages in alts:
        if len(out) == MAX_CANDIDATES:
            break
        c = GemmConfig(bm, bn, bk_, gm, warps, stages)
        if (c in out or bk_ < min_bk or bk_ > 256 or (group_k is not None and group_k % bk_)
                or bm > max_m or bn > max_n or bk_ > max_k or smem_bytes(c, weight_only) > smem_limit):
            continue
        out.append(c)
    return out


def describe(cfg: GemmConfig) -> str:
    return (f"BLOCK {cfg.block_m}x{cfg.block_n}x{cfg.block_k} group_m {cfg.group_m} warps {cfg.num_warps} "
            f"stages {cfg.num_stages}")


# --- the disk cache --------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "comfyui-dit-quant"


def cache_file(info: DeviceInfo, directory: Path | None = None) -> Path:
    cc = f"{info.capability[0]}{info.capability[1]}"
    return (directory or cache_dir()) / f"triton_gemm-{info.name}-sm{cc}-triton{info.triton}.json"


def _parse_config(raw: Any) -> GemmConfig:
    names = [f.name for f in fields(GemmConfig)]
    if not isinstance(raw, dict) or set(raw) != set(names):
        raise ValueError(f"config {raw!r} does not have exactly the fields {names}")
    values = [raw[f] for f in names]
    if not all(type(v) is int and v > 0 for v in values) or any(v & (v - 1) for v in values[:-1]):
        raise ValueError(f"config {raw!r}: blocks, group_m and num_warps must be powers of two, num_stages >= 1")
    return GemmConfig(*values)


def _read(path: Path, warn: bool = True) -> dict[str, dict[str, Any]]:
    """The valid entries of a cache file; raises OSError / ValueError when the file is missing or unusable."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("entries"), dict):
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"not a schema-{SCHEMA} tuning cache (schema: {found!r})")
    entries: dict[str, dict[str, Any]] = {}
    for key, entry in data["entries"].items():
        try:
            _parse_config(entry.get("config") if isinstance(entry, dict) else None)
        except ValueError as e:
            if warn:
                log.warning("tuning cache %s: ignoring entry %s: %s", path, key, e)
            continue
        entries[key] = entry
    return entries


class _Store:
    """One cache file's entries in memory (loaded once, lazily) and its writer."""

    def __init__(self, path: Path, info: DeviceInfo) -> None:
        self.path = path
        self.info = info
        self.entries: dict[str, dict[str, Any]] | None = None
        self.configs: dict[str, GemmConfig] = {}
        self.write_failed = False

    def _load(self) -> None:
        self.entries = {}
        try:
            self.entries = _read(self.path)
        except FileNotFoundError:
            log.debug("tuning cache %s: none yet", self.path)
        except (OSError, ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
            log.warning("tuning cache %s: ignored (%s: %s); tuning again at first use", self.path,
                        type(e).__name__, e)
        self.configs = {key: _parse_config(e["config"]) for key, e in self.entries.items()}
        if self.entries:
            log.debug("tuning cache %s: %d configs", self.path, len(self.entries))

    def get(self, key: str) -> GemmConfig | None:
        if self.entries is None:
            with _LOCK:
                if self.entries is None:
                    self._load()
        return self.configs.get(key)

    def put(self, key: str, cfg: GemmConfig, entry: dict[str, Any]) -> None:
        assert self.entries is not None
        self.entries[key] = entry
        self.configs[key] = cfg
        self._save()

    def _save(self) -> None:
        assert self.entries is not None
        entries = dict(self.entries)
        with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):  # keep what another process wrote
            entries = {**_read(self.path, warn=False), **entries}
        data = {"schema": SCHEMA, "device": self.info.name, "capability": list(self.info.capability),
                "triton": self.info.triton, "torch": torch.__version__,
                "entries": {key: entries[key] for key in sorted(entries)}}
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.path.parent, prefix=self.path.name + ".",
                                             suffix=".tmp", delete=False) as f:
                tmp = f.name
                json.dump(data, f, indent=1)
                f.write("\n")
            os.replace(tmp, self.path)
            tmp = None
        except OSError as e:
            if not self.write_failed:
                self.write_failed = True
                log.warning("tuning cache %s: cannot write (%s: %s); tuned configs are kept in memory only "
                            "(set %s to a writable directory)", self.path, type(e).__name__, e, ENV_CACHE_DIR)
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


_LOCK = threading.RLock()
_STORES: dict[tuple[str, DeviceInfo], _Store] = {}


def _store(info: DeviceInfo) -> _Store:
    path = cache_file(info)
    key = (str(path), info)
    store = _STORES.get(key)
    if store is None:
        with _LOCK:
            store = _STORES.setdefault(key, _Store(path, info))
    return store


def clear_memory() -> None:
    """Forget every cache loaded in this process (the next lookup reads the files again, as a new process would)."""
    with _LOCK:
        _STORES.clear()


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
        except Exception as e:  # noqa: BLE001 - a candidate that does not compile / fit is skipped
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
    heuristic = gemm_config(m, n, k, group_k, weight_only)
    if not uses_cache(device):
        return heuristic
    index = device.index if device.index is not None else torch.cuda.current_device()
    info = device_info(index)
    key = shape_key(info, m, n, k, group_n, group_k, weight_only, int8)
    store = _store(info)
    cfg = store.get(key)
    if cfg is not None and (group_k is None or group_k % cfg.block_k == 0):
        return cfg
    if not tuning_enabled() or _capturing():
        return heuristic
    with _LOCK:
        cfg = store.configs.get(key)  # another thread may have tuned it meanwhile
        if cfg is not None and (group_k is None or group_k % cfg.block_k == 0):
            return cfg
        cands = candidates(m, n, k, group_k, weight_only, int8, info.smem)
        with torch.cuda.device(index) if torch.cuda.is_available() else contextlib.nullcontext():
            cfg, entry = _tune(key, m, cands, run, timer or cuda_timer)
        store.put(key, cfg, entry)
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
