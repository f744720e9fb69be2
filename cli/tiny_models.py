"""Tiny, randomly initialised copies of the real diffusers transformers the pack targets.

Each builder returns ``(model, kwargs)``: a bf16 CPU model in eval mode (a few layers, 2 heads x 64, dims multiples
of 16 so the FP8/INT8 schemes take most linears) and matching random inputs for a small token count, such that
``model(**kwargs)[0]`` is the prediction. Everything is seeded, so two calls build identical models and inputs.

Dtypes follow ``from_pretrained(torch_dtype=torch.bfloat16)``: parameters whose names match a model's
``_keep_in_fp32_modules`` (Wan: time embedder, norms, modulation table) stay float32, the rest are bf16.

Initialisation (why not diffusers' own): with the default ``nn.Linear`` init (uniform, std 1/sqrt(3 fan_in))
every linear shrinks its input and the AdaLN gates come out small, so the transformer blocks barely touch the
residual stream: zeroing all block parameters changes the output by cosine 0.98 (Wan) to 0.9992 (Qwen-Image).
Such a model's output hardly depends on the layers being quantized and any quantization error looks negligible.
So every ``nn.Linear`` weight is re-drawn from N(0, 1/fan_in) (variance preserving, as in trained networks;
seeded; biases keep their default init). Then the blocks carry a real share of the output (zeroing them: cosine
0.76 Wan, 0.98 Qwen-Image, 0.90 HunyuanVideo 1.5) and 1% weight noise in the quantized layers is measurable. Any
other all-zero weight (a zero-initialised conv or projection) is re-drawn the same way, so no output is trivial.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Inputs = dict[str, Any]
Builder = Callable[..., tuple[nn.Module, Inputs]]  # (seed: int = 0) -> (model, kwargs)

DTYPE = torch.bfloat16


def _finish(model: nn.Module, seed: int) -> nn.Module:
    """Re-draw linear (and all-zero) weights N(0, 1/fan_in), cast as ``from_pretrained(torch_dtype=bf16)``, eval."""
    gen = torch.Generator().manual_seed(seed + 1)
    for mod in model.modules():
        weight = getattr(mod, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
            continue
        if isinstance(mod, nn.Linear) or not weight.detach().any():
            fan_in = weight[0].numel()
            weight.data = torch.randn(weight.shape, generator=gen) / fan_in**0.5
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, p in model.named_parameters():
        p.data = p.data.to(torch.float32 if any(k in name for k in keep) else DTYPE)
    return model.eval().requires_grad_(False)


def _randn(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen).to(DTYPE)


def _mask(length: int, valid: int) -> torch.Tensor:
    """``[1, length]`` int64 mask with ``valid`` leading ones (padding at the end, as the text encoders pad)."""
    mask = torch.zeros(1, length, dtype=torch.long)
    mask[:, :valid] = 1
    return mask


def tiny_wan(seed: int = 0) -> tuple[nn.Module, Inputs]:
    """Wan 2.x T2V (``WanTransformer3DModel``): 2 blocks, dim 128, ffn 256; 2x8x8 latent -> 32 tokens."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=64, in_channels=16, out_channels=16,
        text_dim=64, freq_dim=256, ffn_dim=256, num_layers=2, rope_max_seq_len=64)
    gen = torch.Generator().manual_seed(seed + 100)
    kwargs = {
        "hidden_states": _randn(gen, 1, 16, 2, 8, 8),
        "timestep": torch.tensor([500.0]),
        "encoder_hidden_states": _randn(gen, 1, 16, 64),
        "return_dict": False,
    }
    return _finish(model, seed), kwargs


def tiny_qwen_image(seed: int = 0) -> tuple[nn.Module, Inputs]:
    """Qwen-Image (``QwenImageTransformer2DModel``): 2 MMDiT blocks, dim 128; 8x8 packed latent -> 64 tokens,
    16 text tokens of which 12 valid."""
    from diffusers import QwenImageTransformer2DModel

    torch.manual_seed(seed)
    model = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=64, num_attention_heads=2,
        joint_attention_dim=64, axes_dims_rope=(8, 28, 28))
    gen = torch.Generator().manual_seed(seed + 100)
    kwargs = {
        "hidden_states": _randn(gen, 1, 64, 64),
        "encoder_hidden_states": _randn(gen, 1, 16, 64),
        "encoder_hidden_states_mask": _mask(16, 12),
        "timestep": torch.tensor([0.5]),
        "img_shapes": [(1, 8, 8)],
        "return_dict": False,
    }
    return _finish(model, seed), kwargs


def tiny_hunyuan_video15(seed: int = 0) -> tuple[nn.Module, Inputs]:
    """HunyuanVideo 1.5 I2V (``HunyuanVideo15Transformer3DModel``): 2 blocks + 1 refiner block, dim 128;
    2x4x4 latent -> 32 tokens, 16 LLM tokens (12 valid), 8 ByT5 tokens (6 valid), 4 image tokens."""
    from diffusers import HunyuanVideo15Transformer3DModel

    torch.manual_seed(seed)
    model = HunyuanVideo15Transformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=64, num_layers=2,
        num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1, text_embed_dim=64, text_embed_2_dim=32,
        image_embed_dim=32, rope_axes_dim=(16, 24, 24))
    gen = torch.Generator().manual_seed(seed + 100)
    kwargs = {
        "hidden_states": _randn(gen, 1, 16, 2, 4, 4),
        "timestep": torch.tensor([500.0], dtype=DTYPE),
        "encoder_hidden_states": _randn(gen, 1, 16, 64),
        "encoder_attention_mask": _mask(16, 12),
        "encoder_hidden_states_2": _randn(gen, 1, 8, 32),
        "encoder_attention_mask_2": _mask(8, 6),
        "image_embeds": _randn(gen, 1, 4, 32),
        "return_dict": False,
    }
    return _finish(model, seed), kwargs


# Keyed by the family name ``quant.ignore.preset_ignore`` takes (diffusers naming).
TINY_MODELS: dict[str, Builder] = {
    "wan": tiny_wan,
    "qwen_image": tiny_qwen_image,
    "hunyuan_video15": tiny_hunyuan_video15,
}


@torch.inference_mode()
def run_model(model: nn.Module, kwargs: Inputs) -> torch.Tensor:
    """The model's prediction for ``kwargs`` (first element of the ``return_dict=False`` tuple)."""
    return model(**kwargs)[0]
