"""Nodes "Apply FP8 Weight Storage to VAE" / "... to CLIP": FP8 e4m3 weights (+ float32 scales), compute in the
original dtype (FP8 *compute* degrades VAEs; storage alone halves their weight memory).

The input VAE / CLIP is never modified: the result holds a new module tree (``quant.storage``: new FP8 layers,
the other modules shallow copies over the same tensors) and its own ModelPatcher, which keeps the source
patcher's patches (a LoRA applied before this node stays applied). Applying the node twice equals applying it
once.
"""

from __future__ import annotations

import copy
import logging
import types

import comfy.model_patcher
import comfy.sd
import torch
from comfy_api.latest import io, ui

from ..quant.ignore import IgnoreMatcher
from ..quant.report import QuantReport
from ..quant.storage import apply_fp8_storage
from .patcher_copy import patcher_for_model, unpatched_weights

log = logging.getLogger(__name__)

GRANULARITY_CHOICES = {"per-channel": "channel", "per-tensor": "tensor"}
_TOOLTIPS = {
    "granularity": "Scale granularity of the FP8 weights: one scale per output channel (more accurate) or one "
                   "per weight tensor.",
    "ignored_layers": "Layers kept as they are, comma or newline separated: names, globs (decoder.up.*) or "
                      "re:<regex>; # starts a comment. Names are module paths inside the {what} model.",
    "keep_first_last": "Keep the first and last layer of the encoder and of the decoder in the original precision: "
                       "they carry most of the FP8 error (the image-facing and latent-facing convolutions) for "
                       "about 1% of the weights.",
}


def _remap(obj: object, src: object, mapping: dict[int, torch.nn.Module], skip: tuple[str, ...]) -> None:
    """Point attributes of ``obj`` (a copy of ``src``) that reference modules of the old tree at the new ones."""
    for k, v in vars(src).items():
        if k in skip:
            continue
        if isinstance(v, torch.nn.Module) and id(v) in mapping:
            setattr(obj, k, mapping[id(v)])
        elif isinstance(v, types.MethodType) and id(v.__self__) in mapping:
            setattr(obj, k, types.MethodType(v.__func__, mapping[id(v.__self__)]))


def _convert(root: torch.nn.Module, patcher, granularity: str, ignored: str, what: str, keep_first_last: bool = False):
    return apply_fp8_storage(root, GRANULARITY_CHOICES[granularity], ignored, device=patcher.offload_device,
                             source=unpatched_weights(patcher), keep_first_last=keep_first_last, what=what)


def fp8_vae(vae: comfy.sd.VAE, granularity: str = "per-channel", ignored: str = "", keep_first_last: bool = True
            ) -> tuple[comfy.sd.VAE, QuantReport]:
    """A new VAE whose Linear / Conv weights are stored in FP8; ``vae`` is untouched. ``keep_first_last``: the
    first and last layer of each top-level part (encoder, decoder, quant convs) stay in the original dtype."""
    vae.throw_exception_if_invalid()
    model, report, mapping = _convert(vae.first_stage_model, vae.patcher, granularity, ignored, "VAE", keep_first_last)
    new = copy.copy(vae)  # VAE has no clone(): settings are shared, model and patcher are new
    _remap(new, vae, mapping, ("first_stage_model", "patcher"))
    new.first_stage_model = model
    new.patcher = patcher_for_model(vae.patcher, model)
    new.size = None
    new.model_size()
    return new, report


def fp8_clip(clip: comfy.sd.CLIP, granularity: str = "per-channel", ignored: str = "") -> tuple[comfy.sd.CLIP,
                                                                                                 QuantReport]:
    """A new CLIP whose Linear / Conv weights are stored in FP8; ``clip`` is untouched."""
    model, report, mapping = _convert(clip.cond_stage_model, clip.patcher, granularity, ignored, "CLIP")
    new = clip.clone()
    new.cond_stage_model = model
    new.patcher = patcher_for_model(clip.patcher, model)
    return new, report


def _validate_ignore(ignored_layers: str) -> bool | str:
    try:
        IgnoreMatcher(ignored_layers)
    except ValueError as e:
        return str(e)
    return True


def _report_text(kind: str, report: QuantReport) -> str:
    text = report.summary()
    log.info("Apply FP8 Weight Storage to %s: %s", kind, text.replace("\n", "; "))
    return text


class ApplyFP8StorageVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DiTQuantApplyFP8StorageVAE",
            display_name="Apply FP8 Weight Storage to VAE",
            category="advanced/quantized",
            description="Store the VAE's Linear and Conv weights in FP8 (e4m3, scaled) to halve their memory; "
                        "decoding and encoding still compute in the VAE's own dtype. By default the first and "
                        "last layer of the encoder and of the decoder stay in high precision. Returns a new VAE: "
                        "the input is unchanged, and applying it twice equals once.",
            inputs=[
                io.Vae.Input("vae", tooltip="The VAE to store in FP8 (left unchanged; a new VAE is returned)."),
                io.Combo.Input("granularity", options=list(GRANULARITY_CHOICES), default="per-channel",
                               tooltip=_TOOLTIPS["granularity"]),
                io.String.Input("ignored_layers", default="", multiline=True,
                                tooltip=_TOOLTIPS["ignored_layers"].format(what="VAE (e.g. decoder.head.2)")),
                # last, so workflows saved before it existed keep their widget values in place
                io.Boolean.Input("keep_first_last", default=True, tooltip=_TOOLTIPS["keep_first_last"]),
            ],
            outputs=[io.Vae.Output(display_name="VAE")],
        )

    @classmethod
    def validate_inputs(cls, ignored_layers: str) -> bool | str:
        return _validate_ignore(ignored_layers)

    @classmethod
    def execute(cls, vae, granularity: str, ignored_layers: str, keep_first_last: bool = True) -> io.NodeOutput:
        new, report = fp8_vae(vae, granularity, ignored_layers, keep_first_last)
        return io.NodeOutput(new, ui=ui.PreviewText(_report_text("VAE", report)))


class ApplyFP8StorageCLIP(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DiTQuantApplyFP8StorageCLIP",
            display_name="Apply FP8 Weight Storage to CLIP",
            category="advanced/quantized",
            description="Store the text encoder's Linear and Conv weights in FP8 (e4m3, scaled) to halve their "
                        "memory; encoding still computes in the encoder's own dtype. Returns a new CLIP: the "
                        "input is unchanged, LoRAs already applied to it stay applied, and applying it twice "
                        "equals once.",
            inputs=[
                io.Clip.Input("clip", tooltip="The CLIP / text encoder to store in FP8 (left unchanged; a new "
                                              "CLIP is returned)."),
                io.Combo.Input("granularity", options=list(GRANULARITY_CHOICES), default="per-channel",
                               tooltip=_TOOLTIPS["granularity"]),
                io.String.Input("ignored_layers", default="", multiline=True,
                                tooltip=_TOOLTIPS["ignored_layers"].format(
                                    what="text encoder (e.g. t5xxl.transformer.encoder.block.0)")),
            ],
            outputs=[io.Clip.Output(display_name="CLIP")],
        )

    @classmethod
    def validate_inputs(cls, ignored_layers: str) -> bool | str:
        return _validate_ignore(ignored_layers)

    @classmethod
    def execute(cls, clip, granularity: str, ignored_layers: str) -> io.NodeOutput:
        new, report = fp8_clip(clip, granularity, ignored_layers)
        return io.NodeOutput(new, ui=ui.PreviewText(_report_text("CLIP", report)))
