"""Integration tier: Load FP8 DiT / Save Quantized DiT in a real ComfyUI (in-process, CPU) on a tiny Wan model:
KSampler 2 steps (cfg 2) per scheme vs stock UNETLoader bf16, LoRA, low-VRAM LoRA, save → stock reload, repeats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO
from conftest import write_tiny_wan_and_lora


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    comfyui()
    root = tmp_path_factory.mktemp("nodes")
    models, out = root / "models", root / "out"
    out.mkdir()
    write_tiny_wan_and_lora(models)
    return str(models), str(out)


def run(dirs: tuple[str, str], case: str, *extra: str) -> dict:
    return run_comfy_script("dit_nodes.py", str(REPO), *dirs, case, *extra)


def test_each_scheme_through_ksampler_matches_stock_bf16(dirs: tuple[str, str]) -> None:
    res = run(dirs, "schemes")
    print({k: round(v["cosine"], 5) for k, v in res.items()})
    assert len(res) == 7
    for label, r in res.items():
        assert r["finite"] and r["quantized"] == 20, (label, r)
        assert r["cosine"] >= 0.99, (label, r["cosine"])
        assert "layers quantized: 20, kept in high precision: 6" in r["summary"]
        assert "Wan 2.1/2.2" in r["summary"] and "backend:" in r["summary"]
    assert "fp8 weight-only (per-channel) (auto: cpu:" in res["auto"]["summary"]
    assert "fp8 block 64x64" in res["fp8 block"]["summary"]


def test_lora_changes_quantized_output_like_bf16_and_unpatches_exactly(dirs: tuple[str, str]) -> None:
    res = run(dirs, "lora", "tiny_lora.safetensors")
    print(res)
    assert res["bf16"]["lora_changed"] > 0.02  # the LoRA visibly changes the bf16 result
    for kind, r in res.items():
        assert r["unpatched_identical"], kind  # the unpatched model (and its scales) came back exactly
        assert r["lora_vs_bf16_lora"] >= 0.99, (kind, r)
        assert r["delta_cosine"] >= 0.95, (kind, r)
        assert 0.8 <= r["delta_norm_ratio"] <= 1.25, (kind, r)


def test_lowvram_lora_on_the_fly_matches_baked(dirs: tuple[str, str]) -> None:
    res = run(dirs, "lowvram", "tiny_lora.safetensors")
    print(res)
    for kind, r in res.items():
        assert r["changed"] > 0.1 and r["delta_cosine"] >= 0.97 and r["restored_identical"], (kind, r)


def test_saved_files_run_in_stock_unet_loader_or_are_refused_by_name(dirs: tuple[str, str]) -> None:
    """Every scheme saved by Save Quantized DiT: stock UNETLoader either runs it like the pack or refuses it with an
    error naming the format (before, it read the channel / block codes as unscaled FP8: cosine 0.87)."""
    res = run(dirs, "save")
    print(res)
    for label in ("fp8 per-tensor", "int8 W8A8"):  # ComfyUI-native: the stock loader runs them quantized
        assert "(comfy_quant, 20 quantized layers" in res[label]["text"]
        assert res[label]["stock_cosine"] >= 0.999, res[label]
    refused = {"fp8 per-token x channel": "float8_e4m3fn_rowwise", "fp8 weight-only (per-channel)":
               "float8_e4m3fn_rowwise", "fp8 block": "float8_e4m3fn_blockwise", "fp8 weight-only (block)":
               "float8_e4m3fn_blockwise", "fp8 block 32x64": "comfyui_dit_quant/fp8_block"}
    for label, name in refused.items():
        assert "(dit_quant, 20 quantized layers" in res[label]["text"], res[label]
        assert "stock_cosine" not in res[label], res[label]
        assert name in res[label]["stock_error"], res[label]
    assert len(res) == 7
    for r in res.values():
        assert r["reload_identical"], r


def test_same_model_loaded_twice_and_queued_twice_is_identical(dirs: tuple[str, str]) -> None:
    assert run(dirs, "repeat") == {"identical": [True, True, True]}


def test_assign_loading_as_the_dynamic_vram_patcher_does_gives_the_same_model(dirs: tuple[str, str]) -> None:
    res = run(dirs, "assign")
    assert res and all(r["identical"] for r in res.values()), res
    assert all(r["assign"] == [False, True] for r in res.values()), res  # the forced path really ran


def test_files_with_model_diffusion_model_prefix_load_like_the_plain_ones(dirs: tuple[str, str]) -> None:
    """Issue 14.1: a `model.diffusion_model.` prefix (bf16 or quantized file) loads and samples as the same file
    without it (before: "ComfyUI could not detect the model type", the prefixed keys were popped)."""
    models = Path(dirs[0])
    for scheme in ("fp8_tensor", "int8"):
        src = str(models / "tiny_wan_bf16.safetensors")
        subprocess.run([sys.executable, "-m", "comfyui_dit_quant", "quantize", src,
                        str(models / f"tiny_wan_{scheme}.safetensors"), "--scheme", scheme], check=True)
    names = ["tiny_wan_bf16.safetensors", "tiny_wan_fp8_tensor.safetensors", "tiny_wan_int8.safetensors"]
    res = run(dirs, "prefixed", *names)
    print({n: {k: v.get("cosine", v.get("error")) for k, v in e.items()} for n, e in res.items()})
    assert sorted(res) == sorted(names)
    for name, entry in res.items():
        for label, r in entry.items():
            assert "error" not in r, (name, label, r)
            assert r["cosine"] >= 0.99999, (name, label, r["cosine"])
            assert "layers quantized: 20" in r["summary"], (name, label, r["summary"])


def test_plain_fp8_cast_file_is_quantized_with_one_byte_weights(dirs: tuple[str, str]) -> None:
    """Issue 14.2: a plain FP8 cast file used to quantize nothing and upcast every weight. The FP8 schemes now keep
    the file's FP8 codes under unit scales (no second rounding: bit-identical codes, cosine to stock on the same
    file ~1), INT8 requantizes them; 1-byte weights in the built model, and the summary says which happened."""
    res = run(dirs, "fp8cast")
    print({k: (round(v["cosine"], 7), v["codes_kept"]) for k, v in res.items()})
    for label, r in res.items():
        assert r["quantized"] == 20 and r["one_byte"], (label, r)
        if label == "int8 W8A8":
            assert "20 FP8 weights requantized from their FP8 values to int8" in r["summary"], r["summary"]
            assert r["codes_kept"] == 0 and r["cosine"] >= 0.999, (label, r["cosine"])
        else:
            assert "plain FP8 cast file (no scales): 20 FP8 weights kept as their FP8 codes (scale 1)" in r["summary"]
            assert r["codes_kept"] == 20, (label, r)
            assert r["cosine"] >= (0.99999 if "weight-only" in label else 0.999), (label, r["cosine"])


def test_legacy_scaled_fp8_runs_as_stock_reads_it(dirs: tuple[str, str]) -> None:
    """scale_input 1.0 means no calibrated scale (it clipped activations at +-448: 0.99918 to stock), and a 2-element
    scaled_fp8 marker means full-precision matmul (it ran FP8 activations: 0.99918 to stock)."""
    res = run(dirs, "legacy")
    print({k: v if not isinstance(v, dict) else {a: b for a, b in v.items() if a != "summary"} for k, v in res.items()})
    assert res["ffn2_input_peak"] > 2 * 448  # activations far beyond the e4m3 range under a unit scale
    unit, full = res["unit_scale_input"], res["two_element_marker"]
    assert "fp8 per-tensor (from file, scaled_fp8)" in unit["summary"]
    # clipping at +-448 cost 0.99918; what is left is FP8 activation rounding (one dynamic scale per sample), which
    # stock's path on CPU does not have
    assert unit["vs_stock"] >= 0.9994, unit
    assert "fp8 weight-only (per-tensor) (from file, scaled_fp8)" in full["summary"]
    assert full["vs_stock"] >= 0.99999, full


def test_convert_to_quant_rowwise_and_blockwise_files_run_like_their_dequantized_weights(
        dirs: tuple[str, str]) -> None:
    """convert_to_quant's names (which stock ComfyUI refuses by name and this pack refused too) load as FP8
    weight-only layers: the math of its own loader, against stock on the dequantized weights."""
    res = run(dirs, "ctq")
    print({k: {a: b for a, b in v.items() if a != "summary"} for k, v in res.items()})
    assert len(res) == 4
    for label, r in res.items():
        assert r["quantized"] == 20 and r["one_byte"], (label, r)
        assert r["cosine"] >= 0.9999, (label, r)
        assert ("float8_e4m3fn_rowwise" if "rowwise" in label else "float8_e4m3fn_blockwise") in r["stock_error"]
    assert "fp8 weight-only (per-channel) (from file, comfy_quant)" in res["rowwise markers"]["summary"]
    assert "fp8 weight-only (block) 64x64 (from file, comfy_quant)" in res["blockwise markers+header"]["summary"]


def test_cfg_batch_cond_output_does_not_depend_on_uncond(dirs: tuple[str, str]) -> None:
    """Issue 14.5: cond and uncond in one model call (ComfyUI's default) give what the cond call gives alone, for
    every scheme (before: fp8 per-tensor 1.9e-2, its dynamic scale spanned the batch). A coupling shows at FP8
    rounding level (1e-3 and up); float32 accumulation order across batch sizes stays below 1e-4."""
    res = run(dirs, "cfgbatch")
    print({k: f"{v['max_rel_diff']:.2e}" for k, v in res.items()})
    assert len(res) == 7
    for label, r in res.items():
        assert r["max_rel_diff"] <= 1e-4, (label, r["max_rel_diff"])
