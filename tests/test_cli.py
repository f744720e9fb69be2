"""The command line: quantize and inspect on a real file, and clear failures (exit 2, no output file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyui_dit_quant.cli.main import main
from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.schemes import FP8Block, FP8WeightOnly


def test_quantize_then_inspect(tmp_path: Path, wan_bf16_file: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "q.safetensors"
    assert main(["quantize", str(wan_bf16_file), str(out), "--scheme", "fp8_block", "--block-size", "32x32",
                 "--ignore", "cross_attn"]) == 0
    printed = capsys.readouterr().out
    assert "dit_quant format" in printed and "layers quantized: 12" in printed and "family: Wan" in printed
    ckpt = read_checkpoint(out)
    assert set(ckpt.layers.values()) == {FP8Block("32x32")} and len(ckpt.layers) == 12

    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "dit_quant" and info["family"].startswith("Wan")
    rows = {r["layer"]: r for r in info["linear_layers"]}
    assert rows["blocks.0.ffn.0"]["dtype"] == "F8_E4M3" and rows["blocks.0.ffn.0"]["scale_shape"] == [4, 2]
    assert rows["blocks.0.ffn.0"]["scheme"] == "fp8 block 32x32"
    assert rows["blocks.0.cross_attn.q"]["dtype"] == "BF16" and rows["blocks.0.cross_attn.q"]["scheme"] == ""


def test_weight_only_block_and_native_inspect(tmp_path: Path, wan_bf16_file: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "wo.safetensors"
    assert main(["quantize", str(wan_bf16_file), str(out), "--scheme", "fp8_weight_only_block"]) == 0
    assert set(read_checkpoint(out).layers.values()) == {FP8WeightOnly("block", "128x128")}
    native = tmp_path / "n.safetensors"
    assert main(["quantize", str(wan_bf16_file), str(native), "--scheme", "int8"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(native)]) == 0
    text = capsys.readouterr().out
    assert "format:  comfy_quant" in text and "int8_tensorwise" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--scheme", "fp8_block", "--block-size", "128x100"], "block size '128x100'"),
    (["--scheme", "fp8_tensor", "--block-size", "64x64"], "--block-size applies to"),
    (["--scheme", "fp8_channel", "--format", "comfy_quant"], "native format only holds"),
])
def test_bad_arguments_exit_2_without_output(tmp_path: Path, wan_bf16_file: Path, capsys: pytest.CaptureFixture,
                                             argv: list[str], message: str) -> None:
    out = tmp_path / "q.safetensors"
    assert main(["quantize", str(wan_bf16_file), str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.safetensors"
    assert main(["quantize", str(missing), str(tmp_path / "q.safetensors"), "--scheme", "int8"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_quantize_format_help_names_both_native_schemes(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "comfy_quant (stock ComfyUI runs it) for fp8_tensor and int8" in help_text


def test_inspect_folder_of_unrelated_files_is_not_a_modelopt_export(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    import torch
    from safetensors.torch import save_file

    for name in ("a", "b"):  # two unrelated bf16 models with the same key names
        save_file({"blocks.0.proj.weight": torch.randn(16, 16).bfloat16()}, str(tmp_path / f"{name}.safetensors"))
    assert main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a ModelOpt export" in err and "a.safetensors" in err and "b.safetensors" in err
    (tmp_path / "b.safetensors").unlink()
    save_file({"other.weight": torch.randn(16, 16).bfloat16()}, str(tmp_path / "c.safetensors"))
    assert main(["inspect", str(tmp_path)]) == 2  # distinct keys, no config, nothing in FP8
    assert "not a ModelOpt export: no quantization config" in capsys.readouterr().err
