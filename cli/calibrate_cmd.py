"""``calibrate IN_DIR OUT_DIR --algo FP8|FP8_PB_WO|FP8_PER_CHANNEL_PER_TOKEN``: ModelOpt calibration of a bf16
diffusers transformer folder, exported with ModelOpt's own ``export_hf_checkpoint`` (the loader reads it).

Calibration inputs: ``--inputs FILE.pt`` (a list of forward-kwargs dicts, ``torch.save``d) or random latents /
text embeddings shaped from the model's config (``--samples`` of them). Needs the ``modelopt`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ..quant.families import UnknownFamilyError, detect_family
from ..quant.formats.safetensors_io import CheckpointError, read_header
from ..quant.plan import build_matcher

CONFIGS = {"FP8": "FP8_DEFAULT_CFG", "FP8_PER_CHANNEL_PER_TOKEN": "FP8_PER_CHANNEL_PER_TOKEN_CFG",
           "FP8_PB_WO": "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG"}
MISSING = ("calibrate needs NVIDIA ModelOpt: pip install 'comfyui-dit-quant[modelopt]' "
           "(nvidia-modelopt, diffusers, requests, huggingface_hub)")


def random_inputs(model: torch.nn.Module, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Small random forward kwargs for Wan / Qwen-Image / HunyuanVideo 1.5 transformers, from ``model.config``."""
    c, name = model.config, type(model).__name__
    g = torch.Generator().manual_seed(seed)
    dt = next(model.parameters()).dtype
    rnd = lambda *s: torch.randn(*s, generator=g).to(dt)
    out = []
    for i in range(n):
        t = torch.tensor([1000.0 * (i + 0.5) / n])
        if name.startswith("Wan"):
            out.append({"hidden_states": rnd(1, c.in_channels, 1, 16, 16), "timestep": t,
                        "encoder_hidden_states": rnd(1, 32, c.text_dim), "return_dict": False})
        elif name.startswith("QwenImage"):
            out.append({"hidden_states": rnd(1, 64, c.in_channels), "encoder_hidden_states":
                        rnd(1, 16, c.joint_attention_dim), "encoder_hidden_states_mask": torch.ones(1, 16,
                        dtype=torch.long), "timestep": t / 1000, "img_shapes": [(1, 8, 8)], "return_dict": False})
        elif name.startswith("HunyuanVideo15"):
            out.append({"hidden_states": rnd(1, c.in_channels, 2, 8, 8), "timestep": t.to(dt),
                        "encoder_hidden_states": rnd(1, 32, c.text_embed_dim),
                        "encoder_attention_mask": torch.ones(1, 32, dtype=torch.long),
                        "encoder_hidden_states_2": rnd(1, 16, c.text_embed_2_dim),
                        "encoder_attention_mask_2": torch.ones(1, 16, dtype=torch.long),
                        "image_embeds": rnd(1, 4, c.image_embed_dim), "return_dict": False})
        else:
            raise ValueError(f"random calibration inputs are not known for {name}; pass --inputs FILE.pt")
    return out


def load_transformer(folder: str) -> torch.nn.Module:
    """A bf16 diffusers model from ``config.json`` + its safetensors (no accelerate needed)."""
    import diffusers
    from safetensors.torch import load_file

    root = Path(folder)
    cfg = json.loads((root / "config.json").read_text())
    model = getattr(diffusers, cfg["_class_name"]).from_config(cfg)
    sd: dict[str, torch.Tensor] = {}
    for f in sorted(root.glob("*.safetensors")):
        read_header(f)  # the pack's validation first: a hostile header is refused by name
        try:
            sd.update(load_file(str(f)))
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{f}: cannot read tensors: {e}") from e
    model.load_state_dict(sd, strict=True)
    return model.to(torch.bfloat16).eval()


def calibrate_command(args: argparse.Namespace) -> int:
    try:
        import modelopt.torch.quantization as mtq
        from modelopt.torch.export import export_hf_checkpoint
    except ImportError:
        print(f"error: {MISSING}", file=sys.stderr)
        return 2
    algo = args.algo.upper()
    model = load_transformer(args.input)
    inputs = torch.load(args.inputs, weights_only=True) if args.inputs else random_inputs(model, args.samples,
                                                                                            args.seed)
    try:
        detected = detect_family({k: tuple(v.shape) for k, v in model.state_dict().items()})
        print(f"family: {detected.describe()}; preset {args.preset!r} kept in bf16")
    except UnknownFamilyError:
        detected = None
        print("family: unknown (no preset); only --ignore is kept in bf16")

    def loop(m: torch.nn.Module) -> None:
        with torch.no_grad():
            for kw in inputs:
                m(**kw)

    mtq.quantize(model, getattr(mtq, CONFIGS[algo]), loop)
    matcher = build_matcher(detected, args.preset, args.ignore)
    convs = {n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.conv._ConvNd)}
    mtq.disable_quantizer(model, lambda n: n.rpartition(".")[0] in convs
                          or matcher.match(n.rpartition(".")[0]) is not None)
    export_hf_checkpoint(model, export_dir=args.output)
    print(f"wrote {algo} export to {args.output}")
    return 0
