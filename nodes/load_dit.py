"""Node "Load FP8 DiT": a diffusion model file → a quantized ComfyUI MODEL.

A high-precision file is quantized layer by layer as it loads (progress bar, interruptible); an already
quantized file (this pack's format, ComfyUI's ``comfy_quant`` or legacy ``scaled_fp8``, LightX2V's marker-less
``weight_scale`` files) loads as it is. Either way the state dict then goes to ComfyUI in the names it detects
(``quant.comfy_names``: diffusers names mapped, a foreign key prefix removed); one shard of a sharded checkpoint is
refused by name.
"""

from __future__ import annotations

import comfy.model_management as mm
import comfy.sd
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io, ui

from ..kernels.dispatch import BACKENDS
from ..quant.comfy_names import comfyui_state_dict
from ..quant.families import DetectedModel, UnknownFamilyError, detect_family
from ..quant.formats.io import detect_format, read_checkpoint
from ..quant.formats.layer_state import checkpoint_to_state_dict
from ..quant.formats.safetensors_io import read_header
from ..quant.formats.shards import refuse_shard
from ..quant.ignore import IgnoreMatcher
from ..quant.load_plan import read_quantized_state_dict
from ..quant.plan import PLAIN_FP8_DTYPES, plan_state_dict
from ..quant.report import LayerRecord, QuantReport
from ..quant.scheme_choice import SCHEME_LABELS, auto_scheme_name, build_scheme
from ..quant.schemes import DEFAULT_BLOCK, Scheme, format_block_size, parse_block_size
from .load_common import DTYPE_CHOICES, PRESET_CHOICES, compute_dtype_for, record_backends
from .ops import make_ops

DEFAULT_BLOCK_TEXT = format_block_size(DEFAULT_BLOCK)


def _progress(total: int):
    bar = comfy.utils.ProgressBar(total)

    def update(done: int, n: int, layer: str) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, n)

    return update


def _load_plain(path: str, label: str, block_size: str, preset: str, ignored: str, device: torch.device,
                notes: list[str]) -> tuple[dict, dict | None, QuantReport, str]:
    why = ""
    if label == "auto":
        cap = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
        label, why = auto_scheme_name(device.type, cap)
    scheme = build_scheme(label, block_size)
    header = read_header(path)
    try:
        detected = detect_family(header.shapes())
    except UnknownFamilyError:
        if preset != "none":
            raise ValueError(f"{path}: not a Wan / Qwen-Image / HunyuanVideo 1.5 model, so there is no family "
                             "preset for it; set preset to 'none' (and list layers to keep in ignored_layers) "
                             "to quantize it anyway") from None
        detected = None
    family = detected.describe() if detected else "unknown family (no preset)"
    layers, report = plan_state_dict({k: (v.shape, v.torch_dtype) for k, v in header.tensors.items()}, scheme,
                                      detected, PRESET_CHOICES[preset], ignored)
    report.bytes_before = sum(v.nbytes for v in header.tensors.values())
    report.scheme_why = why
    notes.extend(plain_fp8_notes({k: header.tensors[k + ".weight"].torch_dtype for k in layers}, layers))
    mm.throw_exception_if_processing_interrupted()
    # plain reads, not comfy.utils.load_torch_file's memory map: a kept mmap-backed tensor (a bias, a norm) would
    # keep the whole bf16 file mapped and its read pages resident after loading
    sd = read_quantized_state_dict(header, layers, device=device, progress=_progress(len(layers)))
    report.bytes_after = sum(v.numel() * v.element_size() for v in sd.values())
    return sd, header.metadata or None, report, family


def plain_fp8_notes(dtypes: dict[str, torch.dtype | None], layers: dict[str, Scheme]) -> list[str]:
    """Summary lines for a plain FP8 cast file: which FP8 weights kept their codes (scale 1) and which were
    requantized (e5m2 codes, INT8 schemes)."""
    kept: dict[str, int] = {}
    requantized: dict[str, int] = {}
    for layer, dtype in dtypes.items():
        if dtype not in PLAIN_FP8_DTYPES:
            continue
        scheme = layers[layer]
        target = kept if dtype == scheme.weight_dtype else requantized
        target[scheme.describe()] = target.get(scheme.describe(), 0) + 1
    notes = []
    if kept:
        notes.append(f"plain FP8 cast file (no scales): {sum(kept.values())} FP8 weights kept as their FP8 codes "
                     f"(scale 1), run as {', '.join(f'{s} x{n}' for s, n in sorted(kept.items()))}")
    if requantized:
        notes.append(f"plain FP8 cast file (no scales): {sum(requantized.values())} FP8 weights requantized from "
                     f"their FP8 values to {', '.join(f'{s} x{n}' for s, n in sorted(requantized.items()))}")
    return notes


