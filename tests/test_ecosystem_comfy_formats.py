"""ComfyUI-ecosystem files built as their writers make them: legacy ``scaled_fp8`` variants (Comfy-Org's
``*_fp8_scaled``, Kijai's ``*_fp8_e4m3fn_scaled_KJ`` / ``*_fp8_e5m2_scaled_KJ``), ComfyUI core ``comfy_quant`` formats
the pack does not run, and files that are not safetensors at all.

Sources read: ComfyUI ``comfy/utils.py`` ``convert_old_quants`` (a ``{prefix}scaled_fp8`` marker; a float32 marker
means e4m3; 2 elements = full-precision matmul; every ``.scale_weight`` layer becomes ``{"format": "float8_e4m3fn"}``
whatever its codes, "TODO: check if anyone did some non e4m3fn scaled checkpoints"; ``scale_input`` of 1.0 dropped;
``_quantization_metadata`` in the header wins over the marker) and ``comfy/quant_ops.py`` ``QUANT_ALGOS``
(float8_e4m3fn, float8_e5m2, nvfp4 [uint8 codes, e4m3 block scales, ``weight_scale_2``], mxfp8, int8_tensorwise with
optional ConvRot, convrot_w4a4); kijai/ComfyUI-WanVideoWrapper ``nodes_model_loading.py`` (a float8_e5m2 weight plus
the ``scaled_fp8`` key means ``fp8_e5m2_scaled``; ``.scale_weight`` keys; ``model.diffusion_model.`` / ``model.``
prefixes stripped).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_dit_quant.cli.main import main
from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError, read_header
from comfyui_dit_quant.quant.schemes import FP8Tensor, FP8WeightOnly

E5M2_MAX = 57344.0


def _u8(obj: object) -> torch.Tensor:
    return torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8)


def _scaled(w: torch.Tensor, dtype: torch.dtype, fmax: float) -> tuple[torch.Tensor, torch.Tensor]:
    scale = w.abs().max().float() / fmax
    return (w.float() / scale).to(dtype), scale


@pytest.mark.parametrize("marker_len", [0, 2])
def test_kijai_e5m2_scaled_reads_with_its_codes_moved_to_e4m3(tmp_path: Path, marker_len: int) -> None:
    """An ``*_fp8_e5m2_scaled_KJ`` layer: e5m2 codes spanning e5m2's whole range, float32 scalar ``scale_weight``,
    a ``scaled_fp8`` marker of dtype e5m2. Read as e4m3 per tensor: the dequantized weight equals the file's
    (codes x scale) exactly for every code e4m3's normal range holds, and within half an e4m3 subnormal step below."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=gen) * torch.logspace(-4, 0, 64).reshape(64, 1)  # rows of very different size
    codes, scale = _scaled(w, torch.float8_e5m2, E5M2_MAX)
    path = tmp_path / "Wan2_1-T2V-1_3B_fp8_e5m2_scaled_KJ.safetensors"
    save_file({"scaled_fp8": torch.zeros(marker_len, dtype=torch.float8_e5m2), "blocks.0.ffn.0.weight": codes,
               "blocks.0.ffn.0.scale_weight": scale.reshape(()), "blocks.0.ffn.0.bias": torch.zeros(64)}, str(path))
    ckpt = read_checkpoint(path)
    scheme = FP8WeightOnly("tensor") if marker_len == 2 else FP8Tensor()
    assert ckpt.layers == {"blocks.0.ffn.0": scheme}
    got = scheme.dequantize(ckpt.tensors["blocks.0.ffn.0.weight"], ckpt.tensors["blocks.0.ffn.0.weight_scale"])
    ref = codes.float() * scale
    k = float(ckpt.tensors["blocks.0.ffn.0.weight_scale"] / scale)
    assert k == 2.0 ** 7  # largest e5m2 code 57344 -> 448
    normal = codes.float().abs() / k >= 2.0 ** -6
    assert normal.float().mean() > 0.9 and torch.equal(got[normal], ref[normal])
    assert (got - ref).abs().max() <= 2.0 ** -10 * k * scale


