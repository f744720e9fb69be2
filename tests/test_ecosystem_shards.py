"""Sharded checkpoints and full checkpoints, laid out as their writers lay them out.

Sources read: diffusers / huggingface_hub sharding (``diffusion_pytorch_model-00001-of-00003.safetensors`` +
``diffusion_pytorch_model.safetensors.index.json`` = ``{"metadata": {"total_size": ...}, "weight_map": {key: file}}``);
ModelTC/LightX2V ``tools/convert/converter.py`` (``--save_by_block``: ``block_<i>.safetensors`` +
``non_block.safetensors``; default chunks ``<name>_part<i>.safetensors``; the same index file name); a full
ComfyUI checkpoint holds ``model.diffusion_model.*`` next to ``first_stage_model.*`` (VAE) and ``cond_stage_model.*``
/ ``text_encoders.*`` (text encoders). One shard alone used to load with the other shards' weights missing (ComfyUI
fills them with uninitialized memory); a full checkpoint's text-encoder Linears used to be quantized too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from comfyui_dit_quant.cli.main import main
from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError
from comfyui_dit_quant.quant.formats.shards import refuse_shard

from conftest import wan_comfy_shapes, write_random_checkpoint

INDEX = "diffusion_pytorch_model.safetensors.index.json"


def _write_sharded(folder: Path, names: list[str], with_index: bool = True) -> list[Path]:
    """The tiny Wan's tensors split over ``names`` (round robin), with the index diffusers writes."""
    folder.mkdir()
    shapes = sorted(wan_comfy_shapes().items())
    weight_map: dict[str, str] = {}
    for i, name in enumerate(names):
        part = dict(shapes[i::len(names)])
        write_random_checkpoint(folder / name, part, seed=i)
        weight_map.update(dict.fromkeys(part, name))
    if with_index:
        (folder / INDEX).write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return [folder / n for n in names]


def _one_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("names", "with_index", "needle"), [
    (["diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"],
     True, f"one of the 2 files listed in {INDEX}"),
    (["diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"],
     False, "shard 1 of 2 (by its name)"),
    (["block_0.safetensors", "block_1.safetensors", "non_block.safetensors"], True,
     f"one of the 3 files listed in {INDEX}"),
    (["wan_int8_part0.safetensors", "wan_int8_part1.safetensors"], True, f"one of the 2 files listed in {INDEX}"),
])
def test_one_shard_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture, names: list[str],
                                      with_index: bool, needle: str) -> None:
    first = _write_sharded(tmp_path / "shards", names, with_index)[0]
    with pytest.raises(CheckpointError, match="sharded checkpoint") as e:
        refuse_shard(str(first))
    assert needle in str(e.value) and str(first) in str(e.value) and "Merge the shards" in str(e.value)
    assert main(["quantize", str(first), str(tmp_path / "q.safetensors"), "--scheme", "fp8_tensor",
                 "--family", "none"]) == 2
    assert needle in _one_error(capsys)
    assert not (tmp_path / "q.safetensors").exists()


def test_a_single_file_with_its_own_index_is_not_a_shard(tmp_path: Path) -> None:
    (only,) = _write_sharded(tmp_path / "one", ["diffusion_pytorch_model.safetensors"])
    refuse_shard(str(only))  # an index listing one file: the whole model
    lone = write_random_checkpoint(tmp_path / "model-00001-of-00001.safetensors", {"a.weight": (32, 32)})
    refuse_shard(str(lone))


def test_full_checkpoint_quantizes_only_the_diffusion_model(tmp_path: Path) -> None:
    """``model.diffusion_model.`` + a VAE and a text encoder in one file: only the DiT's Linears are quantized;
    the other parts come out bit for bit, and the summary says why they were kept."""
    prefix = "model.diffusion_model."
    dit = {prefix + k: s for k, s in wan_comfy_shapes().items()}
    other = {"first_stage_model.decoder.conv_in.weight": (32, 16, 3, 3, 3),
             "first_stage_model.decoder.middle.0.attn.proj.weight": (64, 64),
             "cond_stage_model.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight": (64, 64),
             "text_encoders.umt5xxl.transformer.encoder.block.0.layer.1.DenseReluDense.wi_0.weight": (128, 64)}
    src = write_random_checkpoint(tmp_path / "full.safetensors", {**dit, **other})
    out = tmp_path / "full_fp8.safetensors"
    assert main(["quantize", str(src), str(out), "--scheme", "fp8_tensor"]) == 0
    ckpt = read_checkpoint(out)
    assert ckpt.layers and all(name.startswith(prefix) for name in ckpt.layers)
    assert len(ckpt.layers) == 20  # the blocks' attention and FFN Linears; the preset keeps embedders and head
    before, after = load_file(str(src)), load_file(str(out))
    for key in other:
        assert torch.equal(after[key], before[key]) and f"{key[:-len('.weight')]}.comfy_quant" not in after


def test_a_folder_or_an_index_given_to_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``quantize FOLDER``: one error line saying it is a folder; ``inspect INDEX.json`` of a sharded bf16 model: the
    ModelOpt reader's own refusal (no quantization config, no float8 weight), one line, not a JSON parse error."""
    _write_sharded(tmp_path / "shards", ["diffusion_pytorch_model-00001-of-00002.safetensors",
                                         "diffusion_pytorch_model-00002-of-00002.safetensors"])
    folder = tmp_path / "shards"
    assert main(["quantize", str(folder), str(tmp_path / "q.safetensors"), "--scheme", "int8"]) == 2
    assert f"error: {folder}: a folder, not a safetensors file" in _one_error(capsys)
    assert main(["inspect", str(folder / INDEX)]) == 2
    assert "not a ModelOpt export" in _one_error(capsys)


def test_an_oversized_index_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index over the size cap is skipped (bounded reads of folder content), so only the file's name can mark
    it a shard."""
    import comfyui_dit_quant.quant.formats.shards as shards

    first = _write_sharded(tmp_path / "big", ["block_0.safetensors", "block_1.safetensors"], True)[0]
    with pytest.raises(CheckpointError):
        refuse_shard(str(first))
    monkeypatch.setattr(shards, "MAX_INDEX_BYTES", 8)
    refuse_shard(str(first))  # index skipped; "block_0" is no -x-of-y name
