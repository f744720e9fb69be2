"""Every quantization scheme (stored tensors, dequantization, config) and ``QuantLinear``."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from comfyui_dit_quant.quant.linear import QuantLinear
from comfyui_dit_quant.quant.schemes import (
    SCHEME_NAMES,
    NonFiniteWeightError,
    Scheme,
    from_config,
    get_scheme,
    parse_block_size,
)

# (name, options, weight dtype, expected scale shape for a [300, 200] weight)
CASES = [
    ("fp8_tensor", {}, torch.float8_e4m3fn, ()),
    ("fp8_channel", {}, torch.float8_e4m3fn, (300,)),
    ("fp8_block", {}, torch.float8_e4m3fn, (3, 2)),
    ("fp8_block", {"block_size": "128x64"}, torch.float8_e4m3fn, (3, 4)),
    ("fp8_weight_only", {}, torch.float8_e4m3fn, (300,)),
    ("fp8_weight_only", {"granularity": "tensor"}, torch.float8_e4m3fn, ()),
    ("fp8_weight_only", {"granularity": "block", "block_size": "64"}, torch.float8_e4m3fn, (5, 4)),
    ("int8", {}, torch.int8, (300,)),
]
IDS = [f"{n}-{'-'.join(str(v) for v in o.values()) or 'default'}" for n, o, _, _ in CASES]
# Max dequantization error relative to the weight's absolute maximum (generous: FP8 2^-4 rel., INT8 half a step).
DEQ_TOL = {torch.float8_e4m3fn: 2.0**-4, torch.int8: 0.5 / 127}


def _weight(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 0.05


def test_all_schemes_covered() -> None:
    assert {c[0] for c in CASES} == set(SCHEME_NAMES)


@pytest.mark.parametrize("name,opts,wdtype,scale_shape", CASES, ids=IDS)
def test_stored_tensors(name: str, opts: dict, wdtype: torch.dtype, scale_shape: tuple) -> None:
    scheme = get_scheme(name, **opts)
    stored = scheme.quantize(_weight(300, 200).bfloat16())
    assert set(stored) == {"weight", "weight_scale"}
    assert stored["weight"].dtype == wdtype == scheme.weight_dtype and stored["weight"].shape == (300, 200)
    assert stored["weight_scale"].dtype == torch.float32 and tuple(stored["weight_scale"].shape) == scale_shape
    empty = scheme.empty_tensors(300, 200)
    assert {k: (v.shape, v.dtype) for k, v in empty.items()} == {k: (v.shape, v.dtype) for k, v in stored.items()}


@pytest.mark.parametrize("name,opts,wdtype,scale_shape", CASES, ids=IDS)
def test_dequantize_close_to_weight(name: str, opts: dict, wdtype: torch.dtype, scale_shape: tuple) -> None:
    scheme = get_scheme(name, **opts)
    w = _weight(300, 200, seed=1)
    stored = scheme.quantize(w)
    deq = scheme.dequantize(stored["weight"], stored["weight_scale"])
    assert deq.shape == w.shape and deq.dtype == torch.float32
    err = (deq - w).abs()
    if wdtype == torch.int8:  # half a step of the row's scale
        assert (err <= 0.5 * stored["weight_scale"].reshape(-1, 1) * (1 + 1e-6)).all()
    else:
        assert err.max() <= DEQ_TOL[wdtype] * w.abs().max()
    assert (deq - w).norm() / w.norm() < 0.04
    assert scheme.dequantize(stored["weight"], stored["weight_scale"], torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.parametrize("name,opts", [("fp8_block", {}), ("fp8_weight_only", {"granularity": "block"})])
def test_single_block_layer(name: str, opts: dict) -> None:
    scheme = get_scheme(name, **opts)
    w = _weight(48, 80, seed=2)
    stored = scheme.quantize(w)
    assert stored["weight_scale"].shape == (1, 1)
    assert stored["weight_scale"].item() == pytest.approx(w.abs().max().item() / 448.0)
    torch.testing.assert_close(scheme.dequantize(**stored), w, rtol=2.0**-4, atol=w.abs().max().item() * 2.0**-10)


@pytest.mark.parametrize("name,opts,wdtype,scale_shape", CASES, ids=IDS)
def test_config_round_trip(name: str, opts: dict, wdtype: torch.dtype, scale_shape: tuple) -> None:
    scheme = get_scheme(name, **opts)
    cfg = scheme.config()
    assert cfg["scheme"] == name
    assert from_config(cfg) == scheme
    assert from_config(json.loads(json.dumps(cfg))) == scheme
    assert hash(from_config(cfg)) == hash(scheme)
    assert isinstance(scheme.describe(), str) and scheme.describe()


def test_block_size_is_part_of_identity() -> None:
    assert get_scheme("fp8_block", block_size="128x128") == get_scheme("fp8_block")
    assert get_scheme("fp8_block", block_size="64x64") != get_scheme("fp8_block")
    assert get_scheme("fp8_weight_only") != get_scheme("fp8_weight_only", granularity="block")


def test_unknown_scheme_and_granularity() -> None:
    with pytest.raises(ValueError, match="nope"):
        get_scheme("nope")
    with pytest.raises(ValueError, match="row"):
        get_scheme("fp8_weight_only", granularity="row")


@pytest.mark.parametrize("value,expected", [
    ("128x128", (128, 128)), ("64", (64, 64)), ((32, 64), (32, 64)), ([16, 1024], (16, 1024)),
    ("128X64", (128, 64)), (None, (128, 128)),
])
def test_parse_block_size(value: object, expected: tuple[int, int]) -> None:
    assert parse_block_size(value) == expected


@pytest.mark.parametrize("value", ["128x100", "0", "abc", "128x128x2", "8x8", "2048", (128, 96), "-128"])
def test_parse_block_size_rejects(value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_block_size(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("name", SCHEME_NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weight(name: str, bad: float) -> None:
    w = _weight(32, 32)
    w[3, 5] = bad
    with pytest.raises(NonFiniteWeightError):
        get_scheme(name).quantize(w)


def test_quantize_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        get_scheme("fp8_tensor").quantize(torch.ones(4, 4, 4))


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_unsupported_reason(name: str) -> None:
    scheme = get_scheme(name)
    assert scheme.unsupported_reason(64, 128) is None
    if scheme.quantizes_activations:
        assert "16" in (scheme.unsupported_reason(64, 100) or "")
        assert scheme.unsupported_reason(50, 64) is not None
    else:
        assert scheme.unsupported_reason(64, 100) is None


# --- QuantLinear ---------------------------------------------------------------------------------------------

LINEAR_SCHEMES = [get_scheme(n, **o) for n, o, _, _ in CASES]
LINEAR_IDS = IDS


def _quant_linear(scheme: Scheme, bias: bool, n: int = 96, k: int = 160) -> tuple[torch.nn.Linear, QuantLinear]:
    torch.manual_seed(0)
    lin = torch.nn.Linear(k, n, bias=bias).to(torch.bfloat16)
    return lin, QuantLinear.from_linear(lin, scheme)


@pytest.mark.parametrize("scheme", LINEAR_SCHEMES, ids=LINEAR_IDS)
@pytest.mark.parametrize("bias", [True, False])
def test_quant_linear_forward_3d(scheme: Scheme, bias: bool) -> None:
    lin, q = _quant_linear(scheme, bias)
    assert (q.bias is None) == (not bias)
    x = torch.randn(2, 5, 160, generator=torch.Generator().manual_seed(1)).bfloat16()
    y = q(x)
    assert y.shape == (2, 5, 96) and y.dtype == torch.bfloat16
    ref = F.linear(x.float(), lin.weight.float(), None if lin.bias is None else lin.bias.float())
    cos = F.cosine_similarity(y.float().flatten(), ref.flatten(), dim=0)
    assert cos > 0.998
    # Against the layer's own dequantized weight (isolates the activation quantization).
    deq = F.linear(x.float(), q.dequantized_weight(), None if q.bias is None else q.bias.float())
    assert F.cosine_similarity(y.float().flatten(), deq.flatten(), dim=0) > 0.999


@pytest.mark.parametrize("scheme", LINEAR_SCHEMES, ids=LINEAR_IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_quant_linear_output_dtype(scheme: Scheme, dtype: torch.dtype) -> None:
    _, q = _quant_linear(scheme, True)
    x = torch.randn(4, 160, generator=torch.Generator().manual_seed(2)).to(dtype)
    y = q(x)
    assert y.dtype == dtype and y.shape == (4, 96) and torch.isfinite(y).all()


def test_quant_linear_rejects_wrong_width() -> None:
    _, q = _quant_linear(get_scheme("fp8_channel"), True)
    with pytest.raises(ValueError, match="160"):
        q(torch.randn(3, 128))


@pytest.mark.parametrize("name,opts,wdtype,scale_shape", CASES, ids=IDS)
def test_quant_linear_empty_construction(name: str, opts: dict, wdtype: torch.dtype, scale_shape: tuple) -> None:
    scheme = get_scheme(name, **opts)
    q = QuantLinear(200, 300, scheme)
    assert q.in_features == 200 and q.out_features == 300
    assert q.weight.shape == (300, 200) and q.weight.dtype == wdtype and q.weight.device.type == "cpu"
    assert tuple(q.weight_scale.shape) == scale_shape and q.weight_scale.dtype == torch.float32
    assert q.weight_scale.device.type == "cpu"
    assert q.bias is not None and q.bias.shape == (300,) and q.bias.dtype == torch.bfloat16
    assert q.input_scale is None
    assert QuantLinear(200, 300, scheme, bias=False).bias is None
    meta = QuantLinear(200, 300, scheme, device="meta")
    assert meta.weight.is_meta and meta.weight_scale.is_meta
    # A quantized layer's state dict loads into the empty one.
    src = QuantLinear.from_linear(torch.nn.Linear(200, 300), scheme)
    q.load_state_dict(src.state_dict())
    assert torch.equal(q.weight.view(torch.uint8), src.weight.view(torch.uint8))


@pytest.mark.parametrize("scheme", LINEAR_SCHEMES, ids=LINEAR_IDS)
def test_quant_linear_stateless(scheme: Scheme) -> None:
    _, q = _quant_linear(scheme, True)
    before = {k: v.clone() for k, v in q.state_dict().items()}
    x = torch.randn(3, 7, 160, generator=torch.Generator().manual_seed(3)).bfloat16()
    y1, y2 = q(x), q(x)
    assert torch.equal(y1, y2)
    after = q.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert v.dtype == after[k].dtype, k
        assert torch.equal(v.reshape(-1).view(torch.uint8), after[k].reshape(-1).view(torch.uint8)), k


def test_quant_linear_from_linear_leaves_source() -> None:
    lin = torch.nn.Linear(64, 32).to(torch.bfloat16)
    w = lin.weight.detach().clone()
    QuantLinear.from_linear(lin, get_scheme("fp8_block", block_size="32"))
    assert torch.equal(lin.weight, w)


def test_quant_linear_static_input_scale() -> None:
    lin = torch.nn.Linear(64, 32)
    s = get_scheme("fp8_tensor")
    st = s.quantize(lin.weight.data)
    x = torch.randn(4, 64)
    q = QuantLinear.from_tensors(s, st["weight"], st["weight_scale"], lin.bias.data,
                                 input_scale=x.abs().max() / 448)
    assert q.input_scale is not None and q.input_scale.dtype == torch.float32
    torch.testing.assert_close(q(x), lin(x).detach(), rtol=0.1, atol=0.05)
