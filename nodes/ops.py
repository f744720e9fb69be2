"""The ComfyUI operations class: ``manual_cast`` with a Linear that holds a scheme's stored tensors.

Quantized layers keep ``weight`` (codes), ``weight_scale`` and optional ``input_scale`` and run forward through
``Scheme.linear`` (the pack's dispatch); layers loaded without a marker behave exactly like ``manual_cast``.
Nothing is written per call. LoRA follows ComfyUI's ModelPatcher contract: ``convert_weight`` dequantizes,
``set_weight`` requantizes with fresh scales; when the patcher puts its backup of ``weight`` back, the scale the
layer was loaded with comes back with it (``__setattr__``). Low-VRAM patches (``weight_function``) run on a
dequantized copy per call. INT8 codes that land on an Ascend NPU get the operator's [K, N] storage once
(``kernels.npu_backend.prepare_weight``), when moved or set, never per call.
"""

from __future__ import annotations

import comfy.float
import comfy.ops
import torch
import torch.nn.functional as F
from comfy.ops import cast_bias_weight, uncast_bias_weight

from ..kernels.npu_backend import prepare_weight
from ..quant.patch_hooks import apply_patch_hooks
from ..quant.schemes import Scheme
from .layer_state import MARKERS, LayerTensors, decode_layer, encode_layer, requantize_with_scale

_PARTS = ("weight", "bias", "weight_scale", "input_scale", *MARKERS)


class QuantLinearOp(comfy.ops.manual_cast.Linear):
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

    def reset_parameters(self) -> None:
        return None

    def __setattr__(self, name: str, value) -> None:
        # Assigning ``weight`` from outside (ModelPatcher restoring its backup) brings back the loaded codes,
        # so the loaded scale must come back too. ``set_weight`` writes ``_parameters`` directly.
        if name == "weight" and self.__dict__.get("scheme") is not None:
            self._buffers["weight_scale"] = self._buffers["loaded_scale"]
            if isinstance(value, torch.Tensor) and prepare_weight(value) is not value:
                value = torch.nn.Parameter(prepare_weight(value), requires_grad=False)
        super().__setattr__(name, value)

    def _prepare_layout(self) -> None:
        w = self._parameters.get("weight")
        if self.scheme is not None and w is not None and prepare_weight(w) is not w:
            self._parameters["weight"] = torch.nn.Parameter(prepare_weight(w), requires_grad=False)

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
        self._parameters["weight"] = torch.nn.Parameter(layer.weight.to(device=device), requires_grad=False)
        self._buffers["weight_scale"] = self._buffers["loaded_scale"] = layer.weight_scale.to(device=device)
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

    def _apply(self, fn, recurse: bool = True):
        """Device moves apply to the codes and scales; dtype casts (``model.half()``) do not."""
        if self.scheme is None:
            return super()._apply(fn, recurse)
        keep = {id(t) for t in (self.weight, self.weight_scale, self.loaded_scale, self.input_scale) if t is not None}

        def move_only(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)
            return out if id(t) not in keep or out.dtype == t.dtype else t.to(device=out.device)

        result = super()._apply(move_only, recurse)
        self._prepare_layout()
        return result

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
        """Dequantize a copy of the codes (already cast to the LoRA dtype) to float32."""
        if self.scheme is None:
            return weight
        return self.scheme.dequantize(weight, self.weight_scale.to(weight.device), torch.float32)

    def set_weight(self, weight: torch.Tensor, inplace_update: bool = False, seed: int | None = None,
                   return_weight: bool = False, **kwargs):
        """Requantize a patched float weight. In place / returned: under the current scale (the caller keeps
        only codes); otherwise with fresh scales."""
        if self.scheme is None:
            out = comfy.float.stochastic_rounding(weight, self.weight.dtype, seed=seed)
            if return_weight:
                return out
            if inplace_update:
                self.weight.data.copy_(out)
            else:
                self.weight = torch.nn.Parameter(out, requires_grad=False)
            return None
        if return_weight or inplace_update:
            codes = requantize_with_scale(self.scheme, weight, self.weight_scale)
            if return_weight:
                return codes
            self.weight.data.copy_(codes.to(self.weight.device))
            return None
        stored = self.scheme.quantize(weight)
        self._parameters["weight"] = torch.nn.Parameter(prepare_weight(stored["weight"]), requires_grad=False)
        self._buffers["weight_scale"] = stored["weight_scale"]
        return None


def make_ops(backend: str = "auto") -> type[comfy.ops.manual_cast]:
    """An operations class whose quantized Linears ask the dispatch for ``backend``."""

    class DiTQuantOps(comfy.ops.manual_cast):
        class Linear(QuantLinearOp):
            quant_backend = backend

    return DiTQuantOps
