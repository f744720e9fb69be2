"""Checkpoint formats: bit-exact write → read round trips, legacy reading, and clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_dit_quant.quant.formats.checkpoint import QuantizedCheckpoint
from comfyui_dit_quant.quant.formats.io import read_checkpoint, write_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError, read_header
from comfyui_dit_quant.quant.schemes import FP8Block, FP8Channel, FP8Tensor, FP8WeightOnly, Int8, Scheme

ALL_SCHEMES = [FP8Tensor(), FP8Channel(), FP8Block("32x64"), FP8Block(), FP8WeightOnly(), FP8WeightOnly("tensor"),
               FP8WeightOnly("block", "64x32"), Int8()]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.uint8)


def _checkpoint(schemes: list[Scheme], seed: int = 0) -> QuantizedCheckpoint:
    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {"norm.weight": torch.randn(8, generator=gen).bfloat16(),
                                        "embed.weight": torch.randn(10, 16, generator=gen).half()}
    layers = {}
    for i, s in enumerate(schemes):
        w = torch.randn(48 + 16 * i, 80, generator=gen)  # ragged for the 64-blocks on purpose
        tensors.update({f"blocks.{i}.proj.{k}": v for k, v in s.quantize(w).items()})
        tensors[f"blocks.{i}.proj.bias"] = torch.randn(w.shape[0], generator=gen).bfloat16()
        layers[f"blocks.{i}.proj"] = s
    return QuantizedCheckpoint(tensors, layers)


@pytest.mark.parametrize("scheme", ALL_SCHEMES, ids=lambda s: s.describe())
def test_round_trip_is_bit_exact(tmp_path: Path, scheme: Scheme) -> None:
    ckpt = _checkpoint([scheme])
    path = tmp_path / "q.safetensors"
    fmt = write_checkpoint(path, ckpt)
    native = isinstance(scheme, (FP8Tensor, Int8)) or scheme == FP8WeightOnly("tensor")
    assert fmt == ("comfy_quant" if native else "dit_quant")
    back = read_checkpoint(path)
    assert back.format == fmt
    assert back.layers == ckpt.layers
    assert set(back.tensors) == set(ckpt.tensors)
    for k, t in ckpt.tensors.items():
        assert back.tensors[k].dtype == t.dtype and back.tensors[k].shape == t.shape, k
        assert torch.equal(_bits(back.tensors[k]), _bits(t)), k
    # a second write of what was read gives the same bytes
    again = tmp_path / "again.safetensors"
    write_checkpoint(again, back, fmt)
    assert again.read_bytes() == path.read_bytes()


def test_mixed_schemes_round_trip(tmp_path: Path) -> None:
    ckpt = _checkpoint(ALL_SCHEMES)
    write_checkpoint(tmp_path / "m.safetensors", ckpt)
    back = read_checkpoint(tmp_path / "m.safetensors")
    assert back.layers == ckpt.layers
    assert all(torch.equal(_bits(back.tensors[k]), _bits(t)) for k, t in ckpt.tensors.items())


def test_native_file_layout_is_what_comfyui_reads(tmp_path: Path) -> None:
    ckpt = _checkpoint([FP8Tensor()])
    write_checkpoint(tmp_path / "n.safetensors", ckpt, "comfy_quant")
    raw = load_file(tmp_path / "n.safetensors")
    assert raw["blocks.0.proj.weight"].dtype == torch.float8_e4m3fn
    assert raw["blocks.0.proj.weight_scale"].dtype == torch.float32
    assert raw["blocks.0.proj.weight_scale"].shape == ()
    assert json.loads(bytes(raw["blocks.0.proj.comfy_quant"].tolist())) == {"format": "float8_e4m3fn"}
    assert "comfyui_dit_quant" not in read_header(tmp_path / "n.safetensors").metadata


def test_native_per_tensor_weight_only_is_full_precision_matrix_mult(tmp_path: Path) -> None:
    """fp8 per-tensor with and without FP8 activations in one native file (the default preset's modulation
    layers): ComfyUI's ``full_precision_matrix_mult`` flag tells the two apart."""
    ckpt = _checkpoint([FP8Tensor(), FP8WeightOnly("tensor")])
    assert write_checkpoint(tmp_path / "w.safetensors", ckpt) == "comfy_quant"
    raw = load_file(tmp_path / "w.safetensors")
    assert json.loads(bytes(raw["blocks.1.proj.comfy_quant"].tolist())) == {
        "format": "float8_e4m3fn", "full_precision_matrix_mult": True}
    assert json.loads(bytes(raw["blocks.0.proj.comfy_quant"].tolist())) == {"format": "float8_e4m3fn"}
    assert raw["blocks.1.proj.weight_scale"].shape == ()
    assert read_checkpoint(tmp_path / "w.safetensors").layers == ckpt.layers


def test_native_int8_uses_comfyui_per_channel_layout(tmp_path: Path) -> None:
    ckpt = _checkpoint([Int8()])
    write_checkpoint(tmp_path / "i.safetensors", ckpt)
    raw = load_file(tmp_path / "i.safetensors")
    assert raw["blocks.0.proj.weight"].dtype == torch.int8
    assert raw["blocks.0.proj.weight_scale"].shape == (48, 1)  # ComfyUI broadcasts q * scale
    assert json.loads(bytes(raw["blocks.0.proj.comfy_quant"].tolist())) == {"format": "int8_tensorwise"}
    # a scalar int8_tensorwise scale written by another tool reads as per-channel
    raw["blocks.0.proj.weight_scale"] = torch.tensor(0.01)
    save_file(raw, tmp_path / "s.safetensors")
    back = read_checkpoint(tmp_path / "s.safetensors")
    assert torch.equal(back.tensors["blocks.0.proj.weight_scale"], torch.full((48,), 0.01))


