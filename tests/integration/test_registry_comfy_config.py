"""Integration tier: ComfyUI's own pyproject parser (comfy_config, what the registry tooling mirrors) reads the
pack's metadata as intended."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from comfy_env import comfyui

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys
from comfy_config.config_parser import extract_node_configuration
c = extract_node_configuration(sys.argv[1])
print(json.dumps({"name": c.project.name, "version": c.project.version, "repo": c.project.urls.repository,
                  "publisher": c.tool_comfy.publisher_id, "web": c.tool_comfy.web, "icon": c.tool_comfy.icon,
                  "includes": c.tool_comfy.includes, "accelerators": c.project.supported_accelerators,
                  "os": c.project.supported_os, "comfyui": c.project.supported_comfyui_version}))
"""


def test_comfy_config_parses_pyproject() -> None:
    path, python = comfyui()
    out = subprocess.run([python, "-c", SCRIPT, str(REPO)], capture_output=True, text=True, cwd=path, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    c = json.loads(out.stdout.strip().splitlines()[-1])
    assert c["name"] == "comfyui-dit-quant" and c["publisher"] == "comfyui-dit-quant" and c["web"] == "web"
    assert c["icon"].endswith("web/icon.png") and {"web/", "example_workflows/"} <= set(c["includes"])
    assert c["accelerators"] == ["GPU :: NVIDIA CUDA"] and c["os"] == ["OS Independent"]
    assert c["comfyui"].startswith(">=") and c["repo"].startswith("https://github.com/")
