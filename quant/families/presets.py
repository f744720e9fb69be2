"""Ready-made ignore lists per family, written in the ``quant.ignore`` pattern syntax.

``default``: embedders (patch, time, text, image), modulation layers (M = batch size) and the final
projection/head stay out of the quantized matmuls, except the family's per-block modulation layers
(``preset_weight_only``: Qwen-Image and HunyuanVideo 1.5 ``img_mod`` / ``txt_mod``, about a third of those
models' weights), which are quantized anyway so the model still halves (``plan.small_m_scheme``: FP8 weight-only
with high-precision activations under the FP8 schemes, W8A8 under INT8).
``quality``: ``default`` plus, for Qwen-Image, every ``img_mlp``; for Wan and HunyuanVideo 1.5 the first and
(when ``num_blocks`` is given) the last transformer block; the modulation layers stay high precision.
``none``: nothing.
"""

from __future__ import annotations

from .registry import get_family
from .spec import NAMINGS, PRESETS


def preset_ignore(
    family: str, preset: str, naming: str = "comfyui", num_blocks: int | None = None
) -> list[str]:
    """Ignore patterns of ``preset`` for ``family`` in ``naming`` ("comfyui" or "diffusers") key names."""
    spec = get_family(family)
    if preset not in PRESETS:
        raise ValueError(f"unknown ignore preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if naming not in NAMINGS:
        raise ValueError(f"unknown naming {naming!r}; choose one of {', '.join(NAMINGS)}")
    return spec.preset(preset, naming, num_blocks)


def preset_weight_only(family: str, preset: str, naming: str = "comfyui") -> list[str]:
    """Patterns of ``preset``'s kept layers that are quantized after all, with ``plan.small_m_scheme`` (empty but
    for ``default``)."""
    spec = get_family(family)
    if preset not in PRESETS:
        raise ValueError(f"unknown ignore preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if naming not in NAMINGS:
        raise ValueError(f"unknown naming {naming!r}; choose one of {', '.join(NAMINGS)}")
    return list(spec.weight_only.get(naming, ())) if preset == "default" else []
