"""The example workflows: ComfyUI's own templates (pinned ``comfyui-workflow-templates-json``, flattened) with the
pack's nodes swapped in and nothing else changed but the documented changes; valid against the committed
``/object_info`` snapshot; Lightning switches as in the templates; a saved view showing the whole graph.
``tests/integration/test_workflows_live.py`` checks them against a real ComfyUI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from official_templates import flatten, load_template
from workflow_graph import (
    FRONTEND_ONLY,
    check_workflow,
    graph_differences,
    to_api_prompt,
    used_files,
)
from workflow_specs import (
    MODEL_LOADERS,
    NOTE_ID,
    OUT_DIR,
    READABLE,
    README,
    SNAPSHOT,
    VIEW,
    Example,
    bounding_box,
    build,
    documented_differences,
    is_model_node,
    readme_block,
    reasons,
    view_targets,
    workflows,
)

INFO = json.loads(SNAPSHOT.read_text())
EXAMPLES = {ex.name: ex for ex in workflows()}
FILES = sorted(OUT_DIR.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def example_file(ex: Example) -> dict:
    return load(OUT_DIR / f"{ex.name}.json")


def by_title(wf: dict, title: str) -> dict:
    (node,) = [n for n in wf["nodes"] if n.get("title") == title]
    return node


def test_every_example_has_a_file_and_thumbnail() -> None:
    assert {p.stem for p in FILES} == set(EXAMPLES)
    for path in FILES:
        jpg = path.with_suffix(".jpg").read_bytes()
        assert jpg[:3] == b"\xff\xd8\xff" and len(jpg) > 1000, path


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_workflow_is_valid_against_node_schemas(path: Path) -> None:
    assert check_workflow(load(path), INFO) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_note_lists_every_file_and_folder(path: Path) -> None:
    wf = load(path)
    notes = "\n".join(n["widgets_values"][0] for n in wf["nodes"] if n["type"] in ("Note", "MarkdownNote"))
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
    for ex in workflows():
        assert example_file(ex) == json.loads(json.dumps(build(ex, INFO))), ex.name


@pytest.mark.parametrize("ex", list(EXAMPLES.values()), ids=lambda e: e.template)
def test_differs_from_the_official_template_only_by_its_documented_changes(ex: Example) -> None:
    official = flatten(load_template(ex.template))
    found = graph_differences(official, example_file(ex), INFO)
    assert found == documented_differences(ex, INFO)
    assert documented_differences(ex, INFO), "each example swaps in at least one of the pack's nodes"


@pytest.mark.parametrize("ex", list(EXAMPLES.values()), ids=lambda e: e.template)
def test_each_change_is_explained_in_the_note_and_readme(ex: Example) -> None:
    note = by_title(example_file(ex), "Read me: files, changes")["widgets_values"][0]
    readme = README.read_text()
    for reason in reasons(ex):
        assert f"- {reason}" in note and reason in readme, reason
    assert ex.template in note


def test_readme_lists_the_examples_as_the_specs_do() -> None:
    assert readme_block() in README.read_text(), "run tests/workflow_specs.py"


def test_graph_differences_sees_a_changed_value_and_a_moved_link() -> None:
    ex = EXAMPLES["Qwen-Image Text to Image - FP8 at load, Lightning LoRA switch"]
    wf = example_file(ex)
    by_id = {n["id"]: n for n in wf["nodes"]}
    by_id[85]["widgets_values"][0] = 2.5  # the cfg primitive without the LoRA (official: 4)
    link = next(lk for lk in wf["links"] if lk[3] == 3 and lk[4] == 0)  # KSampler.model
    link[1] = 37  # from the loader, around ModelSamplingAuraFlow and the switch
    found = graph_differences(flatten(load_template(ex.template)), wf, INFO) - documented_differences(ex, INFO)
    assert found == {("widget", 85, "value"), ("link-", 66, 0, 3, "model"), ("link+", 37, 0, 3, "model")}


# ----------------------------------------------------------------------------------------------- Lightning


def evaluate(wf: dict, node_id: int, slot: int = 0, lightning: bool = False) -> Any:
    """The value a primitive / switch chain yields (the switch boolean forced to ``lightning``); a node id else."""
    nodes = {n["id"]: n for n in wf["nodes"]}
    links = {lk[0]: lk for lk in wf["links"]}
    node = nodes[node_id]

    def fed(name: str) -> Any:
        inp = next(i for i in node["inputs"] if i["name"] == name)
        lk = links[inp["link"]]
        return evaluate(wf, lk[1], lk[2], lightning)

    if node["type"] == "PrimitiveBoolean":
        return lightning
    if node["type"] in ("PrimitiveInt", "PrimitiveFloat"):
        return node["widgets_values"][0]
    if node["type"] == "ComfySwitchNode":
        return fed("on_true") if fed("switch") else fed("on_false")
    return node_id


def input_value(wf: dict, node_id: int, name: str, lightning: bool) -> Any:
    node = next(n for n in wf["nodes"] if n["id"] == node_id)
    links = {lk[0]: lk for lk in wf["links"]}
    inp = next((i for i in node["inputs"] if i["name"] == name and i.get("link") is not None), None)
    if inp is None:
        from workflow_graph import _named_widgets

        return _named_widgets(node, INFO)[name]
    return evaluate(wf, links[inp["link"]][1], links[inp["link"]][2], lightning)


def model_chain(wf: dict, node_id: int, lightning: bool) -> list[str]:
    """Node types from a sampler's model input back to the loader, switches resolved."""
    nodes = {n["id"]: n for n in wf["nodes"]}
    chain = []
    current = input_value(wf, node_id, "model", lightning)
    while True:
        node = nodes[current]
        chain.append(node["type"])
        if not any(i["name"] == "model" and i.get("link") for i in node["inputs"]):
            return chain
        current = input_value(wf, current, "model", lightning)


