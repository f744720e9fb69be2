"""Integration tier: Load FP8 DiT / Save Quantized DiT on tiny Wan 2.2 TI2V-5B, Qwen-Image and HunyuanVideo 1.5
models built from ComfyUI's own module classes (CPU, one ComfyUI process): every scheme through KSampler 2 steps vs
stock UNETLoader bf16, HunyuanVideo 1.5 tencent key names, and every loader widget."""

from __future__ import annotations

import pytest

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO

FAMILIES = {"wan22_5b": ("WAN22_T2V", "Wan 2.2 TI2V-5B layout", 40),
            "qwen_image": ("QwenImage", "Qwen-Image", 12),
            "hunyuan_video15": ("HunyuanVideo15", "HunyuanVideo 1.5", 16)}
CASES = ["build", *(f"schemes:{f}" for f in FAMILIES), "hv_renames", "widgets"]


@pytest.fixture(scope="module")
def res(tmp_path_factory: pytest.TempPathFactory) -> dict:
    comfyui()
    root = tmp_path_factory.mktemp("families")
    (root / "models").mkdir()
    (root / "out").mkdir()
    return run_comfy_script("dit_families.py", str(REPO), str(root / "models"), str(root / "out"), ",".join(CASES),
                            timeout=900)


def test_tiny_files_are_detected_as_the_right_comfyui_models(res: dict) -> None:
    built = res["build"]
    for family, (cls, _, _) in FAMILIES.items():
        assert built[family]["class"] == cls, built
    assert built["hv15_tencent"] == {"class": "HunyuanVideo15", "renamed": 72}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_scheme_through_ksampler_matches_stock_bf16(res: dict, family: str) -> None:
    cls, label, n_quantized = FAMILIES[family]
    runs = dict(res[f"schemes:{family}"])
    stock = runs.pop("_stock")
    # not a near-constant output: another prompt moves the bf16 result 10x more than any scheme does
    prompt_change = 1 - stock["other_prompt_cosine"]
    assert prompt_change > 10 * max(1 - r["cosine"] for r in runs.values()), (stock, runs)
    print(family, stock, {k: round(v["cosine"], 5) for k, v in runs.items()})
    assert len(runs) == (6 if family == "qwen_image" else 7)
    for scheme, r in runs.items():
        assert r["class"] == r["ours_class"] == cls, (scheme, r)
        assert r["finite"] and r["quantized"] == n_quantized, (scheme, r)
        assert r["cosine"] >= 0.99, (scheme, r["cosine"])
        assert label in r["summary"] and f"backend: eager x{n_quantized}" in r["summary"], r["summary"]
    if "auto" in runs:
        assert "auto scheme: fp8 weight-only (per-channel) (cpu: halves weight memory" in runs["auto"]["summary"]


def test_hunyuan_tencent_names_keep_markers_on_the_right_layers(res: dict) -> None:
    r = res["hv_renames"]
    at_load, saved, pre = r["at_load"], r["saved"], r["prequantized"]
    assert at_load["stock_tencent_vs_native"] > 0.99999  # ComfyUI's renames: the same model either way
    assert at_load["cosine"] >= 0.99
    # renamed (native) module names carry the scheme: 2 blocks x img/txt x (qkv, proj, mlp.0, mlp.2)
    assert len(at_load["layers"]) == 16 and "double_blocks.0.img_attn.qkv" in at_load["layers"]
    assert "backend: eager x16" in at_load["summary"] and "warning" not in at_load["summary"]
    assert "kept double_blocks.0.img_mod.linear" in at_load["summary"]  # the preset matches tencent names too
    # Save Quantized DiT writes native names; reloading gives the identical model
    assert saved["layers"] == at_load["layers"] == saved["reload_layers"] and saved["reload_identical"]
    # a file quantized offline in tencent names: markers / scales follow ComfyUI's renames
    assert "double_blocks.0.img_attn_qkv" in pre["file_layers"] and len(pre["file_layers"]) == 16
    assert pre["layers"] == at_load["layers"] and pre["identical_to_at_load"]
    assert "backend: eager x16" in pre["summary"]


def test_every_loader_widget_has_its_effect(res: dict) -> None:
    w = res["widgets"]
    for key, r in w.items():
        assert r["finite"] and r["cosine"] >= 0.99, (key, r)
    for choice, dtype in {"auto": "float32", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.items():
        r = w[f"compute_dtype={choice}"]
        assert r["kept_dtype"] == dtype and f"compute dtype: {dtype}" in r["summary"], (choice, r)
    for backend, used in {"cublas": "int_mm", "torch": "int_mm", "triton": "eager", "eager": "eager"}.items():
        r = w[f"backend={backend}"]  # int8 on CPU: _int_mm where asked for, Triton falls back to eager
        assert r["backends"] == [backend] and f"backend: {used} x40" in r["summary"], (backend, r)
    assert "layers quantized: 46, kept in high precision: 0" in w["preset=none"]["summary"]
    quality = w["preset=quality"]["summary"]
    assert "layers quantized: 20, kept in high precision: 26" in quality
    assert "ignored by pattern 'blocks.0'" in quality and "ignored by pattern 'blocks.3'" in quality
    ignored = w["ignored_layers"]
    assert "layers quantized: 34, kept in high precision: 12" in ignored["summary"]
    assert "kept blocks.0.ffn.0 [512, 256]: ignored by pattern 'blocks.0.ffn.*'" in ignored["summary"]
    assert "blocks.2.cross_attn.o" not in ignored["quantized"] and "blocks.2.cross_attn.q" in ignored["quantized"]
