"""Integration tier: Wan 2.2 A14B-style high- and low-noise bf16 files quantized at load one after the other never
hold a bf16 copy: peak RSS per load stays near the quantized model, and no file stays mapped."""

from __future__ import annotations

import pytest

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO

MiB = 2**20


@pytest.mark.slow
def test_high_then_low_noise_load_without_a_bf16_copy(tmp_path) -> None:
    comfyui()
    r = run_comfy_script("load_memory.py", str(REPO), str(tmp_path), "fp8 per-tensor")
    size, base, (high, low) = r["file_bytes"], r["base"], r["loads"]
    print({"file MiB": size // MiB, "base MiB": base["VmRSS"] // MiB,
           **{f"{n} {k} MiB": v // MiB for n, ld in (("high", high), ("low", low)) for k, v in ld["peak"].items()},
           "model MiB": high["model_bytes"] // MiB, "end MiB": low["end"]["VmRSS"] // MiB})
    assert size > 350 * MiB and high["model_bytes"] < size * 0.6
    for before, load in ((base, high), (high["end"], low)):
        # one quantized model plus a bounded working set, never the 400 MiB bf16 file on top
        growth = load["peak"]["VmRSS"] - before["VmRSS"]
        assert growth < load["model_bytes"] + size / 2, f"peak grew {growth // MiB} MiB"
    assert low["end"]["RssFile"] - base["RssFile"] < size / 10  # no bf16 file left mapped and resident
    end_growth = low["end"]["VmRSS"] - base["VmRSS"]
    assert end_growth < high["model_bytes"] + low["model_bytes"] + size / 4, f"end grew {end_growth // MiB} MiB"
