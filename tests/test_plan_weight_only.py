"""The default preset stores Qwen-Image / HunyuanVideo 1.5 modulation layers FP8 weight-only (M = batch size, so
activation quantization buys nothing there), which brings those models to about half of bf16; INT8 quantizes them
W8A8 like the rest; the other presets and the user's ignore list keep them in high precision. Real-size shapes come
from diffusers models built on the meta device, mapped to ComfyUI names where the test says so.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from comfyui_dit_quant.quant.convert import convert_file
from comfyui_dit_quant.quant.families import detect_family, plan_state_dict_keys, preset_weight_only
from comfyui_dit_quant.quant.formats import comfy_native
from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import read_header
from comfyui_dit_quant.quant.plan import plan_state_dict, small_m_scheme
from comfyui_dit_quant.quant.schemes import FP8WeightOnly, Scheme, get_scheme

diffusers = pytest.importorskip("diffusers")

WO_TENSOR = FP8WeightOnly("tensor")
REAL = {"qwen_image": ("QwenImageTransformer2DModel", {}),
        "hunyuan_video15": ("HunyuanVideo15Transformer3DModel", {}),
        "wan": ("WanTransformer3DModel", {})}


@functools.cache
def real_shapes(family: str, naming: str, num_layers: int | None = None) -> dict[str, tuple[tuple, torch.dtype]]:
    """Key → (shape, bf16) of the real-size model (all blocks unless ``num_layers``), in ``naming``."""
    cls_name, cfg = REAL[family]
    with torch.device("meta"):
        model = getattr(diffusers, cls_name)(**cfg, **({"num_layers": num_layers} if num_layers else {}))
    src = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if naming == "comfyui":
        out = {}
        for e in plan_state_dict_keys(family, src, "to_comfyui"):
            parts = [src[s] for s in e.sources]
            out[e.target] = (sum(p[0] for p in parts), *parts[0][1:])
        src = out
    return {k: (s, torch.bfloat16) for k, s in src.items()}


@functools.cache
def stored_bytes(scheme: Scheme, shape: tuple[int, int]) -> int:
    return sum(t.numel() * t.element_size() for t in scheme.empty_tensors(*shape).values())


def planned_bytes(shapes: dict, layers: dict[str, Scheme]) -> int:
    """Bytes of the planned file: stored tensors of quantized layers, everything else as it is."""
    total = 0
    for key, (shape, dtype) in shapes.items():
        layer = key.removesuffix(".weight")
        if key.endswith(".weight") and layer in layers:
            total += stored_bytes(layers[layer], tuple(shape))
        else:
            total += torch.Size(shape).numel() * dtype.itemsize
    return total


def _plan(family: str, naming: str, scheme: Scheme, preset: str = "default", ignore: str = "",
          num_layers: int | None = 2):
    shapes = real_shapes(family, naming, num_layers)
    return plan_state_dict(shapes, scheme, detect_family({k: s for k, (s, _) in shapes.items()}), preset, ignore)


@pytest.mark.parametrize("naming", ["comfyui", "diffusers"])
@pytest.mark.parametrize("family", ["qwen_image", "hunyuan_video15"])
def test_default_preset_stores_block_modulation_weight_only(family: str, naming: str) -> None:
    scheme = get_scheme("fp8_block")
    layers, report = _plan(family, naming, scheme)
    mods = {n for n, s in layers.items() if s == WO_TENSOR}
    assert mods and len(mods) == 4  # img + txt modulation of each of the 2 blocks
    assert all(("mod" in n or "norm1" in n) for n in mods), mods
    assert all(s == scheme for n, s in layers.items() if n not in mods)
    assert {r.scheme for r in report.quantized if r.name in mods} == {"fp8_weight_only"}
    assert "fp8 weight-only (per-tensor) for the preset's modulation layers" in report.scheme
    # the other kept layers (embedders, final layer) stay kept, with the preset's reason
    assert report.skipped and all("ignored by pattern" in r.reason or "embedding" in r.reason
                                  for r in report.skipped)


@pytest.mark.parametrize("family", ["qwen_image", "hunyuan_video15"])
def test_modulation_under_quality_none_int8_weight_only_and_the_user(family: str) -> None:
    fp8 = get_scheme("fp8_channel")
    default, _ = _plan(family, "comfyui", fp8)
    mods = {n for n, s in default.items() if s == WO_TENSOR}
    quality, _ = _plan(family, "comfyui", fp8, "quality")
    assert not mods & set(quality) and WO_TENSOR not in quality.values()
    none, _ = _plan(family, "comfyui", fp8, "none")
    assert mods <= set(none) and all(none[n] == fp8 for n in mods)  # the main scheme, activations quantized
    int8, _ = _plan(family, "comfyui", get_scheme("int8"))
    assert mods <= set(int8) and set(int8.values()) == {get_scheme("int8")}  # W8A8, per-token scale per row
    user, report = _plan(family, "comfyui", fp8, ignore=next(iter(sorted(mods))))
    assert next(iter(sorted(mods))) not in user and len(mods & set(user)) == len(mods) - 1
    wo = get_scheme("fp8_weight_only")  # already weight-only: the modulation layers take the main scheme
    wo_layers, _ = _plan(family, "comfyui", wo)
    assert mods <= set(wo_layers) and set(wo_layers.values()) == {wo}


def test_small_m_scheme() -> None:
    assert small_m_scheme(get_scheme("fp8_tensor")) == WO_TENSOR
    assert small_m_scheme(get_scheme("fp8_block")) == WO_TENSOR
    block_wo = get_scheme("fp8_weight_only", granularity="block", block_size="128x128")
    assert small_m_scheme(block_wo) is block_wo
    int8 = get_scheme("int8")
    assert small_m_scheme(int8) is int8
    assert preset_weight_only("wan", "default") == []  # Wan's modulation is a parameter table, not a Linear


@pytest.mark.parametrize(("family", "low", "high"), [("qwen_image", 0.50, 0.53), ("hunyuan_video15", 0.50, 0.54)])
def test_real_size_default_preset_about_halves_the_model(family: str, low: float, high: float) -> None:
    """All blocks of the real models: weights after / before for the default preset, FP8 and INT8 (was ~0.67 with
    the modulation layers in bf16)."""
    shapes = real_shapes(family, "comfyui")
    before = planned_bytes(shapes, {})
    for name, opts in (("fp8_tensor", {}), ("fp8_channel", {}), ("fp8_block", {}), ("int8", {})):
        layers, _ = _plan(family, "comfyui", get_scheme(name, **opts), num_layers=None)
        assert low <= planned_bytes(shapes, layers) / before <= high, name
    quality, _ = _plan(family, "comfyui", get_scheme("fp8_channel"), "quality", num_layers=None)
    assert planned_bytes(shapes, quality) / before > 0.6


def _write(path: Path, shapes: dict) -> None:
    from conftest import write_random_checkpoint

    write_random_checkpoint(path, {k: s for k, (s, _) in shapes.items()})


def test_converted_per_tensor_file_stays_comfyui_native(tmp_path: Path) -> None:
    """fp8_tensor + weight-only modulation: every layer is expressible in ComfyUI's format, the modulation layers
    as float8_e4m3fn with full_precision_matrix_mult; read back as the same schemes."""
    shapes = real_shapes("qwen_image", "comfyui", 1)
    small = {k: ((min(s[0], 256), min(s[1], 256)) if len(s) == 2 else tuple(min(d, 256) for d in s), dt)
             for k, (s, dt) in shapes.items()}
    src, dst = tmp_path / "qwen_bf16.safetensors", tmp_path / "qwen_fp8.safetensors"
    _write(src, small)
    result = convert_file(src, dst, get_scheme("fp8_tensor"))
    assert result.format == "comfy_quant"
    mods = {n for n, s in result.layers.items() if s == WO_TENSOR}
    assert mods == {"transformer_blocks.0.img_mod.1", "transformer_blocks.0.txt_mod.1"}
    header = read_header(dst)
    for layer in result.layers:
        cfg = comfy_native.decode_config(_read(dst, f"{layer}.comfy_quant"))
        assert cfg == ({"format": "float8_e4m3fn", "full_precision_matrix_mult": True} if layer in mods
                       else {"format": "float8_e4m3fn"})
        assert header.tensors[f"{layer}.weight_scale"].shape == ()
    ckpt = read_checkpoint(dst)
    assert ckpt.layers == result.layers


def test_converted_block_file_uses_the_pack_format_with_per_layer_schemes(tmp_path: Path) -> None:
    shapes = real_shapes("qwen_image", "comfyui", 1)
    small = {k: ((min(s[0], 256), min(s[1], 256)) if len(s) == 2 else tuple(min(d, 256) for d in s), dt)
             for k, (s, dt) in shapes.items()}
    src, dst = tmp_path / "qwen_bf16.safetensors", tmp_path / "qwen_block.safetensors"
    _write(src, small)
    result = convert_file(src, dst, get_scheme("fp8_block", block_size="64x64"))
    assert result.format == "dit_quant"
    ckpt = read_checkpoint(dst)
    assert ckpt.layers == result.layers
    assert ckpt.layers["transformer_blocks.0.img_mod.1"] == WO_TENSOR
    assert ckpt.layers["transformer_blocks.0.attn.to_q"] == get_scheme("fp8_block", block_size="64x64")


def _read(path: Path, key: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.get_tensor(key)
