"""Integration tier: the ModelOpt Checkpoint Loader node runs KSampler on a tiny Wan export made by
nvidia-modelopt (FP8, static input scales) in a real ComfyUI, vs stock UNETLoader on the same bf16 weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_dit_quant.cli.tiny_models import _finish
from comfyui_dit_quant.quant.families import map_state_dict_keys

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO


def _tiny_wan() -> tuple[torch.nn.Module, dict]:
    """ComfyUI's Wan detection needs dim = 128 x heads, text_dim 4096, freq_dim 256."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=128,
                                  in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=512,
                                  num_layers=2, rope_max_seq_len=64)
    gen = torch.Generator().manual_seed(1)
    kwargs = {"hidden_states": torch.randn(1, 16, 1, 8, 8, generator=gen).bfloat16(),
              "timestep": torch.tensor([500.0]), "return_dict": False,
              "encoder_hidden_states": torch.randn(1, 8, 4096, generator=gen).bfloat16()}
    return _finish(model, 0), kwargs


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    comfyui()
    mtq = pytest.importorskip("modelopt.torch.quantization")
    from modelopt.torch.export import export_hf_checkpoint

    root = tmp_path_factory.mktemp("modelopt_nodes") / "models"
    model, kwargs = _tiny_wan()
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    names = map_state_dict_keys("wan", sd, "to_comfyui")
    root.mkdir(parents=True)
    save_file({names[k]: v.contiguous() for k, v in sd.items()}, str(root / "tiny_wan_bf16.safetensors"))
    with torch.no_grad():
        mtq.quantize(model, mtq.FP8_DEFAULT_CFG, lambda m: m(**kwargs))
    mtq.disable_quantizer(model, lambda n: "condition_embedder" in n or "patch_embedding" in n)
    (root / "tiny_wan_modelopt").mkdir()
    (root / "tiny_wan_modelopt" / "model_index.json").write_text("{}")
    export_hf_checkpoint(model, export_dir=str(root / "tiny_wan_modelopt" / "transformer"))
    return root


def test_modelopt_loader_node_runs_ksampler(models: Path) -> None:
    res = run_comfy_script("modelopt_nodes.py", str(REPO), str(models), "tiny_wan_modelopt/",
                           "tiny_wan_bf16.safetensors")
    r = res["as exported"]
    print({k: v for k, v in r.items() if k != "summary"}, "\n" + r["summary"])
    assert "tiny_wan_modelopt/" in res["options"]
    assert r["finite"] and r["quantized"] == 20 and r["model"] == "WAN21"
    assert r["cosine"] >= 0.99
    assert "ModelOpt FP8: fp8 per-tensor" in r["summary"] and "Wan 2.1/2.2" in r["summary"]
