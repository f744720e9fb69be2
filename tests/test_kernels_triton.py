"""Runs the Triton kernel cases (``test_kernels_triton_cases.py``, and the TMA variant's in
``test_kernels_triton_tma.py``) in a subprocess with ``TRITON_INTERPRET=1``: the interpreter must be on before
Triton is imported, which this process may already have done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

CASES = Path(__file__).with_name("test_kernels_triton_cases.py")
TMA_CASES = Path(__file__).with_name("test_kernels_triton_tma.py")


@pytest.mark.slow
def test_triton_kernels_under_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    args = ["-q", "-p", "no:cacheprovider", "-x", str(CASES), str(TMA_CASES)]
    proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=CASES.parent.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail.splitlines()[-1], tail
