"""NVIDIA ModelOpt exports in the forms the ecosystem passes around, made by the real nvidia-modelopt 0.47 on CPU.

Source read: NVIDIA/Model-Optimizer ``modelopt/torch/export/unified_export_hf.py`` (diffusers components:
``save_pretrained`` + ``config.json["quantization_config"]``; ``_postprocess_safetensors`` with
``enable_layerwise_quant_metadata=True`` also writes the header entries ``quantization_config`` and
``_quantization_metadata`` whose per-layer formats are ModelOpt's algo names lower-cased, e.g. ``{"format":
"fp8"}``, from ``diffusers_utils.build_layerwise_quant_metadata``), ``convert_hf_config.py`` (``exclude_modules`` ->
``ignore``, ``kv_cache_quant_algo`` -> ``kv_cache_scheme``) and ``quant_utils.py`` (``_KV_CACHE_REPLACEMENTS``:
``k_bmm_quantizer._amax`` -> ``k_proj.k_scale``, ``v_proj.v_scale``). A lone ``diffusion_pytorch_model.safetensors``
taken out of an export carries no config at all.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_dit_quant.quant.formats.io import detect_format, read_checkpoint
from comfyui_dit_quant.quant.formats.modelopt import read_modelopt
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError, read_header
from comfyui_dit_quant.quant.modelopt_load import load_export
from comfyui_dit_quant.quant.schemes import FP8Channel, FP8Tensor

from modelopt_exports import make_export

pytest.importorskip("modelopt.torch.quantization")

ST = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def wan_fp8(tmp_path_factory: pytest.TempPathFactory):
    return make_export(tmp_path_factory.mktemp("mo"), "wan", "FP8_DEFAULT_CFG")


def test_layerwise_metadata_export_reads_and_is_refused_by_the_plain_loader(tmp_path: Path, wan_fp8) -> None:
    """``enable_layerwise_quant_metadata=True``: the header says ``{"format": "fp8"}`` per layer (not a ComfyUI
    format). The ModelOpt reader reads the folder and the lone file the same as the plain export; the single-file
    reader (Load FP8 DiT) refuses it naming the ModelOpt Checkpoint Loader instead of 'unknown format fp8'."""
    meta = make_export(tmp_path, "wan", "FP8_DEFAULT_CFG", enable_layerwise_quant_metadata=True)
    header = read_header(meta.path / ST)
    assert json.loads(header.metadata["_quantization_metadata"])["layers"]["blocks.0.attn1.to_q"] == {"format": "fp8"}
    plain = read_modelopt(wan_fp8.path).checkpoint
    lone = tmp_path / "lone.safetensors"
    shutil.copy(meta.path / ST, lone)
    for source in (meta.path, lone):
        got = read_modelopt(source)
        assert got.checkpoint.layers == plain.layers and got.config.quant_algo == "FP8"
        for k, t in plain.tensors.items():
            assert torch.equal(got.checkpoint.tensors[k].float(), t.float()), k
    assert read_modelopt(lone).config.source.endswith("header 'quantization_config'")
    with pytest.raises(CheckpointError, match="ModelOpt Checkpoint Loader") as e:
        read_checkpoint(lone)
    assert str(lone) in str(e.value) and "'FP8'" in str(e.value)


@pytest.mark.parametrize(("cfg", "scheme"), [("FP8_DEFAULT_CFG", FP8Tensor()),
                                             ("FP8_PER_CHANNEL_PER_TOKEN_CFG", FP8Channel())])
def test_a_lone_export_file_without_config_reads_with_the_same_numbers(tmp_path: Path, cfg: str, scheme) -> None:
    """The component's safetensors file alone (no config anywhere): the single-file reader sees marker-less
    ``weight_scale`` / ``input_scale`` and reads the same layers, codes and scales as the ModelOpt reader."""
    export = make_export(tmp_path, "wan", cfg)
    lone = tmp_path / "wan_modelopt.safetensors"
    shutil.copy(export.path / ST, lone)
    assert detect_format(read_header(lone)) == "lightx2v"
    single, mo = read_checkpoint(lone), read_modelopt(export.path).checkpoint
    assert single.layers == mo.layers and set(single.layers.values()) == {scheme}
    for layer in mo.layers:
        for part in ("weight", "weight_scale", "input_scale"):
            a, b = single.tensors.get(f"{layer}.{part}"), mo.tensors.get(f"{layer}.{part}")
            assert (a is None) == (b is None) and (a is None or torch.equal(a.float(), b.float())), (layer, part)


def test_pb_wo_lone_file_is_refused_naming_the_modelopt_loader(tmp_path: Path) -> None:
    export = make_export(tmp_path, "wan", "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG")
    with pytest.raises(CheckpointError, match="ModelOpt Checkpoint Loader"):
        read_checkpoint(export.path / ST)


def test_missing_input_scale_and_kv_cache_scales(tmp_path: Path, wan_fp8) -> None:
    """A layer whose input quantizer was never calibrated (no ``input_scale``) runs with dynamic activations;
    KV-cache ``k_proj.k_scale`` / ``v_proj.v_scale`` keys (ModelOpt's LLM naming) are skipped, not mapped."""
    d = tmp_path / "edited"
    shutil.copytree(wan_fp8.path, d)
    tensors = load_file(str(d / ST))
    del tensors["blocks.0.attn1.to_q.input_scale"]
    tensors["blocks.0.attn1.k_proj.k_scale"] = torch.tensor(0.02)
    tensors["blocks.0.attn1.v_proj.v_scale"] = torch.tensor(0.03)
    save_file(tensors, str(d / ST))
    read = read_modelopt(d)
    assert read.checkpoint.layers["blocks.0.attn1.to_q"] == FP8Tensor()
    assert "blocks.0.attn1.to_q.input_scale" not in read.checkpoint.tensors
    assert "blocks.0.attn1.to_k.input_scale" in read.checkpoint.tensors
    assert {"blocks.0.attn1.k_proj.k_scale", "blocks.0.attn1.v_proj.v_scale"} <= set(read.skipped)
    loaded = load_export(d)  # maps to ComfyUI names without a KeyMapError
    assert "blocks.0.self_attn.q.input_scale" not in loaded.checkpoint.tensors
    assert "blocks.0.self_attn.k.input_scale" in loaded.checkpoint.tensors


def _mixed(tmp_path: Path, wan_fp8, quantized_layers: dict) -> Path:
    """blocks.0 from the FP8 export, blocks.1 from a FP8_PB_WO export of the same model, under a MIXED_PRECISION
    config (``quantized_layers``: per-layer ``quant_algo``, as ModelOpt's auto-quantize writes it)."""
    pb = make_export(tmp_path / "pb", "wan", "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG")
    a, b = load_file(str(wan_fp8.path / ST)), load_file(str(pb.path / ST))
    merged = {k: v for k, v in a.items() if not k.startswith("blocks.1.")}
    merged.update({k: v for k, v in b.items() if k.startswith("blocks.1.")})
    d = tmp_path / "mixed"
    d.mkdir()
    save_file(merged, str(d / ST))
    config = json.loads((wan_fp8.path / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
                                     "producer": {"name": "modelopt", "version": "0.47.0"},
                                     "quantized_layers": quantized_layers, "ignore": ["condition_embedder*"]}
    (d / "config.json").write_text(json.dumps(config))
    return d


def test_mixed_precision_per_layer_algos(tmp_path: Path, wan_fp8) -> None:
    layers = read_modelopt(wan_fp8.path).checkpoint.layers
    per_layer = {n: {"quant_algo": "FP8" if n.startswith("blocks.0.") else "fp8_pb_wo"} for n in layers}
    read = read_modelopt(_mixed(tmp_path, wan_fp8, per_layer))
    assert read.config.quant_algo == "MIXED_PRECISION"
    for name, scheme in read.checkpoint.layers.items():
        assert scheme.name == ("fp8_tensor" if name.startswith("blocks.0.") else "fp8_weight_only"), (name, scheme)
    missing = {n: v for n, v in per_layer.items() if n != "blocks.1.ffn.net.0.proj"}  # a quantized layer unlisted
    read2 = read_modelopt(_mixed(tmp_path / "m2", wan_fp8, missing))
    assert read2.checkpoint.layers == read.checkpoint.layers  # its 4-D block scale says FP8_PB_WO
    assert any("missing from quantized_layers (blocks.1.ffn.net.0.proj" in n for n in read2.notes), read2.notes
    bad = {**per_layer, "blocks.0.attn1.to_q": {"quant_algo": "NVFP4"}}
    with pytest.raises(CheckpointError, match="'NVFP4' is not supported"):
        read_modelopt(_mixed(tmp_path / "m3", wan_fp8, bad))
