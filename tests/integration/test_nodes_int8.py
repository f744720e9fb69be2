"""Integration tier: "INT8 NPU Quantize" in a real ComfyUI (in-process, CPU) on a tiny Wan model: stock UNETLoader
→ node → KSampler (2 steps, cfg 2) vs bf16, the input MODEL untouched, MODELs from Load FP8 DiT, LoRA through
LoraLoaderModelOnly before and after the node."""

from __future__ import annotations

import pytest

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO
from conftest import write_tiny_wan_and_lora


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> str:
    comfyui()
    models = tmp_path_factory.mktemp("int8") / "models"
    write_tiny_wan_and_lora(models)
    return str(models)


def test_unet_loader_int8_ksampler_matches_bf16_and_input_is_untouched(models: str) -> None:
    res = run_comfy_script("int8_nodes.py", str(REPO), models, "sample")
    print({k: round(v["cosine"], 5) for k, v in res.items() if isinstance(v, dict) and "cosine" in v})
    assert res["input_untouched"]
    for backend in ("auto", "cpu", "npu", "cuda"):
        r = res[backend]
        assert r["finite"] and r["new"] and r["int8_layers"] == 20, (backend, r)
        assert r["cosine"] >= 0.99, (backend, r["cosine"])
        assert r["size"][1] < r["size"][0], r["size"]
        assert "layers quantized: 20, kept in high precision: 6" in r["text"] and "Wan 2.1/2.2" in r["text"]
        assert "backend: int_mm x20" in r["text"], r["text"]  # CPU: torch._int_mm
        assert "ignored by pattern" in r["text"] and "device: cpu" in r["text"]
    assert "backend 'npu' needs a npu device but the model runs on cpu: using auto" in res["npu"]["text"]
    for label in ("fp8 block", "int8 W8A8"):
        r = res[label]
        assert r["cosine"] >= 0.99 and r["int8_layers"] == 20 and r["loaded_unchanged"], (label, r)
    assert "20 FP8 layers dequantized and requantized to INT8" in res["fp8 block"]["text"]
    assert "20 layers were already INT8" in res["int8 W8A8"]["text"]
    assert "layers quantized: 24, kept in high precision: 2" in res["ignored"]["text"]  # preset none + 2 ignored
    assert res["ignored"]["int8_layers"] == 24


def test_lora_before_and_after_quantization_changes_output_like_bf16(models: str) -> None:
    res = run_comfy_script("int8_nodes.py", str(REPO), models, "lora", "tiny_lora.safetensors")
    print(res)
    assert res["lora_changed"] > 0.02 and res["unpatched_identical"] and res["stock_identical"]
    for name in ("after", "before", "before_sampled"):
        r = res[name]
        assert r["vs_bf16_lora"] >= 0.99, (name, r)
        assert r["delta_cosine"] >= 0.95, (name, r)
        assert 0.8 <= r["delta_norm_ratio"] <= 1.25, (name, r)
