"""Writers of checkpoints as other tools write them (test helper; see the test modules for the sources read)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from conftest import wan_comfy_shapes

TARGETS = ("self_attn", "cross_attn", "ffn")


def _lightx2v_quant(w: torch.Tensor, linear_type: str, comfyui_mode: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """What LightX2V's QuantWeightINT8 / QuantWeightFP8 return for a bf16 weight (same ops, same dtypes)."""
    max_val = w.abs().max() if comfyui_mode else w.abs().amax(dim=1, keepdim=True).clamp(min=1e-5)
    if linear_type == "int8":
        scales = max_val / 127
        return torch.clamp(torch.round(w / scales), -128, 127).to(torch.int8), scales
    finfo = torch.finfo(torch.float8_e4m3fn)
    scales = max_val / finfo.max
    return torch.clip(w / scales, finfo.min, finfo.max).float().to(torch.float8_e4m3fn), scales


def write_lightx2v(path: Path, linear_type: str, comfyui_mode: bool = False, seed: int = 0,
                   src: dict[str, torch.Tensor] | None = None
                   ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A Wan file (``src``, default a tiny random bf16 one) as the converter writes it; returns (bf16 source
    weights, file tensors)."""
    gen = torch.Generator().manual_seed(seed)
    if src is None:
        src = {k: (torch.randn(s, generator=gen) * 0.05).to(torch.bfloat16) for k, s in wan_comfy_shapes().items()}
    out: dict[str, torch.Tensor] = {}
    for key, t in src.items():
        parts = key.split(".")
        if t.dim() == 2 and len(parts) > 2 and parts[2] in TARGETS:
            out[key], scales = _lightx2v_quant(t, linear_type, comfyui_mode)
            out[key.replace(".weight", ".scale_weight") if comfyui_mode else key + "_scale"] = scales
        else:
            out[key] = t.float()  # --non_linear_dtype default torch.float
    if comfyui_mode:
        out["scaled_fp8"] = torch.zeros(2, dtype=torch.float8_e4m3fn)
    save_file(out, str(path))
    return src, out


def write_kijai_e5m2_scaled(path: Path, src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ``*_fp8_e5m2_scaled_KJ``-style file: every block Linear as e5m2 codes of w / (amax / 57344) with a float32
    0-dim ``scale_weight``, the rest bf16, and a ``scaled_fp8`` marker of dtype e5m2."""
    out: dict[str, torch.Tensor] = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e5m2)}
    for key, t in src.items():
        parts = key.split(".")
        if t.dim() == 2 and len(parts) > 2 and parts[2] in TARGETS:
            scale = t.float().abs().max() / 57344.0
            out[key], out[key.replace(".weight", ".scale_weight")] = (t.float() / scale).to(torch.float8_e5m2), scale
        else:
            out[key] = t
    save_file(out, str(path))
    return out
