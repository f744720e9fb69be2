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
# per-block modulation Linears (img/txt x 1 Qwen-Image / 2 HunyuanVideo 1.5 blocks) that the default preset
# quantizes after all (FP8 weight-only under the FP8 schemes, W8A8 under INT8)
MODULATION = {"wan22_5b": 0, "qwen_image": 2, "hunyuan_video15": 4}
CASES = ["build", *(f"schemes:{f}" for f in FAMILIES), "hv_renames", "qwen_native", "widgets"]


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
    # ComfyUI's own fp8 path (UNETLoader fp8_e4m3fn: weights cast without a scale) on the same file: every scheme
    # of ours is closer to bf16. 1 - cosine, stock fp8 vs our worst / best scheme: Wan 2.2 5B 1.6e-3 vs 1.1e-3 (fp8
    # per-token) / 7e-5 (int8); HunyuanVideo 1.5 7.0e-4 vs 2.7e-4 / 3e-5; Qwen-Image 6.2e-4 vs 2.3e-5 / 4e-6
    fp8_loss = 1 - stock["fp8_e4m3fn_cosine"]
    for scheme, r in runs.items():
        assert 1 - r["cosine"] < 0.8 * fp8_loss, (scheme, r["cosine"], stock)
    assert len(runs) == (6 if family == "qwen_image" else 7)
    for scheme, r in runs.items():
        n = n_quantized + MODULATION[family]
        assert r["class"] == r["ours_class"] == cls, (scheme, r)
        assert r["finite"] and r["quantized"] == n, (scheme, r)
        assert r["cosine"] >= 0.99, (scheme, r["cosine"])
        assert label in r["summary"] and f"backend: eager x{n}" in r["summary"], r["summary"]
        activations = scheme in ("fp8 per-tensor", "fp8 per-token x channel", "fp8 block")
        assert ("for the preset's modulation layers" in r["summary"]) == (activations and MODULATION[family] > 0)
    if "auto" in runs:
        assert "fp8 weight-only (per-channel) (auto: cpu: halves weight memory" in runs["auto"]["summary"]


def test_hunyuan_tencent_names_keep_markers_on_the_right_layers(res: dict) -> None:
    r = res["hv_renames"]
    at_load, saved, pre = r["at_load"], r["saved"], r["prequantized"]
    assert at_load["stock_tencent_vs_native"] > 0.99999  # ComfyUI's renames: the same model either way
    assert at_load["cosine"] >= 0.99
    # renamed (native) module names carry the scheme: 2 blocks x img/txt x (qkv, proj, mlp.0, mlp.2, mod)
    assert len(at_load["layers"]) == 20 and "double_blocks.0.img_attn.qkv" in at_load["layers"]
    assert "backend: eager x20" in at_load["summary"] and "warning" not in at_load["summary"]
    # the preset matches tencent names too: modulation stored weight-only, embedders kept
    assert "double_blocks.0.img_mod.lin" in at_load["layers"] and "kept txt_in" in at_load["summary"]
    # Save Quantized DiT writes native names; reloading gives the identical model
    assert saved["layers"] == at_load["layers"] == saved["reload_layers"] and saved["reload_identical"]
    # a file quantized offline in tencent names: markers / scales follow ComfyUI's renames
    assert "double_blocks.0.img_attn_qkv" in pre["file_layers"] and len(pre["file_layers"]) == 20
    assert pre["layers"] == at_load["layers"] and pre["identical_to_at_load"]
    assert "backend: eager x20" in pre["summary"]


def test_qwen_per_tensor_file_with_weight_only_modulation_runs_in_stock_unet_loader(res: dict) -> None:
    r = res["qwen_native"]
    print({k: v for k, v in r.items() if k.endswith(("bf16", "ours"))})
    assert "fp8 weight-only (per-tensor) for the preset's modulation layers" in r["summary"]
    assert "comfy_quant" in r["save"]
    mods = {k for k in r["configs"] if "_mod." in k}
    assert len(mods) == 2 and len(r["configs"]) == 14
    for layer, cfg in r["configs"].items():
        expect = {"format": "float8_e4m3fn", **({"full_precision_matrix_mult": True} if layer in mods else {})}
        assert cfg == expect, (layer, cfg)
    # stock ComfyUI reads the flag per layer: dequantize + high-precision matmul for the modulation layers only
    assert {k for k, v in r["stock_full_precision"].items() if v} == mods and len(r["stock_full_precision"]) == 14
    assert r["ours_vs_bf16"] >= 0.99 and r["stock_vs_bf16"] >= 0.99 and r["stock_vs_ours"] >= 0.99


def test_every_loader_widget_has_its_effect(res: dict) -> None:
    w = res["widgets"]
    qwen_fp16 = w.pop("qwen_image compute_dtype=fp16")
    # on a T4 (fp16, no bf16) auto gives fp16 where ComfyUI runs the family in it, fp32 for Qwen-Image; an
    # explicit bf16 stays (the user's call, ComfyUI emulates it), fp16 for Qwen-Image is replaced with a note
    t4 = w.pop("t4_picks")
    assert {f: t4[f]["auto"] for f in t4} == {"wan22_5b": ["float16", None], "qwen_image": ["float32", None],
                                              "hunyuan_video15": ["float16", None]}, t4
    assert t4["wan22_5b"]["bf16"] == ["bfloat16", None] and t4["qwen_image"]["bf16"] == ["bfloat16", None]
    dtype, note = t4["qwen_image"]["fp16"]
    assert dtype == "float32" and "not one ComfyUI runs QwenImage in" in note
    for key, r in w.items():
        assert r["finite"] and r["cosine"] >= 0.99, (key, r)
    for choice, dtype in {"auto": "float32", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.items():
        r = w[f"compute_dtype={choice}"]
        assert r["kept_dtype"] == dtype and f"compute dtype: {dtype}" in r["summary"], (choice, r)
    # Qwen-Image in fp16 overflows (ComfyUI runs it in bf16 / fp32 only): fp16 is refused with a note; this CPU
    # lacks bf16 in ComfyUI's eyes, so fp32
    assert qwen_fp16["img_in_dtype"] == qwen_fp16["model_dtype"] == "float32", qwen_fp16
    assert ("compute dtype float16 is not one ComfyUI runs QwenImage in (bfloat16, float32) (fp16 overflows in "
            "such models: NaN, black images): using float32") in qwen_fp16["summary"], qwen_fp16["summary"]
    assert "compute dtype: float32" in qwen_fp16["summary"]
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
