"""Integration tier: files written by this pack's CLI load in a real ComfyUI with the stock UNETLoader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from comfy_env import comfyui, run_comfy_script
from conftest import wan_comfy_shapes, write_random_checkpoint


def test_cli_native_files_load_quantized_in_stock_unet_loader(tmp_path: Path) -> None:
    comfyui()
    models = tmp_path / "diffusion_models"
    # Wan-2.1-architecture, scaled down to what ComfyUI's detection accepts (heads = dim / 128, text dim 4096).
    src = write_random_checkpoint(models / "tiny_wan_bf16.safetensors",
                                  wan_comfy_shapes(dim=256, ffn=512, layers=2, text_dim=4096, freq_dim=256))
    for scheme in ("fp8_tensor", "int8"):
        subprocess.run([sys.executable, "-m", "comfyui_dit_quant", "quantize", str(src),
                        str(models / f"tiny_wan_{scheme}.safetensors"), "--scheme", scheme], check=True)
    res = run_comfy_script("stock_unet_loader.py", str(models), "tiny_wan_bf16.safetensors",
                           "tiny_wan_fp8_tensor.safetensors", "tiny_wan_int8.safetensors")
    # 2 blocks x (8 attention projections + 2 ffn) are quantized; embeddings and head stay high precision
    print(res)
    fp8, int8 = res["tiny_wan_fp8_tensor.safetensors"], res["tiny_wan_int8.safetensors"]
    assert fp8["model_class"] == int8["model_class"] == "WAN21"
    assert fp8["quantized_layers"] == {"float8_e4m3fn": 20}
    assert int8["quantized_layers"] == {"int8_tensorwise": 20}
    assert fp8["finite"] and int8["finite"]
    assert fp8["cosine"] >= 0.99, fp8
    assert int8["cosine"] >= 0.99, int8
