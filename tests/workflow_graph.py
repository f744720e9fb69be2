"""ComfyUI-free helpers for frontend-format workflows (``example_workflows/*.json``) and ``/object_info`` data.

- ``widget_slots``: the ``widgets_values`` layout the frontend uses for a node type (widget inputs in order,
  plus the extra "control after generate" and upload values it stores).
- ``check_workflow``: every node type exists, every link fits, every widget value is valid for its input.
- ``to_api_prompt``: the API prompt (``POST /prompt`` body) the frontend would queue for a workflow.
- ``snapshot``: the entries of ``/object_info`` the workflows need, without the machine-specific file lists.
"""

from __future__ import annotations

import math
from typing import Any

# Nodes that live only in the frontend (never sent to the server).
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
NOTE_TYPES = {"Note", "MarkdownNote"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# ComfyUI's V3 dynamic inputs: any type, matched across the node's inputs and output (ComfySwitchNode), and a
# socket list that grows as it is connected (ComfyMathExpression's values.a, values.b...).
MATCH_TYPE, AUTOGROW = "COMFY_MATCHTYPE_V3", "COMFY_AUTOGROW_V3"
# (node type, input) -> model folder: combos whose options are the files of a folder on the machine.
FILE_WIDGETS: dict[tuple[str, str], str] = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("DiTQuantLoadFP8DiT", "unet_name"): "diffusion_models",
    ("DiTQuantModelOptLoader", "source"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("LoraLoader", "lora_name"): "loras",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("LoadImage", "image"): "input",
    ("LoadVideo", "file"): "input",
}


def input_specs(info: dict) -> list[tuple[str, Any, dict]]:
    """(name, type or option list, options) of every required and optional input, in the node's order."""
    out = []
    for section in ("required", "optional"):
        entries = info["input"].get(section, {})
        order = info.get("input_order", {}).get(section, list(entries))
        for name in order:
            spec = entries[name]
            out.append((name, spec[0], spec[1] if len(spec) > 1 else {}))
    return out


def is_widget(kind: Any) -> bool:
    return isinstance(kind, list) or kind in WIDGET_TYPES


def combo_options(kind: Any, opts: dict) -> list | None:
    if isinstance(kind, list):
        return kind
    return opts.get("options") if kind == "COMBO" else None


def widget_slots(info: dict) -> list[tuple[str, str | None]]:
    """``widgets_values`` layout: (input name, None) per widget, (input name, "control"|"upload") for extras."""
    slots: list[tuple[str, str | None]] = []
    for name, kind, opts in input_specs(info):
        if not is_widget(kind):
            continue
        slots.append((name, None))
        if opts.get("control_after_generate"):
            slots.append((name, "control"))
        if opts.get("image_upload") or opts.get("video_upload"):
            slots.append((name, "upload"))
    return slots


def sockets(info: dict) -> list[tuple[str, str]]:
    """(name, type) of the inputs drawn as sockets (everything that is not a widget)."""
    return [(n, k) for n, k, _ in input_specs(info) if not is_widget(k)]


def value_error(node_type: str, name: str, kind: Any, opts: dict, value: Any) -> str | None:
    """Why ``value`` is not valid for the input, or None. File combos only need a plausible file name."""
    if (node_type, name) in FILE_WIDGETS:
        return None if isinstance(value, str) and value else f"{name}: expected a file name, got {value!r}"
    options = combo_options(kind, opts)
    if options is not None:
        return None if value in options else f"{name}: {value!r} is not one of {options}"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{name}: expected a boolean, got {value!r}"
    if kind == "STRING":
        return None if isinstance(value, str) else f"{name}: expected a string, got {value!r}"
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name}: expected a number, got {value!r}"
        if kind == "INT" and value != int(value):
            return f"{name}: expected an integer, got {value!r}"
        lo, hi = opts.get("min", -math.inf), opts.get("max", math.inf)
        if not lo <= value <= hi:
            return f"{name}: {value} outside [{lo}, {hi}]"
        step = opts.get("step")
        if kind == "INT" and step and (value - (lo if lo != -math.inf else 0)) % step:
            return f"{name}: {value} is not a multiple of step {step} from {lo}"
    return None


def autogrow_inputs(info: dict) -> dict[str, str]:
    """The sockets a growing input (``COMFY_AUTOGROW_V3``) can add: ``values.a``, ``images.image0``... -> type."""
    out = {}
    for name, kind, opts in input_specs(info):
        if kind != AUTOGROW:
            continue
        template = opts.get("template", {})
        (sub_kind, *_), = template.get("input", {}).get("required", {}).values()
        names = template.get("names") or [f"{template.get('prefix', '')}{k}" for k in range(template.get("max", 50))]
        out.update({f"{name}.{n}": sub_kind for n in names})
    return out


