"""``quant.int8_convert`` (what the INT8 NPU Quantize node runs, ComfyUI-free): the plan, a new tree with the input
untouched, accuracy on the tiny Wan / Qwen-Image / HunyuanVideo 1.5 models through the eager, CPU ``_int_mm``
and (stand-in) NPU paths, and FP8 layers requantized."""

from __future__ import annotations

import npu_standin
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from comfyui_dit_quant.cli.tiny_models import TINY_MODELS, run_model
from comfyui_dit_quant.quant.families import detect_family
from comfyui_dit_quant.quant.int8_convert import INT8, convert_int8, linear_kind, plan_int8
from comfyui_dit_quant.quant.linear import QuantLinear
from comfyui_dit_quant.quant.schemes import NonFiniteWeightError, get_scheme

pytest.importorskip("diffusers")


def make_layer(backend: str = "auto"):
    return lambda old, codes, scale, bias: QuantLinear.from_tensors(INT8, codes, scale, bias, backend=backend)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.detach().float().flatten(), b.detach().float().flatten(), dim=0))


def _snapshot(m: nn.Module) -> dict:
    return {k: (v, v.data_ptr(), v.clone()) for k, v in m.state_dict(keep_vars=True).items()}


@pytest.fixture(scope="module", params=list(TINY_MODELS))
def tiny(request: pytest.FixtureRequest):
    model, kwargs = TINY_MODELS[request.param]()
    return request.param, model, kwargs, run_model(model, kwargs)


