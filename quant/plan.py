"""Which Linear layers a scheme quantizes, and why the others stay in high precision.

One set of rules for every path: ``quantize_model`` (modules), the streaming file converter and the ComfyUI
loaders (state-dict shapes). A layer is kept when it matches the ignore list (the family preset plus the user's
patterns), is an embedding table, has a dimension below ``min_features`` or has a shape the scheme cannot take.
A layer kept only by the preset's modulation patterns (M = batch size; ``KeepRules``) is quantized with
``small_m_scheme`` instead: FP8 weight-only for the FP8 activation schemes, the scheme itself otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from .families import DetectedModel, preset_ignore, preset_weight_only
from .ignore import IgnoreMatcher, parse_ignore
from .report import LayerRecord, QuantReport
from .schemes import FP8WeightOnly, Scheme

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Weights a plan may quantize: high precision, or plain FP8 casts (`*_fp8_e4m3fn` files: codes with no scale), whose
# e4m3 codes FP8 schemes keep under unit scales and other schemes requantize (``Scheme.quantize``).
PLAIN_FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
SOURCE_DTYPES = (*FLOAT_DTYPES, *PLAIN_FP8_DTYPES)


def build_matcher(detected: DetectedModel | None, preset: str = "default",
                  ignore: str | Iterable[str] | None = None) -> IgnoreMatcher:
    """The user's patterns plus the detected family's preset (none when the family is unknown)."""
    patterns = parse_ignore(ignore)
    if detected is not None and preset != "none":
        patterns += preset_ignore(detected.family, preset, naming=detected.naming, num_blocks=detected.num_blocks)
    return IgnoreMatcher(patterns)


def small_m_scheme(scheme: Scheme) -> Scheme:
    """How ``scheme`` stores the preset's modulation layers (their matmul's M is the batch size): the FP8
    activation schemes store them FP8 weight-only per tensor (ComfyUI's native ``float8_e4m3fn`` +
    ``full_precision_matrix_mult``, so native files stay native); weight-only FP8 and INT8 W8A8 use themselves
    (INT8's per-token activation scale gives each of those few rows its own scale: cheap and precise)."""
    return FP8WeightOnly("tensor") if scheme.name.startswith("fp8") and scheme.quantizes_activations else scheme


def is_embedding_table(layer: str) -> bool:
    """``nn.Embedding`` tables are 2-D ``.weight`` tensors too; they are lookups, not matmuls."""
    last = layer.rpartition(".")[2]
    return last.endswith("embedding") or last.endswith("embed") or last == "emb"


def skip_reason(name: str, shape: tuple[int, int], matcher: IgnoreMatcher, scheme: Scheme,
                min_features: int = 16) -> str:
    """Why the layer ``name`` (without key prefix) of ``shape`` [N, K] stays high precision; "" to quantize."""
    pattern = matcher.match(name)
    if pattern is not None:
        return f"ignored by pattern {pattern!r}"
    if min(shape) < min_features:
        return f"smaller than min_features={min_features}"
    return scheme.unsupported_reason(*shape) or ""


NO_PATTERNS = IgnoreMatcher([])


@dataclass(frozen=True)
class KeepRules:
    """The patterns that keep layers in high precision: ``ignore`` (the user's plus the preset's), ``user`` (the
    user's alone) and ``quantize_anyway`` (the preset's modulation patterns, ``preset_weight_only``): a layer those
    match is quantized after all, with ``small_m_scheme``, unless the user's own patterns name it."""

    ignore: IgnoreMatcher
    user: IgnoreMatcher = NO_PATTERNS
    quantize_anyway: IgnoreMatcher = NO_PATTERNS

    def small_m(self, name: str) -> bool:
        """``name`` is kept only by the preset's modulation patterns: quantized with ``small_m_scheme``."""
        return (self.quantize_anyway.match(name) is not None and self.ignore.match(name) is not None
                and self.user.match(name) is None)


def keep_rules(detected: DetectedModel | None, preset: str = "default",
               ignore: str | Iterable[str] | None = None) -> KeepRules:
    """The user's patterns, the detected family's preset and its modulation patterns."""
    anyway = preset_weight_only(detected.family, preset, detected.naming) if detected is not None else []
    return KeepRules(build_matcher(detected, preset, ignore), IgnoreMatcher(parse_ignore(ignore)),
                     IgnoreMatcher(anyway))


def layer_choice(name: str, shape: tuple[int, int], rules: KeepRules, scheme: Scheme,
                 min_features: int = 16) -> tuple[Scheme, str]:
    """The scheme for layer ``name`` of ``shape`` [N, K], and why it stays high precision ("" to quantize)."""
    if rules.small_m(name):
        small = small_m_scheme(scheme)
        return small, skip_reason(name, shape, NO_PATTERNS, small, min_features)
    return scheme, skip_reason(name, shape, rules.ignore, scheme, min_features)


def plan_description(scheme: Scheme, used: Iterable[Scheme]) -> str:
    """``scheme.describe()``, plus the modulation layers' scheme where some layers use it."""
    small = small_m_scheme(scheme)
    note = f" ({small.describe()} for the preset's modulation layers)" if small is not scheme and small in used else ""
    return scheme.describe() + note


def plan_state_dict(
    shapes: Mapping[str, tuple[Sequence[int], torch.dtype | None]],
    scheme: Scheme,
    detected: DetectedModel | None,
    preset: str = "default",
    ignore: str | Iterable[str] | None = None,
    min_features: int = 16,
) -> tuple[dict[str, Scheme], QuantReport]:
    """Layers (full keys without ``.weight``) to quantize, each with its scheme, from key → (shape, dtype), and
    the report of the rest.

    Layer names are matched without ``detected.prefix``; the report names layers by their full key. Keys outside
    that prefix (a full checkpoint's VAE and text encoder) are never quantized.
    """
    prefix = detected.prefix if detected else ""
    rules = keep_rules(detected, preset, ignore)
    report = QuantReport(scheme=scheme.describe())
    layers: dict[str, Scheme] = {}
    for key, (shape, dtype) in shapes.items():
        if not key.endswith(".weight") or len(shape) != 2 or dtype not in SOURCE_DTYPES:
            continue
        layer = key[: -len(".weight")]
        nk = (int(shape[0]), int(shape[1]))
        if prefix and not layer.startswith(prefix):  # a full checkpoint's VAE / text encoder
            report.skipped.append(LayerRecord(layer, nk, reason=f"not in the diffusion model (prefix {prefix!r})"))
            continue
        short = layer[len(prefix):] if prefix else layer
        chosen, reason = layer_choice(short, nk, rules, scheme, min_features)
        if is_embedding_table(short) and not rules.ignore.match(short):
            reason = "embedding table"
        if reason:
            report.skipped.append(LayerRecord(layer, nk, reason=reason))
        else:
            layers[layer] = chosen
            report.quantized.append(LayerRecord(layer, nk, chosen.name))
    report.scheme = plan_description(scheme, layers.values())
    return layers, report
