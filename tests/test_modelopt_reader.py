"""ModelOpt reader on synthetic exports (no nvidia-modelopt needed): layouts, detection and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_dit_quant.quant.formats.modelopt import read_modelopt
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError
from comfyui_dit_quant.quant.modelopt_keys import fuse_layers, swap_layer
from comfyui_dit_quant.quant.schemes import FP8Channel, FP8Tensor, FP8WeightOnly

FP8 = torch.float8_e4m3fn


def _export(d: Path, tensors: dict[str, torch.Tensor], algo: str | None = "FP8", **q) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(d / "diffusion_pytorch_model.safetensors"))
    cfg: dict = {"_class_name": "X"}
    if algo is not None:
        cfg["quantization_config"] = {"quant_method": "modelopt", "quant_algo": algo, **q}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _w(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return (torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 100).clamp(-448, 448).to(FP8)


def test_fp8_pb_wo_layouts_lower_case_algo(tmp_path: Path) -> None:
    t = {"a.weight": _w(128, 128), "a.weight_scale": torch.tensor(0.01),  # one block: 0-dim scale
         "b.weight": _w(200, 300), "b.weight_scale": torch.rand(2, 1, 3, 1),  # padded edges
         "c.weight": torch.randn(16, 16).bfloat16()}
    ck = read_modelopt(_export(tmp_path / "e", t, "fp8_pb_wo")).checkpoint
    assert isinstance(ck.layers["a"], FP8WeightOnly) and ck.layers["a"].block == (128, 128)
    assert ck.tensors["a.weight_scale"].shape == (1, 1) and ck.tensors["b.weight_scale"].shape == (2, 3)
    assert "c" not in ck.layers


def test_fp8_scales_and_per_channel(tmp_path: Path) -> None:
    t = {"a.weight": _w(32, 32), "a.weight_scale": torch.tensor([0.5]), "a.input_scale": torch.tensor([0.1])}
    ck = read_modelopt(_export(tmp_path / "f", t, "fp8")).checkpoint
    assert isinstance(ck.layers["a"], FP8Tensor) and ck.tensors["a.weight_scale"].shape == ()
    assert ck.tensors["a.input_scale"].shape == ()
    t = {"a.weight": _w(32, 16), "a.weight_scale": torch.rand(32, 1)}
    ck = read_modelopt(_export(tmp_path / "c", t, "FP8_PER_CHANNEL_PER_TOKEN")).checkpoint
    assert isinstance(ck.layers["a"], FP8Channel) and ck.tensors["a.weight_scale"].shape == (32,)


@pytest.mark.parametrize("tensors, algo, match", [
    ({"a.weight": _w(32, 32)}, "FP8", "'a.weight' has no 'a.weight_scale'"),
    ({"a.weight": _w(32, 32), "a.weight_scale": torch.rand(32)}, "FP8", r"a.weight_scale has shape \[32\]"),
    ({"a.weight": _w(256, 32), "a.weight_scale": torch.tensor(1.0)}, "FP8_PB_WO", r"expects \[2, 1, 1, 1\]"),
    ({"a.weight": _w(32, 32), "a.weight_scale": torch.rand(3)}, "FP8_PER_CHANNEL_PER_TOKEN", r"expects \[32\]"),
    ({"a.weight": _w(32, 32), "a.weight_scale": torch.tensor(1.0)}, "NVFP4",
     "'NVFP4' is not supported; this loader reads FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_PB_WO"),
    ({"a.weight": _w(32, 32), "a.weight_scale": torch.tensor(1.0)}, "W4A8_AWQ", "'W4A8_AWQ' is not supported"),
    ({"a.weight": torch.randn(4, 4), "a.weight_scale": torch.tensor(1.0)}, "FP8", "no 2-D float8 weight"),
])
def test_bad_exports_name_the_key(tmp_path: Path, tensors: dict, algo: str, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        read_modelopt(_export(tmp_path / "bad", tensors, algo))


def test_not_modelopt_and_inferred_algo(tmp_path: Path) -> None:
    d = _export(tmp_path / "n", {"a.weight": _w(32, 32), "a.weight_scale": torch.tensor(1.0)}, "FP8")
    (d / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "fp8", "quant_algo": "FP8"}}))
    with pytest.raises(CheckpointError, match="not ModelOpt's"):
        read_modelopt(d)
    d = _export(tmp_path / "i", {"a.weight": _w(256, 32), "a.weight_scale": torch.rand(2, 1, 1, 1)}, None)
    read = read_modelopt(d / "diffusion_pytorch_model.safetensors")
    assert read.config.quant_algo == "FP8_PB_WO" and "inferred" in read.notes[0]


def test_header_config(tmp_path: Path) -> None:
    f = tmp_path / "one.safetensors"
    q = {"quant_method": "modelopt", "quant_algo": "FP8_PER_CHANNEL_PER_TOKEN"}
    save_file({"a.weight": _w(32, 32), "a.weight_scale": torch.rand(32)}, str(f),
              metadata={"_quantization_metadata": json.dumps(q)})
    assert read_modelopt(f).config.quant_algo == "FP8_PER_CHANNEL_PER_TOKEN"


def test_truncated_and_missing_shards(tmp_path: Path) -> None:
    d = _export(tmp_path / "s", {"a.weight": _w(64, 64), "a.weight_scale": torch.tensor(1.0)})
    (d / "diffusion_pytorch_model.safetensors").rename(d / "m-1.safetensors")
    (d / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a.weight": "m-1.safetensors", "a.weight_scale": "m-1.safetensors"}}))
    assert read_modelopt(d).checkpoint.layers
    data = (d / "m-1.safetensors").read_bytes()
    (d / "m-1.safetensors").write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="m-1.safetensors: truncated"):
        read_modelopt(d)
    (d / "m-1.safetensors").unlink()
    with pytest.raises(CheckpointError, match="shard file"):
        read_modelopt(d)


def test_pipeline_component_errors(tmp_path: Path) -> None:
    _export(tmp_path / "p" / "transformer", {"a.weight": _w(32, 32), "a.weight_scale": torch.tensor(1.0)})
    assert read_modelopt(tmp_path / "p").checkpoint.layers
    with pytest.raises(CheckpointError, match="no 'transformer_2' component.*components found: transformer"):
        read_modelopt(tmp_path / "p", "transformer_2")


def test_fuse_and_swap_layers() -> None:
    ws = [torch.randn(128, 64) * s for s in (1.0, 2.0, 3.0)]
    parts = [(FP8Tensor(), *FP8Tensor().quantize(w).values(), torch.tensor(0.1 * i)) for i, w in enumerate(ws)]
    (scheme, w, s, inp), note = fuse_layers(parts)
    assert s == max(p[2] for p in parts) and inp == torch.tensor(0.2) and "common" in note
    deq = scheme.dequantize(w, s)
    assert torch.nn.functional.cosine_similarity(deq.flatten(), torch.cat(ws).flatten(), dim=0) > 0.999
    blk = FP8WeightOnly("block", (128, 128))
    q = [(blk, *blk.quantize(torch.randn(n, 256)).values(), None) for n in (128, 64)]
    (_, w, s, _), note = fuse_layers(q)
    assert s.shape == (2, 2) and "requantized" in note
    (_, w2, s2, _), note = swap_layer((blk, *blk.quantize(torch.randn(256, 128)).values(), None))
    assert note == "" and s2.shape == (2, 1)
    ch = FP8Channel()
    w = torch.randn(32, 16)
    st = ch.quantize(w)
    (_, w3, s3, _), _ = swap_layer((ch, st["weight"], st["weight_scale"], None))
    assert torch.equal(ch.dequantize(w3, s3), torch.cat(ch.dequantize(st["weight"], st["weight_scale"]).chunk(2)[::-1]))
