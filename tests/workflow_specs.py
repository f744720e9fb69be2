"""The example workflows: ComfyUI's own templates with the pack's nodes swapped in, and the builder that writes them.

``python tests/workflow_specs.py`` rewrites ``example_workflows/*.json`` (and a labelled ``.jpg`` thumbnail each).
Each example starts from an official template (the pinned ``comfyui-workflow-templates-json`` package), flattened
(``official_templates.flatten``); the official notes are replaced by the pack's note, and the ``Change`` list of the
example is applied: the pack's loader in place of ``UNETLoader``, a pack node inserted on a loader's output, a
widget value changed. Every change carries its reason; the note and README list them, and
``tests/test_workflows.py`` checks that the examples differ from the official templates by exactly these changes.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from official_templates import Edge, flatten, load_template, relink
from workflow_graph import FRONTEND_ONLY, NOTE_TYPES, combo_options, input_specs, sockets, used_files, widget_slots

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "example_workflows"
SNAPSHOT = Path(__file__).resolve().parent / "data" / "object_info_snapshot.json"
# The saved view: the canvas area of a 1280x720 window that the frontend (1.47) leaves free, a box (left, top,
# right, bottom) in screen pixels: right of its side bar, under its tab bar and the floating "Graph" / Run bars,
# left of the minimap (shown from 1024 px wide) and its zoom bar at the bottom right.
VIEW = (62, 94, 1015, 705)
# Below a scale of about 0.57 (14 px titles drawn under 8 px) the frontend draws nodes as bare boxes, no text and
# no note: the view is never saved smaller than this.
READABLE = 0.65
MODEL_LOADERS = {"DiTQuantLoadFP8DiT", "DiTQuantModelOptLoader", "UNETLoader"}
FILE_LOADERS = {"CLIPLoader", "DualCLIPLoader", "VAELoader", "CLIPVisionLoader"}
NOTE_ID = 900
NOTE_CHARS, NOTE_ROW_PX = 70, 12  # the note's text wraps at about 75 characters of 12 px rows at 480 px wide


@dataclass
class Change:
    """One difference from the official template and why.

    ``swap``: node ``node`` becomes ``type`` (links kept by input name / output slot); ``insert``: a new node
    ``node`` of ``type`` takes over output 0 of node ``source`` (it is fed by it and feeds its consumers);
    ``set``: widget values only. ``widgets`` are values by input name.
    """

    kind: str
    node: int
    reason: str
    type: str | None = None
    widgets: dict[str, Any] = field(default_factory=dict)
    source: int | None = None
    title: str | None = None


def swap(node: int, type: str, reason: str, title: str | None = None, **widgets: Any) -> Change:
    return Change("swap", node, reason, type, widgets, title=title)


def insert(node: int, source: int, type: str, reason: str, **widgets: Any) -> Change:
    return Change("insert", node, reason, type, widgets, source=source)


def set_widgets(node: int, reason: str, **widgets: Any) -> Change:
    return Change("set", node, reason, widgets=widgets)


@dataclass
class Example:
    name: str  # file stem; ComfyUI's template browser shows it as the card's title and description
    template: str  # the official template (file stem in comfyui_workflow_templates_json/templates)
    title: str
    description: str
    text: str
    changes: list[Change]


# ----------------------------------------------------------------------------------------------- building


def _widget_index(info: dict, name: str) -> int:
    for k, (slot, extra) in enumerate(widget_slots(info)):
        if slot == name and extra is None:
            return k
    raise KeyError(f"{info.get('name', '?')}: no widget {name!r} in {widget_slots(info)}")


def _fresh_values(info: dict, node_type: str, widgets: dict[str, Any]) -> list:
    """``widgets_values`` of a new node: the given values, else each input's default (or first option)."""
    values = []
    for name, extra in widget_slots(info):
        spec = next(o for n, _, o in input_specs(info) if n == name)
        kind = next(k for n, k, _ in input_specs(info) if n == name)
        if extra == "control":
            values.append("fixed")
        elif extra == "upload":
            values.append("image")
        elif name in widgets:
            values.append(widgets[name])
        elif "default" in spec:
            values.append(spec["default"])
        else:
            options = combo_options(kind, spec)
            if not options:
                raise ValueError(f"{node_type}: needs a value for {name}")
            values.append(options[0])
    unknown = set(widgets) - {n for n, _ in widget_slots(info)}
    if unknown:
        raise KeyError(f"{node_type}: no widget(s) {sorted(unknown)}")
    return values


