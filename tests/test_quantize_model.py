"""``quantize_model`` on small hand-built modules: what is replaced, what is kept and why, the report."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from comfyui_dit_quant.quant.linear import QuantLinear
from comfyui_dit_quant.quant.model import quantize_model, tensor_bytes
from comfyui_dit_quant.quant.schemes import SCHEME_NAMES, NonFiniteWeightError, get_scheme


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn = nn.ModuleDict({"q": nn.Linear(dim, dim), "out": nn.Linear(dim, dim)})
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn["out"](self.attn["q"](x))
        return x + self.ffn(x)


class Net(nn.Module):
    """Embedding-ish input layer, two blocks, a head; plus a tiny and a misaligned layer."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Linear(32, dim)
        self.blocks = nn.ModuleList([Block(dim), Block(dim)])
        self.tiny = nn.Linear(dim, 8)  # out_features < min_features
        self.odd = nn.Linear(dim, 40)  # N not a multiple of 16
        self.head = nn.Linear(dim, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for blk in self.blocks:
            h = blk(self.embed(x) if h is x else h)
        return self.head(h) + self.tiny(h).sum(-1, keepdim=True) + self.odd(h).mean(-1, keepdim=True)


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net().to(torch.bfloat16).eval()


def _linear_names(m: nn.Module, cls: type) -> set[str]:
    return {n for n, mod in m.named_modules() if isinstance(mod, cls)}


def test_replaces_linears_and_reports() -> None:
    net = _net()
    all_linears = _linear_names(net, nn.Linear)
    calls: list[tuple[int, int, str]] = []
    report = quantize_model(net, get_scheme("fp8_channel"), progress=lambda i, n, name: calls.append((i, n, name)))
    quantized = {r.name for r in report.quantized}
    skipped = {r.name: r.reason for r in report.skipped}
    assert quantized | set(skipped) == all_linears and not quantized & set(skipped)
    assert "min_features=16" in skipped["tiny"]
    assert "multiples of 16" in skipped["odd"] and "[40, 64]" in skipped["odd"]
    assert quantized == _linear_names(net, QuantLinear)
    assert isinstance(net.tiny, nn.Linear) and isinstance(net.odd, nn.Linear)
    # Progress: once per quantized layer, in order, with the total.
    assert [c[0] for c in calls] == list(range(1, len(quantized) + 1))
    assert {c[1] for c in calls} == {len(quantized)} and {c[2] for c in calls} == quantized
    # Records carry shape, scheme and backend; CPU runs the eager reference.
    rec = next(r for r in report.quantized if r.name == "blocks.0.ffn.0")
    assert rec.shape == (128, 64) and rec.scheme == "fp8_channel" and rec.backend == "eager"
    assert report.backends() == {"eager": len(quantized)}
    assert "fp8" in report.summary() and "eager" in report.summary()
    assert report.to_dict()["scheme"] == report.scheme


def test_ignore_patterns_reported() -> None:
    net = _net()
    report = quantize_model(net, get_scheme("fp8_block", block_size="32"), ignore=["embed", "blocks.1.ffn", "head"])
    skipped = {r.name: r.reason for r in report.skipped}
    assert "'embed'" in skipped["embed"] and "ignored" in skipped["embed"]
    assert "'blocks.1.ffn'" in skipped["blocks.1.ffn.0"] and "'blocks.1.ffn'" in skipped["blocks.1.ffn.2"]
    assert "'head'" in skipped["head"]
    assert isinstance(net.embed, nn.Linear) and isinstance(net.blocks[1].ffn[0], nn.Linear)
    assert isinstance(net.blocks[0].ffn[0], QuantLinear) and isinstance(net.blocks[1].attn["q"], QuantLinear)


def test_ignore_as_comma_string() -> None:
    report = quantize_model(_net(), get_scheme("int8"), ignore="embed, head")
    assert {"embed", "head"} <= {r.name for r in report.skipped}


def test_min_features() -> None:
    report = quantize_model(_net(), get_scheme("fp8_weight_only"), min_features=64)
    skipped = {r.name: r.reason for r in report.skipped}
    # embed is [64, 32] (K=32 < 64); odd/tiny too small; 64x64 attention layers stay quantized.
    assert {"embed", "tiny", "odd", "head"} <= set(skipped)
    assert all("min_features=64" in skipped[n] for n in ("embed", "tiny", "odd", "head"))
    assert "blocks.0.attn.q" in {r.name for r in report.quantized}


def test_weight_only_takes_misaligned_shapes() -> None:
    report = quantize_model(_net(), get_scheme("fp8_weight_only"))
    assert "odd" in {r.name for r in report.quantized}


class Misaligned(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(100, 64)  # K = 100
        self.b = nn.Linear(64, 64)


@pytest.mark.parametrize("name", [n for n in SCHEME_NAMES if n != "fp8_weight_only"])
def test_unsupported_k_skipped_with_reason(name: str) -> None:
    m = Misaligned()
    report = quantize_model(m, get_scheme(name))
    assert [r.name for r in report.skipped] == ["a"]
    assert "[64, 100]" in report.skipped[0].reason and "16" in report.skipped[0].reason
    assert isinstance(m.a, nn.Linear) and isinstance(m.b, QuantLinear)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weight_names_layer_and_changes_nothing(bad: float) -> None:
    net = _net()
    with torch.no_grad():
        net.blocks[1].ffn[2].weight[0, 0] = bad
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(NonFiniteWeightError, match=r"blocks\.1\.ffn\.2"):
        quantize_model(net, get_scheme("fp8_tensor"))
    assert not _linear_names(net, QuantLinear)
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) or not torch.isfinite(before[k]).all() for k in before)


