"""Integration tier: the pack's nodes in a real headless ComfyUI server (CPU), over /object_info and /prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfyui_dit_quant.kernels.dispatch import BACKENDS
from comfyui_dit_quant.quant.formats.io import read_checkpoint

from comfy_env import comfyui
from comfy_server import ComfyServer
from conftest import wan_comfy_shapes, write_random_checkpoint

LOADER, SAVER = "DiTQuantLoadFP8DiT", "DiTQuantSaveQuantizedDiT"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    comfyui()
    root = tmp_path_factory.mktemp("comfy")
    write_random_checkpoint(root / "models/diffusion_models/tiny_wan_bf16.safetensors",
                            wan_comfy_shapes(dim=256, ffn=512, layers=2, text_dim=4096, freq_dim=256))
    with ComfyServer(root) as srv:
        yield srv


def loader_inputs(**kw: object) -> dict:
    return {"unet_name": "tiny_wan_bf16.safetensors", "scheme": "fp8 block", "block_size": "64x64",
            "preset": "family default", "ignored_layers": "", "compute_dtype": "auto", "backend": "auto", **kw}


def test_nodes_listed_with_widgets_and_tooltips(server: ComfyServer) -> None:
    info = server.get("/object_info")
    load, save = info[LOADER], info[SAVER]
    assert load["display_name"] == "Load FP8 DiT" and load["category"] == "loaders/quantized"
    assert save["display_name"] == "Save Quantized DiT" and save["output_node"] is True
    req = load["input"]["required"]
    assert list(req) == ["unet_name", "scheme", "block_size", "preset", "ignored_layers", "compute_dtype", "backend"]
    assert "tiny_wan_bf16.safetensors" in req["unet_name"][1]["options"]
    assert req["scheme"][1]["options"] == ["auto", "fp8 per-tensor", "fp8 per-token x channel", "fp8 block",
                                           "fp8 weight-only (per-channel)", "fp8 weight-only (block)", "int8 W8A8"]
    assert req["block_size"][1]["default"] == "128x128"
    assert req["ignored_layers"][1]["multiline"] is True
    assert req["preset"][1]["options"] == ["family default", "none", "quality"]
    assert req["backend"][1]["options"] == list(BACKENDS)
    assert {"auto", "cublas", "triton", "eager"} <= set(BACKENDS)
    for node in (load, save):
        for name, spec in node["input"]["required"].items():
            assert spec[1].get("tooltip"), f"{name} has no tooltip"
    assert load["output"] == ["MODEL"]


def test_bad_block_size_is_refused_at_validation(server: ComfyServer) -> None:
    status, body = server.post_prompt({
        "1": {"class_type": LOADER, "inputs": loader_inputs(block_size="100x128")},
        "2": {"class_type": SAVER, "inputs": {"model": ["1", 0], "filename_prefix": "bad", "format": "auto"}}})
    assert status == 400
    assert "power of two" in str(body["node_errors"]["1"])


def test_load_then_save_over_prompt(server: ComfyServer) -> None:
    hist = server.run({
        "1": {"class_type": LOADER, "inputs": loader_inputs()},
        "2": {"class_type": SAVER, "inputs": {"model": ["1", 0], "filename_prefix": "dq/tiny", "format": "auto"}}})
    assert hist["status"]["status_str"] == "success", hist["status"]
    summary = hist["outputs"]["1"]["text"][0]
    assert "Wan 2.1/2.2" in summary and "layers quantized: 20, kept in high precision: 6" in summary
    assert "fp8 block 64x64" in summary and "backend: eager x20" in summary
    head = summary.splitlines()  # the headline first: scheme and layers, weights, backend and why; then the file
    assert head[0] == "fp8 block 64x64: layers quantized: 20, kept in high precision: 6", head
    assert head[1].startswith("weights: ") and " MB -> " in head[1], head
    assert head[2] == "backend: eager x20 (CPU: the float32 reference; backend 'torch' runs torch's CPU kernels)"
    assert head[3].startswith("file: ") and head[4].startswith("family: Wan 2.1/2.2"), head
    saved = sorted((server.root / "out/dq").glob("tiny_*.safetensors"))
    assert len(saved) == 1 and "dit_quant" in hist["outputs"]["2"]["text"][0]
    ckpt = read_checkpoint(saved[0])
    assert ckpt.format == "dit_quant" and len(ckpt.layers) == 20
    assert {s.describe() for s in ckpt.layers.values()} == {"fp8 block 64x64"}
    assert not list((server.root / "out/dq").glob(".*partial"))


def test_quantized_file_loads_as_is_and_reports_unused_widgets(server: ComfyServer) -> None:
    saved = sorted((server.root / "out/dq").glob("tiny_*.safetensors"))
    if not saved:
        pytest.skip("needs test_load_then_save_over_prompt")
    target = server.root / "models/diffusion_models" / "tiny_saved_block.safetensors"
    target.write_bytes(Path(saved[0]).read_bytes())
    hist = server.run({
        "1": {"class_type": LOADER, "inputs": loader_inputs(unet_name=target.name, scheme="int8 W8A8",
                                                           block_size="128x128", ignored_layers="head")},
        "2": {"class_type": SAVER, "inputs": {"model": ["1", 0], "filename_prefix": "dq2/t", "format": "auto"}}})
    assert hist["status"]["status_str"] == "success", hist["status"]
    summary = hist["outputs"]["1"]["text"][0]
    assert "already quantized (dit_quant): scheme, ignored_layers not applied" in summary
    assert "layers quantized: 20" in summary
