"""Integration tier: the web extension in headless Debian Chromium against a real ComfyUI with its frontend.

``browser/ui_check.mjs`` (playwright-core driving /usr/bin/chromium; no browser download) loads every example
workflow through the frontend's ``app.loadGraphData``, opens "Pick layers…" on a Load FP8 DiT node pointed at a
tiny Wan checkpoint in ``diffusion_models``, selects layers and applies, runs a fresh Load FP8 DiT node on another
tiny checkpoint and measures its summary box, then writes a JSON report and screenshots (every example as loaded
in a 1280x720 window, the dialog, the summary); these tests assert on the report.
Setup: ``apt-get install chromium`` and
``npm ci --prefix tests/integration/browser``. Screenshots are copied to ``$DIT_QUANT_ARTIFACTS/web_ui`` (default
``build/test-artifacts/web_ui``, git-ignored) and the path is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from comfyui_dit_quant.quant.layer_listing import block_of, list_layers

from comfy_env import comfyui
from comfy_server import REPO, ComfyServer
from conftest import wan_comfy_shapes, write_random_checkpoint
from workflow_graph import used_files
from workflow_specs import NOTE_ID, OUT_DIR, SNAPSHOT, view_targets

BROWSER_DIR = Path(__file__).parent / "browser"
SCRIPT = BROWSER_DIR / "ui_check.mjs"
WORKFLOWS = sorted(OUT_DIR.glob("*.json"))
PICKER_WORKFLOW = OUT_DIR / "Wan 2.2 14B Text to Video - FP8 at load, Lightning LoRA switch.json"
CHECKPOINT = "tiny_wan.safetensors"
# the node run for the summary: a checkpoint ComfyUI can build a model from (heads of 128: dim 256)
RUN_CHECKPOINT = "tiny_wan_run.safetensors"
RUN_SHAPES = {"dim": 256, "ffn": 512, "layers": 2, "text_dim": 4096, "freq_dim": 256}
PICK, GROUP = "blocks.1.ffn.0", "blocks.0"  # one checkbox, one block's group checkbox (on top of preset default)


def browser_setup() -> tuple[str, str]:
    """(node, chromium) executables, or skip with what is missing and how to install it."""
    comfyui()
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).is_file():
        pytest.skip(f"browser check: no Chromium at {chromium} (apt-get install chromium, or set CHROMIUM)")
    node = shutil.which("node")
    if node is None:
        pytest.skip("browser check: node is not installed")
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        pytest.skip("browser check: playwright-core missing (npm ci --prefix tests/integration/browser)")
    return node, chromium


class WebServer(ComfyServer):
    extra_folders = ("text_encoders", "vae", "clip_vision")


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Start ComfyUI, run the browser script once; the report, with ``out`` (the screenshot folder) added."""
    node, chromium = browser_setup()
    root = tmp_path_factory.mktemp("comfy_web")
    info = json.loads(SNAPSHOT.read_text())
    for path in WORKFLOWS:  # empty placeholders so every file widget of the examples has its value listed
        for folder, name in used_files(json.loads(path.read_text()), info):
            if folder == "input":
                continue
            target = root / "models" / folder / name
            if name.endswith("/"):
                target = target / "transformer" / "diffusion_pytorch_model.safetensors"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
    write_random_checkpoint(root / "models" / "diffusion_models" / CHECKPOINT, wan_comfy_shapes())
    write_random_checkpoint(root / "models" / "diffusion_models" / RUN_CHECKPOINT, wan_comfy_shapes(**RUN_SHAPES))
    # a fresh user: skip the first-run templates browser that would cover the canvas
    settings = root / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    out = tmp_path_factory.mktemp("web_ui_artifacts")
    with WebServer(root) as srv:
        proc = subprocess.run(
            [node, str(SCRIPT), "--url", srv.url, "--out", str(out), "--chromium", chromium,
             "--checkpoint", CHECKPOINT, "--run-checkpoint", RUN_CHECKPOINT,
             "--picker-workflow", str(PICKER_WORKFLOW), "--pick", PICK, "--group", GROUP,
             *map(str, WORKFLOWS)],
            cwd=BROWSER_DIR, capture_output=True, text=True, timeout=600)
    report_file = out / "report.json"
    if not report_file.is_file():
        raise AssertionError(f"ui_check.mjs wrote no report ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    report = json.loads(report_file.read_text())
    report["out"] = out
    report["tiny_checkpoint"] = root / "models" / "diffusion_models" / CHECKPOINT
    return report


def test_browser_run_completed(ui: dict) -> None:
    assert ui.get("extension_loaded"), ui
    assert ui.get("failure") is None, ui["failure"]
    assert ui["page_errors"] == [], ui["page_errors"]
    ours = [e for e in ui["console_errors"] if "dit-quant" in e or "dit_quant" in e]
    assert ours == [], ours


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_example_workflow_loads_without_missing_nodes(ui: dict, path: Path) -> None:
    res = ui["workflows"][path.stem]
    wf = json.loads(path.read_text())
    assert sorted(n["type"] for n in res["nodes"]) == sorted(n["type"] for n in wf["nodes"])
    unknown = [n["type"] for n in res["nodes"] if not n["registered"] or n["has_errors"]]
    assert unknown == [], f"frontend does not know: {unknown}"
    assert res["warnings"] == [], res["warnings"]
    assert res["changed_widgets_values"] == [], res["changed_widgets_values"]
    no_button = [n["type"] for n in res["nodes"] if n["ignored_layers"] and not n["pick_button"]]
    assert no_button == [], f"no 'Pick layers…' button on {no_button}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_example_opens_on_its_note_and_loaders(ui: dict, path: Path) -> None:
    """As loaded in a 1280x720 window: the saved view applied, text drawn (not the zoomed-out bare boxes), the
    note and the model loaders that run wholly visible (no point of them outside the window or under the side
    bar, menu bars or minimap), the note's text without scrolling."""
    res = ui["workflows"][path.stem]
    view, wf = res["view"], json.loads(path.read_text())
    assert view["window"] == [1280, 720], view["window"]
    assert view["ds"]["scale"] == pytest.approx(wf["extra"]["ds"]["scale"], abs=1e-6), view["ds"]
    assert view["ds"]["offset"] == pytest.approx(wf["extra"]["ds"]["offset"], abs=0.05), view["ds"]
    assert not view["low_quality"], view["ds"]
    seen = {str(n["id"]): n for n in view["nodes"]}
    must = view_targets(wf["nodes"])[-1]
    hidden = {n["id"]: (seen[str(n["id"])]["visible"], seen[str(n["id"])]["hidden"]) for n in must
              if seen[str(n["id"])]["visible"] < 1}
    assert hidden == {}, hidden
    note = seen[str(NOTE_ID)]["text"]
    assert note and note["scroll_height"] <= note["client_height"] + 1, note
    assert res["screenshot"] in {Path(s).name for s in ui["screenshots"]}


def assert_headline_fits(s: dict) -> None:
    """The summary box ``s`` (summary_check.mjs) shows its three headline lines without scrolling, in the node."""
    heights = s["headline_heights"]
    assert heights[0] < heights[1] < heights[2] <= s["client_height"], s  # each line adds rows; all three fit
    assert s["scroll_top"] == 0 and s["full_height"] > s["client_height"], s  # details below need scrolling
    x, y, w, h = s["box"]
    nx, ny, nw, nh = s["node_box"]
    assert nx <= x and ny <= y and x + w <= nx + nw and y + h <= ny + nh, (s["box"], s["node_box"])
    assert all(s["on_top"]), s["on_top"]  # nothing drawn over the headline
    assert s["scale"] == 1 and s["size"][0] == s["default_size"][0], s  # the node as added, not widened


def test_node_summary_headline_visible_after_a_run(ui: dict) -> None:
    """A default-sized Load FP8 DiT node run on the tiny checkpoint: its summary box shows the headline (scheme and
    layers, weights before -> after, backend) wrapped at the node's width without scrolling, inside the node; so it
    does with the textarea font at 16 px (ComfyUI's setting; 10 by default)."""
    assert ui.get("failure") is None, ui["failure"]
    s = ui["summary"]
    head = s["headline"]
    assert "layers quantized: 20, kept in high precision: 6" in head[0], head
    assert head[1].startswith("weights: ") and " -> " in head[1], head
    assert head[2].startswith("backend: "), head
    assert s["text"].splitlines()[3].startswith("file: "), s["text"]  # details after the headline
    assert s["font"].startswith("10px"), s["font"]
    assert_headline_fits(s)
    big = ui["summary_font16"]
    assert big["font"].startswith("16px") and big["headline"] == head, big
    assert big["headline_heights"][2] > 2 * s["headline_heights"][2] - 20, (big, s)  # it did wrap to more rows
    assert_headline_fits(big)


def test_missing_node_check_is_not_vacuous(ui: dict) -> None:
    ctl = ui["negative_control"]
    assert [n["type"] for n in ctl["nodes"] if not n["registered"]] == ["DiTQuantNoSuchNode"]
    assert any("DiTQuantNoSuchNode" in w for w in ctl["warnings"]), ctl["warnings"]


def expected_ignored_text(layers: list[dict], selected: set[str]) -> str:
    """The spec of the text the dialog writes: a whole dotted block collapses to its name, else layer names."""
    lines: list[str] = []
    blocks: dict[str, list[str]] = {}
    for r in layers:
        blocks.setdefault(r["block"], []).append(r["name"])
    for block, names in blocks.items():
        picked = [n for n in names if n in selected]
        if picked and len(picked) == len(names) > 1 and "." in block:
            lines.append(block)
        else:
            lines.extend(picked)
    return "\n".join(lines)


def test_pick_layers_dialog_writes_the_widget(ui: dict) -> None:
    assert ui.get("failure") is None, ui["failure"]
    p = ui["picker"]
    listing = list_layers(str(ui["tiny_checkpoint"]))
    layers = listing["layers"]
    assert p["button_on_top"] and p["error"] == []
    assert CHECKPOINT in p["header"] and "Wan" in p["header"]
    assert p["layers"] == [r["name"] for r in layers]  # every linear / conv layer of the file, in order
    assert "+ preset default" in p["buttons"] and "+ preset quality" in p["buttons"]
    assert p["filtered"] == ["blocks.1.ffn.0", "blocks.1.ffn.2"]  # "ffn 1" typed in the filter box
    assert p["nodes_kept_while_typing"], "Backspace / Delete in the filter box reached the canvas"

    selected = {r["name"] for r in layers if r["presets"]["default"]} | {PICK}
    selected |= {r["name"] for r in layers if block_of(r["name"]) == GROUP}
    assert set(p["checked_in_dialog"]) == selected
    assert p["stats"].startswith(f"{len(selected)} of {len(layers)} layers")
    states = {g["text"].split()[0]: g["state"] for g in p["groups"]}
    assert states[GROUP] == "all" and states[block_of(PICK)] == "some" and states["head"] == "all"

    text = expected_ignored_text(layers, selected)
    assert text.splitlines()[0] == GROUP
    assert p["widget_value"] == text
    assert p["textarea_value"] == text
    assert text in p["serialized"]  # saved with the workflow
    assert sorted(p["checked_on_reopen"]) == sorted(selected)  # the server matches the text back to the layers
    assert p["widget_value_after_escape"] == text


def test_screenshots_kept_as_artifacts(ui: dict, capsys: pytest.CaptureFixture[str]) -> None:
    shots = [Path(s) for s in ui["screenshots"]]
    names = {s.name for s in shots}
    assert {"pick_layers_dialog.png", "after_apply.png", "summary_after_run.png", "summary_node.png",
            "summary_node_font16.png"} <= names, names
    assert {ui["workflows"][p.stem]["screenshot"] for p in WORKFLOWS} <= names, names
    for s in shots:
        assert s.stat().st_size > 10_000 and s.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", s
    dest = Path(os.environ.get("DIT_QUANT_ARTIFACTS", REPO / "build" / "test-artifacts")) / "web_ui"
    dest.mkdir(parents=True, exist_ok=True)
    for s in [*shots, ui["out"] / "report.json"]:
        shutil.copy2(s, dest / s.name)
    with capsys.disabled():
        print(f"\nweb UI screenshots: {dest} ({', '.join(sorted(names))}); pytest copy: {ui['out']}")


def test_no_example_node_drawn_over_another(ui: dict) -> None:
    """Once the frontend has sized the nodes (some are drawn taller than saved), no two overlap."""
    overlaps = {k: v["overlaps"] for k, v in ui["workflows"].items() if v["overlaps"]}
    assert overlaps == {}, overlaps
