"""Wan 2.1 / 2.2 (T2V, I2V, FLF2V, TI2V-5B, VACE; Wan 2.2 A14B experts share the 2.1 14B layout).

ComfyUI-native names are the original Wan repo names (``blocks.N.self_attn.q``); diffusers names come from
``WanTransformer3DModel`` / ``WanVACETransformer3DModel`` (``blocks.N.attn1.to_q``). Every tensor is a plain
rename; note the cross-attention norm is ``norm3`` in ComfyUI but ``norm2`` in diffusers (and vice versa).
"""

from __future__ import annotations

from .keymap import KeyMap, KeyRule
from .spec import DetectedModel, FamilySpec, Shapes, block_preset, count_blocks, dim_at, out_per_patch

NAME = "wan"
SIZES: dict[int, str] = {1536: "1.3b", 3072: "5b", 5120: "14b"}

_TOP: tuple[tuple[str, str], ...] = (
    ("patch_embedding", "patch_embedding"),
    ("vace_patch_embedding", "vace_patch_embedding"),
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
    ("scale_shift_table", "head.modulation"),
    ("proj_out", "head.head"),
)
_BLOCK: tuple[tuple[str, str], ...] = (
    ("scale_shift_table", "modulation"),
    ("attn1", "self_attn"),
    ("attn1.to_q", "self_attn.q"),
    ("attn1.to_k", "self_attn.k"),
    ("attn1.to_v", "self_attn.v"),
    ("attn1.to_out.0", "self_attn.o"),
    ("attn1.norm_q", "self_attn.norm_q"),
    ("attn1.norm_k", "self_attn.norm_k"),
    ("attn2", "cross_attn"),
    ("attn2.to_q", "cross_attn.q"),
    ("attn2.to_k", "cross_attn.k"),
    ("attn2.to_v", "cross_attn.v"),
    ("attn2.to_out.0", "cross_attn.o"),
    ("attn2.norm_q", "cross_attn.norm_q"),
    ("attn2.norm_k", "cross_attn.norm_k"),
    ("attn2.add_k_proj", "cross_attn.k_img"),
    ("attn2.add_v_proj", "cross_attn.v_img"),
    ("attn2.norm_added_k", "cross_attn.norm_k_img"),
    ("norm1", "norm1"),
    ("norm2", "norm3"),  # cross-attention norm (affine)
    ("norm3", "norm2"),  # pre-FFN norm (no parameters)
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
)
_VACE: tuple[tuple[str, str], ...] = (("proj_in", "before_proj"), ("proj_out", "after_proj"))

RULES: tuple[KeyRule, ...] = (
    *(KeyRule(d, c) for d, c in _TOP),
    *(KeyRule(f"{b}.{{i}}.{d}", f"{b}.{{i}}.{c}") for b in ("blocks", "vace_blocks") for d, c in _BLOCK),
    *(KeyRule(f"vace_blocks.{{i}}.{d}", f"vace_blocks.{{i}}.{c}") for d, c in _VACE),
)

# ComfyUI-only Wan variants, recognised so they are not mistaken for T2V/I2V (keys beyond the base layers
# have no rename rule: mapping them raises KeyMapError).
_COMFY_EXTRAS: tuple[tuple[str, str, str], ...] = (
    ("control_adapter.conv.weight", "camera", "WAN21_Camera"),
    ("casual_audio_encoder.encoder.final_linear.weight", "s2v", "WAN22_S2V"),
    ("audio_proj.audio_proj_glob_1.layer.bias", "humo", "WAN21_HuMo"),
    ("face_adapter.fuser_blocks.0.k_norm.weight", "animate", "WAN22_Animate"),
    ("patch_embedding_mask.weight", "scail2", "WAN21_SCAIL2"),
    ("patch_embedding_pose.weight", "scail", "WAN21_SCAIL"),
    ("patch_embedding_global.weight", "wandancer", "WAN22_WanDancer"),
)


def detect(shapes: Shapes) -> DetectedModel | None:
    """Wan in ComfyUI (``head.modulation``) or diffusers (``scale_shift_table`` + ``condition_embedder``)."""
    if "head.modulation" in shapes and "patch_embedding.weight" in shapes:
        naming, mod, head, img, pos = (
            "comfyui",
            "head.modulation",
            "head.head.weight",
            "img_emb",
            "img_emb.emb_pos",
        )
    elif "scale_shift_table" in shapes and any(k.startswith("condition_embedder.") for k in shapes):
        naming, mod, head = "diffusers", "scale_shift_table", "proj_out.weight"
        img, pos = "condition_embedder.image_embedder", "condition_embedder.image_embedder.pos_embed"
    else:
        return None
    dim = dim_at(shapes, mod, -1)
    in_dim = dim_at(shapes, "patch_embedding.weight", 1)
    out_dim = out_per_patch(shapes, head, "patch_embedding.weight")
    has_img = any(k.startswith(img + ".") for k in shapes)
    arch, comfy, note = "t2v", "WAN21", ""
    extra = next((e for e in _COMFY_EXTRAS if e[0] in shapes), None) if naming == "comfyui" else None
    if "vace_patch_embedding.weight" in shapes:
        arch, comfy = "vace", "WAN21_Vace"
    elif extra is not None:
        arch, comfy = extra[1], extra[2]
    elif out_dim == 48:
        arch, comfy, note = "ti2v", "WAN22", "Wan 2.2 TI2V-5B layout (48-channel latent)"
    elif pos in shapes:
        arch, note = "flf2v", "Wan 2.1 FLF2V (CLIP image embedding with position table)"
    elif has_img:
        arch, note = "i2v", "Wan 2.1 I2V (CLIP image embedding)"
    elif in_dim == 36:
        arch, note = "i2v", "Wan 2.2 I2V A14B layout (image latent concat, no CLIP embedding)"
    elif dim == 5120:
        note = "Wan 2.1 T2V 14B layout (also each Wan 2.2 T2V A14B expert)"
    size = SIZES.get(dim) if dim is not None else None
    variant = f"{arch}_{size}" if size else arch
    return DetectedModel(
        NAME,
        variant,
        naming,
        comfy_model=comfy,
        dim=dim,
        num_blocks=count_blocks(shapes, "blocks"),
        in_channels=in_dim,
        out_channels=out_dim,
        note=note,
    )


_DEFAULT = {
    "comfyui": [
        "patch_embedding",
        "vace_patch_embedding",
        "text_embedding",
        "time_embedding",
        "time_projection",
        "img_emb",
        "head",
    ],
    "diffusers": ["patch_embedding", "vace_patch_embedding", "condition_embedder", "re:^proj_out$"],
}


def preset(name: str, naming: str, num_blocks: int | None) -> list[str]:
    """Ignore patterns of a preset (see ``presets.preset_ignore``)."""
    return block_preset(name, _DEFAULT[naming], "blocks", num_blocks)


SPEC = FamilySpec(
    name=NAME,
    label="Wan 2.1/2.2",
    detect=detect,
    anchors=("head.modulation", "scale_shift_table", "patch_embedding.weight"),
    keymap=KeyMap(RULES),
    preset=preset,
)
