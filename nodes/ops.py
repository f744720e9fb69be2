"""The ComfyUI operations class: ``manual_cast`` with a Linear that holds a scheme's stored tensors.

Quantized layers keep ``weight`` (codes), ``weight_scale`` and optional ``input_scale`` and run forward through
``Scheme.linear`` (the pack's dispatch); layers loaded without a marker behave exactly like ``manual_cast``.
Nothing is written per call. Loading, device moves and LoRA follow ComfyUI's ModelPatcher contract as
``quant.layer_contract`` writes it (shared with the FP8-storage layers). Low-VRAM patches (``weight_function``) run
on a dequantized copy per call. INT8 codes that land on an Ascend NPU get the operator's [K, N] storage once
(``kernels.npu_backend.prepare_weight``), when moved or set, never per call.
"""

from __future__ import annotations

import comfy.float
import comfy.ops
import torch
import torch.nn.functional as F
from comfy.ops import cast_bias_weight, uncast_bias_weight

from ..kernels.npu_backend import prepare_weight
from ..quant.formats.layer_state import MARKERS, LayerTensors, decode_layer, encode_layer, requantize_with_scale
from ..quant.layer_contract import QuantizedWeightContract
from ..quant.patch_hooks import apply_patch_hooks
from ..quant.schemes import Scheme

_PARTS = ("weight", "bias", "weight_scale", "input_scale", *MARKERS)