LIGHTNING = {  # example -> (sampler ids, LoRA file(s), steps / cfg off, steps / cfg on), as in the templates
    "Wan 2.2 14B Text to Video - FP8 at load, Lightning LoRA switch": (
        (81, 78), ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                   "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"], (20, 3.5), (4, 1)),
    "Wan 2.2 14B Image to Video - FP8 at load, Lightning LoRA switch": (
        (86, 85), ["wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                   "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"], (20, 3.5), (4, 1)),
    "Qwen-Image Text to Image - FP8 at load, Lightning LoRA switch": (
        (3,), ["Qwen-Image-Lightning-8steps-V1.0.safetensors"], (20, 4), (8, 1)),
    "Qwen-Image-Edit - FP8 at load, Lightning LoRA switch": (
        (3,), ["Qwen-Image-Edit-Lightning-4steps-V1.0-bf16.safetensors"], (20, 2.5), (4, 1)),
}


@pytest.mark.parametrize("name", list(LIGHTNING))
def test_lightning_switch_runs_the_lora_on_the_quantized_model(name: str) -> None:
    samplers, loras, off, on = LIGHTNING[name]
    wf = example_file(EXAMPLES[name])
    lora_nodes = [n for n in wf["nodes"] if n["type"] == "LoraLoaderModelOnly"]
    assert sorted(n["widgets_values"][0] for n in lora_nodes) == sorted(loras)
    assert all(n["widgets_values"][1] == pytest.approx(1.0) for n in lora_nodes)
    for lightning, (steps, cfg) in ((False, off), (True, on)):
        for sampler in samplers:
            assert input_value(wf, sampler, "steps", lightning) == steps
            assert input_value(wf, sampler, "cfg", lightning) == pytest.approx(cfg)
            chain = model_chain(wf, sampler, lightning)
            assert chain[-1] == "DiTQuantLoadFP8DiT"
            assert ("LoraLoaderModelOnly" in chain) is lightning, chain


def test_wan22_a14b_splits_the_steps_between_the_two_experts() -> None:
    wf = example_file(EXAMPLES["Wan 2.2 14B Text to Video - FP8 at load, Lightning LoRA switch"])
    loaders = sorted(n["widgets_values"][0] for n in wf["nodes"] if n["type"] == "DiTQuantLoadFP8DiT")
    assert loaders == ["wan2.2_t2v_high_noise_14B_fp16.safetensors", "wan2.2_t2v_low_noise_14B_fp16.safetensors"]
    for lightning, split, steps in ((False, 10, 20), (True, 2, 4)):
        assert input_value(wf, 81, "end_at_step", lightning) == split  # high noise: 0 .. split
        assert input_value(wf, 78, "start_at_step", lightning) == split  # low noise: split .. steps
        assert input_value(wf, 78, "end_at_step", lightning) == steps


def test_the_settings_the_issue_found_wrong_are_the_templates() -> None:
    t2v = example_file(EXAMPLES["Wan 2.2 14B Text to Video - FP8 at load, Lightning LoRA switch"])
    (latent,) = [n for n in t2v["nodes"] if n["type"] == "EmptyHunyuanLatentVideo"]
    assert latent["widgets_values"][:2] == [640, 640]
    assert {round(n["widgets_values"][0], 6) for n in t2v["nodes"] if n["type"] == "ModelSamplingSD3"} == {5.0}
    edit = example_file(EXAMPLES["Qwen-Image-Edit - FP8 at load, Lightning LoRA switch"])
    assert [n["widgets_values"][0] for n in edit["nodes"] if n["type"] == "ModelSamplingAuraFlow"] == [3]
    vae_encode = next(n for n in edit["nodes"] if n["type"] == "VAEEncode")
    pixels = next(lk for lk in edit["links"] if lk[0] == vae_encode["inputs"][0]["link"])
    assert next(n for n in edit["nodes"] if n["id"] == pixels[1])["type"] == "LoadImage"  # the raw image
    ti2v = example_file(EXAMPLES["Wan 2.2 5B Video (text or image) - FP8 at load"])
    assert [n["mode"] for n in ti2v["nodes"] if n["type"] == "LoadImage"] == [4]  # the optional start image
    hv = example_file(EXAMPLES["HunyuanVideo 1.5 720p Text to Video - FP8 at load"])
    assert {"EasyCache", "HunyuanVideo15SuperResolution"} <= {n["type"] for n in hv["nodes"] if n["mode"] == 4}


# ----------------------------------------------------------------------------------------------- view, card


def screen_box(nodes: list[dict], ds: dict) -> tuple[float, float, float, float]:
    """Where the graph's bounding box lands on screen (screen = (canvas + offset) * scale)."""
    scale, (ox, oy) = ds["scale"], ds["offset"]
    x0, y0, x1, y1 = bounding_box(nodes)
    return (x0 + ox) * scale, (y0 + oy) * scale, (x1 + ox) * scale, (y1 + oy) * scale


def in_view(box: tuple[float, float, float, float]) -> bool:
    left, top, right, bottom = box
    return VIEW[0] - 0.5 <= left and VIEW[1] - 0.5 <= top and right <= VIEW[2] + 0.5 and bottom <= VIEW[3] + 0.5


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_saved_view_shows_the_note_and_loaders_readable(path: Path) -> None:
    """The saved view puts the note and the model loaders that run inside the VIEW box of a 1280x720 window, at
    a scale where the frontend draws text; the whole graph, or the pack's nodes and the file loaders too, where
    they fit at such a scale (the browser test checks the same on the real canvas)."""
    wf = load(path)
    ds = wf["extra"]["ds"]
    assert READABLE <= ds["scale"] <= 1, ds
    whole, more, must = view_targets(wf["nodes"])
    assert {n["id"] for n in must} > {NOTE_ID} and all(is_model_node(n) for n in must[1:]), must
    assert any(n["type"] in MODEL_LOADERS for n in must), must
    assert in_view(screen_box(must, ds)), screen_box(must, ds)
    for group in (whole, more):  # a larger group is shown when it fits readable
        x0, y0, x1, y1 = bounding_box(group)
        fits = min((VIEW[2] - VIEW[0]) / (x1 - x0), (VIEW[3] - VIEW[1]) / (y1 - y0)) >= READABLE
        if fits:
            assert in_view(screen_box(group, ds)), (group[0]["id"], screen_box(group, ds))
            break
    assert not in_view(screen_box(must, {"scale": 0.7, "offset": [480, 80]}))  # the view the issue saw


@pytest.mark.parametrize("ex", list(EXAMPLES.values()), ids=lambda e: e.template)
def test_card_title_and_description(ex: Example) -> None:
    """The template browser shows the file name as the card's title; the JSON carries title and description too."""
    assert " - " in ex.name and len(ex.name) <= 64 and not set(ex.name) & set('/\\:*?"<>|#%&')
    extra = example_file(ex)["extra"]["dit_quant"]
    assert extra == {"title": ex.title, "description": ex.description, "template": ex.template}
    assert 30 < len(ex.description) < 160


def test_checker_catches_bad_values() -> None:
    wf = example_file(EXAMPLES["Qwen-Image Text to Image - FP8 at load, Lightning LoRA switch"])
    loader = next(n for n in wf["nodes"] if n["type"] == "DiTQuantLoadFP8DiT")
    loader["widgets_values"][1] = "fp4"
    sampler = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][2] = 0
    wf["nodes"].append({"id": 99, "type": "NoSuchNode", "inputs": [], "widgets_values": []})
    errors = "\n".join(check_workflow(wf, INFO))
    assert "'fp4' is not one of" in errors and "steps: 0 outside" in errors and "unknown node type" in errors


def test_api_prompt_passes_through_bypassed_nodes_and_primitives() -> None:
    wf = example_file(EXAMPLES["Wan 2.1 VACE 14B Reference to Video - FP8 at load"])
    prompt = to_api_prompt(wf, INFO)
    vace = prompt["109"]["inputs"]
    assert "control_video" not in vace and "control_masks" not in vace  # fed by bypassed nodes with no source
    assert vace["width"] == vace["height"] == 768  # from the Width / Height primitives' targets
    assert not {n["class_type"] for n in prompt.values()} & FRONTEND_ONLY
