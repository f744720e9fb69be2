"""Per-layer ``comfy_quant`` markers: what this pack writes for every scheme, and reading convert_to_quant's names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_dit_quant.quant.formats.checkpoint import QuantizedCheckpoint
from comfyui_dit_quant.quant.formats.io import read_checkpoint, write_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError
from comfyui_dit_quant.quant.schemes import FP8Block, FP8Channel, FP8Tensor, FP8WeightOnly, Int8, Scheme


def _marker(raw: dict[str, torch.Tensor], layer: str) -> dict:
    return json.loads(bytes(raw[f"{layer}.comfy_quant"].tolist()))


def _u8(obj: object) -> torch.Tensor:
    return torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8)


# scheme, weight shape, expected marker, expected on-disk scale shape
WRITTEN = [
    (FP8Channel(), (64, 96), {"format": "float8_e4m3fn_rowwise"}, (64,)),
    (FP8WeightOnly(), (64, 96), {"format": "float8_e4m3fn_rowwise", "full_precision_matrix_mult": True}, (64,)),
    (FP8Block("32x32"), (64, 96), {"format": "float8_e4m3fn_blockwise", "group_size": 32}, (2, 3)),
    (FP8WeightOnly("block", "32"), (64, 96),
     {"format": "float8_e4m3fn_blockwise", "group_size": 32, "full_precision_matrix_mult": True}, (2, 3)),
    (FP8Block("32x64"), (64, 128), {"format": "comfyui_dit_quant/fp8_block"}, (2, 2)),  # non-square
    (FP8Block("64x64"), (64, 80), {"format": "comfyui_dit_quant/fp8_block"}, (1, 2)),  # ragged K
    (FP8WeightOnly("block", "64x32"), (64, 64), {"format": "comfyui_dit_quant/fp8_weight_only"}, (1, 2)),
    (FP8Tensor(), (64, 96), {"format": "float8_e4m3fn"}, ()),
    (Int8(), (64, 96), {"format": "int8_tensorwise"}, (64, 1)),
]


@pytest.mark.parametrize(("scheme", "shape", "marker", "scale_shape"), WRITTEN,
                         ids=[f"{w[0].describe()}-{w[1]}" for w in WRITTEN])
def test_every_layer_of_a_pack_file_has_a_marker(tmp_path: Path, scheme: Scheme, shape: tuple[int, int],
                                                 marker: dict, scale_shape: tuple[int, ...]) -> None:
    """In a dit_quant file (forced by one fp8_channel layer) every layer has the marker stock ComfyUI runs or refuses
    by name; the header still decides the scheme, and the file reads back bit-exact."""
    gen = torch.Generator().manual_seed(1)
    anchor = FP8Channel().quantize(torch.randn(32, 32, generator=gen))
    stored = scheme.quantize(torch.randn(*shape, generator=gen))
    tensors = {"a.weight": anchor["weight"], "a.weight_scale": anchor["weight_scale"],
               **{f"l.{k}": v for k, v in stored.items()}}
    path = tmp_path / "p.safetensors"
    assert write_checkpoint(path, QuantizedCheckpoint(tensors, {"a": FP8Channel(), "l": scheme})) == "dit_quant"
    raw = load_file(path)
    assert _marker(raw, "l") == marker
    assert tuple(raw["l.weight_scale"].shape) == scale_shape
    back = read_checkpoint(path)
    assert back.layers == {"a": FP8Channel(), "l": scheme}
    assert set(back.tensors) == set(tensors)
    for k, t in tensors.items():
        assert back.tensors[k].shape == t.shape and torch.equal(back.tensors[k].reshape(-1).view(torch.uint8),
                                                               t.reshape(-1).view(torch.uint8)), k


def test_pack_files_written_before_the_markers_still_read(tmp_path: Path) -> None:
    stored = FP8Block("32x64").quantize(torch.randn(64, 128))
    meta = {"comfyui_dit_quant": json.dumps({"format_version": 1,
                                             "layers": {"l": {"scheme": "fp8_block", "block_size": [32, 64]}}})}
    save_file({"l.weight": stored["weight"], "l.weight_scale": stored["weight_scale"]}, tmp_path / "o.safetensors",
              metadata=meta)
    assert read_checkpoint(tmp_path / "o.safetensors").layers == {"l": FP8Block("32x64")}


def _ctq_file(path: Path, fmt: dict, scale: torch.Tensor, weight: torch.Tensor, **extra: torch.Tensor) -> Path:
    """A layer laid out as silveroxides/convert_to_quant writes it."""
    save_file({"l.weight": weight, "l.weight_scale": scale, "l.comfy_quant": _u8(fmt),
               "l.bias": torch.zeros(weight.shape[0]).bfloat16(), **{f"l.{k}": v for k, v in extra.items()}}, path)
    return path


@pytest.mark.parametrize("scale_2d", [False, True], ids=["scale[N]", "scale[N,1]"])
def test_reads_convert_to_quant_rowwise(tmp_path: Path, scale_2d: bool) -> None:
    w = torch.randn(48, 64)
    stored = FP8Channel().quantize(w)
    scale = stored["weight_scale"].reshape(-1, 1) if scale_2d else stored["weight_scale"]
    path = _ctq_file(tmp_path / "r.safetensors", {"format": "float8_e4m3fn_rowwise"}, scale, stored["weight"],
                     input_scale=torch.tensor(1.0))
    back = read_checkpoint(path)
    # convert_to_quant's loader dequantizes rowwise weights and multiplies in high precision: weight-only here
    assert back.format == "comfy_quant" and back.layers == {"l": FP8WeightOnly("channel")}
    assert "l.input_scale" not in back.tensors  # its dummy 1.0 is not an activation scale
    deq = back.layers["l"].dequantize(back.tensors["l.weight"], back.tensors["l.weight_scale"])
    assert torch.equal(deq, FP8Channel().dequantize(stored["weight"], stored["weight_scale"]))
    assert (deq - w).abs().max() <= w.abs().amax(dim=1).max() / 8


def test_reads_convert_to_quant_blockwise(tmp_path: Path) -> None:
    w = torch.randn(64, 128)
    stored = FP8Block("32x32").quantize(w)
    path = _ctq_file(tmp_path / "b.safetensors", {"format": "float8_e4m3fn_blockwise", "group_size": 32},
                     stored["weight_scale"], stored["weight"])
    back = read_checkpoint(path)
    assert back.layers == {"l": FP8WeightOnly("block", (32, 32))}
    assert torch.equal(back.layers["l"].dequantize(back.tensors["l.weight"], back.tensors["l.weight_scale"]),
                       FP8Block("32x32").dequantize(stored["weight"], stored["weight_scale"]))


def test_blockwise_without_group_size_is_convert_to_quants_default_64(tmp_path: Path) -> None:
    stored = FP8Block("64x64").quantize(torch.randn(128, 128))
    path = _ctq_file(tmp_path / "d.safetensors", {"format": "float8_e4m3fn_blockwise"}, stored["weight_scale"],
                     stored["weight"])
    assert read_checkpoint(path).layers == {"l": FP8WeightOnly("block", (64, 64))}


def test_blockwise_marker_with_per_row_scales_reads_as_rowwise(tmp_path: Path) -> None:
    """convert_to_quant falls back to per-row scales when G does not divide the shape, keeping the block name."""
    stored = FP8Channel().quantize(torch.randn(48, 80))
    path = _ctq_file(tmp_path / "f.safetensors", {"format": "float8_e4m3fn_blockwise", "group_size": 64},
                     stored["weight_scale"], stored["weight"])
    assert read_checkpoint(path).layers == {"l": FP8WeightOnly("channel")}


def _refused(path: Path, *expected: str) -> None:
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    for text in (str(path), *expected):
        assert text in str(err.value), (text, str(err.value))


REFUSED = {
    "int8_blockwise": ({"format": "int8_blockwise", "group_size": 32}, "int8", ("int8_blockwise", "'l'")),
    "block_scale_shape": ({"format": "float8_e4m3fn_blockwise", "group_size": 16}, "fp8",
                          ("l.weight_scale", "[4, 8]")),
    "group_not_power_of_two": ({"format": "float8_e4m3fn_blockwise", "group_size": 48}, "fp8", ("48", "'l'")),
    "group_not_int": ({"format": "float8_e4m3fn_blockwise", "group_size": "32"}, "fp8", ("group_size", "'l'")),
    "rowwise_on_int8_codes": ({"format": "float8_e4m3fn_rowwise"}, "int8", ("l.weight", "torch.int8")),
    "pack_marker_without_header": ({"format": "comfyui_dit_quant/fp8_block"}, "fp8",
                                   ("comfyui_dit_quant/fp8_block", "header")),
    "unknown": ({"format": "nvfp4"}, "fp8", ("nvfp4",)),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_layers_it_cannot_run_are_refused_by_name(tmp_path: Path, case: str) -> None:
    fmt, codes, expected = REFUSED[case]
    weight = torch.zeros(64, 128, dtype=torch.int8) if codes == "int8" else torch.zeros(64, 128).to(torch.float8_e4m3fn)
    _refused(_ctq_file(tmp_path / f"{case}.safetensors", fmt, torch.ones(2, 4), weight), *expected)


def test_marker_for_a_layer_the_pack_header_does_not_list(tmp_path: Path) -> None:
    a, b = (FP8Channel().quantize(torch.randn(32, 32)) for _ in range(2))
    meta = {"comfyui_dit_quant": json.dumps({"format_version": 1, "layers": {"a": {"scheme": "fp8_channel"}}})}
    save_file({"a.weight": a["weight"], "a.weight_scale": a["weight_scale"], "a.comfy_quant": _u8(
        {"format": "float8_e4m3fn_rowwise"}), "b.weight": b["weight"], "b.weight_scale": b["weight_scale"],
        "b.comfy_quant": _u8({"format": "float8_e4m3fn_rowwise"})}, tmp_path / "x.safetensors", metadata=meta)
    _refused(tmp_path / "x.safetensors", "b.comfy_quant", "does not list")