class QuantLinearOp(QuantizedWeightContract, comfy.ops.manual_cast.Linear):
    """A ComfyUI Linear holding either a plain weight or a quantized layer (see the module docstring)."""

    quant_backend = "auto"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        torch.nn.Module.__init__(self)  # weights arrive with the state dict: allocate nothing here
        self.in_features, self.out_features = in_features, out_features
        self.factory_kwargs = {"device": device, "dtype": dtype}
        self.scheme: Scheme | None = None
        self.expects_bias = bias
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)
        self.register_buffer("weight_scale", None)
        self.register_buffer("input_scale", None)
        self.register_buffer("loaded_scale", None, persistent=False)

    @classmethod
    def from_quantized(cls, scheme: Scheme, codes: torch.Tensor, scale: torch.Tensor,
                       bias: torch.Tensor | None = None, input_scale: torch.Tensor | None = None) -> QuantLinearOp:
        """A layer holding a scheme's stored tensors (codes [N, K], scale, optional bias and static input scale)."""
        out_features, in_features = codes.shape
        layer = cls(in_features, out_features, bias=bias is not None)
        layer.factory_kwargs = {"device": None, "dtype": None if bias is None else bias.dtype}
        layer.scheme = scheme
        layer.set_quantized_weight(codes, scale)
        if bias is not None:
            layer._parameters["bias"] = bias if isinstance(bias, torch.nn.Parameter) else torch.nn.Parameter(
                bias, requires_grad=False)
            layer.__dict__["bias_comfy_model_dtype"] = bias.dtype
        if input_scale is not None:
            layer._buffers["input_scale"] = input_scale.float()
        return layer

    def reset_parameters(self) -> None:
        return None

    # --- the layer contract's conversions (quant.layer_contract) ----------------------------------------------

    def _quantized(self) -> bool:
        return self.__dict__.get("scheme") is not None

    def _dequantize(self, codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        assert self.scheme is not None
        return self.scheme.dequantize(codes, scale, dtype)

    def _quantize_fresh(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.scheme is not None
        stored = self.scheme.quantize(weight)
        return stored["weight"], stored["weight_scale"]

    def _quantize_under(self, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        assert self.scheme is not None
        return requantize_with_scale(self.scheme, weight, scale)

    def _place(self, codes: torch.Tensor) -> torch.Tensor:
        return prepare_weight(codes)

    def _moved_tensors(self) -> tuple[torch.Tensor | None, ...]:
        return (self._buffers.get("input_scale"),)

    # --- loading / saving ---------------------------------------------------------------------------------

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        parts = {p: state_dict.pop(prefix + p) for p in _PARTS if prefix + p in state_dict}
        device, dtype = self.factory_kwargs["device"], self.factory_kwargs["dtype"]
        device = None if device is None or torch.device(device).type == "meta" else device
        bias = parts.pop("bias", None)
        if bias is not None:
            self.bias = torch.nn.Parameter(bias.to(device=device, dtype=dtype or bias.dtype), requires_grad=False)
        elif self.expects_bias:
            missing_keys.append(prefix + "bias")
        try:
            layer = decode_layer(parts, prefix[:-1])
        except ValueError as e:
            error_msgs.append(f"{prefix[:-1]}: {e}")
            return
        if layer is None:
            w = parts.pop("weight", None)
            unexpected_keys.extend(prefix + p for p in parts)
            if w is None:
                missing_keys.append(prefix + "weight")
                return
            self.weight = torch.nn.Parameter(w.to(device=device, dtype=dtype or w.dtype), requires_grad=False)
            return
        expected = layer.scheme.empty_tensors(self.out_features, self.in_features)["weight_scale"].shape
        if tuple(layer.weight.shape) != (self.out_features, self.in_features) or layer.weight_scale.shape != expected:
            error_msgs.append(f"{prefix[:-1]}: quantized weight {list(layer.weight.shape)} / scale "
                              f"{list(layer.weight_scale.shape)} do not fit a [{self.out_features}, "
                              f"{self.in_features}] {layer.scheme.describe()} layer")
            return
        self.scheme = layer.scheme
        self.set_quantized_weight(layer.weight.to(device=device), layer.weight_scale.to(device=device))
        if layer.input_scale is not None:
            self._buffers["input_scale"] = layer.input_scale.float().to(device=device)

    def state_dict(self, *args, destination=None, prefix: str = "", **kwargs):
        if self.scheme is None:
            return super().state_dict(*args, destination=destination, prefix=prefix, **kwargs)
        sd = destination if destination is not None else {}
        layer = LayerTensors(self.scheme, self.weight.detach(), self.weight_scale, self.input_scale)
        for key, t in encode_layer(layer).items():
            sd[prefix + key] = t
        if self.bias is not None:
            sd[prefix + "bias"] = self.bias.detach()
        return sd

    # --- forward --------------------------------------------------------------------------------------------

    def forward_comfy_cast_weights(self, input: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.scheme is None:
            return super().forward_comfy_cast_weights(input, *args, **kwargs)
        if (self.weight_function or self.bias_function or getattr(self, "weight_lowvram_function", None)
                or getattr(self, "bias_lowvram_function", None)):
            return self._forward_patched(input)
        weight, bias, stream = cast_bias_weight(self, input, dtype=self.weight.dtype, bias_dtype=input.dtype,
                                                offloadable=True)
        scale = self.weight_scale.to(input.device, non_blocking=True)
        in_scale = None if self.input_scale is None else self.input_scale.to(input.device, non_blocking=True)
        out = self.scheme.linear(input, weight, scale, bias, in_scale, self.quant_backend)
        uncast_bias_weight(self, weight, bias, stream)
        return out

    def _forward_patched(self, input: torch.Tensor) -> torch.Tensor:
        """Low-VRAM LoRA: patch a dequantized copy of the weight for this call only."""
        assert self.scheme is not None
        w = self.scheme.dequantize(self.weight.to(input.device), self.weight_scale.to(input.device), input.dtype)
        b = None if self.bias is None else self.bias.to(input.device, input.dtype)
        return F.linear(input, *apply_patch_hooks(self, w, b))

    # --- LoRA (ModelPatcher.patch_weight_to_device) ---------------------------------------------------------

    def convert_weight(self, weight: torch.Tensor, inplace: bool = False, **kwargs) -> torch.Tensor:
        """Dequantize a copy of the codes (already cast to the LoRA dtype) to float32; plain layers: as is."""
        return super().convert_weight(weight, inplace, **kwargs) if self.scheme is not None else weight

    def set_weight(self, weight: torch.Tensor, inplace_update: bool = False, seed: int | None = None,
                   return_weight: bool = False, **kwargs):
        """Quantized layers: the contract's requantization. Plain layers: as ComfyUI's own ops (stochastic
        rounding to the weight's dtype)."""
        if self.scheme is not None:
            return super().set_weight(weight, inplace_update, seed, return_weight, **kwargs)
        out = comfy.float.stochastic_rounding(weight, self.weight.dtype, seed=seed)
        if return_weight:
            return out
        if inplace_update:
            self.weight.data.copy_(out)
        else:
            self.weight = torch.nn.Parameter(out, requires_grad=False)
        return None


def make_ops(backend: str = "auto") -> type[comfy.ops.manual_cast]:
    """An operations class whose quantized Linears ask the dispatch for ``backend``."""

    class DiTQuantOps(comfy.ops.manual_cast):
        class Linear(QuantLinearOp):
            quant_backend = backend

    return DiTQuantOps