def _height(info: dict, n_values: int, n_inputs: int) -> int:
    """About the height the frontend draws a node with (multiline boxes, the "Pick layers" button)."""
    multiline = sum(1 for _, _, o in input_specs(info) if o.get("multiline"))
    button = 28 if any(n == "ignored_layers" for n, _, _ in input_specs(info)) else 0
    return 50 + 24 * (n_values + n_inputs) + 96 * multiline + button


def _model_entry(old: dict | None, name: str, folder: str) -> dict:
    url = old["url"].rsplit("/", 1)[0] + "/" + name if old else ""
    return {"name": name, "url": url, "directory": folder}


def _fresh_node(node_id: int, node_type: str, info: dict, widgets: dict[str, Any]) -> dict:
    inputs = [{"name": n, "type": k, "link": None, **({"shape": 7} if n in info["input"].get("optional", {}) else {})}
              for n, k in sockets(info)]
    values = _fresh_values(info, node_type, widgets)
    return {"id": node_id, "type": node_type, "pos": [0, 0], "size": [340, _height(info, len(values), len(inputs))],
            "flags": {}, "order": 0, "mode": 0, "inputs": inputs,
            "outputs": [{"name": n, "type": k, "links": []}
                        for n, k in zip(info["output_name"], info["output"], strict=True)],
            "properties": {"Node name for S&R": node_type}, "widgets_values": values}


def _edges_of(graph: dict) -> list[Edge]:
    return [(lk[1], lk[2], lk[3], lk[4], lk[5]) for lk in graph["links"]]


def _apply_swap(node: dict, ch: Change, info: dict[str, dict], edges: list[Edge]) -> list[Edge]:
    old_info, new_info = info[node["type"]], info[ch.type]
    old_values = dict(zip([n for n, e in widget_slots(old_info) if e is None],
                          [v for (_, e), v in zip(widget_slots(old_info), node["widgets_values"], strict=True)
                           if e is None], strict=True))
    kept = {n: v for n, v in old_values.items() if n in {s for s, _ in widget_slots(new_info)}}
    fresh = _fresh_node(node["id"], ch.type, new_info, {**kept, **ch.widgets})
    old_inputs = [i["name"] for i in node.get("inputs", [])]
    new_inputs = [i["name"] for i in fresh["inputs"]]
    out = []
    for src, sslot, dst, dslot, kind in edges:
        if dst == node["id"]:
            name = old_inputs[dslot]
            if name not in new_inputs:
                raise ValueError(f"{ch.type}: no input {name!r} for the link into node {node['id']}")
            dslot = new_inputs.index(name)
        out.append((src, sslot, dst, dslot, kind))
    models = []
    old_models = {m["directory"]: m for m in node.get("properties", {}).get("models", [])}
    for (name, extra), value in zip(widget_slots(new_info), fresh["widgets_values"], strict=True):
        opts = next(o for n, _, o in input_specs(new_info) if n == name)
        if extra is None and opts.get("file_folder"):
            models.append(_model_entry(old_models.get(opts["file_folder"]), value, opts["file_folder"]))
    if models:
        fresh["properties"]["models"] = models
    fresh["pos"], fresh["mode"] = node["pos"], node.get("mode", 0)
    fresh["size"] = [max(340, node["size"][0]), fresh["size"][1]]
    node.clear()
    node.update(fresh)
    if ch.title:
        node["title"] = ch.title
    return out


def _apply_insert(nodes: dict[int, dict], ch: Change, info: dict[str, dict], edges: list[Edge]) -> list[Edge]:
    new_info = info[ch.type]
    fresh = _fresh_node(ch.node, ch.type, new_info, ch.widgets)
    src = nodes[ch.source]
    fresh["pos"] = [src["pos"][0], src["pos"][1] + src["size"][1] + 60]
    out_type = new_info["output"][0]
    in_slot = next(k for k, i in enumerate(fresh["inputs"]) if i["type"] == out_type)
    moved = [(ch.node, 0, dst, dslot, kind) if (s, sslot) == (ch.source, 0) else (s, sslot, dst, dslot, kind)
             for s, sslot, dst, dslot, kind in edges]
    nodes[ch.node] = fresh
    return [*moved, (ch.source, 0, ch.node, in_slot, out_type)]


