"""Hostile per-layer markers, format metadata and scales: the pack's own error, naming the file and the key, in both
the reader Load FP8 DiT uses (``read_checkpoint``) and ``inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_dit_quant.cli.inspect_cmd import inspect_file
from comfyui_dit_quant.quant.formats.io import read_checkpoint
from comfyui_dit_quant.quant.formats.safetensors_io import CheckpointError
from comfyui_dit_quant.quant.schemes import FP8Channel, FP8Tensor

FP8 = FP8Tensor().quantize(torch.randn(32, 32))
CHANNEL = FP8Channel().quantize(torch.randn(32, 32))


def _bytes(raw: bytes) -> torch.Tensor:
    return torch.tensor(list(raw), dtype=torch.uint8)


def _marker(raw: bytes) -> tuple[dict, dict]:
    return {"l.weight": FP8["weight"], "l.weight_scale": FP8["weight_scale"], "l.comfy_quant": _bytes(raw)}, {}


def _native_meta(body: str) -> tuple[dict, dict]:
    return {"l.weight": FP8["weight"], "l.weight_scale": FP8["weight_scale"]}, {"_quantization_metadata": body}


def _pack_meta(body: str) -> tuple[dict, dict]:
    return {"l.weight": CHANNEL["weight"], "l.weight_scale": CHANNEL["weight_scale"]}, {"comfyui_dit_quant": body}


def _pack(scale: torch.Tensor, **extra: torch.Tensor) -> tuple[dict, dict]:
    tensors = {"l.weight": CHANNEL["weight"], "l.weight_scale": scale, **{f"l.{k}": v for k, v in extra.items()}}
    return tensors, {"comfyui_dit_quant": json.dumps({"format_version": 1, "layers": {"l": {"scheme": "fp8_channel"}}})}


def _native_scale(scale: torch.Tensor, **extra: torch.Tensor) -> tuple[dict, dict]:
    return {"l.weight": FP8["weight"], "l.weight_scale": scale, "l.comfy_quant": _bytes(b'{"format": "float8_e4m3fn"}'),
            **{f"l.{k}": v for k, v in extra.items()}}, {}


def _legacy_scale(scale: torch.Tensor) -> tuple[dict, dict]:
    return {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn), "l.weight": FP8["weight"],
            "l.scale_weight": scale}, {}


# case -> (tensors, metadata), text the error must contain besides the file name, whether inspect reads it too
CASES = {
    "marker_json_list": (_marker(b'["float8_e4m3fn"]'), ["l.comfy_quant", "list"], True),
    "marker_json_string": (_marker(b'"float8_e4m3fn"'), ["l.comfy_quant", "str"], True),
    "marker_not_json": (_marker(b"{format: fp8"), ["l.comfy_quant", "not UTF-8 JSON"], True),
    "marker_not_utf8": (_marker(b"\xff\xfe{}"), ["l.comfy_quant", "not UTF-8 JSON"], True),
    "marker_no_format": (_marker(b'{"group_size": 64}'), ["l.comfy_quant", "format"], True),
    "marker_format_number": (_marker(b'{"format": 8}'), ["l.comfy_quant", "format"], True),
    "native_meta_null": (_native_meta("null"), ["_quantization_metadata", "NoneType"], True),
    "native_meta_not_json": (_native_meta("{"), ["_quantization_metadata", "not JSON"], True),
    "native_layers_list": (_native_meta('{"layers": ["l"]}'), ["_quantization_metadata", "'layers'"], True),
    "native_layer_string": (_native_meta('{"layers": {"l": "float8_e4m3fn"}}'),
                            ["_quantization_metadata", "layer 'l'"], True),
    "pack_body_null": (_pack_meta("null"), ["comfyui_dit_quant", "NoneType"], True),
    "pack_body_list": (_pack_meta("[1]"), ["comfyui_dit_quant", "list"], True),
    "pack_layers_list": (_pack_meta('{"format_version": 1, "layers": ["l"]}'), ["comfyui_dit_quant", "'layers'"],
                         True),
    "pack_layer_string": (_pack_meta('{"format_version": 1, "layers": {"l": "fp8_channel"}}'),
                          ["comfyui_dit_quant", "layer 'l'"], True),
    "pack_layer_unknown_option": (_pack_meta('{"format_version": 1, "layers": {"l": {"scheme": "fp8_channel", '
                                             '"x": 1}}}'), ["layer 'l'"], True),
    "pack_scale_zero": (_pack(CHANNEL["weight_scale"].clone().index_fill_(0, torch.tensor([3]), 0.0)),
                        ["l.weight_scale", "zero or negative"], False),
    "pack_scale_negative": (_pack(-CHANNEL["weight_scale"]), ["l.weight_scale", "zero or negative"], False),
    "pack_scale_nan": (_pack(CHANNEL["weight_scale"].clone().index_fill_(0, torch.tensor([0]), float("nan"))),
                       ["l.weight_scale", "NaN or inf"], False),
    "pack_scale_integer": (_pack(torch.ones(32, dtype=torch.int32)), ["l.weight_scale", "floating-point"], False),
    "native_scale_zero": (_native_scale(torch.tensor(0.0)), ["l.weight_scale", "zero or negative"], False),
    "native_scale_inf": (_native_scale(torch.tensor(float("inf"))), ["l.weight_scale", "NaN or inf"], False),
    "native_input_scale_negative": (_native_scale(FP8["weight_scale"], input_scale=torch.tensor(-1.0)),
                                    ["l.input_scale", "zero or negative"], False),
    "native_input_scale_shape": (_native_scale(FP8["weight_scale"], input_scale=torch.ones(4)),
                                 ["l.input_scale", "one value"], False),
    "legacy_scale_negative": (_legacy_scale(torch.tensor([-0.5])), ["l.weight_scale", "zero or negative"], False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_quantization_data_is_a_named_checkpoint_error(tmp_path: Path, case: str) -> None:
    (tensors, metadata), expected, in_inspect = CASES[case]
    path = tmp_path / f"{case}.safetensors"
    save_file(tensors, path, metadata=metadata or None)
    readers = [read_checkpoint, inspect_file] if in_inspect else [read_checkpoint]
    for reader in readers:
        with pytest.raises(CheckpointError) as err:
            reader(str(path))
        for text in (str(path), *expected):
            assert text in str(err.value), (reader.__name__, text, str(err.value))
