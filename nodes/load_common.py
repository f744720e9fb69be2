"""What the DiT loader nodes share: the compute-dtype widget and the per-layer backend in their summaries."""

from __future__ import annotations

import comfy.model_detection
import comfy.model_management as mm
import comfy.utils
import torch

from ..kernels.detect import detect_caps
from ..kernels.dispatch import backend_for, choice_for
from ..quant.report import QuantReport

# preset widget label -> the family preset it applies (quant.families.presets)
PRESET_CHOICES = {"family default": "default", "none": "none", "quality": "quality"}
DTYPE_CHOICES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _family_dtypes(sd: dict[str, torch.Tensor], metadata: dict | None) -> tuple[str, list[torch.dtype]]:
    """The ComfyUI model config's name and inference dtypes for the checkpoint ``sd``, detected from tensor names
    and shapes as ComfyUI's loader does (all three dtypes where it detects nothing). Only the architecture: the
    loader's own per-layer quantization scan runs once, in ComfyUI."""
    detect = comfy.model_detection
    prefix = detect.unet_prefix_from_state_dict(sd)
    # state_dict_prefix_replace pops the matched keys out of the dict it is given: hand it a shallow copy, or
    # every `model.diffusion_model.` file would reach ComfyUI's loader empty.
    unet_sd = comfy.utils.state_dict_prefix_replace(dict(sd), {prefix: ""}, filter_keys=True) or sd
    unet_config = detect.detect_unet_config(unet_sd, "", metadata=metadata)
    config = detect.model_config_from_unet_config(unet_config, unet_sd) if unet_config is not None else None
    supported = list(getattr(config, "supported_inference_dtypes", None) or [])
    return type(config).__name__, supported or [torch.bfloat16, torch.float16, torch.float32]


def compute_dtype_for(choice: str, sd: dict[str, torch.Tensor], device: torch.device,
                      metadata: dict | None = None) -> tuple[torch.dtype, str | None]:
    """The ``compute_dtype`` widget's dtype for checkpoint ``sd`` on ``device``, and a note when the choice was
    replaced. ``auto``: the first of bf16 / fp16 / fp32 that both the device and the family (ComfyUI's model
    config) support, e.g. fp16 for Wan on a T4, fp32 for Qwen-Image there (fp16 overflows in it: NaN, black
    images). An explicit dtype the family leaves out is replaced the same way, with a note."""
    name, supported = _family_dtypes(sd, metadata)
    device_ok = {torch.bfloat16: mm.should_use_bf16(device), torch.float16: mm.should_use_fp16(device)}
    best = next((d for d in (torch.bfloat16, torch.float16) if device_ok[d] and d in supported), torch.float32)
    dtype = DTYPE_CHOICES[choice]
    if dtype is None:
        return best, None
    if dtype in supported:
        return dtype, None
    why = " (fp16 overflows in such models: NaN, black images)" if dtype == torch.float16 else ""
    return best, (f"compute dtype {_dtype_name(dtype)} is not one ComfyUI runs {name} in "
                  f"({', '.join(map(_dtype_name, supported))}){why}: using {_dtype_name(best)}")


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


def backend_reason(device: torch.device, scheme: str, n: int, k: int, requested: str,
                   block: tuple[int, int] | None = None) -> str:
    """Why the dispatch runs the backend it picks for one layer (the summary's headline says it)."""
    caps = detect_caps(device.type, device.index or 0)
    choice = choice_for(device, scheme, n, k, requested, *(block or (0, 0)))
    if choice.note:
        return choice.note
    if requested == "eager":
        return "requested"
    if choice.backend == "eager" and device.type == "cpu":
        return "CPU: the float32 reference; backend 'torch' runs torch's CPU kernels"
    return f"the scheme's fast path on {caps.describe()}"


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
        if rec.backend not in report.backend_why:
            report.backend_why[rec.backend] = backend_reason(device, m.scheme.name, m.out_features, m.in_features,
                                                             backend, m.scheme.block)
    if missing:
        report.notes.append(f"warning: {len(missing)} quantized layers are not quantized modules of the built "
                            f"model: {', '.join(missing[:5])}")
