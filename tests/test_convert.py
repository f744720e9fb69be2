"""Streaming conversion: what gets quantized, numerics, atomic failure, peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_dit_quant.quant.convert import convert_file
from comfyui_dit_quant.quant.families import UnknownFamilyError
from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError
from comfyui_dit_quant.quant.schemes import FP8Block, FP8Channel, FP8Tensor, FP8WeightOnly, Int8, Scheme

from conftest import wan_comfy_shapes, write_random_checkpoint

SCHEMES = [FP8Tensor(), FP8Channel(), FP8Block("32x32"), FP8WeightOnly(), Int8()]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_convert_quantizes_block_linears_and_keeps_preset_layers(tmp_path: Path, wan_bf16_file: Path,
                                                                 scheme: Scheme) -> None:
    out = tmp_path / "q.safetensors"
    res = convert_file(wan_bf16_file, out, scheme)
    assert res.family is not None and res.family.family == "wan"
    assert res.format == ("comfy_quant" if isinstance(scheme, (FP8Tensor, Int8)) else "dit_quant")
    quantized = {r.name for r in res.report.quantized}
    expected = {f"blocks.{b}.{a}.{p}" for b in range(2) for a in ("self_attn", "cross_attn") for p in "qkvo"}
    expected |= {f"blocks.{b}.ffn.{i}" for b in range(2) for i in (0, 2)}
    assert quantized == expected  # embeddings, time projection and head stay high precision (family preset)
    kept = {r.name: r.reason for r in res.report.skipped}
    assert "time_projection.1" in kept and "head.head" in kept and "ignored by pattern" in kept["head.head"]

    src, ckpt = load_file(wan_bf16_file), read_checkpoint(out)
    assert ckpt.layers == {name: scheme for name in expected}
    for name in expected:
        w = src[f"{name}.weight"].float()
        deq = scheme.dequantize(ckpt.tensors[f"{name}.weight"], ckpt.tensors[f"{name}.weight_scale"])
        rel = (deq - w).norm() / w.norm()
        assert rel < (0.01 if isinstance(scheme, Int8) else 0.05), (name, rel)
    for key in src:  # everything that is not a quantized weight is copied bit for bit
        if key[: -len(".weight")] not in expected:
            assert torch.equal(ckpt.tensors[key], src[key]), key
    assert res.report.bytes_after < res.report.bytes_before


def test_ignore_and_quality_preset(tmp_path: Path, wan_bf16_file: Path) -> None:
    res = convert_file(wan_bf16_file, tmp_path / "q.safetensors", FP8Channel(), ignore="ffn\nre:blocks\\.1\\.")
    assert {r.name for r in res.report.quantized} == {f"blocks.0.{a}.{p}" for a in ("self_attn", "cross_attn")
                                                       for p in "qkvo"}


def test_prefixed_checkpoint(tmp_path: Path) -> None:
    src = write_random_checkpoint(tmp_path / "p.safetensors", wan_comfy_shapes(), prefix="model.diffusion_model.")
    res = convert_file(src, tmp_path / "q.safetensors", FP8Tensor())
    assert res.family is not None and res.family.prefix == "model.diffusion_model."
    assert "model.diffusion_model.blocks.0.ffn.0" in {r.name for r in res.report.quantized}
    assert "model.diffusion_model.head.head" in {r.name for r in res.report.skipped}


def test_unknown_family_refused_unless_family_none(tmp_path: Path) -> None:
    src = write_random_checkpoint(tmp_path / "u.safetensors", {"foo.weight": (32, 32), "bar.weight": (32, 32)})
    with pytest.raises(UnknownFamilyError):
        convert_file(src, tmp_path / "q.safetensors", FP8Tensor())
    assert not (tmp_path / "q.safetensors").exists()
    res = convert_file(src, tmp_path / "q.safetensors", FP8Tensor(), family="none")
    assert len(res.report.quantized) == 2


def test_nan_weight_fails_naming_key_and_leaves_no_file(tmp_path: Path) -> None:
    def poison(name: str, t: torch.Tensor) -> torch.Tensor:
        if name == "blocks.1.ffn.2.weight":
            t[3, 5] = float("nan")
        return t

    src = write_random_checkpoint(tmp_path / "n.safetensors", wan_comfy_shapes(), fill=poison)
    out = tmp_path / "out" / "q.safetensors"
    with pytest.raises(CheckpointError) as err:
        convert_file(src, out, FP8Block("32x32"))
    assert str(src) in str(err.value) and "blocks.1.ffn.2.weight" in str(err.value)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_truncated_input_leaves_no_file(tmp_path: Path, wan_bf16_file: Path) -> None:
    data = wan_bf16_file.read_bytes()
    wan_bf16_file.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        convert_file(wan_bf16_file, tmp_path / "q.safetensors", FP8Tensor())
    assert not (tmp_path / "q.safetensors").exists()


def test_already_quantized_input_is_refused(tmp_path: Path, wan_bf16_file: Path) -> None:
    convert_file(wan_bf16_file, tmp_path / "q.safetensors", FP8Tensor())
    with pytest.raises(CheckpointError, match="already quantized"):
        convert_file(tmp_path / "q.safetensors", tmp_path / "q2.safetensors", FP8Tensor())


_RSS_SCRIPT = r"""
import json, resource, sys
from comfyui_dit_quant.quant.convert import convert_file
from comfyui_dit_quant.quant.schemes import get_scheme
import torch
torch.ones(1)  # imports and allocator warm
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
convert_file(sys.argv[1], sys.argv[2], get_scheme(sys.argv[3], **json.loads(sys.argv[4])))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(("scheme", "opts"), [("fp8_block", {}), ("int8", {})])
def test_streaming_peak_memory_is_far_below_file_size(tmp_path: Path, scheme: str, opts: dict) -> None:
    shapes = wan_comfy_shapes(dim=1536, ffn=8960, layers=3, text_dim=1536, freq_dim=256)
    src = write_random_checkpoint(tmp_path / "big.safetensors", shapes)
    size = src.stat().st_size
    assert size > 250 * 1024**2
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(src), str(tmp_path / "q.safetensors"), scheme,
                          json.dumps(opts)], capture_output=True, text=True, check=True)
    rss = json.loads(out.stdout.strip().splitlines()[-1])
    growth = rss["peak"] - rss["base"]
    # one tensor (27 MiB in bf16, plus its float32 working copies) — not the 300+ MiB file
    assert growth < size / 3, f"peak RSS grew by {growth / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


