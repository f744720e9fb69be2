"""The ComfyUI-free parts of the nodes: layer markers in state dicts, the load plan, scheme choices."""

from __future__ import annotations

import pytest
import torch

from comfyui_dit_quant.quant.families import detect_family
from comfyui_dit_quant.quant.formats.checkpoint import QuantizedCheckpoint
from comfyui_dit_quant.quant.formats.layer_state import (
    LayerTensors,
    checkpoint_to_state_dict,
    decode_layer,
    encode_layer,
    requantize_with_scale,
    state_dict_to_checkpoint,
)
from comfyui_dit_quant.quant.load_plan import quantize_state_dict
from comfyui_dit_quant.quant.plan import plan_state_dict
from comfyui_dit_quant.quant.scheme_choice import SCHEME_LABELS, auto_scheme_name, build_scheme
from comfyui_dit_quant.quant.schemes import CHOICES, get_scheme

from conftest import wan_comfy_shapes


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality (fp8 has no ``torch.equal`` on CPU)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.view(torch.uint8), b.view(torch.uint8)) if a.element_size() == 1 else torch.equal(a, b)


SCHEMES = [get_scheme("fp8_tensor"), get_scheme("fp8_channel"), get_scheme("fp8_block", block_size="32x32"),
           get_scheme("fp8_weight_only"), get_scheme("fp8_weight_only", granularity="block", block_size="32x32"),
           get_scheme("int8")]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.describe())
def test_layer_round_trips_through_markers(scheme) -> None:
    w = torch.randn(64, 96)
    stored = scheme.quantize(w)
    entries = encode_layer(LayerTensors(scheme, stored["weight"], stored["weight_scale"]))
    native = scheme.name == "int8" or scheme.name == "fp8_tensor"
    assert ("comfy_quant" in entries) == native and ("dit_quant" in entries) != native
    if scheme.name == "int8":
        assert entries["weight_scale"].shape == (64, 1)  # ComfyUI's per-channel layout
    back = decode_layer(entries, "x")
    assert back is not None and back.scheme == scheme
    assert same(back.weight, stored["weight"]) and same(back.weight_scale, stored["weight_scale"])
    assert decode_layer({"weight": w}) is None


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.describe())
def test_requantize_with_existing_scale_reproduces_codes(scheme) -> None:
    stored = scheme.quantize(torch.randn(64, 96))
    deq = scheme.dequantize(stored["weight"], stored["weight_scale"])
    codes = requantize_with_scale(scheme, deq, stored["weight_scale"])
    assert codes.dtype == scheme.weight_dtype
    assert same(codes, stored["weight"])


def test_checkpoint_state_dict_round_trip() -> None:
    block, int8 = get_scheme("fp8_block", block_size="32x32"), get_scheme("int8")
    tensors = {"a.bias": torch.randn(64), "n.weight": torch.randn(64)}
    for name, s in (("a", block), ("b", int8)):
        tensors.update({f"{name}.{k}": v for k, v in s.quantize(torch.randn(64, 64)).items()})
    sd = checkpoint_to_state_dict(QuantizedCheckpoint(tensors, {"a": block, "b": int8}, "dit_quant"))
    assert "a.dit_quant" in sd and "b.comfy_quant" in sd
    back = state_dict_to_checkpoint(sd)
    assert back.layers == {"a": block, "b": int8}
    assert set(back.tensors) == set(tensors)
    assert all(same(back.tensors[k], tensors[k]) for k in tensors)


def _wan_sd(prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: torch.randn(s, dtype=torch.bfloat16) * 0.05 for k, s in wan_comfy_shapes().items()}


def test_plan_applies_preset_ignore_list_and_reasons() -> None:
    sd = _wan_sd("model.diffusion_model.")
    detected = detect_family({k: tuple(v.shape) for k, v in sd.items()})
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in sd.items()}
    layers, report = plan_state_dict(shapes, get_scheme("fp8_block"), detected, "default", "blocks.1.ffn.*")
    assert "model.diffusion_model.blocks.0.self_attn.q" in layers
    assert "model.diffusion_model.blocks.1.ffn.0" not in layers
    assert not any("head" in n or "embedding" in n for n in layers)
    reasons = {r.name: r.reason for r in report.skipped}
    assert reasons["model.diffusion_model.blocks.1.ffn.0"] == "ignored by pattern 'blocks.1.ffn.*'"
    assert len(report.quantized) == len(layers) == 2 * 10 - 2
    none_layers, _ = plan_state_dict(shapes, get_scheme("fp8_block"), detected, "none")
    assert len(none_layers) > len(layers)


def test_quantize_state_dict_replaces_weights_layer_by_layer() -> None:
    sd = _wan_sd()
    scheme = get_scheme("int8")
    seen: list[tuple[int, int]] = []
    quantize_state_dict(sd, dict.fromkeys(["blocks.0.ffn.0", "blocks.0.ffn.2"], scheme),
                        progress=lambda i, n, _: seen.append((i, n)))
    assert seen == [(1, 2), (2, 2)]
    assert sd["blocks.0.ffn.0.weight"].dtype == torch.int8 and "blocks.0.ffn.0.comfy_quant" in sd
    assert sd["blocks.0.self_attn.q.weight"].dtype == torch.bfloat16
    ckpt = state_dict_to_checkpoint(sd)
    assert set(ckpt.layers) == {"blocks.0.ffn.0", "blocks.0.ffn.2"}


def test_scheme_choices_and_auto() -> None:
    assert auto_scheme_name("cuda", (9, 0))[0] == "fp8 per-token x channel"
    assert auto_scheme_name("cuda", (8, 6))[0] == "int8 W8A8"
    assert auto_scheme_name("cuda", (7, 5))[0].startswith("fp8 weight-only")
    assert auto_scheme_name("cpu")[0].startswith("fp8 weight-only")
    assert auto_scheme_name("npu")[0] == "int8 W8A8"
    # the widget's labels (saved in users' workflows: they must not change) map to the registry's schemes
    assert SCHEME_LABELS == ("auto", "fp8 per-tensor", "fp8 per-token x channel", "fp8 block",
                             "fp8 weight-only (per-channel)", "fp8 weight-only (block)", "int8 W8A8")
    for c in CHOICES:
        built = build_scheme(c.label, "64x64")
        assert built.name == c.scheme and built.describe().startswith(c.label)
        assert built.block == ((64, 64) if c.uses_block else None)
    assert build_scheme("fp8 block", "64x128").block == (64, 128)
    with pytest.raises(ValueError, match="power of two"):
        build_scheme("fp8 block", "100x128")
