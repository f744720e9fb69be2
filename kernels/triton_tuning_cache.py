"""The on-disk cache of tuned Triton GEMM configs: one JSON file per device and Triton version, read once per
process, rewritten atomically (merged with other processes' writes) after each newly tuned key."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from .triton_configs import GemmConfig
from .triton_tuning_keys import DeviceInfo

log = logging.getLogger("comfyui_dit_quant")

SCHEMA = 1
ENV_CACHE_DIR = "COMFYUI_DIT_QUANT_CACHE_DIR"


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
    """A cached config: the integer fields of ``GemmConfig``, and ``tma`` (a bool; absent in older files: False)."""
    names = [f.name for f in fields(GemmConfig) if f.name != "tma"]
    if not isinstance(raw, dict) or not set(names) <= set(raw) <= {*names, "tma"}:
        raise ValueError(f"config {raw!r} does not have exactly the fields {names} (and optionally tma)")
    values = [raw[f] for f in names]
    if not all(type(v) is int and v > 0 for v in values) or any(v & (v - 1) for v in values[:-1]):
        raise ValueError(f"config {raw!r}: blocks, group_m and num_warps must be powers of two, num_stages >= 1")
    tma = raw.get("tma", False)
    if type(tma) is not bool:
        raise ValueError(f"config {raw!r}: tma must be true or false")
    return GemmConfig(*values, tma=tma)


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


def clear_stores() -> None:
    """Forget the cache files loaded in this process (the next lookup reads them again)."""
    with _LOCK:
        _STORES.clear()
