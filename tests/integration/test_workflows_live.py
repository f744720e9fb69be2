"""Integration tier: the example workflows and the layer route against a real headless ComfyUI (CPU).

- the committed ``/object_info`` snapshot (used by the CI workflow test) matches the live server;
- each workflow, converted to an API prompt, passes ``POST /prompt`` validation (placeholder model files; the
  queued run then fails at the first loader, which is fine: only validation is under test);
- ``GET /dit_quant/layers`` lists a real checkpoint's layers and refuses names outside the model folders.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from comfy_env import comfyui
from comfy_server import ComfyServer
from conftest import wan_comfy_shapes, write_random_checkpoint
from snapshot_object_info import live_snapshot
from workflow_graph import to_api_prompt, used_files
from workflow_specs import OUT_DIR, SNAPSHOT

WORKFLOWS = sorted(OUT_DIR.glob("*.json"))


class WorkflowServer(ComfyServer):
    extra_folders = ("text_encoders", "vae", "clip_vision", "latent_upscale_models")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    comfyui()
    root = tmp_path_factory.mktemp("comfy_wf")
    info = json.loads(SNAPSHOT.read_text())
    for path in WORKFLOWS:
        for folder, name in used_files(json.loads(path.read_text()), info):
            if folder == "input":
                continue
            target = root / "models" / folder / name
            if name.endswith("/"):  # a ModelOpt export folder: one component is enough to be listed
                target = target / "transformer" / "diffusion_pytorch_model.safetensors"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
    write_random_checkpoint(root / "models/diffusion_models/tiny_wan.safetensors", wan_comfy_shapes())
    (root / "models/vae/../outside.safetensors").write_bytes(b"")
    with WorkflowServer(root) as srv:
        yield srv


def test_examples_are_built_from_the_templates_this_comfyui_ships() -> None:
    """The examples copy ComfyUI's own templates (the pinned comfyui-workflow-templates-json dev dependency):
    the ComfyUI under test installs the same version, or the pin and the examples are due for an update."""
    _, python = comfyui()
    code = "import importlib.metadata as m; print(m.version('comfyui-workflow-templates-json'))"
    theirs = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    ours = importlib.metadata.version("comfyui-workflow-templates-json")
    assert theirs == ours, (f"ComfyUI ships comfyui-workflow-templates-json {theirs}, the examples are built from "
                            f"{ours}: bump the pin in pyproject.toml, run tests/workflow_specs.py and review the diff")


def test_snapshot_matches_live_object_info(server: ComfyServer) -> None:
    live = live_snapshot(server.get("/object_info"))
    committed = json.loads(SNAPSHOT.read_text())
    assert json.loads(json.dumps(live)) == committed, (
        "node schemas changed: run tests/integration/snapshot_object_info.py, then tests/workflow_specs.py")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_passes_prompt_validation(server: ComfyServer, path: Path) -> None:
    prompt = to_api_prompt(json.loads(path.read_text()), server.get("/object_info"))
    status, body = server.post_prompt(prompt)
    assert status == 200 and body["node_errors"] == {}, json.dumps(body, indent=1)[:4000]


def get_layers(server: ComfyServer, **query: str) -> tuple[int, dict]:
    url = f"{server.url}/dit_quant/layers?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_layer_route_lists_a_checkpoint(server: ComfyServer) -> None:
    status, data = get_layers(server, folder="diffusion_models", name="tiny_wan.safetensors",
                              ignored="blocks.0.ffn.0")
    assert status == 200, data
    assert data["family_id"] == "wan" and "default" in data["presets"]
    by_name = {r["name"]: r for r in data["layers"]}
    assert by_name["blocks.0.ffn.0"]["ignored_by"] == "blocks.0.ffn.0"
    assert by_name["blocks.1.self_attn.q"]["shape"] == [64, 64]
    status, _ = get_layers(server, folder="diffusion_models", name="tiny_wan.safetensors")
    assert status == 200


@pytest.mark.parametrize("query, code", [
    ({"folder": "vae", "name": "../outside.safetensors"}, 404),
    ({"folder": "diffusion_models", "name": "../../extra_paths.yaml"}, 400),
    ({"folder": "custom_nodes", "name": "x.safetensors"}, 400),
    ({"folder": "diffusion_models", "name": "missing.safetensors"}, 404),
    ({"folder": "diffusion_models", "name": "wan2.2_ti2v_5B_fp16.safetensors"}, 422),  # empty placeholder
])
def test_layer_route_refuses(server: ComfyServer, query: dict, code: int) -> None:
    status, data = get_layers(server, **query)
    assert status == code and "error" in data, data


def test_web_extension_and_templates_are_served(server: ComfyServer) -> None:
    extensions = server.get("/extensions")
    ours = [e for e in extensions if "/comfyui-dit-quant/" in e]
    assert "/extensions/comfyui-dit-quant/dit_quant.js" in ours
    assert not [e for e in ours if "/tests/" in e], ours  # node tests (.mjs) are never imported by the frontend
    for path in ours:
        with urllib.request.urlopen(server.url + path, timeout=30) as r:
            assert r.status == 200 and "javascript" in r.headers["Content-Type"]
    templates = server.get("/api/workflow_templates")
    assert sorted(templates["comfyui-dit-quant"]) == sorted(p.stem for p in WORKFLOWS)
    for path in WORKFLOWS:  # the file names are the cards' titles: spaces, commas, parentheses must be served
        for suffix in (".json", ".jpg"):
            url = f"{server.url}/api/workflow_templates/comfyui-dit-quant/{urllib.parse.quote(path.stem)}{suffix}"
            with urllib.request.urlopen(url, timeout=30) as r:
                assert r.status == 200 and r.read() == path.with_suffix(suffix).read_bytes(), url
