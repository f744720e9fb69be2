"""ComfyUI's own workflow templates (the ``comfyui-workflow-templates-json`` package, a pinned dev dependency),
read and flattened: every subgraph node is replaced by the nodes inside it, wired as the subgraph wires them.

``flatten`` returns a plain frontend-format graph (``nodes`` + ``links`` lists, no ``definitions``), the form the
example workflows are saved in, so that the two can be compared node by node and link by link.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
from typing import Any

PACKAGE = "comfyui_workflow_templates_json"
# Subgraph boundary nodes in a subgraph's own links.
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20


def load_template(name: str) -> dict:
    """The official template ``name`` (file stem, e.g. ``video_wan2_2_14B_t2v``) as saved by Comfy-Org."""
    root = importlib.resources.files(PACKAGE) / "templates"
    path = root / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{PACKAGE}: no template {name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


Edge = tuple[int, int, int, int, str]  # (origin id, origin slot, target id, target slot, type)


def _edges(links: list) -> list[Edge]:
    out = []
    for link in links:
        if isinstance(link, dict):
            out.append((link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"], link["type"]))
        else:
            out.append((link[1], link[2], link[3], link[4], link[5]))
    return out


def _inline(nodes: list[dict], edges: list[Edge], subgraphs: dict[str, dict]) -> tuple[list[dict], list[Edge]]:
    """Replace each subgraph node of ``nodes`` by its (recursively inlined) inner nodes."""
    out_nodes: list[dict] = []
    out_edges = list(edges)
    for node in nodes:
        sg = subgraphs.get(node["type"])
        if sg is None:
            out_nodes.append(node)
            continue
        inner_nodes, inner_edges = _inline(copy.deepcopy(sg["nodes"]), _edges(sg["links"]), subgraphs)
        # Inner nodes sit in the subgraph's own coordinates: move them to where the subgraph node was.
        x0 = min(n["pos"][0] for n in inner_nodes)
        y0 = min(n["pos"][1] for n in inner_nodes)
        for n in inner_nodes:
            n["pos"] = [n["pos"][0] - x0 + node["pos"][0], n["pos"][1] - y0 + node["pos"][1]]
        # make room: what was right of the subgraph node moves right by the extra width the inner nodes take
        right = node["pos"][0] + node["size"][0]
        extra = max(n["pos"][0] + n["size"][0] for n in inner_nodes) - right
        for n in nodes:
            if n is not node and n["pos"][0] >= right and extra > 0:
                n["pos"] = [n["pos"][0] + extra + 40, n["pos"][1]]
        names = [i["name"] for i in sg["inputs"]]
        outer_in = {}  # subgraph input slot -> (origin id, origin slot) outside, when linked
        for e in out_edges:
            if e[2] == node["id"]:
                name = node["inputs"][e[3]]["name"]
                outer_in[names.index(name)] = (e[0], e[1])
        outer_out = [e for e in out_edges if e[0] == node["id"]]
        kept = [e for e in out_edges if node["id"] not in (e[0], e[2])]
        for e in inner_edges:
            if e[0] == SUBGRAPH_INPUT:
                if e[1] in outer_in and e[2] != SUBGRAPH_OUTPUT:
                    kept.append((*outer_in[e[1]], e[2], e[3], e[4]))
                continue  # an unlinked subgraph input: the inner widget keeps its own value
            if e[2] == SUBGRAPH_OUTPUT:
                kept.extend((e[0], e[1], o[2], o[3], o[4]) for o in outer_out if o[1] == e[3])
                continue
            kept.append(e)
        out_edges = kept
        out_nodes.extend(inner_nodes)
    return out_nodes, out_edges


def flatten(workflow: dict) -> dict:
    """``workflow`` with its subgraphs inlined; links renumbered, node inputs/outputs rewired to match."""
    subgraphs = {sg["id"]: sg for sg in workflow.get("definitions", {}).get("subgraphs", [])}
    nodes, edges = _inline(copy.deepcopy(workflow["nodes"]), _edges(workflow["links"]), subgraphs)
    ids = [n["id"] for n in nodes]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{workflow.get('id')}: node ids repeat across subgraphs: {sorted(ids)}")
    return {**{k: v for k, v in workflow.items() if k != "definitions"}, **relink(nodes, edges)}


def relink(nodes: list[dict], edges: list[Edge]) -> dict[str, Any]:
    """``nodes`` and a fresh ``links`` list for ``edges`` (ids 1..n); every socket's link fields set from it."""
    by_id = {n["id"]: n for n in nodes}
    for n in nodes:
        for inp in n.get("inputs", []):
            inp["link"] = None
        for out in n.get("outputs", []):
            out["links"] = []
    links = []
    for k, (src, sslot, dst, dslot, kind) in enumerate(sorted(edges, key=lambda e: (e[2], e[3])), start=1):
        links.append([k, src, sslot, dst, dslot, kind])
        by_id[dst]["inputs"][dslot]["link"] = k
        by_id[src]["outputs"][sslot]["links"].append(k)
    return {"nodes": nodes, "links": links, "last_node_id": max(by_id), "last_link_id": len(links)}
