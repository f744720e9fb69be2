"""Acceptance: output accuracy of every scheme on tiny real diffusers transformers, and on outlier weights.

The tiny models (``cli/tiny_models.py``) are Wan, Qwen-Image and HunyuanVideo 1.5 with 2 blocks of width 128, a
variance-preserving random init (so the quantized blocks carry a real share of the output) and the family's
``default`` ignore preset. Cosine similarity of the flattened float32 outputs, quantized vs bf16.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from comfyui_dit_quant.cli.tiny_models import TINY_MODELS, run_model
from comfyui_dit_quant.quant.families import preset_ignore, preset_weight_only
from comfyui_dit_quant.quant.linear import QuantLinear
from comfyui_dit_quant.quant.model import quantize_model
from comfyui_dit_quant.quant.schemes import get_scheme

pytest.importorskip("diffusers")  # a dev dependency; the builders import it lazily

# (id, scheme name, options, minimum cosine vs bf16). The tiny models are 128 wide, so fp8_block is tested with
# 32x32 blocks (a real grid) as well as with the 128x128 default (one block per 128x128 layer).
CASES = [
    ("fp8_weight_only-channel", "fp8_weight_only", {"granularity": "channel"}, 0.999),
    ("fp8_weight_only-block32", "fp8_weight_only", {"granularity": "block", "block_size": "32x32"}, 0.999),
    ("fp8_block-32x32", "fp8_block", {"block_size": "32x32"}, 0.998),
    ("fp8_block-128x128", "fp8_block", {"block_size": "128x128"}, 0.998),
    ("fp8_channel", "fp8_channel", {}, 0.998),
    ("int8", "int8", {}, 0.998),
    ("fp8_tensor", "fp8_tensor", {}, 0.995),
]


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.float().flatten(), b.float().flatten(), dim=0))


@pytest.fixture(scope="module", params=list(TINY_MODELS))
def tiny(request: pytest.FixtureRequest) -> tuple[str, nn.Module, dict, torch.Tensor]:
    """(family, bf16 model, inputs, bf16 output), built once per module."""
    family = request.param
    model, kwargs = TINY_MODELS[family]()
    return family, model, kwargs, run_model(model, kwargs)


def test_reference_output_is_non_trivial(tiny: tuple[str, nn.Module, dict, torch.Tensor]) -> None:
    family, model, kwargs, ref = tiny
    assert ref.dtype == torch.bfloat16 and torch.isfinite(ref).all()
    assert ref.float().std() > 0.3
    assert torch.equal(run_model(model, kwargs), ref)  # deterministic
    again, _ = TINY_MODELS[family]()
    assert torch.equal(run_model(again, kwargs), ref)  # seeded build


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cosine_vs_bf16(tiny: tuple[str, nn.Module, dict, torch.Tensor], case: tuple) -> None:
    family, model, kwargs, ref = tiny
    _, name, opts, threshold = case
    qmodel = copy.deepcopy(model)
    report = quantize_model(qmodel, get_scheme(name, **opts), ignore=preset_ignore(family, "default", "diffusers"),
                            weight_only=preset_weight_only(family, "default", "diffusers"))
    # The preset took effect and most linears were quantized (the transformer blocks).
    assert any("ignored by pattern" in r.reason for r in report.skipped)
    assert len(report.quantized) >= 20
    assert sum(isinstance(m, QuantLinear) for m in qmodel.modules()) == len(report.quantized)
    # Qwen-Image / HunyuanVideo 1.5 modulation layers: FP8 weight-only under the FP8 schemes, INT8 under INT8
    modulation = {r.scheme for r in report.quantized if "mod" in r.name or "norm1" in r.name}
    expected = set() if family == "wan" else {"fp8_weight_only" if name.startswith("fp8") else name}
    assert modulation == expected, modulation
    out = run_model(qmodel, kwargs)
    assert out.shape == ref.shape and out.dtype == ref.dtype and torch.isfinite(out).all()
    cos = _cosine(out, ref)
    assert cos < 0.999999, "quantization changed nothing: the quantized layers are not on the output path"
    assert cos >= threshold, f"{family} {case[0]}: cosine {cos:.5f} < {threshold}"


# --- outlier channels ----------------------------------------------------------------------------------------


def _outlier_linear(factor: float) -> nn.Linear:
    """[512, 256] bf16 linear; 8 adjacent output channels (rows 0-7) scaled by ``factor``."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(512, 256, generator=gen) / 16
    w[:8] *= factor
    lin = nn.Linear(256, 512, bias=False).requires_grad_(False)
    lin.weight.data = w.to(torch.bfloat16)
    return lin


def _channel_error(lin: nn.Linear, scheme_name: str, **opts: str) -> float:
    """Mean over output channels of the channel's relative output error (each channel weighs the same)."""
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    ref = x.double() @ lin.weight.double().t()
    y = QuantLinear.from_linear(lin, get_scheme(scheme_name, **opts))(x).double()
    return float(((y - ref).norm(dim=0) / ref.norm(dim=0)).mean())


def test_outlier_channels_favour_finer_scales() -> None:
    """With outlier rows beyond FP8's dynamic range, per-channel and per-block scales keep the other rows precise
    while a per-tensor scale pushes them into subnormals."""
    lin = _outlier_linear(3e4)
    tensor = _channel_error(lin, "fp8_tensor")
    channel = _channel_error(lin, "fp8_channel")
    block32 = _channel_error(lin, "fp8_block", block_size="32x32")
    block128 = _channel_error(lin, "fp8_block", block_size="128x128")
    assert tensor > 0.1
    assert channel < 0.35 * tensor
    assert block32 < 0.35 * tensor
    assert block128 < 0.6 * tensor  # rows 8-127 share the outliers' blocks


def test_fp8_range_absorbs_moderate_outliers() -> None:
    """e4m3 is floating point: rows x100 leave the others' codes in the normal range, so a per-tensor scale costs
    (almost) nothing there. Finer scales pay off only past ~10^3-10^4 (the test above)."""
    lin = _outlier_linear(100.0)
    errors = [_channel_error(lin, "fp8_tensor"), _channel_error(lin, "fp8_channel"),
              _channel_error(lin, "fp8_block", block_size="32x32")]
    assert max(errors) < 1.15 * min(errors)


def test_demo_rows_and_table() -> None:
    from comfyui_dit_quant.cli.demo import format_table, run_demo

    rows = run_demo(models="wan", schemes=["int8", "fp8_block"], repeats=1)
    assert [r["scheme"] for r in rows] == ["bf16", "int8", "fp8_block"]
    for r in rows[1:]:
        assert r["backends"] == "eager x20" and r["cosine"] >= 0.998 and 0 < r["rel_error"] < 0.1
        assert 0.45 < r["quantized_layers_ratio"] < 0.55 and r["ratio"] < 1
    table = format_table(rows)
    assert "32x32" in table and "cosine" in table
    with pytest.raises(ValueError, match="bogus"):
        run_demo(models="bogus")
