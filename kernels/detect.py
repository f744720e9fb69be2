"""``detect_caps``: the capabilities of a real device, from versions (``caps.expected_caps``) confirmed by a
one-time numeric probe of each recipe (``probe.py``), cached per process, so no kernel call needs a try/except."""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import fields, replace
from functools import cache

import torch

from .caps import DeviceCaps, Version, expected_caps, parse_version
from .probe import probe_caps

log = logging.getLogger("comfyui_dit_quant")


def cublas_version() -> Version:
    """cuBLAS version of this torch build, taken as its CUDA toolkit version (cuBLAS is versioned with it)."""
    return parse_version(torch.version.cuda)


def version_caps(device_type: str, index: int = 0) -> DeviceCaps:
    """What the version rules promise for a real device, before any probe."""
    tv = parse_version(torch.__version__)
    if device_type != "cuda":
        return expected_caps(device_type, torch_version=tv)
    return expected_caps("cuda", torch.cuda.get_device_capability(index), tv,
                         importlib.util.find_spec("triton") is not None, cublas_version(),
                         rocm=torch.version.hip is not None, windows=sys.platform == "win32")


@cache
def detect_caps(device_type: str, index: int = 0) -> DeviceCaps:
    """Capabilities of a real device, cached per process; CUDA recipes are confirmed by a one-time probe."""
    caps = version_caps(device_type, index)
    if device_type != "cuda":
        return caps
    confirmed = replace(caps, **probe_caps(caps, torch.device("cuda", index)))
    if confirmed != caps:
        off = [f.name for f in fields(DeviceCaps) if getattr(caps, f.name) != getattr(confirmed, f.name)]
        log.warning("%s: probes disabled %s", caps.describe(), off)
    return confirmed
