"""``QuantLinear`` / ``quantize_model`` on a small model on the GPU for every scheme, and
``torch.compile(fullgraph=True)`` of it (aot_eager for every scheme, inductor for the main ones) matching eager.

The model is three aligned linears (256 -> 512 -> 384 -> 256, bias on/off, GELU between), so every scheme takes its
native backend (cuBLAS blockwise included). Multi-layer comparisons with the eager backend allow 3e-3 (a one-ulp
difference after one layer can move an FP8 code of the next); vs the bf16 model, cosine > 0.995.
"""

from __future__ import annotations

import copy

import pytest
import torch
from kernel_cases import GPU_QUICK, gpu_skip_reason

pytestmark = pytest.mark.gpu
if (_reason := gpu_skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

import torch.nn.functional as F  # noqa: E402
from kernel_cases import GPU_SCHEMES, rel_err  # noqa: E402
from torch import nn  # noqa: E402

from comfyui_dit_quant.kernels.caps import DeviceCaps  # noqa: E402
from comfyui_dit_quant.quant.linear import QuantLinear  # noqa: E402
from comfyui_dit_quant.quant.model import quantize_model  # noqa: E402
from comfyui_dit_quant.quant.schemes import get_scheme  # noqa: E402

SCHEMES = GPU_SCHEMES
IDS = [s[0] for s in SCHEMES]
INDUCTOR = ["fp8_block-128"] if GPU_QUICK else ["fp8_channel", "fp8_block-128", "fp8_block-64", "fp8_weight_only",
                                                "int8"]
MODEL_TOL = 3e-3


class Tiny(nn.Module):
    DIMS = [(256, 512, True), (512, 384, False), (384, 256, True)]  # (in, out, bias)

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        layers = []
        for k, n, bias in self.DIMS:
            lin = nn.Linear(k, n, bias=bias)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(n, k, generator=gen) / k**0.5)
                if bias:
                    lin.bias.copy_(torch.randn(n, generator=gen) * 0.1)
            layers.append(lin)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.gelu(x)
        return x


