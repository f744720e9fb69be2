"""``quantize --scheme int8`` writes ComfyUI's native ``int8_tensorwise`` layers, tensor by tensor as stock ComfyUI
reads them: int8 ``[N, K]`` codes, float32 ``[N, 1]`` per-channel scales, a ``comfy_quant`` marker, no
``input_scale`` (ComfyUI would not consume it) and no pack header."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from comfyui_dit_quant.cli.main import main
from comfyui_dit_quant.quant.formats.safetensors_io import read_header


def test_cli_int8_writes_comfyui_native_per_channel_layers(tmp_path: Path, wan_bf16_file: Path) -> None:
    out = tmp_path / "int8.safetensors"
    assert main(["quantize", str(wan_bf16_file), str(out), "--scheme", "int8"]) == 0
    raw, src = load_file(out), load_file(wan_bf16_file)
    layers = sorted(k.removesuffix(".comfy_quant") for k in raw if k.endswith(".comfy_quant"))
    assert len(layers) == 20 and "blocks.0.ffn.0" in layers and "head.head" not in layers
    for layer in layers:
        w, s = raw[f"{layer}.weight"], raw[f"{layer}.weight_scale"]
        assert json.loads(bytes(raw[f"{layer}.comfy_quant"].tolist())) == {"format": "int8_tensorwise"}
        assert w.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == (w.shape[0], 1)
        assert f"{layer}.input_scale" not in raw
        orig = src[f"{layer}.weight"].float()
        assert (w.float() * s - orig).abs().max() <= s.max() / 2 + 1e-6  # ComfyUI's dequant: q * scale
    assert raw["head.head.weight"].dtype == torch.bfloat16
    assert "comfyui_dit_quant" not in (read_header(out).metadata or {})
