"""Integration tier: Load FP8 DiT in a real ComfyUI on Wan files as LightX2V's converter and Kijai's scaled e5m2
files lay them out (built by ``tests/ecosystem_files.py`` from one bf16 file), and on a diffusers-named transformer
file and a lone ModelOpt FP8 export file, through KSampler vs stock UNETLoader on the same weights in ComfyUI names;
one shard of a sharded checkpoint is refused by name."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_dit_quant.quant.families import map_state_dict_keys

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO
from conftest import wan_comfy_shapes, write_random_checkpoint
from ecosystem_files import write_kijai_e5m2_scaled, write_lightx2v
from test_nodes_modelopt import _tiny_wan

BF16 = "tiny_wan_bf16.safetensors"
FILES = {"wan_int8_lightx2v.safetensors": ("int8", False), "wan_scaled_fp8_e4m3_lightx2v.safetensors": ("fp8", False),
         "wan_scaled_fp8_e4m3_lightx2v_comfyui.safetensors": ("fp8", True),
         "wan_int8_lightx2v_comfyui.safetensors": ("int8", True)}
KJ = "Wan2_1-T2V-tiny_fp8_e5m2_scaled_KJ.safetensors"
SHARD = "diffusion_pytorch_model-00001-of-00002.safetensors"


@pytest.fixture(scope="module")
def res(tmp_path_factory: pytest.TempPathFactory) -> dict:
    comfyui()
    models = tmp_path_factory.mktemp("ecosystem") / "models"
    models.mkdir()
    shapes = wan_comfy_shapes(dim=256, ffn=512, layers=2, text_dim=4096, freq_dim=256)
    write_random_checkpoint(models / BF16, shapes)
    src = load_file(str(models / BF16))
    for name, (linear_type, comfyui_mode) in FILES.items():
        write_lightx2v(models / name, linear_type, comfyui_mode, src=src)
    write_kijai_e5m2_scaled(models / KJ, src)
    (models / SHARD).write_bytes((models / BF16).read_bytes())
    (models / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": SHARD, "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}))
    return run_comfy_script("ecosystem_files.py", str(REPO), str(models), BF16, ",".join([*FILES, KJ]), SHARD,
                            timeout=900)


@pytest.mark.parametrize("name", [*FILES, KJ])
def test_other_tools_files_run_close_to_bf16(res: dict, name: str) -> None:
    r = res[name]
    print(name, r["cosine"], r["schemes"])
    assert r["finite"] and r["quantized"] == 20  # 2 blocks x (4 self + 4 cross attention + 2 FFN)
    assert r["cosine"] >= 0.995, r
    linear_type, comfyui_mode = FILES.get(name, ("e5m2", False))
    expected = {"int8": ["int8"], "fp8": ["fp8_weight_only"] if comfyui_mode else ["fp8_channel"],
                "e5m2": ["fp8_tensor"]}[linear_type]
    assert r["schemes"] == expected, r
    fmt = "scaled_fp8" if comfyui_mode or linear_type == "e5m2" else "lightx2v"
    assert f"(from file, {fmt})" in r["summary"], r["summary"]


def test_a_shard_is_refused_by_the_node(res: dict) -> None:
    assert res["shard"].startswith("CheckpointError: ") and "sharded checkpoint" in res["shard"], res["shard"]
    assert "one of the 2 files listed in diffusion_pytorch_model.safetensors.index.json" in res["shard"]


@pytest.fixture(scope="module")
def diffusers_res(tmp_path_factory: pytest.TempPathFactory) -> dict:
    comfyui()
    models = tmp_path_factory.mktemp("diffusers_names") / "models"
    models.mkdir()
    model, kwargs = _tiny_wan()
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    names = map_state_dict_keys("wan", sd, "to_comfyui")
    save_file({names[k]: v for k, v in sd.items()}, str(models / "wan_comfy_bf16.safetensors"))
    save_file(sd, str(models / "diffusion_pytorch_model.safetensors"))
    save_file({"diffusion_model." + names[k]: v for k, v in sd.items()}, str(models / "wan_prefixed.safetensors"))
    files = ["diffusion_pytorch_model.safetensors", "wan_prefixed.safetensors"]
    try:
        import modelopt.torch.quantization as mtq
        from modelopt.torch.export import export_hf_checkpoint
    except ImportError:
        mtq = None
    if mtq is not None:
        with torch.no_grad():
            mtq.quantize(model, mtq.FP8_DEFAULT_CFG, lambda m: m(**kwargs))
        mtq.disable_quantizer(model, lambda n: "condition_embedder" in n or "patch_embedding" in n)
        export_hf_checkpoint(model, export_dir=str(models.parent / "export"))
        (models / "wan_modelopt_fp8_lone.safetensors").write_bytes(
            (models.parent / "export" / "diffusion_pytorch_model.safetensors").read_bytes())
        files.append("wan_modelopt_fp8_lone.safetensors")
    return run_comfy_script("ecosystem_files.py", str(REPO), str(models), "wan_comfy_bf16.safetensors",
                            ",".join(files), "wan_comfy_bf16.safetensors", timeout=900)


def test_diffusers_named_files_load_in_comfyui_names(diffusers_res: dict) -> None:
    r = diffusers_res["diffusion_pytorch_model.safetensors"]
    print({k: v for k, v in r.items() if k != "summary"})
    assert r["finite"] and r["quantized"] == 20 and r["cosine"] >= 0.99, r
    assert "diffusers key names mapped to ComfyUI's" in r["summary"], r["summary"]
    p = diffusers_res["wan_prefixed.safetensors"]
    assert p["finite"] and p["quantized"] == 20 and p["cosine"] >= 0.99, p
    assert "key prefix 'diffusion_model.' removed" in p["summary"], p["summary"]
    lone = diffusers_res.get("wan_modelopt_fp8_lone.safetensors")
    if lone is None:
        pytest.skip("nvidia-modelopt not installed: no lone export file")
    print({k: v for k, v in lone.items() if k != "summary"})
    assert lone["finite"] and lone["quantized"] == 20 and lone["schemes"] == ["fp8_tensor"], lone
    assert lone["cosine"] >= 0.99 and "(from file, lightx2v)" in lone["summary"], lone
