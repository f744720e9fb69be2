"""Node "INT8 NPU Quantize": any loaded MODEL → a new MODEL with W8A8 INT8 Linear layers (per-channel INT8
weights, per-token dynamic INT8 activations), for Ascend NPUs (``npu_quant_matmul``), CUDA GPUs with INT8 tensor
cores (``torch._int_mm`` / Triton) and CPUs (``torch._int_mm``).

The input MODEL is never modified: the result holds a new module tree (``quant.int8_convert``: new INT8 layers of
this pack's ops class, every other module a shallow copy over the same tensors) and its own ModelPatcher carrying
the input's patches, so a LoRA applied before this node is applied on top of the INT8 weights, and one applied
after patches them like any ComfyUI layer (dequantize → patch → requantize).
"""

from __future__ import annotations

import itertools
import logging

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io, ui

from ..kernels.dispatch import backend_for
from ..quant.families import UnknownFamilyError, detect_family
from ..quant.ignore import IgnoreMatcher
from ..quant.int8_convert import ALREADY, INT8, REQUANTIZE, Int8Plan, convert_int8, plan_int8
from ..quant.model import tensor_bytes
from .load_common import PRESET_CHOICES, backend_reason
from .ops import QuantLinearOp, make_ops
from .patcher_copy import patcher_for_model, unpatched_weights

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "npu", "cuda", "cpu")
# widget → (device type it needs, dispatch request on that device)
_REQUESTS = {"npu": ("npu", "auto"), "cuda": ("cuda", "auto"), "cpu": ("cpu", "torch")}


def resolve_backend(choice: str, device_type: str) -> tuple[str, str]:
    """(dispatch request, note) for the backend widget on the model's load device.

    auto: the device's INT8 path (NPU ``npu_quant_matmul``, CUDA ``_int_mm`` / Triton, CPU ``_int_mm``). A
    backend for another device than the model's falls back to auto, with a note.
    """
    if choice == "auto":
        return (_REQUESTS.get(device_type, (device_type, "auto"))[1], "")
    needed, request = _REQUESTS[choice]
    if needed == device_type:
        return request, ""
    fallback = _REQUESTS.get(device_type, (device_type, "auto"))[1]
    return fallback, f"backend {choice!r} needs a {needed} device but the model runs on {device_type}: using auto"


def _detect(dm: torch.nn.Module, preset: str):
    shapes = {n: tuple(t.shape) for n, t in itertools.chain(dm.named_parameters(), dm.named_buffers())}
    try:
        return detect_family(shapes)
    except UnknownFamilyError:
        if preset != "none":
            raise ValueError("this MODEL is not a Wan / Qwen-Image / HunyuanVideo 1.5 transformer, so there is no "
                             "family preset for it; set preset to 'none' (and list layers to keep in "
                             "ignored_layers) to quantize it anyway") from None
        return None


def _make_layer(request: str):
    cls = make_ops(request).Linear

    def make(old: torch.nn.Module, codes: torch.Tensor, scale: torch.Tensor, bias) -> QuantLinearOp:
        return cls.from_quantized(INT8, codes, scale, bias)

    return make


def _progress(total: int):
    bar = comfy.utils.ProgressBar(max(total, 1))

    def update(done: int, n: int, layer: str) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, n)

    return update


