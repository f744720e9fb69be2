"""Real ModelOpt exports of the tiny diffusers transformers, made on CPU by nvidia-modelopt (test helper).

``make_export(root, family, cfg)`` quantizes ``cli.tiny_models`` with ``mtq.<cfg>`` (calibrated on the model's
own inputs), disables some layers, records the fake-quant and bf16 outputs, then calls ModelOpt's own
``export_hf_checkpoint`` (which turns the model's weights into fp8 in place, so outputs are taken first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from comfyui_dit_quant.cli.tiny_models import TINY_MODELS, run_model

CONFIGS = ("FP8_DEFAULT_CFG", "FP8_PER_CHANNEL_PER_TOKEN_CFG", "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG")
ALGOS = {"FP8_DEFAULT_CFG": "FP8", "FP8_PER_CHANNEL_PER_TOKEN_CFG": "FP8_PER_CHANNEL_PER_TOKEN",
         "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG": "FP8_PB_WO"}
# Layers whose quantizers are disabled before export (they must come back in bf16).
DISABLED = {"wan": "condition_embedder", "qwen_image": "time_text_embed", "hunyuan_video15": "norm_out"}


@dataclass
class Export:
    path: Path
    family: str
    cfg: str
    fake_quant: torch.Tensor
    bf16: torch.Tensor
    quantized: set[str]  # Linear modules with an enabled weight quantizer


def make_export(root: Path, family: str, cfg: str, **export_kwargs: object) -> Export:
    import modelopt.torch.quantization as mtq
    from modelopt.torch.export import export_hf_checkpoint

    model, kwargs = TINY_MODELS[family]()
    bf16 = run_model(model, kwargs)
    mtq.quantize(model, getattr(mtq, cfg), lambda m: run_model(m, kwargs))
    mtq.disable_quantizer(model, lambda n: DISABLED[family] in n)
    # Conv layers get quantizers too but are exported in bf16: disable them so the fake-quant reference runs
    # what the file holds.
    convs = {n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.conv._ConvNd)}
    mtq.disable_quantizer(model, lambda n: n.rpartition(".")[0] in convs)
    quantized = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                 and getattr(getattr(m, "weight_quantizer", None), "is_enabled", False)}
    fake = run_model(model, kwargs)
    path = root / f"{family}_{cfg}{'_' + '_'.join(sorted(export_kwargs)) if export_kwargs else ''}"
    export_hf_checkpoint(model, export_dir=str(path), **export_kwargs)
    return Export(path, family, cfg, fake, bf16, quantized)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.float().flatten(), b.float().flatten(), dim=0).item()
