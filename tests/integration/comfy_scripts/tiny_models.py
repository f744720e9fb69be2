"""Tiny checkpoints built from ComfyUI's own module classes (imported by the comfy_scripts; needs ComfyUI).

Each family's config is what ``comfy.model_detection`` derives from the keys, scaled down where detection reads the
size from the file (Wan: dim / ffn / layers; HunyuanVideo 1.5: hidden size / depth); Qwen-Image's width is fixed by
ComfyUI (24 heads x 128), so it stays full width with one block. The module is built on the meta device, its
state-dict keys and shapes are exact, and the weights are seeded random (fan-in scaled, norms near 1).
"""

from __future__ import annotations

import math

import comfy.ops
import torch
from comfy.ldm.hunyuan_video.model import HunyuanVideo
from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel
from comfy.ldm.wan.model import WanModel

CONFIGS: dict[str, tuple[type, dict, str]] = {
    "wan22_5b": (WanModel, dict(model_type="t2v", dim=256, ffn_dim=512, num_layers=4, num_heads=2, in_dim=48,
                                out_dim=48, freq_dim=256, text_dim=4096), "WAN22_T2V"),
    "qwen_image": (QwenImageTransformer2DModel, dict(num_layers=1, in_channels=64, out_channels=16), "QwenImage"),
    "hunyuan_video15": (HunyuanVideo, dict(
        image_model="hunyuan_video", in_channels=65, out_channels=32, vec_in_dim=None, context_in_dim=3584,
        hidden_size=256, mlp_ratio=4.0, num_heads=2, depth=2, depth_single_blocks=0, axes_dim=[16, 56, 56],
        theta=256, patch_size=[1, 1, 1], qkv_bias=True, guidance_embed=False, byt5=True, meanflow=False,
        use_cond_type_embedding=True, vision_in_dim=1152, meanflow_sum=True), "HunyuanVideo15"),
}

# native → tencent / diffusion-pipe names that HunyuanVideo.process_unet_state_dict renames back after detection
TENCENT_RENAMES = (("_attn.qkv.", "_attn_qkv."), ("_attn.proj.", "_attn_proj."), ("_mod.lin.", "_mod.linear."),
                   ("mlp.0.", "mlp.fc1."), ("mlp.2.", "mlp.fc2."),
                   ("txt_in.c_embedder.in_layer.", "txt_in.c_embedder.linear_1."),
                   ("txt_in.c_embedder.out_layer.", "txt_in.c_embedder.linear_2."),
                   ("txt_in.t_embedder.in_layer.", "txt_in.t_embedder.mlp.0."),
                   ("txt_in.t_embedder.out_layer.", "txt_in.t_embedder.mlp.2."),
                   ("_attn.norm.query_norm.weight", "_attn_q_norm.weight"),
                   ("_attn.norm.key_norm.weight", "_attn_k_norm.weight"))


def meta_shapes(family: str) -> dict[str, tuple[int, ...]]:
    """Key → shape of the family's tiny module, as ComfyUI builds it."""
    cls, cfg, _ = CONFIGS[family]
    with torch.device("meta"):
        model = cls(**cfg, operations=comfy.ops.disable_weight_init, device="meta", dtype=torch.bfloat16)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def to_tencent(key: str) -> str:
    for native, tencent in TENCENT_RENAMES:
        if native.startswith("txt_in.") and not key.startswith(native):
            continue
        key = key.replace(native, tencent)
    return key


def random_tensor(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Non-degenerate seeded weights: fan-in scaled matrices, norm gains near 1, small biases / modulation."""
    t = torch.randn(shape, generator=gen)
    if len(shape) >= 2 and "modulation" not in key:
        return t / math.sqrt(math.prod(shape[1:]))
    if "norm" in key and key.endswith(".weight"):
        return 1.0 + 0.1 * t
    return 0.05 * t


def detected_class(shapes: dict[str, tuple[int, ...]]) -> str:
    """The supported-model class ComfyUI's detection picks for these keys (meta tensors: shapes only)."""
    import comfy.model_detection

    sd = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    cfg = comfy.model_detection.model_config_from_unet(sd, "")
    return type(cfg).__name__ if cfg is not None else "none"
