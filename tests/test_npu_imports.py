"""Importing every module of the pack works on a machine with no ``torch_npu`` and no CUDA, and imports neither.

Runs in a fresh interpreter where ``torch_npu`` cannot be imported and CUDA is hidden. Excluded, by rule: the
``nodes/`` modules that import ComfyUI at top level (found by reading their source; ComfyUI is absent here) and
``__main__`` (it runs the CLI).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import comfyui_dit_quant

PACKAGE = "comfyui_dit_quant"
COMFY_MODULES = ("comfy", "comfy_api", "folder_paths", "nodes", "comfy_extras", "server")
SCRIPT = r"""
import importlib, json, pkgutil, sys
sys.modules["torch_npu"] = None  # not installed: any import of it raises ImportError
import torch
import comfyui_dit_quant as pkg
skip = set(json.loads(sys.argv[1]))
done, failed = [], {}
for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
    if info.name in skip:
        continue
    try:
        importlib.import_module(info.name)
        done.append(info.name)
    except Exception as e:
        failed[info.name] = f"{type(e).__name__}: {e}"
print(json.dumps({"done": done, "failed": failed, "npu_imported": sys.modules.get("torch_npu") is not None,
                  "cuda_initialized": torch.cuda.is_initialized()}))
"""


def imports_comfyui(path: Path) -> bool:
    """True when the module imports ComfyUI at top level."""
    for node in ast.parse(path.read_text()).body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        if any(n.split(".")[0] in COMFY_MODULES for n in names):
            return True
    return False


def test_every_module_imports_without_torch_npu_or_cuda() -> None:
    root = Path(comfyui_dit_quant.__file__).parent
    skip = [f"{PACKAGE}.nodes.{p.stem}" for p in sorted((root / "nodes").glob("*.py")) if imports_comfyui(p)]
    skip.append(f"{PACKAGE}.__main__")
    assert f"{PACKAGE}.nodes.int8_quantize" in skip and f"{PACKAGE}.quant.formats.layer_state" not in skip
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(skip)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["failed"] == {}
    assert not res["npu_imported"] and not res["cuda_initialized"]
    for name in ("kernels.npu_backend", "kernels.dispatch", "kernels.table", "quant.int8_convert",
                 "quant.storage", "quant.load_plan", "cli.main"):
        assert f"{PACKAGE}.{name}" in res["done"]
    assert len(res["done"]) >= 40
