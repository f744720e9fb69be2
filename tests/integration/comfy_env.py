"""Locate a real ComfyUI for the integration tier (COMFYUI_PATH + COMFYUI_PYTHON), or skip with the reason."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "comfy_scripts"


def comfyui() -> tuple[str, str]:
    path, python = os.environ.get("COMFYUI_PATH"), os.environ.get("COMFYUI_PYTHON")
    if not path or not python:
        pytest.skip("integration tier: set COMFYUI_PATH (a ComfyUI checkout) and COMFYUI_PYTHON (its Python); "
                    "see ../shared/comfyui-harness/README.md")
    if not Path(path, "main.py").is_file() or not Path(python).exists():
        pytest.skip(f"integration tier: COMFYUI_PATH={path} / COMFYUI_PYTHON={python} do not exist")
    return path, python


def run_comfy_script(script: str, *args: str, timeout: int = 600) -> dict:
    """Run one of ``comfy_scripts/`` under ComfyUI's Python; it prints one JSON line last."""
    path, python = comfyui()
    env = dict(os.environ, COMFYUI_PATH=path, PYTHONUNBUFFERED="1")
    proc = subprocess.run([python, str(SCRIPTS / script), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=path)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
