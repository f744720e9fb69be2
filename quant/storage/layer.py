"""``FP8StorageMixin``: a Linear / ConvNd that stores FP8 codes + float32 scale and dequantizes at forward,
speaking ComfyUI's layer protocol by duck typing; ``stored_class`` puts it in front of a layer class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...kernels.reference import FP8_DTYPE, cast_fp8
from ..layer_contract import QuantizedWeightContract
from ..patch_hooks import apply_patch_hooks
from .fp8_weight import dequantize_weight, quantize_weight


def is_fp8_stored(module: nn.Module) -> bool:
    return isinstance(module, FP8StorageMixin)


class FP8StorageMixin(QuantizedWeightContract):
    """Mixed in front of a Linear / ConvNd class (see ``stored_class``). ``weight`` holds FP8 codes,
    ``weight_scale`` their float32 scale; forward dequantizes into the input's dtype on the input's device.

    ComfyUI integration: ``comfy_cast_weights`` is pinned to True, so ComfyUI's ops always route through
    ``forward_comfy_cast_weights`` (replaced here: dequantize, then the patcher's ``weight_function`` /
    ``bias_function`` on the dequantized weight — low-VRAM LoRA). Loading, device moves and LoRA follow
    ``quant.layer_contract``.
    """

    fp8_orig_dtype: torch.dtype
    fp8_granularity: str

    @property
    def comfy_cast_weights(self) -> bool:
        return True

    @comfy_cast_weights.setter
    def comfy_cast_weights(self, value: bool) -> None:  # ModelPatcher toggles it for low-VRAM loads: stay on
        pass

    def set_fp8_storage(self, codes: torch.Tensor, scale: torch.Tensor, orig_dtype: torch.dtype,
                        granularity: str) -> None:
        """Hold FP8 ``codes`` + ``scale`` of a weight that was ``orig_dtype`` (forward computes in that dtype)."""
        self.__dict__["fp8_orig_dtype"] = orig_dtype
        self.__dict__["fp8_granularity"] = granularity
        self.set_quantized_weight(codes, scale)

    # --- the contract's conversions ----------------------------------------------------------------------

    def _quantized(self) -> bool:
        return "fp8_orig_dtype" in self.__dict__

    def _dequantize(self, codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return dequantize_weight(codes, scale, dtype)

    def _quantize_fresh(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return quantize_weight(weight, self.fp8_granularity)

    def _quantize_under(self, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return cast_fp8(weight, scale)

    # --- forward -----------------------------------------------------------------------------------------

    def fp8_dequantized_weight(self, dtype: torch.dtype | None = None, device: torch.device | None = None
                               ) -> torch.Tensor:
        w = self.weight if device is None else self.weight.to(device, non_blocking=True)
        dtype = dtype or self.fp8_orig_dtype
        if w.dtype != FP8_DTYPE:  # something replaced the codes with a float weight: use it as it is
            return w.to(dtype)
        return dequantize_weight(w, self.weight_scale.to(w.device, non_blocking=True), dtype)

    def _fp8_weight_bias(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        dtype = input.dtype if input.is_floating_point() else self.fp8_orig_dtype
        w = self.fp8_dequantized_weight(dtype, input.device)
        b = None if self.bias is None else self.bias.to(device=input.device, dtype=dtype, non_blocking=True)
        return apply_patch_hooks(self, w, b)

    def forward_comfy_cast_weights(self, input: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        w, b = self._fp8_weight_bias(input)
        if isinstance(self, nn.Linear):
            return F.linear(input, w, b)
        return self._conv_forward(input, w, b, *args, **kwargs)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias, *args, **kwargs) -> torch.Tensor:
        if weight.dtype == FP8_DTYPE:  # reached through a plain ConvNd.forward: dequantize here
            weight, bias = self._fp8_weight_bias(input)
        return super()._conv_forward(input, weight, bias, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fp8_storage={self.fp8_granularity}, compute={self.fp8_orig_dtype}"


_CLASSES: dict[type, type] = {}


def stored_class(cls: type[nn.Module]) -> type[nn.Module]:
    """``FP8Stored<cls>``: the FP8 mixin in front of ``cls`` (cached)."""
    if issubclass(cls, FP8StorageMixin):
        return cls
    if cls not in _CLASSES:
        ns: dict = {"__module__": __name__, "__qualname__": f"FP8Stored{cls.__name__}"}
        if not hasattr(cls, "forward_comfy_cast_weights"):  # a plain torch layer: forward is F.linear / conv
            ns["forward"] = lambda self, input, *a, **kw: self.forward_comfy_cast_weights(input, *a, **kw)
        _CLASSES[cls] = type(f"FP8Stored{cls.__name__}", (FP8StorageMixin, cls), ns)
    return _CLASSES[cls]
