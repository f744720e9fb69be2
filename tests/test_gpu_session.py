"""``bench/gpu_session.sh`` (the one-command GPU runbook), checked where it can be without a GPU: shell syntax and
arguments, and a ``--quick`` session on the CPU end to end (offline imports, tests/gpu skipping, the benchmarks'
CPU smoke sizes) with the result files the device machine would send back."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from comfyui_dit_quant.quant.schemes import CHOICES

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_session.sh"
SCHEME_LABELS = [c.key for c in CHOICES]  # the benchmarks time the registry's choices, in its order

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils timeout")


def _bash(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_script_syntax() -> None:
    proc = _bash("-n", str(SCRIPT))
    assert proc.returncode == 0, proc.stderr


def test_help_and_bad_arguments() -> None:
    proc = _bash(str(SCRIPT), "--help")
    assert proc.returncode == 0 and "--quick" in proc.stdout and "carry" in proc.stdout
    assert "pip download" in proc.stdout  # how to prepare .whl
    bad = _bash(str(SCRIPT), "--bogus")
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def _results(path: Path) -> tuple[dict, list[dict]]:
    data = json.loads(path.read_text())
    env = data["environment"]
    for key in ("device", "torch", "triton", "source_hash", "caps", "auto", "time"):
        assert key in env, f"{path.name}: environment lacks {key}"
    return env, data["results"]


@pytest.mark.slow
def test_quick_session_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "",
           "TMPDIR": str(tmp_path)}  # the default budget: 420 s
    env.pop("TRITON_INTERPRET", None)
    proc = _bash(str(SCRIPT), "--quick", env=env, timeout=480)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]

    # What the device machine sends back: at most 8 plain files, flat.
    files = sorted(p.name for p in out.iterdir())
    assert all((out / f).is_file() for f in files) and len(files) <= 8, files
    has_diffusers = importlib.util.find_spec("diffusers") is not None or any((ROOT / ".whl").glob("diffusers-*.whl"))
    expected = {"session.log", "gpu_tests.log", "gpu_tests.xml", "device-cpu.json", "linear-cpu.json"}
    assert expected | ({"dit_block-cpu.json"} if has_diffusers else set()) == set(files), files

    session = (out / "session.log").read_text()
    assert "== summary" in session and "tests: ok" in session and "linear: ok" in session
    assert "comfyui_dit_quant 0.1.0" in session  # importable through the symlink
    plan = session[session.index("== time plan"):session.index("total ")]
    steps = [ln.split()[0] for ln in plan.splitlines()[1:] if ln.strip()]
    assert steps == ["info", "linear", "dit_block", "tests"], plan
    assert "budget 420s = 7 min" in plan and "15 min" in plan
    # the benchmarks first, the test subset last; tuning off unless asked
    assert session.index("== linear (") < session.index("== tests (")
    assert "COMFYUI_DIT_QUANT_TUNE=0" in session
    tests_log = (out / "gpu_tests.log").read_text()
    assert "no CUDA device: GPU tier skipped" in tests_log

    _, rows = _results(out / "device-cpu.json")
    assert {r["scheme"] for r in rows} >= set(SCHEME_LABELS)
    assert all({"auto", "cublas", "torch", "triton", "eager"} <= set(r) for r in rows)

    env_l, rows = _results(out / "linear-cpu.json")
    assert env_l["device"] and set(env_l["auto"]) == set(SCHEME_LABELS)
    assert not [r for r in rows if r.get("error")], [r for r in rows if r.get("error")]
    assert {r["scheme"] for r in rows} == {"bf16", "comfy_fp8_fast", *SCHEME_LABELS}
    for r in rows:
        assert {"M", "K", "N", "scheme", "backend", "ms", "tflops", "speedup", "rel_err", "roof_ms",
                "weight_mib"} <= set(r), r
        assert r["ms"] > 0 and r["rel_err"] < 0.05, r
    autos = [r for r in rows if r["backend"].startswith("auto=")]
    assert sorted(r["scheme"] for r in autos) == sorted(SCHEME_LABELS)
    assert all(r["auto"] == r["backend"].removeprefix("auto=") for r in autos)

    if has_diffusers:
        env_d, rows = _results(out / "dit_block-cpu.json")
        assert env_d["block"]["tokens"] == 16
        assert [r["scheme"] for r in rows] == ["bf16", *SCHEME_LABELS]
        for r in rows[1:]:
            assert not r.get("error") and r["backends"] and r["ms"] > 0 and r["rel_err"] < 0.05, r
