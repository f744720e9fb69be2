"""HunyuanVideo 1.5 (480p/720p T2V and I2V, step-distilled, 720p->1080p SR distilled with in_channels 98).

ComfyUI-native names are those of ComfyUI's ``HunyuanVideo`` module (Flux-style
``double_blocks.N.img_attn.qkv``); diffusers names come from ``HunyuanVideo15Transformer3DModel``. Two kinds
of tensors are not plain renames:

- fused: ComfyUI ``double_blocks.N.img_attn.qkv`` = cat(diffusers ``attn.to_q``, ``to_k``, ``to_v``),
  ``double_blocks.N.txt_attn.qkv`` = cat(``attn.add_q_proj``, ``add_k_proj``, ``add_v_proj``) and
  ``txt_in.individual_token_refiner.blocks.N.self_attn.qkv`` = cat(refiner ``attn.to_q``, ``to_k``, ``to_v``);
- ``final_layer.adaLN_modulation.1`` (shift, scale) = diffusers ``norm_out.linear`` (scale, shift) with its
  halves swapped (``swap_halves``).

T2V and I2V checkpoints have the same layout (both carry the vision projection), so the variant cannot tell
them apart; ``in_channels`` 98 marks the SR model.
"""

from __future__ import annotations

from .keymap import KeyMap, KeyRule
from .spec import DetectedModel, FamilySpec, Shapes, block_preset, count_blocks, dim_at, out_per_patch

NAME = "hunyuan_video15"

_REF_D = "context_embedder.token_refiner.refiner_blocks.{i}"
_REF_C = "txt_in.individual_token_refiner.blocks.{i}"
_BLK_D = "transformer_blocks.{i}"
_BLK_C = "double_blocks.{i}"

_RENAMES: tuple[tuple[str, str], ...] = (
    ("x_embedder.proj", "img_in.proj"),
    ("image_embedder.norm_in", "vision_in.proj.0"),
    ("image_embedder.linear_1", "vision_in.proj.1"),
    ("image_embedder.linear_2", "vision_in.proj.3"),
    ("image_embedder.norm_out", "vision_in.proj.4"),
    ("context_embedder.time_text_embed.timestep_embedder.linear_1", "txt_in.t_embedder.in_layer"),
    ("context_embedder.time_text_embed.timestep_embedder.linear_2", "txt_in.t_embedder.out_layer"),
    ("context_embedder.time_text_embed.text_embedder.linear_1", "txt_in.c_embedder.in_layer"),
    ("context_embedder.time_text_embed.text_embedder.linear_2", "txt_in.c_embedder.out_layer"),
    ("context_embedder.proj_in", "txt_in.input_embedder"),
    (f"{_REF_D}.norm1", f"{_REF_C}.norm1"),
    (f"{_REF_D}.attn.to_out.0", f"{_REF_C}.self_attn.proj"),
    (f"{_REF_D}.norm2", f"{_REF_C}.norm2"),
    (f"{_REF_D}.ff.net.0.proj", f"{_REF_C}.mlp.0"),
    (f"{_REF_D}.ff.net.2", f"{_REF_C}.mlp.2"),
    (f"{_REF_D}.norm_out.linear", f"{_REF_C}.adaLN_modulation.1"),
    ("context_embedder_2.norm", "byt5_in.layernorm"),
    ("context_embedder_2.linear_1", "byt5_in.fc1"),
    ("context_embedder_2.linear_2", "byt5_in.fc2"),
    ("context_embedder_2.linear_3", "byt5_in.fc3"),
    ("time_embed.timestep_embedder.linear_1", "time_in.in_layer"),
    ("time_embed.timestep_embedder.linear_2", "time_in.out_layer"),
    ("time_embed.timestep_embedder_r.linear_1", "time_r_in.in_layer"),
    ("time_embed.timestep_embedder_r.linear_2", "time_r_in.out_layer"),
    ("cond_type_embed", "cond_type_embedding"),
    (f"{_BLK_D}.norm1.linear", f"{_BLK_C}.img_mod.lin"),
    (f"{_BLK_D}.norm1_context.linear", f"{_BLK_C}.txt_mod.lin"),
    (f"{_BLK_D}.attn.norm_q", f"{_BLK_C}.img_attn.norm.query_norm"),
    (f"{_BLK_D}.attn.norm_k", f"{_BLK_C}.img_attn.norm.key_norm"),
    (f"{_BLK_D}.attn.to_out.0", f"{_BLK_C}.img_attn.proj"),
    (f"{_BLK_D}.attn.norm_added_q", f"{_BLK_C}.txt_attn.norm.query_norm"),
    (f"{_BLK_D}.attn.norm_added_k", f"{_BLK_C}.txt_attn.norm.key_norm"),
    (f"{_BLK_D}.attn.to_add_out", f"{_BLK_C}.txt_attn.proj"),
    (f"{_BLK_D}.ff.net.0.proj", f"{_BLK_C}.img_mlp.0"),
    (f"{_BLK_D}.ff.net.2", f"{_BLK_C}.img_mlp.2"),
    (f"{_BLK_D}.ff_context.net.0.proj", f"{_BLK_C}.txt_mlp.0"),
    (f"{_BLK_D}.ff_context.net.2", f"{_BLK_C}.txt_mlp.2"),
    ("proj_out", "final_layer.linear"),
)
_FUSED: tuple[tuple[tuple[str, ...], str], ...] = (
    (tuple(f"{_BLK_D}.attn.{p}" for p in ("to_q", "to_k", "to_v")), f"{_BLK_C}.img_attn.qkv"),
    (
        tuple(f"{_BLK_D}.attn.{p}" for p in ("add_q_proj", "add_k_proj", "add_v_proj")),
        f"{_BLK_C}.txt_attn.qkv",
    ),
    (tuple(f"{_REF_D}.attn.{p}" for p in ("to_q", "to_k", "to_v")), f"{_REF_C}.self_attn.qkv"),
)

