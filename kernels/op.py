"""The ``comfyui_dit_quant::quant_linear`` custom op: opaque to ``torch.compile`` (no graph breaks, a fake
implementation for shapes), with a backward for the activations and bias so LoRA training on top still works."""

from __future__ import annotations

from typing import Any

import torch

from . import reference as ref
from .select import select_kernel

NAME = "comfyui_dit_quant::quant_linear"
SCHEMA = ("(Tensor x, Tensor weight, Tensor weight_scale, Tensor? bias, Tensor? input_scale, str scheme, "
          "int block_n, int block_k, str backend) -> Tensor")


def _impl(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
          input_scale: torch.Tensor | None, scheme: str, block_n: int, block_k: int, backend: str) -> torch.Tensor:
    n, k = weight.shape
    x2 = x.reshape(-1, k)
    if x2.shape[0] == 0:
        return x.new_empty((*x.shape[:-1], n))
    choice = select_kernel(x.device.type, x.device.index or 0, scheme, n, k, block_n, block_k, backend,
                           x2.shape[0])
    block = (block_n, block_k) if block_n and block_k else None
    if choice.kernel.tensor_scale and input_scale is None and x.dim() >= 3 and x.shape[0] > 1:
        # one dynamic scale per sample, never across the batch: cond and uncond stay independent
        parts = [choice.run(xs.reshape(-1, k), weight, weight_scale, bias, None, block, x.dtype) for xs in x]
        return torch.stack(parts).reshape(*x.shape[:-1], n)
    out = choice.run(x2, weight, weight_scale, bias, input_scale, block, x.dtype)
    return out.reshape(*x.shape[:-1], n)


def _fake(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
          input_scale: torch.Tensor | None, scheme: str, block_n: int, block_k: int, backend: str) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, weight, weight_scale, bias, _, _, block_n, block_k, _ = inputs
    ctx.save_for_backward(weight, weight_scale)
    ctx.block = (block_n, block_k) if block_n and block_k else None
    ctx.x_dtype = x.dtype
    ctx.has_bias = bias is not None


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    weight, weight_scale = ctx.saved_tensors
    w = ref.dequantize_weight(weight, weight_scale, ctx.block, torch.float32)
    grad_x = (grad.float() @ w).to(ctx.x_dtype)
    grad_b = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
    return grad_x, None, None, grad_b, None, None, None, None, None


def _define() -> Any:
    if hasattr(torch.ops.comfyui_dit_quant, "quant_linear"):  # a second copy of the pack in this process
        return torch.ops.comfyui_dit_quant.quant_linear
    op = torch.library.custom_op(NAME, _impl, mutates_args=(), schema=SCHEMA)
    op.register_fake(_fake)
    op.register_autograd(_backward, setup_context=_setup_context)
    return torch.ops.comfyui_dit_quant.quant_linear


quant_linear_op = _define()
