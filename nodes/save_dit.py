"""Node "Save Quantized DiT": a quantized MODEL → one safetensors file under output/ (atomic).

ComfyUI's native format when it can express every layer (per-tensor FP8, INT8: stock ``UNETLoader`` loads it),
this pack's format otherwise (per-layer ``comfy_quant`` markers stock ComfyUI refuses by name; see
``quant.formats.layer_marker``). LoRA patches on the MODEL are baked in first.
"""

from __future__ import annotations

import os

import comfy.model_management as mm
import folder_paths
from comfy_api.latest import io, ui

from ..quant.formats.io import WRITE_FORMATS, write_checkpoint
from ..quant.formats.layer_state import state_dict_to_checkpoint


class SaveQuantizedDiT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DiTQuantSaveQuantizedDiT",
            display_name="Save Quantized DiT",
            category="loaders/quantized",
            description="Save a MODEL quantized by Load FP8 DiT (LoRAs baked in) as a safetensors file.",
            inputs=[
                io.Model.Input("model", tooltip="A MODEL from Load FP8 DiT (optionally with LoRAs applied)."),
                io.String.Input("filename_prefix", default="diffusion_models/quantized_dit",
                                tooltip="File name prefix under ComfyUI's output folder."),
                io.Combo.Input("format", options=list(WRITE_FORMATS), default="auto",
                               tooltip="auto: ComfyUI's native format when it holds every layer (stock "
                                       "UNETLoader loads it), else this pack's format (dit_quant; stock "
                                       "ComfyUI refuses it with an error naming the format)."),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, model, filename_prefix: str, format: str) -> io.NodeOutput:
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory())
        path = os.path.join(folder, f"{name}_{counter:05}_.safetensors")
        mm.load_models_gpu([model], force_patch_weights=True)
        ckpt = state_dict_to_checkpoint(model.model.diffusion_model.state_dict())
        if not ckpt.layers:
            raise ValueError("this MODEL has no quantized layers; load it with Load FP8 DiT first")
        written = write_checkpoint(path, ckpt, fmt=format, metadata={"quantized_by": "comfyui-dit-quant"})
        size = os.path.getsize(path) / 1024**3
        text = f"saved {os.path.join(subfolder, os.path.basename(path))} ({written}, {len(ckpt.layers)} " \
               f"quantized layers, {size:.3f} GB)"
        return io.NodeOutput(ui=ui.PreviewText(text))