RULES: tuple[KeyRule, ...] = (
    *(KeyRule(d, c) for d, c in _RENAMES),
    *(KeyRule(d, c, "fuse", i, len(parts)) for parts, c in _FUSED for i, d in enumerate(parts)),
    KeyRule("norm_out.linear", "final_layer.adaLN_modulation.1", "swap_halves"),
)


def detect(shapes: Shapes) -> DetectedModel | None:
    """HunyuanVideo 1.5: token refiner plus the condition-type embedding, in either naming."""
    if (
        "cond_type_embedding.weight" in shapes
        and "txt_in.individual_token_refiner.blocks.0.norm1.weight" in shapes
    ):
        naming, emb, head, blocks = (
            "comfyui",
            "img_in.proj.weight",
            "final_layer.linear.weight",
            "double_blocks",
        )
    elif "cond_type_embed.weight" in shapes and any(
        k.startswith("context_embedder.token_refiner.") for k in shapes
    ):
        naming, emb, head, blocks = (
            "diffusers",
            "x_embedder.proj.weight",
            "proj_out.weight",
            "transformer_blocks",
        )
    else:
        return None
    in_ch = dim_at(shapes, emb, 1)
    sr = in_ch == 98
    variant = "hunyuan_video15_sr" if sr else "hunyuan_video15"
    note = "720p->1080p SR distilled" if sr else "T2V and I2V share this layout"
    if any(k.startswith(("time_r_in.", "time_embed.timestep_embedder_r.")) for k in shapes):
        note += "; meanflow"
    return DetectedModel(
        NAME,
        variant,
        naming,
        comfy_model="HunyuanVideo15_SR_Distilled" if sr else "HunyuanVideo15",
        dim=dim_at(shapes, emb, 0),
        num_blocks=count_blocks(shapes, blocks),
        in_channels=in_ch,
        out_channels=out_per_patch(shapes, head, emb),
        note=note,
    )


_DEFAULT = {
    "comfyui": [
        "img_in",
        "time_in",
        "time_r_in",
        "txt_in",
        "byt5_in",
        "vision_in",
        "cond_type_embedding",
        "double_blocks.*.img_mod",
        "double_blocks.*.txt_mod",
        "final_layer",
    ],
    "diffusers": [
        "x_embedder",
        "time_embed",
        "context_embedder",
        "context_embedder_2",
        "image_embedder",
        "cond_type_embed",
        "transformer_blocks.*.norm1",
        "transformer_blocks.*.norm1_context",
        "norm_out",
        "proj_out",
    ],
}
_BLOCKS = {"comfyui": "double_blocks", "diffusers": "transformer_blocks"}


def preset(name: str, naming: str, num_blocks: int | None) -> list[str]:
    """Ignore patterns of a preset (see ``presets.preset_ignore``)."""
    return block_preset(name, _DEFAULT[naming], _BLOCKS[naming], num_blocks)


SPEC = FamilySpec(
    name=NAME,
    label="HunyuanVideo 1.5",
    detect=detect,
    anchors=("cond_type_embedding.weight", "cond_type_embed.weight"),
    keymap=KeyMap(RULES),
    preset=preset,
    weight_only={"comfyui": ("double_blocks.*.img_mod", "double_blocks.*.txt_mod"),
                 "diffusers": ("transformer_blocks.*.norm1", "transformer_blocks.*.norm1_context")},
)
