"""LightX2V-converted Wan checkpoints, built as ModelTC/LightX2V's converter writes them.

Source read: ModelTC/LightX2V ``tools/convert/converter.py`` (``quantize_model``: Wan ``target_keys`` self_attn /
cross_attn / ffn at key index 2, ``weights[key + "_scale"] = scales``; ``--comfyui_mode`` writes ``.scale_weight``
and ``scaled_fp8 = torch.zeros(2, dtype=float8_e4m3fn)``) and ``tools/convert/quant/quant.py`` (``QuantWeightINT8``:
row amax clamped at 1e-5 / 127, round, clamp [-128, 127], scales ``view(N, -1)``; ``QuantWeightFP8``: row amax / 448,
e4m3 codes; in the source's dtype). ``lightx2v/common/ops/mm/mm_weight.py`` runs them as per-channel weights with
per-token dynamic activations (``int8-vllm``, ``fp8-vllm``) and casts ``weight_scale`` to float32 at load.
Before this reader such a file was "plain": int8 codes loaded as weights, e4m3 codes under a unit scale.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_dit_quant.cli.inspect_cmd import inspect_file
from comfyui_dit_quant.quant.convert import convert_file
from comfyui_dit_quant.quant.formats.io import detect_format, read_checkpoint
from comfyui_dit_quant.quant.formats.layer_state import checkpoint_to_state_dict, state_dict_to_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError, read_header
from comfyui_dit_quant.quant.schemes import FP8Channel, FP8WeightOnly, Int8, get_scheme

from ecosystem_files import write_lightx2v


@pytest.mark.parametrize(("linear_type", "scheme"), [("int8", Int8()), ("fp8", FP8Channel())])
def test_lightx2v_file_reads_as_what_lightx2v_runs(tmp_path: Path, linear_type: str, scheme) -> None:
    path = tmp_path / f"wan_{linear_type}_lightx2v.safetensors"
    src, disk = write_lightx2v(path, linear_type)
    assert detect_format(read_header(path)) == "lightx2v"
    ckpt = read_checkpoint(path)
    quantized = sorted(k[: -len(".weight")] for k in disk if k.endswith(".weight") and disk[k].dtype.itemsize == 1)
    assert len(quantized) == 20 and sorted(ckpt.layers) == quantized
    assert set(ckpt.layers.values()) == {scheme}
    for layer in quantized:
        codes, scale = disk[f"{layer}.weight"], disk[f"{layer}.weight_scale"]
        assert scale.dtype == torch.bfloat16 and tuple(scale.shape) == (codes.shape[0], 1)
        got = scheme.dequantize(ckpt.tensors[f"{layer}.weight"], ckpt.tensors[f"{layer}.weight_scale"])
        assert torch.equal(got, codes.float() * scale.float())  # the reference dequantization, bit for bit
        err = (got - src[f"{layer}.weight"].float()).abs().max() / src[f"{layer}.weight"].float().abs().max()
        assert err < (0.006 if linear_type == "int8" else 0.07)
    assert ckpt.tensors["head.head.weight"].dtype == torch.float32  # kept layers stay as written
    # the state dict the node hands ComfyUI carries a marker per layer and reads back to the same layers
    back = state_dict_to_checkpoint(checkpoint_to_state_dict(ckpt))
    assert back.layers == ckpt.layers
    layer = quantized[0]
    assert torch.equal(scheme.dequantize(back.tensors[f"{layer}.weight"], back.tensors[f"{layer}.weight_scale"]),
                       disk[f"{layer}.weight"].float() * disk[f"{layer}.weight_scale"].float())


def test_lightx2v_file_inspects_and_is_not_requantized(tmp_path: Path) -> None:
    path = tmp_path / "wan_int8_lightx2v.safetensors"
    write_lightx2v(path, "int8")
    info = inspect_file(str(path))
    assert info["format"] == "lightx2v"
    row = next(r for r in info["linear_layers"] if r["layer"] == "blocks.0.self_attn.q")
    assert row["scheme"] == Int8().describe() and row["scale_shape"] == [64, 1]
    with pytest.raises(CheckpointError, match="already quantized \\(lightx2v format\\)"):
        convert_file(path, tmp_path / "out.safetensors", get_scheme("fp8_channel"))


@pytest.mark.parametrize("linear_type", ["int8", "fp8"])
def test_lightx2v_comfyui_mode(tmp_path: Path, linear_type: str) -> None:
    """``--comfyui_mode``: one scale per tensor (0-dim, bf16) under ``scale_weight`` and a 2-element e4m3 marker
    (full-precision matmul in ComfyUI): fp8 reads as weight-only per tensor, int8 as int8 W8A8 with that scale."""
    path = tmp_path / f"wan_{linear_type}_comfyui.safetensors"
    _, disk = write_lightx2v(path, linear_type, comfyui_mode=True)
    ckpt = read_checkpoint(path)
    expected = Int8() if linear_type == "int8" else FP8WeightOnly("tensor")
    assert ckpt.format == "scaled_fp8" and set(ckpt.layers.values()) == {expected} and len(ckpt.layers) == 20
    for layer in ckpt.layers:
        ref = disk[f"{layer}.weight"].float() * disk[f"{layer}.scale_weight"].float()
        assert torch.equal(expected.dequantize(ckpt.tensors[f"{layer}.weight"],
                                               ckpt.tensors[f"{layer}.weight_scale"]), ref)


def _tiny(extra: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"blocks.0.norm3.weight": torch.ones(64), **extra}


REFUSED = {
    "int8 codes without a scale": (_tiny({"blocks.0.ffn.0.weight": torch.ones(128, 64, dtype=torch.int8)}),
                                   ["blocks.0.ffn.0", "no 'blocks.0.ffn.0.weight_scale'"]),
    "lightx2v nvfp4": (_tiny({"blocks.0.ffn.0.weight": torch.ones(128, 32, dtype=torch.uint8),
                              "blocks.0.ffn.0.weight_scale": torch.ones(128, 4).to(torch.float8_e4m3fn),
                              "blocks.0.ffn.0.weight_global_scale": torch.tensor(1.0)}),
                       ["blocks.0.ffn.0.weight_global_scale", "4-bit"]),
    "modelopt block scale": (_tiny({"blocks.0.ffn.0.weight": torch.ones(128, 64).to(torch.float8_e4m3fn),
                                    "blocks.0.ffn.0.weight_scale": torch.ones(1, 1, 1, 1)}),
                             ["blocks.0.ffn.0", "ModelOpt Checkpoint Loader"]),
    "e5m2 codes with row scales": (_tiny({"blocks.0.ffn.0.weight": torch.ones(128, 64).to(torch.float8_e5m2),
                                          "blocks.0.ffn.0.weight_scale": torch.ones(128, 1)}),
                                   ["blocks.0.ffn.0", "float8_e5m2"]),
    "scale beside int8 codes and one beside a bf16 weight": (
        _tiny({"blocks.0.ffn.0.weight": torch.ones(128, 64, dtype=torch.bfloat16),
               "blocks.0.ffn.0.weight_scale": torch.ones(128, 1),
               "blocks.0.ffn.2.weight": torch.ones(64, 128, dtype=torch.int8),
               "blocks.0.ffn.2.weight_scale": torch.ones(64, 1)}),
        ["blocks.0.ffn.0", "holds no codes"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_marker_less_layouts_it_cannot_run_are_refused_by_name(tmp_path: Path, case: str) -> None:
    tensors, needles = REFUSED[case]
    path = tmp_path / "x.safetensors"
    save_file(tensors, str(path))
    assert detect_format(read_header(path)) == "lightx2v"  # never "plain": codes are never read as weights
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)
    for needle in needles:
        assert needle in str(e.value)


def test_a_weight_scale_parameter_beside_a_bf16_weight_is_plain(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    save_file(_tiny({"blocks.0.ffn.0.weight": torch.ones(128, 64, dtype=torch.bfloat16),
                     "blocks.0.ffn.0.weight_scale": torch.ones(128)}), str(path))
    assert detect_format(read_header(path)) == "plain"