@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("scale_shape", [(), (1,)])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_comfy_org_scaled_fp8_scale_dtypes_and_shapes(tmp_path: Path, scale_dtype: torch.dtype,
                                                      scale_shape: tuple[int, ...], prefix: str) -> None:
    """``*_fp8_scaled`` files: scales stored as bf16 / fp16 / fp32, 0-dim or [1], under any prefix; a calibrated
    ``scale_input`` is kept, the 1.0 placeholder dropped (ComfyUI's reading)."""
    gen = torch.Generator().manual_seed(1)
    codes, scale = _scaled(torch.randn(32, 64, generator=gen), torch.float8_e4m3fn, 448.0)
    s = scale.to(scale_dtype).reshape(scale_shape)
    p = prefix + "blocks.0.self_attn."
    save_file({f"{prefix}scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn),
               f"{p}q.weight": codes, f"{p}q.scale_weight": s,
               f"{p}q.scale_input": torch.tensor([0.25], dtype=scale_dtype),
               f"{p}k.weight": codes.clone(), f"{p}k.scale_weight": s.clone(),
               f"{p}k.scale_input": torch.ones(scale_shape, dtype=scale_dtype)},
              str(tmp_path / "f.safetensors"))
    ckpt = read_checkpoint(tmp_path / "f.safetensors")
    assert ckpt.layers == {f"{p}q": FP8Tensor(), f"{p}k": FP8Tensor()}
    for layer in ckpt.layers:
        assert ckpt.tensors[f"{layer}.weight_scale"].dtype == torch.float32
        assert torch.equal(FP8Tensor().dequantize(ckpt.tensors[f"{layer}.weight"],
                                                  ckpt.tensors[f"{layer}.weight_scale"]), codes.float() * s.float())
    assert float(ckpt.tensors[f"{p}q.input_scale"]) == 0.25 and f"{p}k.input_scale" not in ckpt.tensors


def test_comfy_quant_float8_e5m2_reads(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(2)
    codes, scale = _scaled(torch.randn(32, 64, generator=gen), torch.float8_e5m2, E5M2_MAX)
    save_file({"l.weight": codes, "l.weight_scale": scale.reshape(()), "l.comfy_quant": _u8({"format": "float8_e5m2"})},
              str(tmp_path / "e5.safetensors"))
    ckpt = read_checkpoint(tmp_path / "e5.safetensors")
    assert ckpt.layers == {"l": FP8Tensor()} and ckpt.tensors["l.weight"].dtype == torch.float8_e4m3fn
    assert torch.equal(FP8Tensor().dequantize(ckpt.tensors["l.weight"], ckpt.tensors["l.weight_scale"]),
                       codes.float() * scale)  # e4m3's normal range holds every code of a randn weight here


STOCK_ONLY = {
    "nvfp4": ({"l.weight": torch.zeros(32, 32, dtype=torch.uint8),
               "l.weight_scale": torch.ones(32, 4).to(torch.float8_e4m3fn), "l.weight_scale_2": torch.tensor(1.0)},
              {"format": "nvfp4"}),
    "mxfp8": ({"l.weight": torch.zeros(32, 64).to(torch.float8_e4m3fn),
               "l.weight_scale": torch.full((32, 2), 127, dtype=torch.uint8)}, {"format": "mxfp8"}),
    "convrot_w4a4": ({"l.weight": torch.zeros(32, 32, dtype=torch.int8), "l.weight_scale": torch.ones(32, 1)},
                     {"format": "convrot_w4a4"}),
    "int8 ConvRot": ({"l.weight": torch.zeros(32, 64, dtype=torch.int8), "l.weight_scale": torch.ones(32, 1)},
                     {"format": "int8_tensorwise", "convrot": True}),
}


@pytest.mark.parametrize("case", sorted(STOCK_ONLY))
@pytest.mark.parametrize("where", ["tensor", "header"])
def test_core_formats_it_does_not_run_name_stock_load_diffusion_model(tmp_path: Path, case: str, where: str) -> None:
    tensors, cfg = STOCK_ONLY[case]
    path = tmp_path / "core.safetensors"
    if where == "tensor":
        save_file({**tensors, "l.comfy_quant": _u8(cfg)}, str(path))
    else:
        save_file(tensors, str(path), {"_quantization_metadata": json.dumps({"format_version": "1.0",
                                                                             "layers": {"l": cfg}})})
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and "'l'" in str(e.value) and "Load Diffusion Model" in str(e.value)


def _gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    return path


def _torch_zip(path: Path) -> Path:
    torch.save({"w": torch.zeros(2)}, path)
    return path


def _torch_legacy(path: Path) -> Path:
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    return path


def _index(path: Path) -> Path:
    path.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": {"a.weight": "x.safetensors"}}))
    return path


NOT_SAFETENSORS = [
    (_gguf, "wan2.1-t2v-14b-Q4_K_M.gguf", "Unet Loader (GGUF)"),
    (_torch_zip, "model.pt", "PyTorch pickle checkpoint"),
    (_torch_legacy, "model.ckpt", "PyTorch pickle checkpoint"),
    (_index, "diffusion_pytorch_model.safetensors.index.json", "JSON file"),
]


@pytest.mark.parametrize(("make", "name", "needle"), NOT_SAFETENSORS, ids=[n for _, n, _ in NOT_SAFETENSORS])
def test_other_file_kinds_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture, make, name: str,
                                              needle: str) -> None:
    path = make(tmp_path / name)
    with pytest.raises(CheckpointError, match="not a safetensors file") as e:
        read_header(path)
    assert needle in str(e.value) and str(path) in str(e.value)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}: ") and "\n" not in err
    if not name.endswith(".index.json"):  # inspect reads an index as an export folder: its shards are missing here
        assert err.startswith(f"error: {path}: not a safetensors file") and needle in err
    else:
        assert "shard file(s) missing" in err