def types_match(declared: str, given: str | None) -> bool:
    """Whether an output of type ``given`` may feed an input declared ``declared`` (``*``, match types, unions)."""
    if given is None:
        return False
    if MATCH_TYPE in (declared, given) or "*" in (declared, given):
        return True
    return given in declared.split(",")


def _links(workflow: dict) -> dict[int, list]:
    return {link[0]: link for link in workflow["links"]}


def check_workflow(workflow: dict, object_info: dict) -> list[str]:
    """Problems of a frontend-format workflow against ``/object_info`` data (empty when valid)."""
    errors: list[str] = []
    links = _links(workflow)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for node in workflow["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in FRONTEND_ONLY:
            continue
        info = object_info.get(node["type"])
        if info is None:
            errors.append(f"{where}: unknown node type")
            continue
        slots, values = widget_slots(info), node.get("widgets_values", [])
        if len(values) != len(slots):
            errors.append(f"{where}: {len(values)} widget values for {len(slots)} widgets {slots}")
            continue
        specs = {n: (k, o) for n, k, o in input_specs(info)}
        for (name, extra), value in zip(slots, values, strict=True):
            if extra == "control" and value not in ("fixed", "increment", "decrement", "randomize"):
                errors.append(f"{where}: {name}: bad control_after_generate {value!r}")
            elif extra is None and (msg := value_error(node["type"], name, *specs[name], value)):
                errors.append(f"{where}: {msg}")
        declared = dict(sockets(info))
        declared.update({n: ("COMBO" if isinstance(k, list) else k) for n, k, _ in input_specs(info)
                         if is_widget(k) and any(i.get("widget", {}).get("name") == n for i in node.get("inputs", []))})
        declared.update(autogrow_inputs(info))
        for inp in node.get("inputs", []):
            if inp["name"] not in declared:
                errors.append(f"{where}: input {inp['name']!r} does not exist")
                continue
            if inp.get("link") is None:
                continue
            link = links.get(inp["link"])
            src = nodes.get(link[1]) if link else None
            if src is None:
                errors.append(f"{where}: input {inp['name']} has a dangling link {inp['link']}")
                continue
            if src["type"] in FRONTEND_ONLY:  # a PrimitiveNode takes the type of the widget it drives
                continue
            out_types = object_info.get(src["type"], {}).get("output", [])
            out_type = out_types[link[2]] if link[2] < len(out_types) else None
            if not types_match(declared[inp["name"]], out_type):
                errors.append(f"{where}: input {inp['name']} ({declared[inp['name']]}) fed {out_type}")
        for name, kind in sockets(info):
            if kind == AUTOGROW:
                continue
            if name in info["input"].get("required", {}) and not any(
                    i["name"] == name and i.get("link") is not None for i in node.get("inputs", [])):
                errors.append(f"{where}: required input {name} ({kind}) is not connected")
    return errors


def to_api_prompt(workflow: dict, object_info: dict) -> dict:
    """The API prompt for a workflow: widget values by input name, links as ``[source id, output index]``."""
    links = _links(workflow)
    nodes = {n["id"]: n for n in workflow["nodes"]}

    def source(link_id: int) -> list | None:
        """[source id, output index] a link brings, through bypassed nodes (as the frontend does), or None."""
        _, src, slot, _, _, kind = links[link_id]
        node = nodes[src]
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) == 2:  # a primitive's value is the widget's own
            return None
        if node.get("mode", 0) == 4:  # bypassed: the first linked input of the same type passes through
            for inp in node.get("inputs", []):
                if inp.get("link") is not None and types_match(inp["type"], kind):
                    return source(inp["link"])
            return None
        return [str(src), slot]

    prompt: dict[str, dict] = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):
            continue
        info = object_info[node["type"]]
        inputs: dict[str, Any] = {}
        for (name, extra), value in zip(widget_slots(info), node.get("widgets_values", []), strict=False):
            if extra is None:
                inputs[name] = value
        for inp in node.get("inputs", []):
            if inp.get("link") is not None and (src := source(inp["link"])) is not None:
                inputs[inp["name"]] = src
            elif inp.get("widget") is None:
                inputs.pop(inp["name"], None)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def used_files(workflow: dict, object_info: dict) -> list[tuple[str, str]]:
    """(folder, file name) of every file widget value in the workflow."""
    out = []
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        slots = widget_slots(object_info[node["type"]])
        for (name, extra), value in zip(slots, node.get("widgets_values", []), strict=False):
            folder = FILE_WIDGETS.get((node["type"], name))
            if folder and extra is None:
                out.append((folder, value))
    return out