def _load_quantized(path: str, fmt: str, widgets: dict[str, bool], notes: list[str]
                    ) -> tuple[dict, dict | None, QuantReport, str]:
    ignored = [name for name, changed in widgets.items() if changed]
    if ignored:
        notes.append(f"file is already quantized ({fmt}): {', '.join(ignored)} not applied")
    ckpt = read_checkpoint(path)
    try:
        family = detect_family({k: tuple(v.shape) for k, v in ckpt.tensors.items()}).describe()
    except UnknownFamilyError:
        family = "unknown family"
    schemes = sorted({s.describe() for s in ckpt.layers.values()})
    report = QuantReport(scheme=", ".join(schemes) + f" (from file, {fmt})")
    for name, scheme in ckpt.layers.items():
        report.quantized.append(LayerRecord(name, tuple(ckpt.tensors[f"{name}.weight"].shape), scheme.name))
    hp_bytes = 0
    for key, t in ckpt.tensors.items():
        layer = key.rpartition(".")[0]
        if key.endswith(".weight") and t.dim() == 2 and layer not in ckpt.layers:
            report.skipped.append(LayerRecord(layer, tuple(t.shape), reason="high precision in file"))
        hp_bytes += t.numel() * (2 if layer in ckpt.layers and key.endswith(".weight") else t.element_size())
    report.bytes_before = hp_bytes
    report.bytes_after = sum(t.numel() * t.element_size() for t in ckpt.tensors.values())
    notes.append("GB before = the same weights in 16 bits")
    return checkpoint_to_state_dict(ckpt), ckpt.metadata, report, family


def _detected(sd: dict) -> DetectedModel | None:
    try:
        return detect_family({k: tuple(v.shape) for k, v in sd.items()})
    except UnknownFamilyError:
        return None


class LoadFP8DiT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DiTQuantLoadFP8DiT",
            display_name="Load FP8 DiT",
            category="loaders/quantized",
            description="Load a Wan / Qwen-Image / HunyuanVideo 1.5 diffusion model quantized to FP8 or INT8. "
                        "High-precision files are quantized while loading; quantized files load as they are.",
            inputs=[
                io.Combo.Input("unet_name", options=folder_paths.get_filename_list("diffusion_models"),
                               tooltip="Diffusion model file from models/diffusion_models (bf16/fp16/fp32, "
                                       "this pack's format, or ComfyUI's fp8/int8 formats)."),
                io.Combo.Input("scheme", options=list(SCHEME_LABELS), default="auto",
                               tooltip="How a high-precision file is quantized. auto picks the best scheme for "
                                       "your GPU and says which. Ignored for already-quantized files."),
                io.String.Input("block_size", default=DEFAULT_BLOCK_TEXT,
                                tooltip="Weight block size BNxBK for the block schemes (powers of two, 16-1024)."),
                io.Combo.Input("preset", options=list(PRESET_CHOICES), default="family default",
                               tooltip="Layers kept in high precision: the family's defaults (embedders, "
                                       "head; the Qwen-Image / HunyuanVideo 1.5 per-block modulation layers "
                                       "are stored FP8 weight-only, or INT8), none, or quality (modulation in high "
                                       "precision too, plus first/last blocks, Qwen-Image img_mlp)."),
                io.String.Input("ignored_layers", default="", multiline=True,
                                tooltip="More layers to keep in high precision, comma or newline separated: "
                                        "names, globs (blocks.*.ffn.*) or re:<regex>; # starts a comment."),
                io.Combo.Input("compute_dtype", options=list(DTYPE_CHOICES), default="auto",
                               tooltip="Dtype of activations and of the layers kept in high precision. auto: "
                                       "bf16, else fp16, else fp32, the first both the device and the model "
                                       "family support (fp16 is never used for Qwen-Image: it overflows)."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto",
                               tooltip="Kernel backend for the quantized matmuls; auto picks per GPU and falls "
                                       "back (with a log line) when the requested one cannot run."),
            ],
            outputs=[io.Model.Output(display_name="MODEL")],
        )

    @classmethod
    def validate_inputs(cls, block_size: str, ignored_layers: str) -> bool | str:
        try:
            parse_block_size(block_size)
            IgnoreMatcher(ignored_layers)  # invalid or explosive regexes are refused before the prompt runs
        except ValueError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, unet_name: str, scheme: str, block_size: str, preset: str, ignored_layers: str,
                compute_dtype: str, backend: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("diffusion_models", unet_name)
        device = mm.get_torch_device()
        notes: list[str] = []
        fmt = detect_format(read_header(path))
        refuse_shard(path)
        if fmt == "plain":
            sd, metadata, report, family = _load_plain(path, scheme, block_size, preset, ignored_layers, device,
                                                       notes)
        else:
            widgets = {"scheme": scheme != "auto", "block_size": parse_block_size(block_size) != DEFAULT_BLOCK,
                       "preset": preset != "family default", "ignored_layers": bool(ignored_layers.strip())}
            sd, metadata, report, family = _load_quantized(path, fmt, widgets, notes)
        sd, name_notes = comfyui_state_dict(sd, _detected(sd))
        notes.extend(name_notes)
        dtype, dtype_note = compute_dtype_for(compute_dtype, sd, device, metadata)
        notes.extend([dtype_note] if dtype_note else [])
        options = {"custom_operations": make_ops(backend), "dtype": dtype}
        patcher = comfy.sd.load_diffusion_model_state_dict(sd, model_options=options, metadata=metadata)
        if patcher is None:
            raise RuntimeError(f"ComfyUI could not detect the model type of {path}")
        record_backends(report, patcher.model.diffusion_model, device, backend, patcher.model.model_config)
        report.notes.extend([*notes, f"compute dtype: {str(dtype).removeprefix('torch.')}"])
        text = report.summary(context=[f"file: {unet_name}", f"family: {family}"])
        return io.NodeOutput(patcher, ui=ui.PreviewText(text))
