"""``torch.compile(fullgraph=True)`` of a model of QuantLinear layers: one custom op per layer, no graph breaks,
same numbers as eager; the op's fake implementation, optional tensors and backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from comfyui_dit_quant.kernels.dispatch import quant_linear
from comfyui_dit_quant.quant.linear import QuantLinear
from comfyui_dit_quant.quant.schemes import get_scheme

SCHEMES = [("fp8_tensor", {}), ("fp8_channel", {}), ("fp8_block", {"block_size": "32x32"}),
           ("fp8_weight_only", {}), ("fp8_weight_only", {"granularity": "tensor"}),
           ("fp8_weight_only", {"granularity": "block", "block_size": "16x32"}),
           ("int8", {})]


class Tiny(nn.Module):
    """Three linears with a nonlinearity between: bias on, off, and a static input scale (fp8_tensor)."""

    def __init__(self, scheme_name: str, opts: dict) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        scheme = get_scheme(scheme_name, **opts)
        dims = [(64, 96, True), (96, 128, False), (128, 48, True)]
        layers = []
        for k, n, bias in dims:
            lin = nn.Linear(k, n, bias=bias)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(n, k, generator=gen) / k**0.5)
                if bias:
                    lin.bias.copy_(torch.randn(n, generator=gen))
            layers.append(QuantLinear.from_linear(lin, scheme))
        if scheme_name == "fp8_tensor":
            layers[1].input_scale = torch.tensor(0.02)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.nn.functional.gelu(x)
        return x


@pytest.mark.parametrize(("name", "opts"), SCHEMES)
def test_fullgraph_compile_matches_eager(name: str, opts: dict) -> None:
    """aot_eager runs the fake implementation (functionalization) without inductor's C++ build time."""
    torch._dynamo.reset()
    model = Tiny(name, opts)
    x = torch.randn(2, 5, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        expected = model(x)
        explained = torch._dynamo.explain(model)(x)
        assert explained.graph_break_count == 0 and explained.graph_count == 1
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        out = compiled(x)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 5, 48)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_graph_holds_one_custom_op_per_layer() -> None:
    torch._dynamo.reset()
    model = Tiny("fp8_block", {"block_size": "32x32"})
    graphs: list[torch.fx.GraphModule] = []

    def capture(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    with torch.no_grad():
        torch.compile(model, fullgraph=True, backend=capture)(torch.randn(3, 64, dtype=torch.float16))
    assert len(graphs) == 1
    op = torch.ops.comfyui_dit_quant.quant_linear
    ops = [n for n in graphs[0].graph.nodes if n.target in (op, op.default)]
    assert len(ops) == 3


def test_inductor_fullgraph() -> None:
    torch._dynamo.reset()
    model = Tiny("fp8_channel", {})
    x = torch.randn(9, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(x), model(x), rtol=0, atol=0)


def test_fake_tensor_shapes_and_dynamic_batch() -> None:
    torch._dynamo.reset()
    model = Tiny("int8", {})
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend="aot_eager")
    with torch.no_grad():
        for m in (1, 7, 33):
            x = torch.randn(m, 64, dtype=torch.bfloat16)
            torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)


def test_op_optional_tensors_and_empty_input() -> None:
    q = QuantLinear.from_linear(nn.Linear(32, 16, bias=False), get_scheme("fp8_tensor"))
    x = torch.randn(4, 32)
    out = quant_linear(x, q.weight, q.weight_scale, None, None, "fp8_tensor")
    assert out.shape == (4, 16) and out.dtype == torch.float32
    with_scale = quant_linear(x, q.weight, q.weight_scale, torch.zeros(16), torch.tensor(0.01), "fp8_tensor")
    assert with_scale.shape == (4, 16)
    empty = quant_linear(torch.randn(0, 3, 32), q.weight, q.weight_scale, None, None, "fp8_tensor")
    assert empty.shape == (0, 3, 16)


def test_op_backward_reaches_activations_and_bias() -> None:
    lin = nn.Linear(32, 16)
    q = QuantLinear.from_linear(lin, get_scheme("fp8_channel"))
    x = torch.randn(5, 32, requires_grad=True)
    bias = q.bias.detach().float().requires_grad_(True)
    out = quant_linear(x, q.weight, q.weight_scale, bias, None, "fp8_channel")
    out.sum().backward()
    w = q.dequantized_weight()
    torch.testing.assert_close(x.grad, torch.ones(5, 16) @ w)
    torch.testing.assert_close(bias.grad, torch.full((16,), 5.0))