def test_a_safetensors_header_starting_like_a_pickle_still_reads(tmp_path: Path) -> None:
    """A header length whose low byte is 0x80 (a pickle's first byte) is still read as safetensors."""
    for pad in range(300):
        path = tmp_path / "f.safetensors"
        save_file({"x" * pad: torch.zeros(1)}, str(path))
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no header of length 0x..80 produced")
    assert list(read_header(path).tensors) == ["x" * pad]


def test_e5m2_to_e4m3_is_exact_within_2_to_the_13_of_the_largest_code() -> None:
    """Every finite e5m2 value as codes: after the power-of-two move each code at least 2^-13 of the largest comes
    back exactly; smaller ones within half an e4m3 subnormal step."""
    from comfyui_dit_quant.quant.formats.legacy_scaled_fp8 import e5m2_as_e4m3

    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float8_e5m2)
    codes = codes[torch.isfinite(codes.float())]
    new, scale = e5m2_as_e4m3(codes, torch.tensor(0.5))
    got, ref = new.float() * scale, codes.float() * 0.5
    big = codes.float().abs() >= E5M2_MAX / 2**13
    assert torch.equal(got[big], ref[big])
    assert (got - ref).abs().max() <= 2.0 ** -10 * float(scale)


@pytest.mark.parametrize("header_prefix", ["", "model.diffusion_model."])
def test_quantization_metadata_names_with_or_without_the_stripped_prefix(tmp_path: Path, header_prefix: str) -> None:
    """Tensors under ``model.diffusion_model.``; ``_quantization_metadata`` naming the layers with or without that
    prefix (comfy-kitchen's tools write them without; ComfyUI reads both, injecting markers before and after it
    strips the prefix)."""
    gen = torch.Generator().manual_seed(3)
    codes, scale = _scaled(torch.randn(32, 64, generator=gen), torch.float8_e4m3fn, 448.0)
    p = "model.diffusion_model.blocks.0.ffn.0"
    meta = {"format_version": "1.0", "layers": {header_prefix + "blocks.0.ffn.0": {"format": "float8_e4m3fn"}}}
    save_file({f"{p}.weight": codes, f"{p}.weight_scale": scale.reshape(())}, str(tmp_path / "k.safetensors"),
              {"_quantization_metadata": json.dumps(meta)})
    ckpt = read_checkpoint(tmp_path / "k.safetensors")
    assert ckpt.layers == {p: FP8Tensor()}
    assert torch.equal(FP8Tensor().dequantize(ckpt.tensors[f"{p}.weight"], ckpt.tensors[f"{p}.weight_scale"]),
                       codes.float() * scale)