def _x(cuda: torch.device, m: int = 37, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.randn(2, m, 256, generator=torch.Generator().manual_seed(1)).to(cuda, dtype)


def _quantized(model: nn.Module, name: str, opts: dict, backend: str = "auto") -> tuple[nn.Module, dict[str, int]]:
    q = copy.deepcopy(model)
    report = quantize_model(q, get_scheme(name, **opts), backend=backend)
    assert len(report.quantized) == 3 and not report.skipped
    if name == "fp8_tensor":  # a static input scale on the middle layer
        q.layers[1].input_scale = torch.tensor(0.02, device=q.layers[1].weight.device)
    return q, report.backends()


@pytest.fixture(scope="module")
def model(cuda: torch.device) -> nn.Module:
    return Tiny().to(cuda, torch.bfloat16).eval()


@pytest.mark.parametrize(("label", "name", "opts"), SCHEMES, ids=IDS)
@torch.no_grad()
def test_quantize_model_on_gpu(label: str, name: str, opts: dict, model: nn.Module, caps: DeviceCaps,
                               cuda: torch.device) -> None:
    qmodel, used = _quantized(model, name, opts)
    emodel, _ = _quantized(model, name, opts, backend="eager")
    print(f"{label}: backends {used}")
    if caps.fp8_tensor_cores:
        assert "eager" not in used, f"{label}: eager on a GPU with FP8 tensor cores: {used}"
    for layer in qmodel.layers:
        assert isinstance(layer, QuantLinear)
        assert layer.weight.device.type == layer.weight_scale.device.type == cuda.type
        assert layer.weight.dtype == get_scheme(name, **opts).weight_dtype
    for dtype in (torch.bfloat16, torch.float16):
        x = _x(cuda, dtype=dtype)
        out, expected = qmodel(x), emodel(x)
        assert out.dtype == dtype and out.shape == (2, 37, 256) and out.device.type == cuda.type
        err = rel_err(out, expected)
        assert err < MODEL_TOL, f"{label} {dtype}: vs the eager backend: relative error {err:.3g}"
    x = _x(cuda)
    ref = model(x)
    cos = F.cosine_similarity(qmodel(x).float().flatten(), ref.float().flatten(), dim=0).item()
    assert cos > 0.995, f"{label}: cosine vs bf16 {cos:.5f}"


@pytest.mark.parametrize(("label", "name", "opts"), SCHEMES, ids=IDS)
@torch.no_grad()
def test_quantized_on_cpu_then_moved(label: str, name: str, opts: dict, model: nn.Module,
                                     cuda: torch.device) -> None:
    """Quantizing on the CPU and moving, quantizing on the GPU, and loading a state dict into a layer built on
    the GPU give the same codes, scales and outputs."""
    on_gpu, _ = _quantized(model, name, opts)
    on_cpu, _ = _quantized(copy.deepcopy(model).cpu(), name, opts)
    moved = on_cpu.to(cuda)
    for a, b in zip(on_gpu.layers, moved.layers, strict=True):
        assert torch.equal(a.weight.view(torch.uint8), b.weight.view(torch.uint8)), "codes differ CPU vs GPU"
        assert torch.equal(a.weight_scale, b.weight_scale), "scales differ CPU vs GPU"
    x = _x(cuda)
    assert rel_err(on_gpu(x), moved(x)) < 1e-6
    src = moved.layers[0]
    built = QuantLinear(src.in_features, src.out_features, get_scheme(name, **opts), device=cuda)
    built.load_state_dict(src.state_dict())
    assert rel_err(built(x), src(x)) < 1e-6


def _compile_case(label: str, name: str, opts: dict, backend: str, model: nn.Module, cuda: torch.device) -> None:
    torch._dynamo.reset()
    qmodel, _ = _quantized(model, name, opts)
    x = _x(cuda)
    with torch.no_grad():
        expected = qmodel(x)
        explained = torch._dynamo.explain(qmodel)(x)
        assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
        out = torch.compile(qmodel, fullgraph=True, backend=backend)(x)
    assert out.dtype == torch.bfloat16 and out.shape == expected.shape
    err = rel_err(out, expected)
    print(f"{label} compiled ({backend}): relative error vs eager {err:.3g}, identical: {torch.equal(out, expected)}")
    assert err < 1e-3


@pytest.mark.parametrize(("label", "name", "opts"), SCHEMES, ids=IDS)
def test_compile_fullgraph_aot_eager(label: str, name: str, opts: dict, model: nn.Module,
                                     cuda: torch.device) -> None:
    _compile_case(label, name, opts, "aot_eager", model, cuda)


@pytest.mark.parametrize(("label", "name", "opts"), [s for s in SCHEMES if s[0] in INDUCTOR],
                         ids=[s[0] for s in SCHEMES if s[0] in INDUCTOR])
def test_compile_fullgraph_inductor(label: str, name: str, opts: dict, model: nn.Module,
                                    cuda: torch.device) -> None:
    _compile_case(label, name, opts, "inductor", model, cuda)


def test_compile_dynamic_batch(model: nn.Module, cuda: torch.device) -> None:
    torch._dynamo.reset()
    qmodel, _ = _quantized(model, "int8", {})
    compiled = torch.compile(qmodel, fullgraph=True, dynamic=True, backend="aot_eager")
    with torch.no_grad():
        for m in (1, 7, 33):
            x = _x(cuda, m)
            assert rel_err(compiled(x), qmodel(x)) < 1e-3


def test_backward_reaches_activations(model: nn.Module, cuda: torch.device) -> None:
    """The op's backward (LoRA training on top of a quantized model) on the GPU."""
    qmodel, _ = _quantized(model, "fp8_block", {"block_size": "128x128"})
    layer = qmodel.layers[0]
    x = _x(cuda).requires_grad_(True)
    layer(x).float().sum().backward()
    w = layer.dequantized_weight()
    expected = torch.ones(2, 37, layer.out_features, device=cuda) @ w
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    assert rel_err(x.grad, expected) < 1e-2