def _complete_widgets(node: dict, info: dict) -> None:
    """Append the defaults of widgets ComfyUI added after the template was saved (the frontend does the same)."""
    values = node.get("widgets_values") or []
    if isinstance(values, dict):
        return
    slots = widget_slots(info)
    if len(values) < len(slots):
        node["widgets_values"] = values + _fresh_values(info, node["type"], {})[len(values):]


def _apply_set(node: dict, ch: Change, info: dict[str, dict]) -> None:
    for name, value in ch.widgets.items():
        node["widgets_values"][_widget_index(info[node["type"]], name)] = value


def drawn_height(node: dict, info: dict[str, dict]) -> float:
    """The height the frontend draws ``node`` at, at least: its saved height, or where more, the rows of its
    sockets and widgets (20 px a socket row, 24 a widget, 14 of margins; LiteGraph's computeSize in frontend 1.47:
    e.g. a CFGNorm saved 60 tall is drawn 82)."""
    if node["type"] in FRONTEND_ONLY:
        return node["size"][1]
    sockets_in = sum(1 for i in node.get("inputs", []) if not i.get("widget"))
    widgets = sum(1 for _, extra in widget_slots(info[node["type"]]) if extra != "upload")
    return max(node["size"][1], 20 * max(sockets_in, len(node.get("outputs", []))) + 24 * widgets + 14)


def _overlaps(a: dict, b: dict, ha: float, hb: float, gap: float = 20) -> bool:
    (ax, ay), (aw, _) = a["pos"], a["size"]
    (bx, by), (bw, _) = b["pos"], b["size"]
    return ax < bx + bw + gap and bx < ax + aw + gap and ay - 30 < by + hb + gap and by - 30 < ay + ha + gap


def _settle(nodes: list[dict], info: dict[str, dict]) -> None:
    """Move nodes down, top to bottom, until none overlaps another as the frontend draws them (a swapped-in node
    is taller; some nodes are drawn taller than the template saved them)."""
    height = {n["id"]: drawn_height(n, info) for n in nodes}
    placed: list[dict] = []
    for node in sorted(nodes, key=lambda n: (n["pos"][1], n["pos"][0])):
        moved = True
        while moved:
            moved = False
            for other in placed:
                if _overlaps(node, other, height[node["id"]], height[other["id"]]):
                    node["pos"] = [node["pos"][0], other["pos"][1] + height[other["id"]] + 50]
                    moved = True
        placed.append(node)


