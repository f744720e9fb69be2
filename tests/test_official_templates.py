"""Flattening ComfyUI's subgraph templates: inner nodes inlined, links through the subgraph's inputs and outputs
reconnected to the nodes outside, unlinked subgraph inputs leaving the inner widget's own value."""

from __future__ import annotations

import pytest

from official_templates import flatten, load_template


def node(id: int, type: str, inputs: list[str] = (), outputs: list[str] = (), pos=(0, 0)) -> dict:
    return {"id": id, "type": type, "pos": list(pos), "size": [200, 100],
            "inputs": [{"name": n, "type": "*", "link": None} for n in inputs],
            "outputs": [{"name": n, "type": "*", "links": []} for n in outputs], "widgets_values": []}


def graph() -> dict:
    inner = [node(11, "ModelSamplingSD3", ["model"], ["MODEL"], (500, 300)),
             node(12, "CLIPTextEncode", ["clip", "text"], ["CONDITIONING"], (900, 300))]
    sub = {"id": "sg-1", "name": "sub", "nodes": inner,
           "inputs": [{"name": "model"}, {"name": "clip"}, {"name": "text"}], "outputs": [{"name": "MODEL"}],
           "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 11, "target_slot": 0, "type": "MODEL"},
                     {"id": 2, "origin_id": -10, "origin_slot": 1, "target_id": 12, "target_slot": 0, "type": "CLIP"},
                     {"id": 3, "origin_id": -10, "origin_slot": 2, "target_id": 12, "target_slot": 1, "type": "STRING"},
                     {"id": 4, "origin_id": 11, "origin_slot": 0, "target_id": -20, "target_slot": 0,
                      "type": "MODEL"}]}
    root = [node(1, "UNETLoader", [], ["MODEL"], (0, 0)), node(2, "CLIPLoader", [], ["CLIP"], (0, 200)),
            node(5, "sg-1", ["model", "clip", "text"], ["MODEL"], (300, 0)),
            node(6, "KSampler", ["model"], ["LATENT"], (600, 0))]
    links = [[7, 1, 0, 5, 0, "MODEL"], [8, 2, 0, 5, 1, "CLIP"], [9, 5, 0, 6, 0, "MODEL"]]
    return {"id": "t", "nodes": root, "links": links, "definitions": {"subgraphs": [sub]}}


def test_flatten_reconnects_through_the_subgraph_boundary() -> None:
    flat = flatten(graph())
    assert "definitions" not in flat and sorted(n["id"] for n in flat["nodes"]) == [1, 2, 6, 11, 12]
    edges = {(lk[1], lk[2], lk[3], lk[4]) for lk in flat["links"]}
    assert edges == {(1, 0, 11, 0), (2, 0, 12, 0), (11, 0, 6, 0)}  # the unlinked "text" input is dropped
    by_id = {n["id"]: n for n in flat["nodes"]}
    (to_sampler,) = [lk[0] for lk in flat["links"] if lk[3] == 6]
    assert by_id[12]["inputs"][1]["link"] is None and by_id[11]["outputs"][0]["links"] == [to_sampler]
    assert by_id[6]["inputs"][0]["link"] == to_sampler
    assert {lk[0] for lk in flat["links"]} == {1, 2, 3} and flat["last_link_id"] == 3
    # inner nodes moved to where the subgraph node was; what was right of it moved right to make room
    assert by_id[11]["pos"] == [300, 0] and by_id[12]["pos"] == [700, 0]
    assert by_id[6]["pos"][0] >= by_id[12]["pos"][0] + 200


def test_flatten_refuses_repeated_ids() -> None:
    g = graph()
    g["definitions"]["subgraphs"][0]["nodes"][0]["id"] = 6
    g["definitions"]["subgraphs"][0]["links"][0]["target_id"] = 6
    g["definitions"]["subgraphs"][0]["links"][3]["origin_id"] = 6
    with pytest.raises(ValueError, match="repeat"):
        flatten(g)


def test_official_wan22_t2v_flattens_to_its_lightning_graph() -> None:
    flat = flatten(load_template("video_wan2_2_14B_t2v"))
    types = [n["type"] for n in flat["nodes"]]
    assert types.count("UNETLoader") == 2 and types.count("LoraLoaderModelOnly") == 2
    assert types.count("ComfySwitchNode") == 5 and types.count("KSamplerAdvanced") == 2
    assert not any(len(t) == 36 and t.count("-") == 4 for t in types)  # no subgraph (uuid) node left
    with pytest.raises(FileNotFoundError, match="no template"):
        load_template("no_such_template")