def _fp8_cast_file(path: Path, nan_key: str | None = None) -> Path:
    """A Wan file as Comfy-Org's `*_fp8_e4m3fn` ones are laid out: block weights cast to FP8, no scales."""
    sd = load_file(write_random_checkpoint(path, wan_comfy_shapes()))
    sd = {k: v.to(torch.float8_e4m3fn) if v.dim() == 2 and k.startswith("blocks.") else v for k, v in sd.items()}
    if nan_key is not None:
        sd[nan_key].view(torch.uint8)[3, 5] = 0x7F  # e4m3fn NaN
    save_file(sd, str(path))
    return path


@pytest.mark.parametrize("scheme", [FP8Channel(), FP8Block("32x32"), Int8()], ids=lambda s: s.name)
def test_unscaled_fp8_cast_file_quantizes(tmp_path: Path, scheme: Scheme) -> None:
    """Issue 16.4: `*_fp8_e4m3fn.safetensors` files (2-D weights simply cast to FP8, no scales) used to crash with
    "isfinite not implemented for Float8_e4m3fn"; they quantize like any file, from the FP8 values."""
    src = _fp8_cast_file(tmp_path / "w_fp8_e4m3fn.safetensors")
    res = convert_file(src, tmp_path / "q.safetensors", scheme)
    assert "blocks.0.ffn.0" in {r.name for r in res.report.quantized}
    original = load_file(src)["blocks.0.ffn.0.weight"].float()
    ckpt = read_checkpoint(tmp_path / "q.safetensors")
    stored = ckpt.layer_tensors("blocks.0.ffn.0")
    deq = ckpt.layers["blocks.0.ffn.0"].dequantize(stored["weight"], stored["weight_scale"])
    assert torch.nn.functional.cosine_similarity(deq.flatten(), original.flatten(), dim=0) > 0.999


@pytest.mark.parametrize("scheme", [FP8Tensor(), FP8Channel(), FP8Block("32x32"), FP8WeightOnly(),
                                    FP8WeightOnly("tensor")], ids=lambda s: s.describe())
def test_fp8_cast_codes_are_kept_under_unit_scales(tmp_path: Path, scheme: Scheme) -> None:
    """The FP8 schemes store an e4m3 cast file's codes as they are (scale 1): no second rounding."""
    src = _fp8_cast_file(tmp_path / "w_fp8_e4m3fn.safetensors")
    convert_file(src, tmp_path / "q.safetensors", scheme, preset="none")
    original = load_file(src)
    ckpt = read_checkpoint(tmp_path / "q.safetensors")
    assert len(ckpt.layers) >= 8
    for layer in [n for n in ckpt.layers if n.startswith("blocks.")]:
        stored = ckpt.layer_tensors(layer)
        assert torch.equal(stored["weight"].view(torch.uint8), original[f"{layer}.weight"].view(torch.uint8)), layer
        assert bool((stored["weight_scale"] == 1).all()), layer


def test_e5m2_cast_and_int8_requantize_from_the_fp8_values() -> None:
    w = (torch.randn(64, 64) * 3).to(torch.float8_e5m2)
    stored = FP8Channel().quantize(w)
    assert stored["weight"].dtype == torch.float8_e4m3fn and not bool((stored["weight_scale"] == 1).all())
    deq = FP8Channel().dequantize(stored["weight"], stored["weight_scale"])
    assert torch.nn.functional.cosine_similarity(deq.flatten(), w.float().flatten(), dim=0) > 0.999
    stored = Int8().quantize(w.float().to(torch.float8_e4m3fn))
    assert stored["weight"].dtype == torch.int8 and stored["weight_scale"].shape == (64,)


def test_fp8_nan_weight_is_refused_naming_key(tmp_path: Path) -> None:
    src = _fp8_cast_file(tmp_path / "n.safetensors", nan_key="blocks.1.ffn.2.weight")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.ffn\.2\.weight.*NaN"):
        convert_file(src, tmp_path / "q.safetensors", FP8Channel())
    assert not (tmp_path / "q.safetensors").exists()
