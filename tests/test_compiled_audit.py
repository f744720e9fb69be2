"""The compiled-kernel audit (``bench/compiled_audit.py``) on this CPU machine: Triton kernels compiled ahead of
time for sm_90a / sm_89 / sm_80 with Triton's bundled ptxas, no GPU.

Live: the heuristic configs of the M buckets that carry the work (M <= 512 and large M, Wan-14B N x K) of every GEMM
mode (on sm_90a also the TMA variant of the 8-bit ones) and the activation quantizers, on every target (57
compilations: about a minute on 2 cores with an empty Triton cache, seconds with a warm one). Every row must have
zero spills, shared memory within the target's limit, native FP8 MMA on sm_89 / sm_90a and, on sm_90a, wgmma with a
group in flight in the FP8 K loops with epilogue scales (the block-scaled loop waits by construction:
``compiled_audit.Spec.pipelined``; such loops need two warpgroups resident per SM instead:
``compiled_audit.resident_warpgroups``). The committed table for the installed Triton version (every config the
heuristic and the tuner may pick) must follow the same rules, cover exactly what the audit would compile today, and
agree with the live rows (so a kernel edit without a new table fails here: ``python bench/compiled_audit.py``
rewrites it).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="triton is not importable: nothing to compile")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import compiled_audit as ca

LIVE_MS = (512, 32760)


@pytest.fixture(scope="module")
def live() -> list[ca.Result]:
    return ca.audit(ca.specs(only_heuristic=True, ms=LIVE_MS), jobs=2)


@pytest.mark.slow
def test_live_heuristic_kernels_follow_the_rules(live: list[ca.Result]) -> None:
    assert {r.spec.target for r in live} == set(ca.TARGETS)
    assert len(live) >= 35, len(live)
    problems = ca.check(live)
    assert not problems, "\n".join(problems)
    for r in live:
        assert tuple(r.row) == ca.KEYS, r.row
        assert r.row["registers"] <= 255 and r.row["shared_memory_bytes"] >= 0, r.row
        if r.spec.pipelined and r.spec.target == "sm_90a":
            assert r.row["mma"] == "wgmma" and 1 in r.loop_waits, r.row


@pytest.mark.slow
def test_quantizers_use_16_byte_accesses(live: list[ca.Result]) -> None:
    """Per-token activation quant: 16-byte vector loads of the bf16 row and 16-byte stores of its codes."""
    rows = [r for r in live if r.spec.kernel in ("quant_fp8_per_token", "quant_int8_per_token")]
    assert len(rows) == 10  # single pass (K = 5120 in registers) and two passes, FP8 on sm_90a / sm_89, INT8 on all
    assert sum("single pass" in r.spec.config for r in rows) == 5
    for r in rows:
        assert (r.load_bytes, r.store_bytes) == (16, 16), (r.spec.kernel, r.spec.target, r.load_bytes,
                                                           r.store_bytes)


def _problems(rows: list[dict]) -> list[str]:
    out = []
    for row in rows:
        where = f"{row['kernel']} [{row['config']}] on {row['target']}"
        if row["registers"] is None:
            out.append(f"{where}: did not compile")
            continue
        if row["spill_bytes"]:
            out.append(f"{where}: spills {row['spill_bytes']} bytes")
        if row["shared_memory_bytes"] > ca.TARGETS[row["target"]][1]:
            out.append(f"{where}: {row['shared_memory_bytes']} bytes of shared memory")
        kernel = row["kernel"].replace("gemm_tma_", "gemm_")  # the TMA variant: the same rules, and TMA loads
        if kernel != row["kernel"] and not row["tma"]:
            out.append(f"{where}: no TMA load")
        pipelined = kernel in ("gemm_fp8_tensor", "gemm_fp8_token")
        if kernel.startswith("gemm_fp8") and row["target"] == "sm_90a" and (
                row["mma"] != "wgmma" or (pipelined and max(row["wgmma_waits"], default=0) < 1)):
            out.append(f"{where}: mma {row['mma']}, wgmma waits {row['wgmma_waits']}")
        warps = int(re.search(r"warps (\d+)", row["config"]).group(1)) if row["kernel"].startswith("gemm") else 0
        if warps and row["target"] == "sm_90a" and row["wgmma_waits"] and not any(row["wgmma_waits"]) and \
                ca.resident_warpgroups(row["registers"], row["shared_memory_bytes"], warps) < 2:
            out.append(f"{where}: waits for every wgmma with one warpgroup resident per SM")
    return out


def test_resident_warpgroups() -> None:
    """Occupancy arithmetic on sm_90 limits: the block-scaled heuristic tile (213 registers, 8 warps, 96 KB) is one
    block of two warpgroups; a 4-warp tile at 226 registers and 72 KB fits twice; 255 registers at 4 warps and
    120 KB once (one warpgroup: the rule fails it)."""
    assert ca.resident_warpgroups(213, 98304, 8) == 2
    assert ca.resident_warpgroups(226, 74240, 4) == 2
    assert ca.resident_warpgroups(255, 122880, 4) == 1
    assert ca.resident_warpgroups(128, 49152, 4) == 4
    assert ca.resident_warpgroups(32, 8192, 4) == 16  # the warp limit: 64 warps per SM


@pytest.mark.slow
def test_committed_table(live: list[ca.Result]) -> None:
    path = ca.default_path()
    if not path.exists():
        pytest.skip(f"no committed audit table for this Triton version ({path.name})")
    rows = json.loads(path.read_text())
    assert all(tuple(r) == ca.KEYS for r in rows), "rows must have exactly the keys " + ", ".join(ca.KEYS)
    problems = _problems(rows)
    assert not problems, "\n".join(problems)
    table = {(r["kernel"], r["config"], r["target"]): r for r in rows}
    expected = {(s.kernel, s.config, s.target) for s in ca.specs()}
    assert set(table) == expected, (f"stale table {path.name} (rerun bench/compiled_audit.py): missing "
                                    f"{sorted(expected - set(table))[:5]}, extra {sorted(set(table) - expected)[:5]}")
    for r in live:
        assert table[(r.spec.kernel, r.spec.config, r.spec.target)] == r.row, r.row


@pytest.mark.slow
def test_tma_kernel_rows_back_the_hopper_heuristic() -> None:
    """``triton_configs``: Hopper 8-bit GEMMs load by TMA because, at every config the heuristic or the tuner may
    pick, the TMA kernel compiles (sm_90a) with TMA loads, fewer registers than the pointer kernel, no spills, at
    most 64 bytes more shared memory and the same wgmma waits."""
    path = ca.default_path()
    if not path.exists():
        pytest.skip(f"no committed audit table for this Triton version ({path.name})")
    rows = {(r["kernel"], r["config"], r["target"]): r for r in json.loads(path.read_text())}
    tma = [r for r in rows.values() if r["kernel"].startswith("gemm_tma_")]
    assert {r["kernel"] for r in tma} == {f"gemm_tma_{m}" for m in ca.TMA_MODES} and {r["target"] for r in tma} == {
        "sm_90a"}
    for r in tma:
        pointer = rows[(r["kernel"].replace("gemm_tma_", "gemm_"), r["config"], "sm_90a")]
        assert r["tma"] and not pointer["tma"] and r["spill_bytes"] == 0, r
        assert r["registers"] < pointer["registers"], (r, pointer)
        assert 0 <= r["shared_memory_bytes"] - pointer["shared_memory_bytes"] <= 64, (r, pointer)
        assert r["wgmma_waits"] == pointer["wgmma_waits"] and r["mma"] == pointer["mma"] == "wgmma", (r, pointer)