def snapshot(object_info: dict, node_types: set[str]) -> dict:
    """The ``/object_info`` entries of ``node_types`` with file lists removed (they depend on the machine)."""
    out = {}
    for ntype in sorted(node_types):
        info = object_info[ntype]
        entry = {"input": {}, "input_order": info.get("input_order", {}), "output": info["output"],
                 "output_name": info.get("output_name", info["output"]), "python_module": info["python_module"]}
        for section in ("required", "optional"):
            if section not in info["input"]:
                continue
            sec = {}
            for name, spec in info["input"][section].items():
                opts = {k: v for k, v in (spec[1] if len(spec) > 1 else {}).items() if k != "tooltip"}
                kind = spec[0]
                if (ntype, name) in FILE_WIDGETS:
                    kind, opts = "COMBO", {**{k: v for k, v in opts.items() if k != "options"},
                                           "file_folder": FILE_WIDGETS[(ntype, name)]}
                sec[name] = [kind, opts]
            entry["input"][section] = sec
        out[ntype] = entry
    return out


Difference = tuple  # (kind, node id, detail...): "added" / "removed" / "type" / "mode" / "widget" / "link+" / "link-"


def _named_widgets(node: dict, object_info: dict) -> dict[str, Any]:
    """A node's widget values by input name (by position for frontend-only nodes such as PrimitiveNode)."""
    values = node.get("widgets_values") or []
    info = object_info.get(node["type"])
    if info is None or isinstance(values, dict):
        return {f"#{k}": v for k, v in enumerate(values)} if isinstance(values, list) else dict(values)
    slots = widget_slots(info)
    return {name: v for (name, extra), v in zip(slots, values, strict=False) if extra is None}


def _link_set(graph: dict, passthrough: set[int]) -> set[tuple[int, int, int, str]]:
    """(source id, output slot, target id, input name) of every link, pass-through nodes bridged over."""
    nodes = {n["id"]: n for n in graph["nodes"]}
    feeds = {}  # pass-through node -> what feeds its (single) linked input
    for _, src, slot, dst, _, _ in graph["links"]:
        if dst in passthrough:
            feeds[dst] = (src, slot)
    out = set()
    for _, src, slot, dst, dslot, _ in graph["links"]:
        if dst in passthrough or nodes[dst]["type"] in NOTE_TYPES:
            continue
        while src in passthrough:
            src, slot = feeds[src]
        out.add((src, slot, dst, nodes[dst]["inputs"][dslot]["name"]))
    return out


def graph_differences(official: dict, example: dict, object_info: dict) -> set[Difference]:
    """How ``example`` differs from the (flattened) ``official`` graph: nodes by id, widget values by name, modes,
    links by (source, slot, target, input name). Notes are left out. A node added in ``example`` whose only input is
    linked is treated as inserted on that link: the links through it are compared as if it were not there."""
    old = {n["id"]: n for n in official["nodes"] if n["type"] not in NOTE_TYPES}
    new = {n["id"]: n for n in example["nodes"] if n["type"] not in NOTE_TYPES}
    diffs: set[Difference] = set()
    diffs |= {("removed", i, old[i]["type"]) for i in old.keys() - new.keys()}
    added = new.keys() - old.keys()
    diffs |= {("added", i, new[i]["type"]) for i in added}
    for i in old.keys() & new.keys():
        a, b = old[i], new[i]
        if a["type"] != b["type"]:
            diffs.add(("type", i, a["type"], b["type"]))
        if a.get("mode", 0) != b.get("mode", 0):
            diffs.add(("mode", i, a.get("mode", 0), b.get("mode", 0)))
        wa, wb = _named_widgets(a, object_info), _named_widgets(b, object_info)
        for name in wa.keys() & wb.keys():
            if wa[name] != wb[name]:
                diffs.add(("widget", i, name))
    passthrough = {i for i in added if sum(inp.get("link") is not None for inp in new[i].get("inputs", [])) == 1}
    la, lb = _link_set(official, set()), _link_set(example, passthrough)
    diffs |= {("link-", *e) for e in la - lb} | {("link+", *e) for e in lb - la}
    return diffs