def test_converted_tree_is_accurate_and_input_untouched(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    family, model, kwargs, ref = tiny
    detected = detect_family({k: tuple(v.shape) for k, v in model.state_dict().items()})
    plan = plan_int8(model, "", detected, "default")
    assert len(plan.layers) >= 20 and any("ignored by pattern" in r.reason for r in plan.report.skipped)
    before = _snapshot(model)
    classes = [type(m) for m in model.modules()]
    results = {}
    for backend in ("auto", "torch"):  # eager reference, CPU torch._int_mm
        new, _ = convert_int8(model, plan, make_layer(backend))
        results[backend] = run_model(new, kwargs)
    npu_standin.install(monkeypatch)
    npu_standin.route_through_npu(monkeypatch)
    new, _ = convert_int8(model, plan, make_layer())
    results["npu"] = run_model(new, kwargs)
    monkeypatch.undo()
    assert sum(isinstance(m, QuantLinear) for m in new.modules()) == len(plan.layers)
    # the input: same modules, same Parameter objects, same values; its output is unchanged
    assert [type(m) for m in model.modules()] == classes
    after = model.state_dict(keep_vars=True)
    assert all(after[k] is t and torch.equal(t, c) for k, (t, _, c) in before.items())
    assert torch.equal(run_model(model, kwargs), ref)
    # untouched tensors are shared (same storage), never the same Parameter object
    shared = [k for k, v in new.state_dict(keep_vars=True).items() if k in before and v.data_ptr() == before[k][1]]
    assert shared and all(new.state_dict(keep_vars=True)[k] is not before[k][0] for k in shared)
    for backend, out in results.items():
        assert torch.isfinite(out).all()
        assert _cos(out, ref) >= 0.998, (family, backend, _cos(out, ref))
    assert _cos(results["npu"], results["auto"]) >= 0.9995
    assert _cos(results["torch"], results["auto"]) >= 0.9999


def test_plan_rules() -> None:
    root = nn.Module()
    root.inner = nn.Module()
    root.inner.big = nn.Linear(64, 65552, bias=False)  # N beyond npu_quant_matmul
    root.inner.small = nn.Linear(8, 64)
    root.inner.odd = nn.Linear(64, 100)
    root.inner.ok = nn.Linear(64, 64)
    root.inner.int8 = QuantLinear.from_linear(nn.Linear(64, 64), INT8)
    root.inner.fp8 = QuantLinear.from_linear(nn.Linear(64, 64), get_scheme("fp8_block", block_size="32x32"))
    root.outside = nn.Linear(64, 64)
    plan = plan_int8(root, "inner.", None, "default", "ok", npu=True)
    assert plan.layers == {"inner.int8": "int8", "inner.fp8": "requantize"}
    reasons = {r.name: r.reason for r in plan.report.skipped}
    assert "npu_quant_matmul takes N and K up to 65535" in reasons["big"]
    assert "min_features" in reasons["small"] and "multiples of 16" in reasons["odd"]
    assert reasons["ok"] == "ignored by pattern 'ok'"
    assert "big" not in {r.name for r in plan_int8(root, "inner.", None).report.skipped}  # no limit off NPU
    assert linear_kind(root.outside) == ("convert", "")


def test_fp8_layers_are_requantized_from_their_loaded_scale() -> None:
    gen = torch.Generator().manual_seed(0)
    lin = nn.Linear(128, 64)
    lin.weight.data = torch.randn(64, 128, generator=gen) / 11
    root = nn.Sequential(QuantLinear.from_linear(lin, get_scheme("fp8_channel")))
    plan = plan_int8(root)
    assert plan.layers == {"0": "requantize"}
    seen = []
    new, _ = convert_int8(root, plan, make_layer(), progress=lambda d, n, name: seen.append((d, n, name)))
    assert seen == [(1, 1, "0")] and new[0].weight.dtype == torch.int8 and root[0].weight.dtype != torch.int8
    x = torch.randn(9, 128, generator=gen)
    assert _cos(new[0](x), lin(x)) > 0.999


def test_source_gives_the_unpatched_weight_and_nan_is_refused() -> None:
    root = nn.Sequential(nn.Linear(64, 64))
    clean = root[0].weight.detach().clone()
    root[0].weight.data += 1.0  # "patched" live weight; the source hands back the clean backup
    new, _ = convert_int8(root, plan_int8(root), make_layer(), source=lambda k, t: clean if k == "0.weight" else t)
    assert torch.allclose(new[0].dequantized_weight(), clean, atol=clean.abs().max().item() / 100)
    root[0].weight.data[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightError, match="'0'"):
        convert_int8(root, plan_int8(root), make_layer())


def test_modulation_layers_are_converted_fp8_or_bf16_unless_the_user_keeps_them() -> None:
    """The preset's modulation layers (M = batch size) become INT8 like the rest, so the model halves: a bf16 one
    is converted, and an FP8 weight-only one (as Load FP8 DiT stores them) is requantized, which also leaves no FP8
    tensor for a device without FP8 (an NPU). The user's ignore list still keeps them; embedders stay kept."""
    model, _ = TINY_MODELS["qwen_image"]()
    detected = detect_family({k: tuple(v.shape) for k, v in model.state_dict().items()})
    wo = get_scheme("fp8_weight_only", granularity="tensor")
    mod = "transformer_blocks.0.img_mod.1"
    model.get_submodule("transformer_blocks.0").img_mod[1] = QuantLinear.from_linear(model.get_submodule(mod), wo)
    plan = plan_int8(model, "", detected)
    assert plan.layers[mod] == "requantize" and plan.layers["transformer_blocks.0.txt_mod.1"] == "convert"
    kept = {r.name: r.reason for r in plan.report.skipped}
    assert kept["img_in"] == "ignored by pattern 'img_in'" and "transformer_blocks.0.txt_mod.1" not in kept
    user = plan_int8(model, "", detected, ignore="transformer_blocks.0.img_mod")
    assert mod not in user.layers and "transformer_blocks.0.img_mod" in {r.reason.split("'")[1]
                                                                          for r in user.report.skipped
                                                                          if r.name == mod}
    quality = plan_int8(model, "", detected, preset="quality")
    assert "transformer_blocks.0.txt_mod.1" not in quality.layers
