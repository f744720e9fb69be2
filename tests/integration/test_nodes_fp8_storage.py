"""Integration tier: "Apply FP8 Weight Storage to VAE / CLIP" in a real ComfyUI (CPU) on a tiny Wan 2.1 VAE
(comfy.sd.VAE from a state dict, dim 16) and a CLIP-L text encoder (comfy.sd.load_text_encoder_state_dicts),
both with random weights.

Accuracy: the models are random, so every one of their ~70 layers adds its full e4m3 rounding error (one layer:
cosine ~0.9997) with nothing trained to absorb it; the thresholds below are for that worst case.
"""

from __future__ import annotations

import pytest

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO, ComfyServer

VAE_NODE, CLIP_NODE = "DiTQuantApplyFP8StorageVAE", "DiTQuantApplyFP8StorageCLIP"


@pytest.fixture(scope="module")
def vae() -> dict:
    return run_comfy_script("fp8_storage.py", str(REPO), "vae")


@pytest.fixture(scope="module")
def clip() -> dict:
    return run_comfy_script("fp8_storage.py", str(REPO), "clip")


def test_vae_decode_encode_close_to_plain(vae: dict) -> None:
    print({k: {m: v[m] for m in ("decode_cosine", "encode_cosine")} for k, v in vae.items() if isinstance(v, dict)})
    assert vae["vae_class"] == "comfy.ldm.wan.vae.WanVAE"
    for label in ("per-channel", "per-tensor"):
        r = vae[label]
        assert r["finite"] and r["fp8_layers"] == 71, r
        assert r["decode_cosine"] >= 0.995, r
        assert r["encode_cosine"] >= 0.99, r


def test_vae_reports_bytes_input_untouched_and_twice_equals_once(vae: dict) -> None:
    assert vae["input_unchanged"]
    for label in ("per-channel", "per-tensor"):
        r = vae[label]
        assert r["new_objects"] and r["twice_identical"]
        assert r["size_after"] < 0.3 * r["size_before"]  # fp32 VAE on CPU: ~4x smaller weights
        assert "layers stored in FP8: 71" in r["text"] and "(saved " in r["text"]
        assert "layers stored in FP8: 0 (+71 already FP8)" in r["text_twice"]
        assert "(saved 0.00 MB)" in r["text_twice"]
    assert "layers stored in FP8: 39\nkept: 32 by ignore list" in vae["ignored"]


def test_clip_encode_close_to_plain_input_untouched_twice_equals_once(clip: dict) -> None:
    r = clip["plain"]
    print({k: r[k] for k in ("cosine", "per_tensor_cosine", "size_before", "size_after")})
    assert clip["input_unchanged"] and clip["input_values_unchanged_after_lora"]
    assert r["fp8_layers"] == 73 and r["twice_identical"]
    assert r["cosine"] >= 0.995 and r["per_tensor_cosine"] >= 0.995
    assert r["size_after"] < 0.7 * r["size_before"]  # fp16 Linear weights halve; the embeddings stay
    assert "layers stored in FP8: 73" in r["text"] and "CLIP weights:" in r["text"]


def test_clip_lora_after_and_before_the_node(clip: dict) -> None:
    r = clip["lora"]
    print(r)
    assert clip["lora_keys"] == 24 and r["changed"] > 0.1
    assert r["fp8_lora_vs_plain_lora"] >= 0.995 and r["delta_cosine"] >= 0.98
    assert r["lora_then_fp8_vs_plain_lora"] >= 0.995  # a LoRA applied before the node stays applied
    assert r["unpatched_identical"] and r["unpatched_after_lowvram"]
    assert r["lowvram_layers"] == 24 and r["lowvram_vs_baked"] >= 0.999


def test_nodes_listed_with_tooltips() -> None:
    comfyui()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp, ComfyServer(Path(tmp)) as srv:
        info = srv.get("/object_info")
    for node_id, kind, name in ((VAE_NODE, "VAE", "Apply FP8 Weight Storage to VAE"),
                                (CLIP_NODE, "CLIP", "Apply FP8 Weight Storage to CLIP")):
        node = info[node_id]
        assert node["display_name"] == name and node["category"] == "advanced/quantized"
        assert node["output"] == [kind]
        req = node["input"]["required"]
        assert list(req) == [kind.lower(), "granularity", "ignored_layers"]
        assert req["granularity"][1]["options"] == ["per-channel", "per-tensor"]
        assert req["ignored_layers"][1]["multiline"] is True
        for inp, spec in req.items():
            assert spec[1].get("tooltip"), f"{node_id}.{inp} has no tooltip"
