"""The example workflows: known node types, valid widget values and links, a note listing every file, a
thumbnail each, and in sync with their specs (``tests/workflow_specs.py``). Checked against the committed
``/object_info`` snapshot; ``tests/integration/test_workflows_live.py`` checks them against a real ComfyUI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow_graph import FRONTEND_ONLY, check_workflow, to_api_prompt, used_files
from workflow_specs import OUT_DIR, SNAPSHOT, build, workflows

INFO = json.loads(SNAPSHOT.read_text())
FILES = sorted(OUT_DIR.glob("*.json"))
EXPECTED = {"wan2.2_t2v_a14b_fp8", "wan2.2_i2v_a14b_fp8", "wan2.2_ti2v_5b_fp8", "wan2.1_vace_14b_fp8",
            "qwen_image_t2i_fp8", "qwen_image_edit_fp8", "hunyuan_video1.5_t2v_fp8", "modelopt_wan2.2_t2v_a14b",
            "int8_npu_quantize_wan2.2_ti2v_5b"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_family_has_a_workflow_and_thumbnail() -> None:
    assert {p.stem for p in FILES} == EXPECTED
    for path in FILES:
        jpg = path.with_suffix(".jpg").read_bytes()
        assert jpg[:3] == b"\xff\xd8\xff" and len(jpg) > 1000, path


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_workflow_is_valid_against_node_schemas(path: Path) -> None:
    assert check_workflow(load(path), INFO) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_note_lists_every_file_and_folder(path: Path) -> None:
    wf = load(path)
    notes = "\n".join(n["widgets_values"][0] for n in wf["nodes"] if n["type"] in FRONTEND_ONLY)
    for folder, name in used_files(wf, INFO):
        if folder != "input":
            assert name.rstrip("/") in notes and f"{folder}/" in notes, (folder, name)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_uses_the_pack_and_converts_to_an_api_prompt(path: Path) -> None:
    wf = load(path)
    prompt = to_api_prompt(wf, INFO)
    assert any(n["class_type"].startswith("DiTQuant") for n in prompt.values())
    assert any(n["class_type"] in ("SaveVideo", "SaveImage") for n in prompt.values())
    for node in prompt.values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in prompt


def test_files_match_their_specs() -> None:
    """Edit tests/workflow_specs.py and run it, rather than the JSON by hand."""
    for wf in workflows():
        assert load(OUT_DIR / f"{wf.name}.json") == json.loads(json.dumps(build(wf, INFO))), wf.name


def test_wan22_a14b_runs_two_experts_in_two_stages() -> None:
    wf = load(OUT_DIR / "wan2.2_t2v_a14b_fp8.json")
    loaders = [n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "DiTQuantLoadFP8DiT"]
    assert loaders == ["wan2.2_t2v_high_noise_14B_fp16.safetensors", "wan2.2_t2v_low_noise_14B_fp16.safetensors"]
    stages = sorted((n["widgets_values"][7], n["widgets_values"][8]) for n in wf["nodes"]
                    if n["type"] == "KSamplerAdvanced")
    assert stages == [(0, 10), (10, 10000)]


def test_checker_catches_bad_values() -> None:
    wf = load(OUT_DIR / "qwen_image_t2i_fp8.json")
    loader = next(n for n in wf["nodes"] if n["type"] == "DiTQuantLoadFP8DiT")
    loader["widgets_values"][1] = "fp4"
    sampler = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][2] = 0
    wf["nodes"].append({"id": 99, "type": "NoSuchNode", "inputs": [], "widgets_values": []})
    errors = "\n".join(check_workflow(wf, INFO))
    assert "'fp4' is not one of" in errors and "steps: 0 outside" in errors and "unknown node type" in errors
