"""What the DiT loader nodes share: the compute-dtype widget and the per-layer backend in their summaries."""

from __future__ import annotations

import comfy.model_detection
import comfy.model_management as mm
import comfy.utils
import torch

from ..kernels.dispatch import backend_for
from ..quant.report import QuantReport

DTYPE_CHOICES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def compute_dtype_for(choice: str, device: torch.device) -> torch.dtype:
    """The ``compute_dtype`` widget's dtype on ``device`` (auto: bf16 where supported, else fp32)."""
    dtype = DTYPE_CHOICES[choice]
    if dtype is None:
        return torch.bfloat16 if mm.should_use_bf16(device) else torch.float32
    return dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def supported_compute_dtype(sd: dict[str, torch.Tensor], dtype: torch.dtype, device: torch.device,
                            metadata: dict | None = None) -> tuple[torch.dtype, str | None]:
    """``dtype``, or, where ComfyUI's model config for the checkpoint ``sd`` does not list it among the family's
    inference dtypes (Qwen-Image leaves fp16 out: it overflows, NaN / black images), the first of bf16 / fp16 /
    fp32 that the family and the device support, with a note saying so. The model type is detected from tensor
    names and shapes, as ComfyUI's loader does."""
    prefix = comfy.model_detection.unet_prefix_from_state_dict(sd)
    unet_sd = comfy.utils.state_dict_prefix_replace(sd, {prefix: ""}, filter_keys=True) or sd
    config = comfy.model_detection.model_config_from_unet(unet_sd, "", metadata=metadata)
    supported = getattr(config, "supported_inference_dtypes", None)
    if not supported or dtype in supported:
        return dtype, None
    if torch.bfloat16 in supported and mm.should_use_bf16(device):
        fallback = torch.bfloat16
    elif torch.float16 in supported and mm.should_use_fp16(device):
        fallback = torch.float16
    else:
        fallback = torch.float32
    why = " (fp16 overflows in such models: NaN, black images)" if dtype == torch.float16 else ""
    return fallback, (f"compute dtype {_dtype_name(dtype)} is not one ComfyUI runs {type(config).__name__} in "
                      f"({', '.join(map(_dtype_name, supported))}){why}: using {_dtype_name(fallback)}")


def _module_name(model_config, layer: str) -> str:
    """The built model's module name of a file's layer: prefix stripped, then the family's key renames (e.g.
    HunyuanVideo's tencent ``img_attn_qkv`` → ``img_attn.qkv``) that ComfyUI applies after detection."""
    short = layer.rpartition("diffusion_model.")[2]
    if model_config is None:
        return short
    try:
        renamed = next(iter(model_config.process_unet_state_dict({f"{short}.weight": None})))
    except Exception:  # a model config whose renames need the tensors
        return short
    return renamed.removesuffix(".weight")


def record_backends(report: QuantReport, dm: torch.nn.Module, device: torch.device, backend: str,
                     model_config=None) -> None:
    """The backend the dispatch picks on the load device, per quantized layer of the built model ``dm``
    (``model_config``: the detected ComfyUI model config, whose key renames map file names to module names)."""
    layers = {n: m for n, m in dm.named_modules() if getattr(m, "scheme", None) is not None}
    missing = []
    for rec in report.quantized:
        m = layers.get(_module_name(model_config, rec.name))
        if m is None:
            missing.append(rec.name)
            continue
        rec.backend = backend_for(device, m.scheme.name, m.out_features, m.in_features, backend,
                                  *(m.scheme.block or (0, 0)))
    if missing:
        report.notes.append(f"warning: {len(missing)} quantized layers are not quantized modules of the built "
                            f"model: {', '.join(missing[:5])}")
