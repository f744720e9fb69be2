"""Qwen-Image (and Qwen-Image-Edit, same architecture): ComfyUI and diffusers key names are identical."""

from __future__ import annotations

from .keymap import KeyMap
from .spec import DetectedModel, FamilySpec, Shapes, count_blocks, dim_at

NAME = "qwen_image"


def detect(shapes: Shapes) -> DetectedModel | None:
    """``txt_norm.weight`` plus a Qwen-Image double-stream block (``img_mod`` / ``txt_mlp``)."""
    if "txt_norm.weight" not in shapes or "img_in.weight" not in shapes:
        return None
    if not any(k.startswith("transformer_blocks.0.img_mod.") for k in shapes):
        return None
    txt = dim_at(shapes, "txt_norm.weight", 0)
    out = dim_at(shapes, "proj_out.weight", 0)
    cin = dim_at(shapes, "img_in.weight", 1)
    if txt == 2560 and out == 128:  # Mage-Flow shares the layout; ComfyUI treats it as another model
        return None
    notes = []
    if "time_text_embed.addition_t_embedding.weight" in shapes:
        notes.append("Qwen-Image-Layered (additional timestep condition)")
    if "__index_timestep_zero__" in shapes:
        notes.append("Qwen-Image-Edit-2511 reference method")
    return DetectedModel(
        NAME,
        "qwen_image",
        "comfyui",
        comfy_model="QwenImage",
        dim=dim_at(shapes, "img_in.weight", 0),
        num_blocks=count_blocks(shapes, "transformer_blocks"),
        in_channels=cin // 4 if cin else None,  # 2x2 patches packed into img_in / proj_out
        out_channels=out // 4 if out else None,
        note="; ".join(notes),
    )


_DEFAULT = ["time_text_embed", "img_in", "txt_in", "img_mod", "txt_mod", "norm_out", "proj_out"]


def preset(name: str, naming: str, num_blocks: int | None) -> list[str]:
    """Ignore patterns of a preset; the same for both namings."""
    if name == "none":
        return []
    return [*_DEFAULT, "img_mlp"] if name == "quality" else list(_DEFAULT)


SPEC = FamilySpec(
    name=NAME,
    label="Qwen-Image",
    detect=detect,
    anchors=("txt_norm.weight",),
    keymap=KeyMap(None),
    preset=preset,
    weight_only={"comfyui": ("img_mod", "txt_mod"), "diffusers": ("img_mod", "txt_mod")},
)
