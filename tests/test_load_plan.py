"""Quantize-at-load from a file (``quant.load_plan``, ComfyUI-free): the streamed read equals quantizing a loaded
state dict, keeps the other tensors as they are, and reports progress per layer."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from comfyui_dit_quant.quant import load_plan
from comfyui_dit_quant.quant.formats.safetensors_io import read_header
from comfyui_dit_quant.quant.load_plan import quantize_state_dict, read_quantized_state_dict
from comfyui_dit_quant.quant.schemes import get_scheme

BLOCK = get_scheme("fp8_block", block_size="32x32")
# mixed schemes, as the default preset plans them (modulation-like layers weight-only per tensor)
LAYERS = {"blocks.0.ffn.0": BLOCK, "blocks.1.self_attn.q": get_scheme("fp8_weight_only", granularity="tensor"),
          "blocks.1.ffn.2": BLOCK}


def test_streamed_read_equals_quantizing_the_loaded_state_dict(wan_bf16_file: Path, monkeypatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(load_plan, "TRIM_EVERY_BYTES", 1)  # trim after every layer: must not change results
    monkeypatch.setattr(load_plan, "release_freed_memory", lambda: trims.append(1))
    seen: list = []
    streamed = read_quantized_state_dict(read_header(wan_bf16_file), LAYERS,
                                         progress=lambda i, n, layer: seen.append((i, n, layer)))
    loaded = load_file(str(wan_bf16_file))
    quantize_state_dict(loaded, LAYERS)
    assert streamed.keys() == loaded.keys()
    for key, t in loaded.items():
        bits = streamed[key].reshape(-1).view(torch.uint8)
        assert streamed[key].dtype == t.dtype and torch.equal(bits, t.reshape(-1).view(torch.uint8))
    assert [(i, n) for i, n, _ in seen] == [(1, 3), (2, 3), (3, 3)] and {s[2] for s in seen} == set(LAYERS)
    assert len(trims) == len(LAYERS) + 1  # after each layer and once at the end
    assert streamed["blocks.0.self_attn.k.weight"].dtype == torch.bfloat16  # not planned: read as it is
    assert "blocks.0.ffn.0.dit_quant" in streamed and "blocks.0.ffn.0.weight_scale" in streamed
    # per-tensor weight-only is ComfyUI-native: float8_e4m3fn with full_precision_matrix_mult
    assert "blocks.1.self_attn.q.comfy_quant" in streamed and streamed["blocks.1.self_attn.q.weight_scale"].dim() == 0


def test_release_freed_memory_is_safe_to_call() -> None:
    load_plan.release_freed_memory()
