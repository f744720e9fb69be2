"""Node "ModelOpt Checkpoint Loader": a NVIDIA ModelOpt FP8 export (diffusers folder or one safetensors file
under ``diffusion_models``) → an ordinary quantized ComfyUI MODEL (the same ops class as Load FP8 DiT)."""

from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management as mm
import comfy.sd
import folder_paths
from comfy_api.latest import io, ui

from ..kernels.dispatch import BACKENDS
from ..quant.formats.layer_state import checkpoint_to_state_dict
from ..quant.formats.modelopt_config import COMPONENTS, is_export_dir
from ..quant.modelopt_load import COMPUTE_CHOICES, load_export
from .load_common import DTYPE_CHOICES, compute_dtype_for, record_backends
from .ops import make_ops

FOLDER = "diffusion_models"
MAX_DEPTH = 3


def _export_dirs(root: Path) -> list[str]:
    """Folders under ``root`` (depth ≤ 3) that hold an export: pipeline roots and lone component folders."""
    out: list[str] = []

    def walk(d: Path, depth: int) -> None:
        for sub in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (is_export_dir(sub) and (sub / "config.json").is_file()) or is_export_dir(sub / "transformer"):
                out.append(sub.relative_to(root).as_posix() + "/")
            elif depth < MAX_DEPTH:
                walk(sub, depth + 1)

    if root.is_dir():
        walk(root, 1)
    return out


def source_options() -> list[str]:
    dirs = [d for base in folder_paths.get_folder_paths(FOLDER) for d in _export_dirs(Path(base))]
    files = [f for f in folder_paths.get_filename_list(FOLDER) if f.endswith(".safetensors")]
    return sorted(set(dirs)) + files


def resolve(source: str) -> str:
    if source.endswith("/"):
        for base in folder_paths.get_folder_paths(FOLDER):
            p = os.path.join(base, source)
            if os.path.isdir(p):
                return p
        raise FileNotFoundError(f"export folder {source!r} not found in the {FOLDER} folders")
    return folder_paths.get_full_path_or_raise(FOLDER, source)


class ModelOptCheckpointLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DiTQuantModelOptLoader",
            display_name="ModelOpt Checkpoint Loader",
            category="loaders/quantized",
            description="Load a NVIDIA ModelOpt FP8 export (FP8, FP8_PER_CHANNEL_PER_TOKEN, FP8_PB_WO) of Wan, "
                        "Qwen-Image or HunyuanVideo 1.5 as an ordinary quantized MODEL.",
            inputs=[
                io.Combo.Input("source", options=source_options(),
                               tooltip="A diffusers export folder (ending in /) or a .safetensors file from "
                                       "models/diffusion_models."),
                io.Combo.Input("component", options=list(COMPONENTS), default=COMPONENTS[0],
                               tooltip="Which transformer of a pipeline folder: transformer_2 is Wan 2.2 A14B's "
                                       "low-noise expert. Ignored for a single component or file."),
                io.Combo.Input("compute", options=list(COMPUTE_CHOICES), default=COMPUTE_CHOICES[0],
                               tooltip="FP8_PB_WO layers: bf16 activations as exported, or block W8A8 (FP8 "
                                       "activations per 1x128 group; faster on FP8 GPUs)."),
                io.Combo.Input("compute_dtype", options=list(DTYPE_CHOICES), default="auto",
                               tooltip="Dtype of activations and high-precision layers (auto: bf16, else "
                                       "fp16, else fp32, the first both the device and the model family support)."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto",
                               tooltip="Kernel backend for the quantized matmuls."),
            ],
            outputs=[io.Model.Output(display_name="MODEL"), io.String.Output(display_name="summary")],
        )

    @classmethod
    def execute(cls, source: str, component: str, compute: str, compute_dtype: str, backend: str
                ) -> io.NodeOutput:
        path = resolve(source)
        device = mm.get_torch_device()
        loaded = load_export(path, component, compute)
        mm.throw_exception_if_processing_interrupted()
        sd = checkpoint_to_state_dict(loaded.checkpoint)
        dtype, dtype_note = compute_dtype_for(compute_dtype, sd, device)
        loaded.report.notes.extend([dtype_note] if dtype_note else [])
        options = {"custom_operations": make_ops(backend), "dtype": dtype}
        patcher = comfy.sd.load_diffusion_model_state_dict(sd, model_options=options)
        if patcher is None:
            raise RuntimeError(f"ComfyUI could not detect the model type of {path} ({loaded.family})")
        record_backends(loaded.report, patcher.model.diffusion_model, device, backend)
        loaded.report.notes.append(f"compute dtype: {str(dtype).removeprefix('torch.')}")
        text = loaded.report.summary(context=[f"source: {source} [{component}]", f"family: {loaded.family}"])
        return io.NodeOutput(patcher, text, ui=ui.PreviewText(text))
