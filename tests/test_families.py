"""Model-family detection, ignore presets and diffusers <-> ComfyUI key maps (``quant.families``).

Diffusers key sets come from real (tiny) diffusers models; the expected ComfyUI names were read from ComfyUI's
own modules (``comfy/ldm/wan``, ``hunyuan_video``, ``qwen_image``) instantiated with the same tiny configs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from comfyui_dit_quant.quant.families import (  # noqa: E402
    FAMILIES,
    DetectedModel,
    FusedKeyError,
    KeyMapError,
    UnknownFamilyError,
    detect_family,
    fused_parts,
    map_state_dict_keys,
    plan_state_dict_keys,
    preset_ignore,
    preset_weight_only,
    to_comfyui,
    to_diffusers,
)
from comfyui_dit_quant.quant.ignore import IgnoreMatcher  # noqa: E402

Shapes = dict[str, tuple[int, ...]]

_WAN = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=32,
    ffn_dim=64,
    num_layers=3,
    rope_max_seq_len=32,
)
_HY = dict(
    in_channels=65,
    out_channels=32,
    num_attention_heads=2,
    attention_head_dim=16,
    num_layers=3,
    num_refiner_layers=2,
    text_embed_dim=24,
    text_embed_2_dim=24,
    image_embed_dim=24,
    rope_axes_dim=(4, 6, 6),
)
_QWEN = dict(
    patch_size=2,
    in_channels=16,
    out_channels=4,
    num_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=24,
    axes_dims_rope=(4, 6, 6),
)

# name -> (diffusers class, config, family, expected variant)
TINY = {
    "wan_t2v": ("WanTransformer3DModel", _WAN, "wan", "t2v"),
    "wan_i2v21": (
        "WanTransformer3DModel",
        {**_WAN, "in_channels": 36, "image_dim": 24, "added_kv_proj_dim": 32},
        "wan",
        "i2v",
    ),
    "wan_i2v22": ("WanTransformer3DModel", {**_WAN, "in_channels": 36}, "wan", "i2v"),
    "wan_flf2v": (
        "WanTransformer3DModel",
        {**_WAN, "in_channels": 36, "image_dim": 24, "added_kv_proj_dim": 32, "pos_embed_seq_len": 514},
        "wan",
        "flf2v",
    ),
    "wan_ti2v": ("WanTransformer3DModel", {**_WAN, "in_channels": 48, "out_channels": 48}, "wan", "ti2v"),
    "wan_vace": (
        "WanVACETransformer3DModel",
        {**_WAN, "vace_layers": [0, 2], "vace_in_channels": 48},
        "wan",
        "vace",
    ),
    "qwen": ("QwenImageTransformer2DModel", _QWEN, "qwen_image", "qwen_image"),
    "hy15": ("HunyuanVideo15Transformer3DModel", _HY, "hunyuan_video15", "hunyuan_video15"),
    "hy15_sr_meanflow": (
        "HunyuanVideo15Transformer3DModel",
        {**_HY, "in_channels": 98, "use_meanflow": True},
        "hunyuan_video15",
        "hunyuan_video15_sr",
    ),
}
PREFIXES = ("", "model.diffusion_model.", "diffusion_model.")
BLOCKS = {
    "comfyui": ("blocks", "vace_blocks", "double_blocks", "transformer_blocks"),
    "diffusers": ("blocks", "vace_blocks", "transformer_blocks"),
}


@functools.cache
def diffusers_shapes(name: str) -> Shapes:
    cls_name, cfg, _, _ = TINY[name]
    torch.manual_seed(0)
    model = getattr(diffusers, cls_name)(**cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@functools.cache
def comfy_shapes(name: str) -> Shapes:
    """Shapes in ComfyUI names, fused tensors concatenated along dim 0."""
    family, src = TINY[name][2], diffusers_shapes(name)
    out: Shapes = {}
    for e in plan_state_dict_keys(family, src, "to_comfyui"):
        shapes = [src[s] for s in e.sources]
        out[e.target] = (sum(s[0] for s in shapes), *shapes[0][1:])
    return out


def layers(keys: Iterable[str]) -> set[str]:
    """Module names of the weights (parameters that are not weights, like modulation tables, excluded)."""
    return {k.rsplit(".", 1)[0] for k in keys if k.endswith(".weight")}


def linear_layers(shapes: Shapes) -> set[str]:
    return {k.rsplit(".", 1)[0] for k, s in shapes.items() if k.endswith(".weight") and len(s) == 2}


def family_shapes(family: str, naming: str) -> dict[str, Shapes]:
    get = diffusers_shapes if naming == "diffusers" else comfy_shapes
    return {n: get(n) for n, t in TINY.items() if t[2] == family}


_MOD = re.compile(r"(_mod\.|\.norm1\.linear$|\.norm1_context\.linear$)")


def is_core(layer: str, naming: str) -> bool:
    """A transformer-block projection (attention / MLP), not a modulation layer."""
    top = layer.split(".", 1)[0]
    return top in BLOCKS[naming] and not _MOD.search(layer)


# --- detection ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TINY))
def test_detect_tiny_diffusers_models(name: str) -> None:
    _, cfg, family, variant = TINY[name]
    d = detect_family(diffusers_shapes(name))
    assert isinstance(d, DetectedModel)
    assert (d.family, d.variant, d.prefix) == (family, variant, "")
    # Qwen-Image has the same names in both worlds and reports them as ComfyUI's.
    assert d.naming == ("comfyui" if family == "qwen_image" else "diffusers")
    assert d.dim == 32 and d.num_blocks == cfg["num_layers"]
    assert d.describe().startswith(FAMILIES[family].label)
    assert variant in d.describe()


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("name", list(TINY))
def test_detect_comfy_names_with_prefix(name: str, prefix: str) -> None:
    _, cfg, family, variant = TINY[name]
    shapes = {prefix + k: v for k, v in comfy_shapes(name).items()}
    d = detect_family(shapes)
    assert (d.family, d.variant, d.naming, d.prefix) == (family, variant, "comfyui", prefix)
    assert d.num_blocks == cfg["num_layers"]
    if prefix:
        assert repr(prefix) in d.describe()


def test_detect_full_comfy_checkpoint_with_other_components() -> None:
    shapes = {"model.diffusion_model." + k: v for k, v in comfy_shapes("wan_t2v").items()}
    shapes |= {"first_stage_model.decoder.conv_in.weight": (4, 4, 3, 3), "cond_stage_model.x.weight": (2, 2)}
    d = detect_family(shapes)
    assert (d.family, d.prefix, d.comfy_model) == ("wan", "model.diffusion_model.", "WAN21")


def test_detect_unusual_prefix_found_from_anchor() -> None:
    shapes = {"net.dit." + k: v for k, v in diffusers_shapes("hy15").items()}
    d = detect_family(shapes)
    assert (d.family, d.naming, d.prefix) == ("hunyuan_video15", "diffusers", "net.dit.")


def test_detect_quantized_comfy_file() -> None:
    shapes = dict(comfy_shapes("wan_i2v21"))
    for layer in linear_layers(shapes):
        shapes[layer + ".weight_scale"] = ()
        shapes[layer + ".comfy_quant"] = (26,)
    assert detect_family(shapes).variant == "i2v"


def _meta_shapes(cls_name: str, **cfg: object) -> Shapes:
    with torch.device("meta"):
        model = getattr(diffusers, cls_name)(**cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    ("cls_name", "cfg", "variant", "comfy_model"),
    [
        ("WanTransformer3DModel", {}, "t2v_14b", "WAN21"),
        ("WanTransformer3DModel", {"num_attention_heads": 12, "ffn_dim": 8960}, "t2v_1.3b", "WAN21"),
        (
            "WanTransformer3DModel",
            {"num_attention_heads": 24, "ffn_dim": 14336, "in_channels": 48, "out_channels": 48},
            "ti2v_5b",
            "WAN22",
        ),
        (
            "WanTransformer3DModel",
            {"in_channels": 36, "image_dim": 1280, "added_kv_proj_dim": 5120},
            "i2v_14b",
            "WAN21",
        ),
        ("WanTransformer3DModel", {"in_channels": 36}, "i2v_14b", "WAN21"),  # Wan 2.2 I2V A14B expert
        ("WanVACETransformer3DModel", {"vace_layers": [0]}, "vace_14b", "WAN21_Vace"),
        ("QwenImageTransformer2DModel", {}, "qwen_image", "QwenImage"),
        ("HunyuanVideo15Transformer3DModel", {}, "hunyuan_video15", "HunyuanVideo15"),
        (
            "HunyuanVideo15Transformer3DModel",
            {"in_channels": 98},
            "hunyuan_video15_sr",
            "HunyuanVideo15_SR_Distilled",
        ),
    ],
)
def test_detect_real_sizes(cls_name: str, cfg: dict, variant: str, comfy_model: str) -> None:
    src = _meta_shapes(cls_name, num_layers=2, **cfg)
    d = detect_family(src)
    assert (d.variant, d.comfy_model) == (variant, comfy_model)
    comfy = {}
    for e in plan_state_dict_keys(d.family, src, "to_comfyui"):
        shapes = [src[s] for s in e.sources]
        comfy["model.diffusion_model." + e.target] = (sum(s[0] for s in shapes), *shapes[0][1:])
    d2 = detect_family(comfy)
    assert (d2.variant, d2.comfy_model, d2.naming) == (variant, comfy_model, "comfyui")
    assert (d2.dim, d2.in_channels, d2.out_channels) == (d.dim, d.in_channels, d.out_channels)


def test_unknown_family_error() -> None:
    shapes = {"model.layers.0.mlp.up_proj.weight": (8, 4), "lm_head.weight": (10, 4)}
    with pytest.raises(UnknownFamilyError) as err:
        detect_family(shapes)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "lm_head.weight" in msg
    for label in ("Wan", "Qwen-Image", "HunyuanVideo 1.5"):
        assert label in msg
    with pytest.raises(UnknownFamilyError, match="no keys"):
        detect_family({})


def test_hunyuan_video_1_is_not_1_5() -> None:
    shapes = {k: v for k, v in comfy_shapes("hy15").items() if not k.startswith("cond_type_embedding")}
    with pytest.raises(UnknownFamilyError):
        detect_family(shapes)


# --- key maps ----------------------------------------------------------------------------------------------


def _wan_comfy_block(p: str, i2v: bool) -> set[str]:
    keys = {p + "modulation"}
    for attn in ("self_attn", "cross_attn"):
        keys |= {f"{p}{attn}.{x}.{w}" for x in "qkvo" for w in ("weight", "bias")}
        keys |= {f"{p}{attn}.norm_q.weight", f"{p}{attn}.norm_k.weight"}
    if i2v:
        keys |= {f"{p}cross_attn.{x}.{w}" for x in ("k_img", "v_img") for w in ("weight", "bias")}
        keys.add(f"{p}cross_attn.norm_k_img.weight")
    keys |= {f"{p}{m}.{w}" for m in ("norm3", "ffn.0", "ffn.2") for w in ("weight", "bias")}
    return keys


def _wb(*modules: str) -> set[str]:
    return {f"{m}.{w}" for m in modules for w in ("weight", "bias")}


_WAN_TOP = _wb(
    "patch_embedding",
    "text_embedding.0",
    "text_embedding.2",
    "time_embedding.0",
    "time_embedding.2",
    "time_projection.1",
    "head.head",
) | {"head.modulation"}


def _hy_comfy(blocks: int, meanflow: bool) -> set[str]:
    keys = _wb(
        "img_in.proj",
        "time_in.in_layer",
        "time_in.out_layer",
        "txt_in.input_embedder",
        "txt_in.t_embedder.in_layer",
        "txt_in.t_embedder.out_layer",
        "txt_in.c_embedder.in_layer",
        "txt_in.c_embedder.out_layer",
        "byt5_in.layernorm",
        "byt5_in.fc1",
        "byt5_in.fc2",
        "byt5_in.fc3",
        "final_layer.linear",
        "final_layer.adaLN_modulation.1",
        "vision_in.proj.0",
        "vision_in.proj.1",
        "vision_in.proj.3",
        "vision_in.proj.4",
    ) | {"cond_type_embedding.weight"}
    if meanflow:
        keys |= _wb("time_r_in.in_layer", "time_r_in.out_layer")
    for i in range(2):
        p = f"txt_in.individual_token_refiner.blocks.{i}."
        keys |= _wb(
            *(
                p + m
                for m in (
                    "adaLN_modulation.1",
                    "norm1",
                    "self_attn.qkv",
                    "self_attn.proj",
                    "norm2",
                    "mlp.0",
                    "mlp.2",
                )
            )
        )
    for i in range(blocks):
        p = f"double_blocks.{i}."
        for s in ("img", "txt"):
            keys |= _wb(
                *(
                    p + m
                    for m in (f"{s}_mod.lin", f"{s}_attn.qkv", f"{s}_attn.proj", f"{s}_mlp.0", f"{s}_mlp.2")
                )
            )
            keys |= {f"{p}{s}_attn.norm.query_norm.weight", f"{p}{s}_attn.norm.key_norm.weight"}
    return keys


def expected_comfy_keys(name: str) -> set[str] | None:
    n = TINY[name][1]["num_layers"]
    if name in ("wan_t2v", "wan_i2v22", "wan_ti2v", "wan_i2v21", "wan_flf2v"):
        i2v = name in ("wan_i2v21", "wan_flf2v")
        keys = set(_WAN_TOP)
        for i in range(n):
            keys |= _wan_comfy_block(f"blocks.{i}.", i2v)
        if i2v:
            keys |= _wb("img_emb.proj.0", "img_emb.proj.1", "img_emb.proj.3", "img_emb.proj.4")
        if name == "wan_flf2v":
            keys.add("img_emb.emb_pos")
        return keys
    if name == "wan_vace":
        keys = set(_WAN_TOP) | _wb("vace_patch_embedding", "vace_blocks.0.before_proj")
        for i in range(n):
            keys |= _wan_comfy_block(f"blocks.{i}.", False)
        for i in range(2):
            keys |= _wan_comfy_block(f"vace_blocks.{i}.", False) | _wb(f"vace_blocks.{i}.after_proj")
        return keys
    if name.startswith("hy15"):
        return _hy_comfy(n, meanflow="meanflow" in name)
    return None


@pytest.mark.parametrize("name", list(TINY))
def test_mapped_names_are_comfyui_module_names(name: str) -> None:
    expected = expected_comfy_keys(name)
    got = set(comfy_shapes(name))
    if expected is None:  # Qwen-Image: identity
        assert got == set(diffusers_shapes(name))
    else:
        assert got == expected


@pytest.mark.parametrize("name", list(TINY))
def test_round_trip_every_key(name: str) -> None:
    family = TINY[name][2]
    for k in diffusers_shapes(name):
        module = k.rsplit(".", 1)[0] if k.endswith((".weight", ".bias")) else k
        for key in (k, module):  # parameter keys and the names of the layers holding them
            c = to_comfyui(family, key)
            parts = fused_parts(family, c)
            if parts:
                assert key in parts
                with pytest.raises(FusedKeyError) as err:
                    to_diffusers(family, c)
                assert err.value.parts == parts
            else:
                assert to_diffusers(family, c) == key


@pytest.mark.parametrize("name", list(TINY))
def test_plan_round_trip_restores_all_keys(name: str) -> None:
    family = TINY[name][2]
    src = diffusers_shapes(name)
    back = plan_state_dict_keys(family, comfy_shapes(name), "to_diffusers")
    targets = [e.target for e in back]
    assert sorted(targets) == sorted(src)


def test_wan_known_renames() -> None:
    pairs = {
        "blocks.3.attn1.to_q.weight": "blocks.3.self_attn.q.weight",
        "blocks.3.attn1.to_out.0.bias": "blocks.3.self_attn.o.bias",
        "blocks.3.attn2.add_k_proj.weight": "blocks.3.cross_attn.k_img.weight",
        "blocks.3.attn2.norm_added_k.weight": "blocks.3.cross_attn.norm_k_img.weight",
        "blocks.3.norm2.weight": "blocks.3.norm3.weight",
        "blocks.3.ffn.net.0.proj.weight": "blocks.3.ffn.0.weight",
        "blocks.12.scale_shift_table": "blocks.12.modulation",
        "scale_shift_table": "head.modulation",
        "proj_out.weight": "head.head.weight",
        "condition_embedder.time_proj.weight": "time_projection.1.weight",
        "vace_blocks.0.proj_in.weight": "vace_blocks.0.before_proj.weight",
        "vace_blocks.1.proj_out.weight": "vace_blocks.1.after_proj.weight",
        "blocks.3.attn1": "blocks.3.self_attn",
    }
    for d, c in pairs.items():
        assert to_comfyui("wan", d) == c
        assert to_diffusers("wan", c) == d


def test_modelopt_scale_keys_follow_their_layer() -> None:
    assert to_comfyui("wan", "blocks.0.attn1.to_q.weight_scale") == "blocks.0.self_attn.q.weight_scale"
    assert to_comfyui("wan", "blocks.0.ffn.net.2.input_scale") == "blocks.0.ffn.2.input_scale"
    assert (
        to_comfyui("wan", "blocks.0.attn1.k_bmm_quantizer._amax")
        == "blocks.0.self_attn.k_bmm_quantizer._amax"
    )
    assert to_diffusers("wan", "blocks.0.self_attn.q.comfy_quant") == "blocks.0.attn1.to_q.comfy_quant"


def test_qwen_image_maps_are_identity() -> None:
    for k in diffusers_shapes("qwen"):
        assert to_comfyui("qwen_image", k) == k == to_diffusers("qwen_image", k)
    assert map_state_dict_keys("qwen_image", ["anything.at.all"], "to_comfyui") == {
        "anything.at.all": "anything.at.all"
    }


def test_hunyuan_fused_plan() -> None:
    src = diffusers_shapes("hy15")
    plan = {e.target: e for e in plan_state_dict_keys("hunyuan_video15", src, "to_comfyui")}
    qkv = plan["double_blocks.1.img_attn.qkv.weight"]
    assert qkv.op == "fuse"
    assert qkv.sources == tuple(f"transformer_blocks.1.attn.{p}.weight" for p in ("to_q", "to_k", "to_v"))
    txt = plan["double_blocks.0.txt_attn.qkv.bias"]
    assert txt.sources == tuple(
        f"transformer_blocks.0.attn.{p}.bias" for p in ("add_q_proj", "add_k_proj", "add_v_proj")
    )
    ref = plan["txt_in.individual_token_refiner.blocks.1.self_attn.qkv.weight"]
    assert (
        ref.op == "fuse"
        and ref.sources[0] == "context_embedder.token_refiner.refiner_blocks.1.attn.to_q.weight"
    )
    swap = plan["final_layer.adaLN_modulation.1.weight"]
    assert (swap.op, swap.sources) == ("swap_halves", ("norm_out.linear.weight",))
    assert plan["final_layer.linear.weight"].op == "rename"
    # reverse: one fused ComfyUI tensor -> three diffusers tensors
    back = [
        e
        for e in plan_state_dict_keys("hunyuan_video15", comfy_shapes("hy15"), "to_diffusers")
        if e.sources == ("double_blocks.2.img_attn.qkv.weight",)
    ]
    assert [(e.target, e.op, e.part, e.num_parts) for e in back] == [
        (f"transformer_blocks.2.attn.{p}.weight", "split", i, 3)
        for i, p in enumerate(("to_q", "to_k", "to_v"))
    ]


def test_hunyuan_fused_names() -> None:
    assert to_comfyui("hunyuan_video15", "transformer_blocks.4.attn.to_k.weight_scale") == (
        "double_blocks.4.img_attn.qkv.weight_scale"
    )
    assert fused_parts("hunyuan_video15", "double_blocks.4.txt_attn.qkv") == tuple(
        f"transformer_blocks.4.attn.{p}" for p in ("add_q_proj", "add_k_proj", "add_v_proj")
    )
    assert fused_parts("hunyuan_video15", "double_blocks.4.img_attn.proj.weight") == ()
    with pytest.raises(FusedKeyError, match="to_q"):
        to_diffusers("hunyuan_video15", "double_blocks.4.img_attn.qkv.weight")


def test_incomplete_fused_group_raises() -> None:
    keys = [k for k in diffusers_shapes("hy15") if k != "transformer_blocks.0.attn.to_k.weight"]
    with pytest.raises(KeyMapError, match=r"double_blocks\.0\.img_attn\.qkv\.weight"):
        plan_state_dict_keys("hunyuan_video15", keys, "to_comfyui")


def test_unmapped_keys_are_named_never_dropped() -> None:
    keys = [*diffusers_shapes("wan_t2v"), "blocks.0.bogus.weight", "something_else"]
    with pytest.raises(KeyMapError) as err:
        map_state_dict_keys("wan", keys, "to_comfyui")
    assert "blocks.0.bogus.weight" in str(err.value) and "something_else" in str(err.value)
    with pytest.raises(KeyMapError, match="bogus"):
        to_diffusers("wan", "blocks.0.bogus.weight")
    with pytest.raises(KeyMapError, match="bogus"):
        plan_state_dict_keys("hunyuan_video15", ["bogus.weight"], "to_diffusers")


def test_map_state_dict_keys_fuse_and_split_directions() -> None:
    m = map_state_dict_keys("hunyuan_video15", diffusers_shapes("hy15"), "to_comfyui")
    assert m["transformer_blocks.0.attn.to_v.weight"] == "double_blocks.0.img_attn.qkv.weight"
    assert set(m.values()) == set(comfy_shapes("hy15"))
    with pytest.raises(KeyMapError, match="fused"):
        map_state_dict_keys("hunyuan_video15", comfy_shapes("hy15"), "to_diffusers")
    wan = map_state_dict_keys("wan", comfy_shapes("wan_vace"), "to_diffusers")
    assert sorted(wan.values()) == sorted(diffusers_shapes("wan_vace"))


def test_bad_family_and_direction() -> None:
    with pytest.raises(ValueError, match="supported"):
        to_comfyui("flux", "x")
    with pytest.raises(ValueError, match="direction"):
        map_state_dict_keys("wan", ["proj_out.weight"], "sideways")  # type: ignore[arg-type]


# --- presets -----------------------------------------------------------------------------------------------


def _num_blocks(family: str) -> int:
    return next(t[1]["num_layers"] for t in TINY.values() if t[2] == family)


@pytest.mark.parametrize("naming", ["comfyui", "diffusers"])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("preset", ["default", "quality"])
def test_every_preset_pattern_matches_a_real_layer(family: str, naming: str, preset: str) -> None:
    patterns = preset_ignore(family, preset, naming, num_blocks=_num_blocks(family))
    assert patterns
    all_layers = set().union(*(layers(s) for s in family_shapes(family, naming).values()))
    assert IgnoreMatcher(patterns).unused(all_layers) == []


@pytest.mark.parametrize("naming", ["comfyui", "diffusers"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_default_preset_keeps_exactly_the_block_projections(family: str, naming: str) -> None:
    m = IgnoreMatcher(preset_ignore(family, "default", naming))
    for name, shapes in family_shapes(family, naming).items():
        for layer in linear_layers(shapes):
            assert (m.match(layer) is None) == is_core(layer, naming), (name, layer, m.match(layer))


@pytest.mark.parametrize("naming", ["comfyui", "diffusers"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_quality_preset(family: str, naming: str) -> None:
    n = _num_blocks(family)
    default = IgnoreMatcher(preset_ignore(family, "default", naming))
    quality = IgnoreMatcher(preset_ignore(family, "quality", naming, num_blocks=n))
    for shapes in family_shapes(family, naming).values():
        for layer in linear_layers(shapes):
            if default.match(layer):
                assert quality.match(layer)
                continue
            parts = layer.split(".")
            if family == "qwen_image":
                expect = "img_mlp" in parts
            else:
                expect = parts[0] in ("blocks", "double_blocks", "transformer_blocks") and parts[1] in (
                    "0",
                    str(n - 1),
                )
            assert (quality.match(layer) is not None) == expect, layer


@pytest.mark.parametrize("naming", ["comfyui", "diffusers"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_default_weight_only_patterns_are_the_block_modulation_layers(family: str, naming: str) -> None:
    """The default preset's weight-only patterns pick exactly the per-block modulation Linears (Wan has none:
    its modulation is a parameter table), all of them kept by the default preset's ignore list."""
    default = IgnoreMatcher(preset_ignore(family, "default", naming))
    patterns = preset_weight_only(family, "default", naming)
    weight_only = IgnoreMatcher(patterns)
    for shapes in family_shapes(family, naming).values():
        for layer in linear_layers(shapes):
            block_mod = layer.split(".", 1)[0] in BLOCKS[naming] and bool(_MOD.search(layer))
            assert (weight_only.match(layer) is not None) == block_mod, layer
            assert not block_mod or default.match(layer), layer
    assert bool(patterns) == (family != "wan")
    all_layers = set().union(*(layers(s) for s in family_shapes(family, naming).values()))
    assert weight_only.unused(all_layers) == []
    for preset in ("quality", "none"):
        assert preset_weight_only(family, preset, naming) == []
    with pytest.raises(ValueError, match="preset"):
        preset_weight_only(family, "fast")


def test_quality_without_block_count_keeps_first_block_only() -> None:
    pats = preset_ignore("wan", "quality")
    assert "blocks.0" in pats and not any(re.fullmatch(r"blocks\.[1-9]\d*", p) for p in pats)
    assert preset_ignore("wan", "quality", num_blocks=40)[-1] == "blocks.39"
    assert preset_ignore("hunyuan_video15", "quality", "diffusers", 54)[-2:] == [
        "transformer_blocks.0",
        "transformer_blocks.53",
    ]


def test_none_preset_and_errors() -> None:
    for family in FAMILIES:
        assert preset_ignore(family, "none") == []
    with pytest.raises(ValueError, match="preset"):
        preset_ignore("wan", "fast")
    with pytest.raises(ValueError, match="naming"):
        preset_ignore("wan", "default", "original")
    with pytest.raises(ValueError, match="supported"):
        preset_ignore("flux", "default")


def test_preset_namings_differ_where_names_differ() -> None:
    assert preset_ignore("wan", "default", "comfyui") != preset_ignore("wan", "default", "diffusers")
    assert preset_ignore("qwen_image", "default", "comfyui") == preset_ignore(
        "qwen_image", "default", "diffusers"
    )
