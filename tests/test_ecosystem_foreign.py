"""Other tools' quantized layouts: the packed 4-bit ones are refused by name, llm-compressor's FP8 ones are read.

Sources read: nunchaku ``models/linear.py`` (``SVDQW4A4Linear``: ``qweight`` int8 [N, K/2], ``wscales`` [K/64, N],
``smooth_factor`` [K], ``proj_down`` [K, r], ``proj_up`` [N, r], ``bias``); bitsandbytes' serialized ``Params4bit``
(``weight`` uint8 packed + ``weight.absmax``, ``weight.quant_map``, ``weight.quant_state.bitsandbytes__nf4``) and
``Int8Params`` (``SCB``); compressed-tensors (``weight_packed`` int32 + ``weight_scale`` + ``weight_shape`` for
pack-quantized; ``weight`` float8_e4m3fn + ``weight_scale`` [N, 1] for FP8_DYNAMIC); optimum-quanto (``weight._data``,
``weight._scale``). Before, every packed file read as "plain": its packed layers had no ``.weight``, so ComfyUI built
them uninitialized.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_dit_quant.cli.main import main
from comfyui_dit_quant.quant.formats.io import detect_format, read_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError, read_header
from comfyui_dit_quant.quant.schemes import FP8Channel

L = "transformer_blocks.0.attn.to_qkv"
BASE = {"txt_norm.weight": torch.ones(64), "img_in.weight": torch.randn(64, 64).bfloat16()}
LAYOUTS = {
    "nunchaku": ({f"{L}.qweight": torch.zeros(192, 32, dtype=torch.int8), f"{L}.wscales": torch.ones(1, 192),
                  f"{L}.smooth_factor": torch.ones(64), f"{L}.proj_down": torch.zeros(64, 32),
                  f"{L}.proj_up": torch.zeros(192, 32), f"{L}.bias": torch.zeros(192)}, f"{L}.qweight", "nunchaku"),
    "bitsandbytes nf4": ({f"{L}.weight": torch.zeros(6144, 1, dtype=torch.uint8), f"{L}.weight.absmax": torch.ones(192),
                          f"{L}.weight.quant_map": torch.ones(16),
                          f"{L}.weight.quant_state.bitsandbytes__nf4": torch.zeros(8, dtype=torch.uint8)},
                         f"{L}.weight.absmax", "bitsandbytes"),
    "bitsandbytes int8": ({f"{L}.weight": torch.zeros(192, 64, dtype=torch.int8), f"{L}.SCB": torch.ones(192)},
                          f"{L}.SCB", "LLM.int8"),
    "compressed-tensors int4": ({f"{L}.weight_packed": torch.zeros(192, 8, dtype=torch.int32),
                                 f"{L}.weight_scale": torch.ones(192, 1), f"{L}.weight_shape": torch.tensor([192, 64])},
                                f"{L}.weight_packed", "compressed-tensors"),
    "optimum-quanto": ({f"{L}.weight._data": torch.zeros(192, 64, dtype=torch.int8),
                        f"{L}.weight._scale": torch.ones(192, 1)}, f"{L}.weight._data", "optimum-quanto"),
}


@pytest.mark.parametrize("case", sorted(LAYOUTS))
def test_packed_layouts_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    tensors, key, tool = LAYOUTS[case]
    path = tmp_path / "q.safetensors"
    save_file({**BASE, **tensors}, str(path))
    assert detect_format(read_header(path)) == "foreign"
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and repr(key) in str(e.value) and tool in str(e.value)
    assert main(["quantize", str(path), str(tmp_path / "o.safetensors"), "--scheme", "int8", "--family", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: key {key!r}") and tool in err and not (tmp_path / "o.safetensors").exists()
    assert main(["inspect", str(path)]) == 0 and "format:  foreign" in capsys.readouterr().out


@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.bfloat16])
def test_compressed_tensors_fp8_dynamic_reads_as_fp8_channel(tmp_path: Path, scale_dtype: torch.dtype) -> None:
    """llm-compressor ``FP8_DYNAMIC``: e4m3 codes, per-channel ``weight_scale`` [N, 1], per-token dynamic
    activations at run time: the pack's fp8_channel, with the same dequantized weight."""
    w = torch.randn(192, 64, generator=torch.Generator().manual_seed(0))
    scale = (w.abs().amax(dim=1, keepdim=True) / 448).to(scale_dtype)
    codes = (w / scale.float()).to(torch.float8_e4m3fn)
    save_file({**BASE, f"{L}.weight": codes, f"{L}.weight_scale": scale}, str(tmp_path / "ct.safetensors"))
    ckpt = read_checkpoint(tmp_path / "ct.safetensors")
    assert ckpt.layers == {L: FP8Channel()}
    assert torch.equal(FP8Channel().dequantize(ckpt.tensors[f"{L}.weight"], ckpt.tensors[f"{L}.weight_scale"]),
                       codes.float() * scale.float())
