"""The Ascend NPU backend's calling convention, checked against a stand-in ``torch_npu`` (tests/npu_standin.py:
a CPU reference of the two operators' documented semantics), and the NPU dispatch decisions without any CUDA call.
"""

from __future__ import annotations

import sys

import npu_standin
import pytest
import torch
import torch.nn.functional as F

from comfyui_dit_quant.kernels import npu_backend
from comfyui_dit_quant.kernels import reference as ref
from comfyui_dit_quant.kernels.caps import expected_caps
from comfyui_dit_quant.kernels.detect import detect_caps
from comfyui_dit_quant.kernels.eager_backend import eager
from comfyui_dit_quant.kernels.select import run_named, select_kernel
from comfyui_dit_quant.kernels.table import choose
from comfyui_dit_quant.quant.linear import QuantLinear
from comfyui_dit_quant.quant.schemes import Int8

NPU = expected_caps("npu", torch_version=(2, 9))


def _layer(n: int = 96, k: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    stored = Int8().quantize(torch.randn(n, k, generator=gen) / k**0.5)
    return stored["weight"], stored["weight_scale"], torch.randn(n, generator=gen) * 0.1


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean() / b.float().abs().mean())


def test_standin_dynamic_quant_is_the_per_token_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    npu = npu_standin.install(monkeypatch)
    x = torch.randn(5, 3, 64).to(torch.bfloat16)
    q, s = npu.npu_dynamic_quant(x)
    rq, rs = ref.quant_int8_per_token(x.reshape(-1, 64))
    assert q.dtype == torch.int8 and q.shape == x.shape and s.dtype == torch.float32 and s.shape == (5, 3)
    assert torch.equal(q.reshape(-1, 64), rq) and torch.allclose(s.reshape(-1, 1), rs)
    with pytest.raises(AssertionError, match="input dtype"):
        npu.npu_dynamic_quant(x.float())  # the operator takes fp16 / bf16 only


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_int8_linear_matches_eager_with_prepared_weight(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    npu = npu_standin.install(monkeypatch)
    w, s, b = _layer()
    kn = w.t().contiguous()
    prepared = kn.t()  # what prepare_weight makes on an NPU: [N, K] over contiguous [K, N] storage
    assert npu_backend.is_prepared(prepared) and not npu_backend.is_prepared(w)
    x = torch.randn(40, 128, generator=torch.Generator().manual_seed(1)).to(dtype)
    out = run_named("npu_quant_matmul", x, prepared, s, b.to(dtype), None, "int8", None, dtype)
    expected = eager(x, w, s, b.to(dtype), None, "int8", None, dtype)
    assert out.dtype == dtype and out.shape == (40, 96)
    assert _rel(out, expected) < (1e-2 if dtype == torch.float32 else 2e-2)  # fp32 runs the operators in bf16
    (dq_name, dq_args), (mm_name, mm_args) = npu.calls
    assert dq_name == "npu_dynamic_quant" and dq_args[0][0] == (40, 128)
    assert mm_name == "npu_quant_matmul"
    (x1, _), (x2, x2_ptr), (scale, _) = mm_args[:3]
    assert x1 == (40, 128) and x2 == (128, 96) and scale == (96,)
    assert x2_ptr == kn.data_ptr()  # the prepared storage itself: no copy per call


def test_unprepared_weight_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    npu_standin.install(monkeypatch)
    w, s, b = _layer()
    x = torch.randn(3, 128).to(torch.bfloat16)
    out = npu_backend.int8_linear(x, w, s, None, torch.bfloat16)
    assert _rel(out, eager(x, w, s, None, None, "int8", None, torch.bfloat16)) < 2e-2


def test_prepare_weight_only_touches_int8_on_npu(monkeypatch: pytest.MonkeyPatch) -> None:
    w, _, _ = _layer()
    assert npu_backend.prepare_weight(w) is w  # a CPU tensor: unchanged
    monkeypatch.setattr(npu_backend, "on_npu", lambda t: True)
    p = npu_backend.prepare_weight(w)
    assert torch.equal(p, w) and npu_backend.is_prepared(p) and npu_backend.prepare_weight(p) is p
    fp = torch.randn(4, 4, dtype=torch.bfloat16)
    assert npu_backend.prepare_weight(fp) is fp


def test_quant_linear_module_through_the_npu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole QuantLinear forward (custom op → dispatch → NPU backend) with CPU tensors routed to it."""
    lin = torch.nn.Linear(128, 96).to(torch.bfloat16)
    q = QuantLinear.from_linear(lin, Int8())
    x = torch.randn(2, 7, 128).to(torch.bfloat16)
    ref_out = q(x)
    npu = npu_standin.install(monkeypatch)
    npu_standin.route_through_npu(monkeypatch)
    out = q(x)
    assert out.shape == (2, 7, 96) and [c[0] for c in npu.calls] == ["npu_dynamic_quant", "npu_quant_matmul"]
    assert _rel(out, ref_out) < 2e-2
    assert F.cosine_similarity(out.float().flatten(), lin(x).float().flatten(), dim=0) > 0.999


def test_npu_dispatch_needs_no_cuda_and_respects_operator_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_cuda(*args, **kwargs):
        raise AssertionError("torch.cuda called on the NPU path")

    for name in ("is_available", "get_device_capability", "current_device", "device_count", "get_device_name",
                 "get_device_properties", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    assert detect_caps("npu", 0).npu_int8
    assert select_kernel("npu", 0, "int8", 5120, 13824, 0, 0, "auto").backend == "npu_quant_matmul"
    assert choose(NPU, "int8", 5120, 5120).backend == "npu_quant_matmul"
    big = choose(NPU, "int8", 65552, 5120)
    assert big.backend == "eager" and "65535" in big.note
    assert npu_backend.unsupported_reason(65552, 64) and npu_backend.unsupported_reason(64, 70000)
    assert npu_backend.unsupported_reason(65535, 65535) is None
    assert choose(NPU, "fp8_block", 4096, 4096, (128, 128)).backend == "eager"  # no FP8 on Ascend


def test_without_torch_npu_only_the_call_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_npu", None)  # "not installed"
    w, s, _ = _layer()
    with pytest.raises(ImportError):
        npu_backend.int8_linear(torch.randn(2, 128), w, s, None, torch.float32)
