"""Ascend NPU W8A8 INT8: ``torch_npu.npu_dynamic_quant`` + ``torch_npu.npu_quant_matmul``.

``torch_npu`` is imported only when this backend runs (on an NPU tensor): importing the pack on a machine without
it never fails, and nothing here calls ``torch.cuda``.

Layout: the operator wants the weight as a contiguous ``[K, N]`` int8 tensor. Layers keep their ``weight`` as
``[N, K]`` (the shape every other path, the LoRA patcher and checkpoints use), and ``prepare_weight`` gives it
*transposed storage* once when it reaches the NPU: ``w.t().contiguous().t()``, an ``[N, K]`` view of a
contiguous ``[K, N]`` tensor, so ``weight.t()`` is the operator's operand with no copy per call.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch

from .caps import DeviceCaps
from .kernel import Block, Kernel

log = logging.getLogger("comfyui_dit_quant")

# npu_quant_matmul: the last dimension of each operand (K of x1, N of x2) must not exceed this.
MAX_DIM = 65535
HALF = (torch.bfloat16, torch.float16)
_warned: set[str] = set()


def torch_npu() -> ModuleType:
    """The ``torch_npu`` module (imported here, on first use by an NPU tensor)."""
    return importlib.import_module("torch_npu")


def unsupported_reason(n: int, k: int) -> str | None:
    """Why an ``[N, K]`` layer cannot run on ``npu_quant_matmul`` (None when it can)."""
    if n > MAX_DIM or k > MAX_DIM:
        return f"shape [{n}, {k}]: npu_quant_matmul takes N and K up to {MAX_DIM}"
    return None


def is_prepared(weight: torch.Tensor) -> bool:
    """True when ``weight.t()`` is already the contiguous ``[K, N]`` operand."""
    return weight.dim() == 2 and weight.t().is_contiguous()


def on_npu(t: torch.Tensor) -> bool:
    return t.device.type == "npu"


def prepare_weight(weight: torch.Tensor) -> torch.Tensor:
    """INT8 codes on an NPU in transposed storage (one copy, at load / move time); anything else unchanged."""
    if not on_npu(weight) or weight.dtype != torch.int8 or is_prepared(weight):
        return weight
    return weight.t().contiguous().t()


def _weight_kn(weight: torch.Tensor) -> torch.Tensor:
    w = weight.t()
    if w.is_contiguous():
        return w
    if "copy" not in _warned:  # e.g. weights streamed per call in low-VRAM mode
        _warned.add("copy")
        log.info("npu_quant_matmul: weight not prepared as [K, N]; transposing per call")
    return w.contiguous()


def int8_linear(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                out_dtype: torch.dtype) -> torch.Tensor:
    """``x2 [M, K] @ W.T + bias`` → ``[M, N]`` in ``out_dtype``: per-token dynamic INT8 activations (scale =
    rowmax/127) x per-channel INT8 weights, both scales and the bias applied inside ``npu_quant_matmul``.

    The operators take bf16/fp16 activations and write bf16/fp16, so float32 models run them in bf16.
    """
    npu = torch_npu()
    compute = out_dtype if out_dtype in HALF else torch.bfloat16
    x_q, x_s = npu.npu_dynamic_quant(x2 if x2.dtype in HALF else x2.to(compute))
    out = npu.npu_quant_matmul(
        x_q, _weight_kn(weight), weight_scale.float().reshape(-1),
        pertoken_scale=x_s.float().reshape(-1),
        bias=None if bias is None else bias.to(compute),
        output_dtype=compute,
    )
    return out if out.dtype == out_dtype else out.to(out_dtype)


def npu_quant_matmul(x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
                     input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
    return int8_linear(x2, weight, weight_scale, bias, out_dtype)


def _fits(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    return unsupported_reason(n, k)


KERNELS = (Kernel("npu_quant_matmul", "npu", ("int8",), ("npu",), npu_quant_matmul, _fits),)
