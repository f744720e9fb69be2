"""Diffusers-named transformer files (``Wan-AI/*-Diffusers`` / ``hunyuanvideo-community`` ``transformer/`` files, a
lone ModelOpt export file) through Load FP8 DiT's path: quantized at load (or read as they are), then moved to
ComfyUI's names (``quant.comfy_names``), which ComfyUI needs to detect Wan and HunyuanVideo 1.5 (its
``model_detection`` knows only the original names for them). Before, the quantized state dict kept the diffusers
names and ComfyUI could not detect the model.

Compared with the same weights saved in ComfyUI's names and loaded the same way: Wan is pure renames (bit-identical
result); HunyuanVideo 1.5 fuses q/k/v, whose per-tensor parts are requantized to a common scale.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_dit_quant.cli.tiny_models import TINY_MODELS
from comfyui_dit_quant.quant.comfy_names import comfyui_state_dict
from comfyui_dit_quant.quant.families import detect_family
from comfyui_dit_quant.quant.formats.checkpoint import QuantizedCheckpoint
from comfyui_dit_quant.quant.formats.layer_state import decode_layer, state_dict_to_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import read_header
from comfyui_dit_quant.quant.load_plan import read_quantized_state_dict
from comfyui_dit_quant.quant.modelopt_keys import to_comfyui_names
from comfyui_dit_quant.quant.plan import plan_state_dict
from comfyui_dit_quant.quant.schemes import get_scheme


def _files(tmp_path: Path, family: str) -> tuple[Path, Path]:
    model, _ = TINY_MODELS[family]()
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    comfy, _ = to_comfyui_names(QuantizedCheckpoint(sd), family)
    save_file(sd, str(tmp_path / "diffusers.safetensors"))
    save_file({k: v.contiguous() for k, v in comfy.tensors.items()}, str(tmp_path / "comfy.safetensors"))
    return tmp_path / "diffusers.safetensors", tmp_path / "comfy.safetensors"


def _load(path: Path, scheme: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Load FP8 DiT's plain-file path without ComfyUI: plan, quantize while reading, then the name mapping."""
    header = read_header(path)
    detected = detect_family(header.shapes())
    layers, _ = plan_state_dict({k: (v.shape, v.torch_dtype) for k, v in header.tensors.items()},
                                get_scheme(scheme), detected)
    sd = read_quantized_state_dict(header, layers)
    return comfyui_state_dict(sd, detect_family({k: tuple(v.shape) for k, v in sd.items()}))


def _weights(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every 2-D weight as the float32 values it stands for (quantized layers dequantized)."""
    ckpt = state_dict_to_checkpoint(sd)
    out = {k: v.float() for k, v in ckpt.tensors.items() if k.endswith(".weight") and v.dim() == 2}
    for name, scheme in ckpt.layers.items():
        out[f"{name}.weight"] = scheme.dequantize(ckpt.tensors[f"{name}.weight"], ckpt.tensors[f"{name}.weight_scale"])
    return out


@pytest.mark.parametrize("scheme", ["fp8_channel", "int8", "fp8_tensor", "fp8_block"])
def test_diffusers_wan_file_loads_as_the_comfyui_named_one(tmp_path: Path, scheme: str) -> None:
    diffusers, comfy = _files(tmp_path, "wan")
    got, notes = _load(diffusers, scheme)
    ref, ref_notes = _load(comfy, scheme)
    assert notes == ["diffusers key names mapped to ComfyUI's"] and ref_notes == []
    assert sorted(got) == sorted(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype and torch.equal(got[k], ref[k]), k
    assert sum(k.endswith(".comfy_quant") or k.endswith(".dit_quant") for k in got) >= 10


@pytest.mark.parametrize("scheme", ["fp8_channel", "int8", "fp8_tensor"])
def test_diffusers_hunyuan_file_fuses_qkv_like_the_comfyui_named_one(tmp_path: Path, scheme: str) -> None:
    diffusers, comfy = _files(tmp_path, "hunyuan_video15")
    got, notes = _load(diffusers, scheme)
    ref, _ = _load(comfy, scheme)
    assert notes[0] == "diffusers key names mapped to ComfyUI's"
    qkv = "double_blocks.0.img_attn.qkv"
    layer = decode_layer({p: got[f"{qkv}.{p}"] for p in ("weight", "weight_scale", "comfy_quant", "dit_quant")
                          if f"{qkv}.{p}" in got}, qkv)
    assert layer is not None and layer.scheme == get_scheme(scheme)
    a, b, truth = _weights(got), _weights(ref), load_file(str(comfy))
    assert sorted(a) == sorted(b)
    for k in b:  # each within the scheme's rounding of the bf16 weight; the requantized fused parts about as close
        err_a, err_b = ((w - truth[k].float()).norm() / truth[k].float().norm() for w in (a[k], b[k]))
        assert err_a <= 1.5 * err_b + 1e-6 and err_a < 0.05, (k, err_a, err_b)
    if scheme != "fp8_tensor":  # per-row scales concatenate: the same codes
        assert torch.equal(a[f"{qkv}.weight"], b[f"{qkv}.weight"])


@pytest.mark.parametrize(("prefix", "naming"), [("transformer.", "diffusers"), ("diffusion_model.", "comfyui"),
                                                ("model.diffusion_model.", "diffusers")])
def test_a_prefix_comfyui_does_not_strip_is_removed(tmp_path: Path, prefix: str, naming: str) -> None:
    """Keys under ``transformer.`` / ``diffusion_model.`` (ComfyUI strips only ``model.diffusion_model.`` and
    ``model.``) come out without it, in ComfyUI names; a text encoder next to them is left out."""
    diffusers, comfy = _files(tmp_path, "wan")
    src = load_file(str(diffusers if naming == "diffusers" else comfy))
    extra = {"text_encoders.t5.encoder.block.0.layer.0.SelfAttention.q.weight": torch.randn(64, 64)}
    save_file({**{prefix + k: v for k, v in src.items()}, **extra}, str(tmp_path / "prefixed.safetensors"))
    got, notes = _load(tmp_path / "prefixed.safetensors", "int8")
    ref, _ = _load(comfy, "int8")
    assert sorted(got) == sorted(ref) and all(torch.equal(got[k], ref[k]) for k in ref)
    assert any("removed" in n for n in notes) == (prefix != "model.diffusion_model.")