def quantize_int8(model, preset: str = "family default", ignored: str = "", min_features: int = 16,
                  backend: str = "auto"):
    """(new MODEL, report text). ``model`` (a ModelPatcher) and its modules are left untouched."""
    root, device = model.model, model.load_device
    request, note = resolve_backend(backend, device.type)
    detected = _detect(root.diffusion_model, PRESET_CHOICES[preset])
    plan: Int8Plan = plan_int8(root, "diffusion_model.", detected, PRESET_CHOICES[preset], ignored, min_features,
                               npu=device.type == "npu")
    report = plan.report
    report.bytes_before = tensor_bytes(root.diffusion_model)
    todo = len(plan.layers) - plan.count(ALREADY)
    mm.throw_exception_if_processing_interrupted()
    new_root, _ = convert_int8(root, plan, _make_layer(request), device=model.offload_device,
                               source=unpatched_weights(model), compute_device=device, progress=_progress(todo))
    for name in plan.layers:  # layers that were already INT8 ask the dispatch for the same backend
        new_root.get_submodule(name).quant_backend = request
    new = patcher_for_model(model, new_root)
    dm = new_root.diffusion_model
    report.bytes_after = tensor_bytes(dm)
    for rec in report.quantized:
        rec.backend = backend_for(device, INT8.name, rec.shape[0], rec.shape[1], request)
        if rec.backend not in report.backend_why:
            report.backend_why[rec.backend] = backend_reason(device, INT8.name, rec.shape[0], rec.shape[1], request)
    if plan.count(REQUANTIZE):
        report.notes.append(f"{plan.count(REQUANTIZE)} FP8 layers dequantized and requantized to INT8")
    if plan.count(ALREADY):
        report.notes.append(f"{plan.count(ALREADY)} layers were already INT8 (kept as they are)")
    report.notes.append(f"device: {device}" + (f"; {note}" if note else ""))
    family = detected.describe() if detected else "unknown family (no preset)"
    text = report.summary(context=[f"family: {family}"])
    log.info("INT8 NPU Quantize: %s", text.replace("\n", "; "))
    return new, text


class Int8NPUQuantize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DiTQuantInt8NPUQuantize",
            display_name="INT8 NPU Quantize",
            category="advanced/quantized",
            description="Turn a loaded diffusion model into W8A8 INT8 (per-channel INT8 weights, per-token dynamic "
                        "INT8 activations) for Ascend NPUs, CUDA GPUs with INT8 tensor cores (RTX 30xx, A100) and "
                        "CPUs. Returns a new MODEL: the input is unchanged; LoRAs work before and after this node.",
            inputs=[
                io.Model.Input("model", tooltip="A MODEL from Load Diffusion Model (bf16/fp16/fp32) or from this "
                                                "pack's loaders (FP8 layers are requantized, INT8 ones kept)."),
                io.Combo.Input("preset", options=list(PRESET_CHOICES), default="family default",
                               tooltip="Layers kept in high precision: the family's defaults (embedders, "
                                       "head; the Qwen-Image / HunyuanVideo 1.5 per-block modulation layers are "
                                       "converted too), none, or quality (modulation kept as well, plus "
                                       "first/last blocks, Qwen-Image img_mlp). The family is detected from the "
                                       "model's layers."),
                io.String.Input("ignored_layers", default="", multiline=True,
                                tooltip="More layers to keep in high precision, comma or newline separated: "
                                        "names, globs (blocks.*.ffn.*) or re:<regex>; # starts a comment."),
                io.Int.Input("min_layer_size", default=16, min=16, max=65536, step=16,
                             tooltip="Layers with fewer input or output features than this stay in high "
                                     "precision (INT8 only pays off on large matmuls)."),
                io.Combo.Input("backend", options=list(BACKEND_CHOICES), default="auto",
                               tooltip="INT8 kernel: auto uses the model's device (npu: torch_npu "
                                       "npu_quant_matmul; cuda: torch._int_mm / Triton; cpu: torch._int_mm). "
                                       "A backend for another device falls back to auto and says so."),
            ],
            outputs=[io.Model.Output(display_name="MODEL")],
        )

    @classmethod
    def validate_inputs(cls, ignored_layers: str) -> bool | str:
        try:
            IgnoreMatcher(ignored_layers)
        except ValueError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, model, preset: str, ignored_layers: str, min_layer_size: int, backend: str) -> io.NodeOutput:
        new, text = quantize_int8(model, preset, ignored_layers, min_layer_size, backend)
        return io.NodeOutput(new, ui=ui.PreviewText(text))