def test_non_finite_in_ignored_layer_is_fine() -> None:
    net = _net()
    with torch.no_grad():
        net.head.weight[0, 0] = float("nan")
    report = quantize_model(net, get_scheme("fp8_tensor"), ignore="head")
    assert isinstance(net.head, nn.Linear) and report.quantized


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 512, bias=False), nn.GELU(), nn.Linear(512, 256, bias=False)).bfloat16()


@pytest.mark.parametrize("name,opts", [("fp8_tensor", {}), ("fp8_channel", {}), ("fp8_block", {}), ("int8", {}),
                                       ("fp8_weight_only", {"granularity": "block"})])
def test_bytes_about_half(name: str, opts: dict) -> None:
    m = _mlp()
    bf16_bytes = 2 * 2 * 256 * 512
    report = quantize_model(m, get_scheme(name, **opts))
    assert report.bytes_before == bf16_bytes
    assert report.bytes_after == tensor_bytes(m)
    assert 0.5 <= report.bytes_after / report.bytes_before < 0.51  # 1-byte codes + float32 scales


def test_quantized_model_output_close() -> None:
    net = _net()
    x = torch.randn(3, 5, 32, generator=torch.Generator().manual_seed(1)).bfloat16()
    with torch.no_grad():
        ref = net(x).float()
        quantize_model(net, get_scheme("fp8_block", block_size="32"))
        out = net(x)
    assert out.dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(out.float().flatten(), ref.flatten(), dim=0)
    assert cos > 0.998


def test_second_call_is_a_no_op() -> None:
    net = _net()
    first = quantize_model(net, get_scheme("int8"))
    second = quantize_model(net, get_scheme("int8"))
    assert first.quantized and not second.quantized
    assert {r.name for r in second.skipped} == {"tiny", "odd"}


@pytest.mark.parametrize("name", SCHEME_NAMES)
def test_integer_input_raises_like_nn_linear(name: str) -> None:
    """Issue 16.6: an int64 input used to come back as an int64 "result"; nn.Linear raises, so does QuantLinear."""
    lin = nn.Linear(32, 32)
    q = QuantLinear.from_linear(lin, get_scheme(name))
    x = torch.ones(2, 32, dtype=torch.int64)
    with pytest.raises(RuntimeError):
        lin(x)
    with pytest.raises(RuntimeError, match="floating-point input"):
        q(x)