def bounding_box(nodes: list[dict]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of all nodes, title bars (30 px above ``pos``) included."""
    return (min(n["pos"][0] for n in nodes), min(n["pos"][1] - 30 for n in nodes),
            max(n["pos"][0] + n["size"][0] for n in nodes), max(n["pos"][1] + n["size"][1] for n in nodes))


def is_model_node(node: dict) -> bool:
    """A node that loads the diffusion model, or one of the pack's nodes that turns it (INT8 NPU Quantize)."""
    return node["type"] in MODEL_LOADERS or (node["type"].startswith("DiTQuant")
                                             and any(o.get("type") == "MODEL" for o in node.get("outputs", [])))


def view_targets(nodes: list[dict]) -> list[list[dict]]:
    """What the saved view shows, first choice first: the whole graph; the note, the model nodes, the pack's
    other nodes and the text encoder / VAE loaders that run; the note and the model nodes that run."""
    note = [n for n in nodes if n["id"] == NOTE_ID]
    active = [n for n in nodes if n["mode"] == 0]
    loaders = [n for n in active if is_model_node(n)]
    more = [n for n in active if n not in loaders and (n["type"] in FILE_LOADERS or n["type"].startswith("DiTQuant"))]
    return [nodes, note + loaders + more, note + loaders]


def fit_view(nodes: list[dict], view: tuple[int, int, int, int] = VIEW) -> dict:
    """``extra.ds`` (screen = (pos + offset) * scale) that puts the first of ``view_targets`` that fits at a
    readable scale (``READABLE`` to 1) into the screen box ``view``, its top left corner at the box's; else the
    last one at ``READABLE``."""
    left, top, right, bottom = view
    for group in view_targets(nodes):
        x0, y0, x1, y1 = bounding_box(group)
        scale = math.floor(min(1.0, (right - left) / (x1 - x0), (bottom - top) / (y1 - y0)) * 1000) / 1000
        if scale >= READABLE:
            break
    scale = max(scale, READABLE)
    return {"scale": scale, "offset": [round(left / scale - x0, 1), round(top / scale - y0, 1)]}


def reasons(ex: Example) -> list[str]:
    """The reasons of ``ex.changes``, each once, in order."""
    return list(dict.fromkeys(c.reason for c in ex.changes))


def note_text(ex: Example, files: list[tuple[str, str]]) -> str:
    """The note: what the example shows, how it differs from ComfyUI's template and why, then the files."""
    lines = [ex.title, "", ex.text, "", f"ComfyUI's own template '{ex.template}', with these changes:"]
    lines.extend(f"- {reason}" for reason in reasons(ex))
    lines.append("- Notes: this note replaces the template's notes; subgraphs are flattened.")
    lines += ["", "Files and where they go:", "", "ComfyUI/models/"]
    by_folder: dict[str, list[str]] = {}
    for folder, name in files:
        if folder != "input" and name not in by_folder.setdefault(folder, []):
            by_folder[folder].append(name)
    for folder, names in by_folder.items():
        lines.append(f"  {folder}/")
        lines.extend(f"    {name}" for name in names)
    return "\n".join(lines)


def build(ex: Example, info: dict[str, dict]) -> dict:
    """The frontend-format JSON of ``ex``: the flattened official template with ``ex.changes`` applied."""
    official = flatten(load_template(ex.template))
    nodes = {n["id"]: n for n in official["nodes"] if n["type"] not in NOTE_TYPES}
    edges = [e for e in _edges_of(official) if e[0] in nodes and e[2] in nodes]
    for node in nodes.values():
        if node["type"] not in FRONTEND_ONLY:
            _complete_widgets(node, info[node["type"]])
    for ch in ex.changes:
        if ch.kind == "swap":
            edges = _apply_swap(nodes[ch.node], ch, info, edges)
        elif ch.kind == "insert":
            edges = _apply_insert(nodes, ch, info, edges)
        elif ch.kind == "set":
            _apply_set(nodes[ch.node], ch, info)
        else:
            raise ValueError(f"{ex.name}: unknown change kind {ch.kind!r}")
    body = list(nodes.values())
    _settle(body, info)
    x0, y0, _, _ = bounding_box(body)
    graph = relink(body, edges)
    text = note_text(ex, used_files(graph, info))
    rows = sum(math.ceil(len(line) / NOTE_CHARS) or 1 for line in text.split("\n"))
    # left of the graph, level with the first model loader (the view shows the two together)
    loader_ys = [n["pos"][1] for n in body if n["type"] in MODEL_LOADERS and n["mode"] == 0]
    note = {"id": NOTE_ID, "type": "Note", "pos": [x0 - 520, min(loader_ys, default=y0 + 30)],
            "size": [480, 40 + NOTE_ROW_PX * rows], "flags": {}, "order": 0, "mode": 0, "inputs": [], "outputs": [],
            "title": "Read me: files, changes", "properties": {}, "widgets_values": [text],
            "color": "#432", "bgcolor": "#653"}
    all_nodes = [note, *sorted(body, key=lambda n: n["id"])]
    for order, n in enumerate(all_nodes):
        n["order"] = order
    return {"id": f"dit-quant-{ex.name}", "revision": 0, "last_node_id": max(n["id"] for n in all_nodes),
            "last_link_id": len(graph["links"]), "nodes": all_nodes, "links": graph["links"], "groups": [],
            "config": {},
            "extra": {"ds": fit_view(all_nodes),
                      "dit_quant": {"title": ex.title, "description": ex.description, "template": ex.template}},
            "version": 0.4}


def documented_differences(ex: Example, info: dict[str, dict]) -> set[tuple]:
    """The differences from the official template that ``ex.changes`` declare, in ``graph_differences``' terms:
    a swapped node's type (and the widgets set on it that both types have), an inserted node, a set widget."""
    official = {n["id"]: n for n in flatten(load_template(ex.template))["nodes"]}
    out: set[tuple] = set()
    for ch in ex.changes:
        if ch.kind == "insert":
            out.add(("added", ch.node, ch.type))
            continue
        old_type = official[ch.node]["type"]
        if ch.kind == "swap":
            out.add(("type", ch.node, old_type, ch.type))
        old_widgets = {n for n, e in widget_slots(info[old_type]) if e is None}
        out |= {("widget", ch.node, name) for name in ch.widgets if name in old_widgets}
    return out


README = REPO / "README.md"
README_BEGIN = "<!-- example workflows: begin (tests/workflow_specs.py) -->"
README_END = "<!-- example workflows: end -->"


def readme_block() -> str:
    """The README's list of examples: each one's official template and its changes with their reasons."""
    lines = [README_BEGIN, "", "| example (template card title) | ComfyUI template | changes and why |",
             "|---|---|---|"]
    for ex in workflows():
        why = "<br>".join(f"- {reason}" for reason in reasons(ex))
        lines.append(f"| **{ex.name}**: {ex.description} | `{ex.template}` | {why} |")
    lines += ["", README_END]
    return "\n".join(lines)


def write_readme() -> None:
    text = README.read_text()
    head, _, rest = text.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    if not rest:
        raise ValueError(f"{README}: no {README_BEGIN!r} marker")
    README.write_text(head + readme_block() + tail)


# ----------------------------------------------------------------------------------------------- the examples

LOADER_TEXT = ("Load FP8 DiT quantizes the file while it loads (scheme auto picks per GPU: FP8 per-token x channel "
               "on Ada/Hopper, INT8 W8A8 on Ampere, FP8 weight-only elsewhere) and keeps the family preset's layers "
               "in bf16; 'Pick layers...' lists the file's layers. Its summary (scheme, layers, GB before -> after, "
               "backend) shows on the node after a run.")
LIGHTNING_TEXT = ("Lightning: set the boolean '{label}' to true to run the official {steps}-step LoRA setup "
                  "(LoRA on the quantized model, {steps} steps, cfg 1), as in ComfyUI's template.")
FP16_REASON = ("Load FP8 DiT in place of UNETLoader ({which}), on the fp16 file: it quantizes at load from full "
               "precision (the official {official} also loads: it is already quantized, so it loads as it is)")
INPUT_REASON = ("LoadImage: ComfyUI's sample example.png (ComfyUI/input) in place of the template's own input image, "
                "which ships only with the templates package")


def loader_swap(node: int, file: str, official: str, which: str, title: str | None = None) -> Change:
    return swap(node, "DiTQuantLoadFP8DiT", FP16_REASON.format(which=which, official=official), title=title,
                unet_name=file)


def wan22_a14b(kind: str) -> Example:
    i2v = kind == "i2v"
    high, low = (95, 96) if i2v else (75, 76)
    v = "v1" if i2v else "v1.1"
    changes = [
        loader_swap(high, f"wan2.2_{kind}_high_noise_14B_fp16.safetensors",
                    f"wan2.2_{kind}_high_noise_14B_fp8_scaled.safetensors", "high noise", "Load FP8 DiT (high noise)"),
        loader_swap(low, f"wan2.2_{kind}_low_noise_14B_fp16.safetensors",
                    f"wan2.2_{kind}_low_noise_14B_fp8_scaled.safetensors", "low noise", "Load FP8 DiT (low noise)"),
    ]
    if i2v:
        changes.append(set_widgets(97, INPUT_REASON, image="example.png"))
    label = "Image to Video" if i2v else "Text to Video"
    switch = "Enable 4steps LoRA?" if i2v else "Enable Lightning LoRA"
    text = (f"Wan 2.2 {label} A14B, 640x640, 81 frames (5 s at 16 fps), shift 5: the high-noise expert samples the "
            "first half of the steps, the low-noise expert the rest (two KSamplerAdvanced); 20 steps, cfg 3.5. "
            + LOADER_TEXT + " " + LIGHTNING_TEXT.format(label=switch, steps=4)
            + f" LoRAs: wan2.2_{kind}_lightx2v_4steps_lora_{v}_high/low_noise, strength 1.")
    return Example(f"Wan 2.2 14B {label} - FP8 at load, Lightning LoRA switch", f"video_wan2_2_14B_{kind}",
                   f"Wan 2.2 {label} A14B (FP8 at load)",
                   f"ComfyUI's Wan 2.2 14B {label.lower()} template with both experts quantized at load; "
                   "a 4-step Lightning LoRA switch", text, changes)


def wan22_ti2v_5b(int8: bool = False) -> Example:
    vae = insert(60, 39, "DiTQuantApplyFP8StorageVAE",
                 "Apply FP8 Weight Storage to VAE inserted after VAELoader: the 1.4 GB Wan 2.2 VAE stored in FP8 "
                 "(bf16 compute)", granularity="per-channel")
    text = ("Wan 2.2 TI2V 5B at 1280x704, 121 frames, 24 fps, 20 steps, cfg 5, shift 8. Text to video as it is; for "
            "image to video un-bypass the LoadImage node (Ctrl+B), as in ComfyUI's template. ")
    if int8:
        changes = [insert(61, 37, "DiTQuantInt8NPUQuantize",
                          "INT8 NPU Quantize inserted after UNETLoader: the loaded bf16 model turned into W8A8 INT8",
                          preset="family default", min_layer_size=16, backend="auto"), vae]
        text += ("INT8 NPU Quantize turns the loaded model into W8A8 INT8 (per-channel INT8 weights, per-token "
                 "dynamic INT8 activations): Ascend NPUs (npu_quant_matmul), CUDA GPUs with INT8 tensor cores "
                 "(RTX 30xx, A100) and CPUs. The input MODEL is left unchanged; LoRAs work before and after the node.")
        return Example("Wan 2.2 5B Video - INT8 W8A8 (Ascend NPU, Ampere, CPU)", "video_wan2_2_5B_ti2v",
                       "Wan 2.2 TI2V 5B in INT8 W8A8", "ComfyUI's Wan 2.2 5B template with the model turned into "
                       "W8A8 INT8 after loading (NPU, Ampere, CPU)", text, changes)
    changes = [swap(37, "DiTQuantLoadFP8DiT", "Load FP8 DiT in place of UNETLoader (same fp16 file): quantized at "
                    "load"), vae]
    return Example("Wan 2.2 5B Video (text or image) - FP8 at load", "video_wan2_2_5B_ti2v",
                   "Wan 2.2 TI2V 5B (FP8 at load)", "ComfyUI's Wan 2.2 5B text/image to video template, quantized "
                   "at load, VAE stored in FP8", text + LOADER_TEXT, changes)


def wan21_vace() -> Example:
    changes = [
        swap(113, "DiTQuantLoadFP8DiT", "Load FP8 DiT in place of UNETLoader (14B, same fp16 file): quantized at "
             "load; the CausVid LoRA (0.3) then applies to the quantized model"),
        swap(124, "DiTQuantLoadFP8DiT", "Load FP8 DiT in place of the bypassed 1.3B UNETLoader too (same fp16 file)"),
        set_widgets(73, INPUT_REASON, image="example.png"),
        set_widgets(148, INPUT_REASON, image="example.png"),
    ]
    text = ("Wan 2.1 VACE 14B reference to video: 768x768, 81 frames, CausVid LoRA strength 0.3, 4 steps, cfg 1, "
            "uni_pc, shift 8 (ComfyUI's ref2v template; un-bypass its control-video nodes for control). The VACE "
            "blocks are quantized with the main blocks. " + LOADER_TEXT)
    return Example("Wan 2.1 VACE 14B Reference to Video - FP8 at load", "video_wan_vace_14B_ref2v",
                   "Wan 2.1 VACE 14B reference to video (FP8 at load)",
                   "ComfyUI's VACE 14B ref2v template (CausVid LoRA, 4 steps) quantized at load", text, changes)


def qwen_image(edit: bool) -> Example:
    if edit:
        changes = [
            swap(37, "DiTQuantLoadFP8DiT", "Load FP8 DiT in place of UNETLoader (same qwen_image_edit_fp8_e4m3fn file: "
                 "a plain FP8 cast: FP8 schemes keep its codes under scale 1, INT8 requantizes them)"),
            insert(61, 38, "DiTQuantApplyFP8StorageCLIP",
                   "Apply FP8 Weight Storage to CLIP inserted after CLIPLoader: it stores a bf16 text encoder in FP8; "
                   "on the template's fp8_scaled encoder it leaves the layers as they are", granularity="per-channel"),
            set_widgets(78, INPUT_REASON, image="example.png"),
        ]
        text = ("Qwen-Image-Edit: the input image (ComfyUI/input) edited by the prompt, 20 steps, cfg 2.5, shift 3, "
                "CFGNorm 1, the image scaled to 1.5 megapixels for the text encoder and fed unscaled to VAEEncode "
                "(as in ComfyUI's template). Text encoder: the template's qwen_2.5_vl_7b_fp8_scaled. Or pick "
                "the bf16 qwen_2.5_vl_7b.safetensors in CLIPLoader (an extra 16.6 GB download, from "
                "Comfy-Org/Qwen-Image_ComfyUI split_files/text_encoders): Apply FP8 Weight Storage to CLIP stores it "
                "in FP8 (bf16 compute), closer to bf16 than the fp8_scaled file. " + LOADER_TEXT + " "
                + LIGHTNING_TEXT.format(label="Enable 4steps LoRA", steps=4)
                + " LoRA: Qwen-Image-Edit-Lightning-4steps-V1.0-bf16, strength 1.")
        return Example("Qwen-Image-Edit - FP8 at load, Lightning LoRA switch", "image_qwen_image_edit",
                       "Qwen-Image-Edit (FP8 at load)", "ComfyUI's Qwen-Image-Edit template quantized at load; "
                       "a 4-step Lightning LoRA switch", text, changes)
    changes = [swap(37, "DiTQuantLoadFP8DiT", "Load FP8 DiT in place of UNETLoader (same qwen_image_fp8_e4m3fn file: "
                    "a plain FP8 cast: FP8 schemes keep its codes under scale 1, INT8 requantizes them)")]
    text = ("Qwen-Image text to image at 1328x1328, 20 steps, cfg 4, shift 3.1. The template's "
            "qwen_image_fp8_e4m3fn.safetensors is a plain FP8 cast: Load FP8 DiT keeps its FP8 codes (scale 1) "
            "under the FP8 schemes; "
            "qwen_image_bf16.safetensors (same repository) gives results closer to bf16. " + LOADER_TEXT + " "
            + LIGHTNING_TEXT.format(label="Enable Lightning LoRA", steps=8)
            + " LoRA: Qwen-Image-Lightning-8steps-V1.0, strength 1 (8 steps, cfg 1).")
    return Example("Qwen-Image Text to Image - FP8 at load, Lightning LoRA switch", "image_qwen_image",
                   "Qwen-Image text to image (FP8 at load)", "ComfyUI's Qwen-Image template quantized at load; an "
                   "8-step Lightning LoRA switch", text, changes)


def hunyuan_video15() -> Example:
    changes = [
        swap(12, "DiTQuantLoadFP8DiT", "Load FP8 DiT in place of UNETLoader (720p, same fp16 file): quantized at load"),
        swap(111, "DiTQuantLoadFP8DiT", "Load FP8 DiT in place of the bypassed 1080p SR UNETLoader (same fp16 file)"),
        insert(150, 10, "DiTQuantApplyFP8StorageVAE", "Apply FP8 Weight Storage to VAE inserted after VAELoader: the "
               "2.5 GB VAE stored in FP8 (bf16 compute)", granularity="per-channel"),
    ]
    text = ("HunyuanVideo 1.5 720p text to video: 1280x720, 121 frames, 24 fps, 20 steps, cfg 6, shift 7. The "
            "template's optional branches are here, bypassed: EasyCache, and the 1080p super-resolution pass (latent "
            "upsampler + the distilled 1080p SR model, 8 steps); select them and Ctrl+B to enable. " + LOADER_TEXT)
    return Example("HunyuanVideo 1.5 720p Text to Video - FP8 at load", "video_hunyuan_video_1.5_720p_t2v",
                   "HunyuanVideo 1.5 720p text to video (FP8 at load)",
                   "ComfyUI's HunyuanVideo 1.5 720p template quantized at load, with its optional 1080p SR and "
                   "EasyCache branches", text, changes)


def modelopt() -> Example:
    export = "wan2.2_t2v_a14b_modelopt_fp8/"
    reason = ("ModelOpt Checkpoint Loader in place of UNETLoader ({which}): the {component} component of an NVIDIA "
              "ModelOpt FP8 export folder (rename 'source' to your folder)")
    changes = [
        swap(75, "DiTQuantModelOptLoader", reason.format(which="high noise", component="transformer"),
             title="ModelOpt Checkpoint Loader (high noise)", source=export, component="transformer"),
        swap(76, "DiTQuantModelOptLoader", reason.format(which="low noise", component="transformer_2"),
             title="ModelOpt Checkpoint Loader (low noise)", source=export, component="transformer_2"),
    ]
    text = ("An NVIDIA ModelOpt FP8 export of the Wan 2.2 T2V A14B diffusers pipeline (a folder with transformer/ = "
            "high noise and transformer_2/ = low noise, each config.json + diffusion_pytorch_model*.safetensors), "
            "e.g. from `python -m comfyui_dit_quant calibrate`, in models/diffusion_models. compute 'as exported' "
            "keeps ModelOpt's scales; 'block W8A8' runs 128x128 block FP8. The rest is ComfyUI's Wan 2.2 14B T2V "
            "template (640x640, 81 frames, shift 5, 20 steps, cfg 3.5, and its Lightning LoRA switch).")
    return Example("Wan 2.2 14B Text to Video - ModelOpt FP8 export", "video_wan2_2_14B_t2v",
                   "ModelOpt FP8 export (Wan 2.2 T2V A14B)",
                   "ComfyUI's Wan 2.2 14B text to video template on an NVIDIA ModelOpt FP8 export", text, changes)


def workflows() -> list[Example]:
    return [wan22_a14b("t2v"), wan22_a14b("i2v"), wan22_ti2v_5b(), wan21_vace(), qwen_image(False),
            qwen_image(True), hunyuan_video15(), modelopt(), wan22_ti2v_5b(int8=True)]


def node_types() -> set[str]:
    """Every node type the examples use (read from the official templates and the changes)."""
    out = set()
    for ex in workflows():
        out |= {n["type"] for n in flatten(load_template(ex.template))["nodes"]}
        out |= {c.type for c in ex.changes if c.type}
    return out - NOTE_TYPES - FRONTEND_ONLY


def thumbnail(title: str, path: Path) -> None:
    """A small labelled JPEG (the template browser shows it next to the workflow)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (512, 384), (24, 28, 38))
    draw = ImageDraw.Draw(img)
    try:
        big, small = ImageFont.load_default(size=34), ImageFont.load_default(size=20)
    except TypeError:  # Pillow < 10.1
        big = small = ImageFont.load_default()
    draw.rectangle([0, 0, 512, 8], fill=(80, 160, 255))
    words, lines = title.split(), [""]
    for word in words:
        if len(lines[-1]) + len(word) + 1 > 22:
            lines.append(word)
        else:
            lines[-1] = (lines[-1] + " " + word).strip()
    for k, line in enumerate(lines):
        draw.text((32, 80 + 44 * k), line, fill=(235, 240, 250), font=big)
    draw.text((32, 330), "comfyui-dit-quant", fill=(130, 170, 230), font=small)
    img.save(path, "JPEG", quality=85)


def main() -> None:
    info = json.loads(SNAPSHOT.read_text())
    OUT_DIR.mkdir(exist_ok=True)
    for old in [*OUT_DIR.glob("*.json"), *OUT_DIR.glob("*.jpg")]:
        old.unlink()
    for ex in workflows():
        data = build(ex, info)
        (OUT_DIR / f"{ex.name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        thumbnail(ex.title, OUT_DIR / f"{ex.name}.jpg")
        print(f"wrote {ex.name}")
    write_readme()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
