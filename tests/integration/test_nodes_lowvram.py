"""Integration tier: ComfyUI's own low-VRAM split over Load FP8 DiT's quantized layers with a LoRA (tiny Wan, CPU).

KSampler → load_models_gpu decides the partial load itself, the CPU standing in for a ``--lowvram`` GPU with a
fixed amount of free memory (see comfy_scripts/lowvram.py); compared with the same model fully loaded (the LoRA
baked into every layer's codes) and with stock bf16 + the LoRA.
"""

from __future__ import annotations

import pytest

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO
from conftest import write_tiny_wan_and_lora

SCHEMES = ("fp8 per-tensor", "fp8 block", "fp8 weight-only (per-channel)", "int8 W8A8")
# free memory for weights, as a fraction of the model: ComfyUI then keeps the large high-precision text embedder
# and 14 of the 20 quantized layers (6 of the 12 with the LoRA) low-VRAM, and loads the other 6
BUDGET = 0.78


@pytest.fixture(scope="module")
def res(tmp_path_factory: pytest.TempPathFactory) -> dict:
    comfyui()
    models = tmp_path_factory.mktemp("lowvram") / "models"
    write_tiny_wan_and_lora(models)
    out = run_comfy_script("lowvram.py", str(REPO), str(models), "tiny_lora.safetensors", str(BUDGET))
    for scheme in SCHEMES:
        r = out[scheme]
        print(scheme, {k: r[k] for k in ("lowvram_split", "shrunk_split")},
              {k: round(v, 7) for k, v in r.items() if isinstance(v, float)})
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_comfyui_leaves_some_quantized_layers_lowvram_with_the_lora_per_call(res: dict, scheme: str) -> None:
    r = res[scheme]
    assert r["lowvram_model_memory"]["split"][0] == r["budget"]  # ComfyUI's budget is the simulated free memory
    assert r["full_split"] == {"lowvram": 0, "lowvram_cast": 0, "lowvram_lora": 0, "loaded": 20, "baked_lora": 12,
                               "model_lowvram": False}
    for split in (r["lowvram_split"], r["shrunk_split"]):  # load() with a budget; partially_unload() to a budget
        assert split["model_lowvram"], split
        assert split["lowvram_cast"] == split["lowvram"] >= 1, split  # comfy_cast_weights set on those modules
        assert split["lowvram_lora"] >= 1, split  # ... and a LowVramPatch in their weight_function
    assert r["lowvram_split"]["loaded"] >= 1 and r["lowvram_split"]["baked_lora"] >= 1, r["lowvram_split"]
    assert r["grown_split"]["lowvram"] == 0 and r["grown_split"]["loaded"] == 20, r["grown_split"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_lowvram_lora_on_the_fly_matches_the_full_load_and_bf16(res: dict, scheme: str) -> None:
    r = res[scheme]
    assert r["finite"]
    assert r["lora_changed"] > 0.02 and res["bf16 lora_changed"] > 0.02  # the LoRA visibly moves the latent
    assert r["lowvram_vs_full"] >= 0.9999 and r["shrunk_vs_full"] >= 0.9999, r
    # what the LoRA changes, on the fly (dequantized codes + LoRA, high-precision matmul) vs baked (W + LoRA
    # requantized with fresh scales, quantized matmul): the difference is requantization and activation rounding
    assert r["lowvram_vs_full_delta"] >= 0.97 and r["shrunk_vs_full_delta"] >= 0.97, r
    for key in ("full_vs_bf16_lora", "lowvram_vs_bf16_lora", "shrunk_vs_bf16_lora"):
        assert r[key] >= 0.99, (key, r[key])


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unloading_restores_the_stored_codes_and_queues_repeat_exactly(res: dict, scheme: str) -> None:
    r = res[scheme]
    assert r["unloaded_identical"] == [True, True, True]  # weights and scales bit-identical, no low-VRAM state left
    assert r["requeue_identical"] == [True, True, True]  # split requeued loaded / after unloading; full again
    assert r["grown_identical_to_full"]  # loading the rest bakes exactly what a full load bakes
    assert r["base_unchanged"]  # the model without the LoRA is untouched
