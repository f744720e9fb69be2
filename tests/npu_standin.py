"""STAND-IN for ``torch_npu`` — NOT the real package. Used only by tests/test_npu_backend.py.

A reference implementation, on CPU tensors, of the documented semantics of the two operators the NPU backend
calls (torch_npu API reference, ``npu_dynamic_quant`` and ``npu_quant_matmul``; Atlas A2 column of the dtype
table), strict about what the documentation restricts, so a wrong calling convention fails here:

- ``npu_dynamic_quant(x, *, smooth_scales=None)``: x float16/bfloat16 → (int8 codes of x's shape, float32 scale of
  shape ``x.shape[:-1]``), symmetric per token, ``scale = rowmax(|x|) / 127``.
- ``npu_quant_matmul(x1, x2, scale, *, offset=None, pertoken_scale=None, bias=None, output_dtype=None)``: x1 int8
  ``[M, K]``, x2 int8 ``[K, N]`` (2-D, ND format, contiguous here, as the pack promises), ``scale`` float32/bfloat16
  ``[1]`` or ``[N]``, ``pertoken_scale`` float32 ``[M]`` (then output_dtype bfloat16 or float16), bias ``[N]`` int32
  (added to the int32 accumulator) or float (bf16 output: bfloat16/float32; fp16 output: float16/float32; added
  after the scales). ``out = (x1 @ x2 + int_bias) * scale * pertoken_scale[:, None] + float_bias``. The last
  dimension of x1 and x2 is at most 65535.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

MODULE_NAME = "torch_npu"
MAX_LAST_DIM = 65535


def npu_dynamic_quant(x: torch.Tensor, *, smooth_scales: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    assert x.dtype in (torch.float16, torch.bfloat16), f"npu_dynamic_quant: input dtype {x.dtype}"
    assert smooth_scales is None
    xf = x.float()
    scale = xf.abs().amax(dim=-1).clamp(min=1e-12) / 127.0
    q = torch.round(xf / scale.unsqueeze(-1)).clamp(-127, 127).to(torch.int8)
    return q, scale


def npu_quant_matmul(x1: torch.Tensor, x2: torch.Tensor, scale: torch.Tensor, *, offset: torch.Tensor | None = None,
                     pertoken_scale: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                     output_dtype: torch.dtype | None = None) -> torch.Tensor:
    assert x1.dtype == torch.int8 and x2.dtype == torch.int8, (x1.dtype, x2.dtype)
    assert x1.dim() == 2 and x2.dim() == 2 and x1.shape[1] == x2.shape[0], (x1.shape, x2.shape)
    assert x2.is_contiguous(), "x2 must be a contiguous [K, N] tensor"
    assert x1.shape[-1] <= MAX_LAST_DIM and x2.shape[-1] <= MAX_LAST_DIM, "last dimension above 65535"
    m, n = x1.shape[0], x2.shape[1]
    assert scale.dim() == 1 and scale.shape[0] in (1, n) and scale.dtype in (torch.float32, torch.bfloat16)
    assert offset is None
    if pertoken_scale is not None:
        assert pertoken_scale.dtype == torch.float32 and tuple(pertoken_scale.shape) == (m,), pertoken_scale.shape
        assert output_dtype in (torch.bfloat16, torch.float16), f"pertoken_scale needs bf16/fp16, got {output_dtype}"
    acc = (x1.long() @ x2.long())
    float_bias = None
    if bias is not None:
        assert tuple(bias.shape) == (n,), bias.shape
        allowed = {torch.bfloat16: (torch.int32, torch.bfloat16, torch.float32),
                   torch.float16: (torch.int32, torch.float16, torch.float32)}.get(output_dtype, (torch.int32,))
        assert bias.dtype in allowed, f"bias {bias.dtype} with output {output_dtype}"
        if bias.dtype == torch.int32:
            acc = acc + bias.long()
        else:
            float_bias = bias.float()
    out = acc.double() * scale.double()
    if pertoken_scale is not None:
        out = out * pertoken_scale.double().unsqueeze(1)
    if float_bias is not None:
        out = out + float_bias.double()
    return out.to(output_dtype or torch.int8)


def install(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Register the stand-in as ``torch_npu`` in ``sys.modules`` for one test (undone after it)."""
    mod = types.ModuleType(MODULE_NAME, "STAND-IN for torch_npu (tests only)")
    mod.npu_dynamic_quant = npu_dynamic_quant
    mod.npu_quant_matmul = npu_quant_matmul
    mod.calls = []  # (operator, [(shape, data_ptr) of each tensor argument]) in call order

    def record(name: str, fn):
        def wrapper(*args, **kwargs):
            mod.calls.append((name, [(tuple(a.shape), a.data_ptr()) for a in args if isinstance(a, torch.Tensor)]))
            return fn(*args, **kwargs)
        return wrapper

    mod.npu_dynamic_quant = record("npu_dynamic_quant", npu_dynamic_quant)
    mod.npu_quant_matmul = record("npu_quant_matmul", npu_quant_matmul)
    monkeypatch.setitem(sys.modules, MODULE_NAME, mod)
    return mod


def route_through_npu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat CPU tensors as NPU tensors for the pack: INT8 linears dispatch to the NPU backend and
    ``prepare_weight`` lays INT8 codes out as on an NPU. The stand-in must be installed too."""
    from comfyui_dit_quant.kernels import npu_backend, op
    from comfyui_dit_quant.kernels.table import Choice, kernel_named

    real = op.select_kernel
    npu = Choice(kernel_named("npu_quant_matmul", "int8"))
    monkeypatch.setattr(op, "select_kernel", lambda device_type, index, scheme, *rest: (
        npu if scheme == "int8" else real(device_type, index, scheme, *rest)))
    monkeypatch.setattr(npu_backend, "on_npu", lambda t: True)
