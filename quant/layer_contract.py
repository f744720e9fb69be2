"""ComfyUI's ModelPatcher contract for a layer whose ``weight`` holds quantized codes, written once and shared by
the quantized Linear of the ops class (``nodes/ops.QuantLinearOp``) and the FP8-storage layers
(``quant.storage.FP8StorageMixin``). Duck typing only: no ComfyUI import.

- ``set_quantized_weight`` (public constructor step): codes + scale, the scale remembered as ``loaded_scale``, and
  ComfyUI's archived dtypes (``model_management.archive_model_dtypes``) that its loaders read.
- Assigning ``weight`` from outside (the patcher restoring its backup of the codes) brings the loaded scale back.
- Device moves (``.to(device)``) move codes and scales; dtype casts (``.half()``, ``.to(bf16)``) leave them alone.
- LoRA (``ModelPatcher.patch_weight_to_device``): ``convert_weight`` dequantizes to float32, ``set_weight``
  requantizes — under the current scale when updated in place or returned, with fresh scales otherwise.

A layer provides ``_quantized()`` and the three conversions (``_dequantize``, ``_quantize_fresh``,
``_quantize_under``); ``_place`` lays codes out for the device (the NPU's [K, N] storage) and ``_moved_tensors``
names the extra tensors a device move carries (a static input scale).
"""

from __future__ import annotations

import torch
from torch import nn


class QuantizedWeightContract:
    """Mixed in front of an ``nn.Module`` layer class (see the module docstring)."""

    _parameters: dict
    _buffers: dict
    _non_persistent_buffers_set: set

    # --- what a layer provides --------------------------------------------------------------------------------

    def _quantized(self) -> bool:
        raise NotImplementedError

    def _dequantize(self, codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def _quantize_fresh(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _quantize_under(self, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _place(self, codes: torch.Tensor) -> torch.Tensor:
        return codes

    def _moved_tensors(self) -> tuple[torch.Tensor | None, ...]:
        return ()

    # --- the contract -----------------------------------------------------------------------------------------

    def set_quantized_weight(self, codes: torch.Tensor, scale: torch.Tensor) -> None:
        """Hold ``codes`` with ``scale`` as the layer's loaded state."""
        self._parameters["weight"] = nn.Parameter(self._place(codes), requires_grad=False)
        self._buffers["weight_scale"] = self._buffers["loaded_scale"] = scale
        self._non_persistent_buffers_set.discard("weight_scale")
        self._non_persistent_buffers_set.add("loaded_scale")
        self.__dict__["weight_comfy_model_dtype"] = codes.dtype
        self.__dict__["weight_scale_comfy_model_dtype"] = scale.dtype

    def __setattr__(self, name: str, value) -> None:
        if name == "weight" and self._quantized() and isinstance(value, torch.Tensor):
            self._buffers["weight_scale"] = self._buffers["loaded_scale"]
            placed = self._place(value)
            if placed is not value:
                value = nn.Parameter(placed, requires_grad=False)
        super().__setattr__(name, value)

    def _apply(self, fn, recurse: bool = True):
        if not self._quantized():
            return super()._apply(fn, recurse)
        keep = {id(t) for t in (self._parameters.get("weight"), self._buffers.get("weight_scale"),
                                self._buffers.get("loaded_scale"), *self._moved_tensors()) if t is not None}

        def move_only(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)
            return out if id(t) not in keep or out.dtype == t.dtype else t.to(device=out.device)

        result = super()._apply(move_only, recurse)
        w = self._parameters.get("weight")
        if w is not None and self._place(w) is not w:
            self._parameters["weight"] = nn.Parameter(self._place(w), requires_grad=False)
        return result

    def convert_weight(self, weight: torch.Tensor, inplace: bool = False, **kwargs) -> torch.Tensor:
        """The codes (already cast to the LoRA dtype by the patcher) dequantized to float32."""
        return self._dequantize(weight, self._buffers["weight_scale"].to(weight.device), torch.float32)

    def set_weight(self, weight: torch.Tensor, inplace_update: bool = False, seed: int | None = None,
                   return_weight: bool = False, **kwargs):
        """Store a patched float weight (see the module docstring)."""
        if return_weight or inplace_update:
            codes = self._quantize_under(weight, self._buffers["weight_scale"].to(weight.device))
            if return_weight:
                return codes
            self._parameters["weight"].data.copy_(codes.to(self._parameters["weight"].device))
            return None
        codes, scale = self._quantize_fresh(weight)
        self._parameters["weight"] = nn.Parameter(self._place(codes), requires_grad=False)
        self._buffers["weight_scale"] = scale
        return None