def test_native_format_refuses_schemes_it_cannot_express(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="native format only holds per-tensor"):
        write_checkpoint(tmp_path / "x.safetensors", _checkpoint([FP8Block()]), "comfy_quant")
    assert not (tmp_path / "x.safetensors").exists()


def test_reads_native_header_metadata_variant(tmp_path: Path) -> None:
    w, s = FP8Tensor().quantize(torch.randn(32, 32)).values()
    meta = {"_quantization_metadata": json.dumps({"format_version": "1.0",
                                                  "layers": {"l": {"format": "float8_e4m3fn"}}})}
    save_file({"l.weight": w, "l.weight_scale": s.reshape(1)}, tmp_path / "h.safetensors", metadata=meta)
    back = read_checkpoint(tmp_path / "h.safetensors")
    assert back.format == "comfy_quant" and back.layers == {"l": FP8Tensor()}
    assert back.tensors["l.weight_scale"].shape == ()  # old [1] scales normalised


def test_reads_legacy_scaled_fp8(tmp_path: Path) -> None:
    w = torch.randn(32, 64)
    stored = FP8Tensor().quantize(w)
    save_file({"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn), "a.weight": stored["weight"],
               "a.scale_weight": stored["weight_scale"].reshape(1), "a.scale_input": torch.tensor([0.5]),
               "b.weight": torch.randn(4, 4).bfloat16()}, tmp_path / "legacy.safetensors")
    back = read_checkpoint(tmp_path / "legacy.safetensors")
    assert back.format == "scaled_fp8" and back.layers == {"a": FP8Tensor()}
    assert set(back.tensors) == {"a.weight", "a.weight_scale", "a.input_scale", "b.weight"}
    assert torch.equal(back.tensors["a.weight_scale"], stored["weight_scale"])
    deq = FP8Tensor().dequantize(back.tensors["a.weight"], back.tensors["a.weight_scale"])
    assert (deq - w).abs().max() <= w.abs().max() / 16


@pytest.mark.parametrize(("marker", "scale_input", "scheme", "input_scale"), [
    (torch.empty(0, dtype=torch.float8_e4m3fn), 1.0, FP8Tensor(), None),  # 1.0: no calibrated scale -> dynamic
    (torch.empty(0, dtype=torch.float8_e4m3fn), 0.25, FP8Tensor(), 0.25),  # a calibrated static scale is kept
    (torch.zeros(2, dtype=torch.float8_e4m3fn), 0.25, FP8WeightOnly("tensor"), None),  # 2 elements: full precision
    (torch.zeros(2), 1.0, FP8WeightOnly("tensor"), None),
], ids=["unit_scale_input", "calibrated_scale_input", "two_element_marker", "two_element_float32_marker"])
def test_legacy_scaled_fp8_reads_as_comfyui_does(tmp_path: Path, marker: torch.Tensor, scale_input: float,
                                                 scheme: Scheme, input_scale: float | None) -> None:
    """``comfy.utils.convert_old_quants``: scale_input == 1.0 is dropped, a 2-element marker means
    full_precision_matrix_mult."""
    stored = FP8Tensor().quantize(torch.randn(32, 64))
    save_file({"model.diffusion_model.scaled_fp8": marker, "a.weight": stored["weight"],
               "a.scale_weight": stored["weight_scale"].reshape(1), "a.scale_input": torch.tensor([scale_input])},
              tmp_path / "legacy.safetensors")
    back = read_checkpoint(tmp_path / "legacy.safetensors")
    assert back.layers == {"a": scheme}
    got = back.tensors.get("a.input_scale")
    assert (None if got is None else got.item()) == input_scale


@pytest.mark.parametrize("case", ["missing_scale", "scale_shape", "weight_dtype", "unknown_native"])
def test_bad_quantized_layers_name_file_and_key(tmp_path: Path, case: str) -> None:
    stored = FP8Channel().quantize(torch.randn(32, 64))
    tensors = {"l.weight": stored["weight"], "l.weight_scale": stored["weight_scale"]}
    meta = {"comfyui_dit_quant": json.dumps({"format_version": 1, "layers": {"l": {"scheme": "fp8_channel"}}})}
    expect = "l.weight_scale"
    if case == "missing_scale":
        del tensors["l.weight_scale"]
    elif case == "scale_shape":
        tensors["l.weight_scale"] = torch.ones(5)
    elif case == "weight_dtype":
        tensors["l.weight"] = torch.zeros(32, 64, dtype=torch.int8)
        expect = "l.weight"
    else:
        meta = {}
        tensors["l.comfy_quant"] = torch.tensor(list(b'{"format": "nvfp4"}'), dtype=torch.uint8)
        expect = "nvfp4"
    path = tmp_path / f"{case}.safetensors"
    save_file(tensors, path, metadata=meta)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert str(path) in str(err.value) and expect in str(err.value)


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    save_file({"a": torch.randn(64, 64), "b": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="truncated") as err:
        read_checkpoint(path)
    assert str(path) in str(err.value) and "'b'" in str(err.value)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_header(path)
