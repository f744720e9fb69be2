"""W8A8 INT8 for an already loaded model: which Linear layers to convert, and a new module tree with them
converted (ComfyUI-free; the "INT8 NPU Quantize" node supplies ComfyUI's layer class through ``make_layer``).

Layer kinds: ``convert`` (a float weight: bf16/fp16/fp32, or ComfyUI's unscaled fp8 storage), ``requantize``
(this pack's FP8 layers: dequantized with the scale they were loaded with, then INT8), ``int8`` (already this
pack's INT8: kept as is) and kept layers (ignore list / preset, size, shape, NPU operator limits, ComfyUI's own
quantized tensors, custom layer classes), each with its reason. The preset's modulation layers
(``preset_weight_only``: M = batch size) are converted too, as ``plan.small_m_scheme`` does for INT8 files: the
model stays at about half of bf16 and no FP8 tensor (Load FP8 DiT stores them FP8 weight-only) is left for a
device without FP8 support (an NPU).
The input tree is never modified (``quant.module_tree.rebuild_tree``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..kernels import npu_backend
from .families import DetectedModel
from .finite import all_finite
from .module_tree import rebuild_tree
from .plan import keep_rules, layer_choice
from .report import LayerRecord, QuantReport
from .schemes import Int8, NonFiniteWeightError
from .storage import dequantize_weight as dequantize_fp8
from .storage import is_fp8_stored

INT8 = Int8()
CONVERT, REQUANTIZE, ALREADY = "convert", "requantize", "int8"
# (old module, int8 codes [N, K], float32 scales [N], bias Parameter or None) -> the new layer
LayerFactory = Callable[[nn.Module, torch.Tensor, torch.Tensor, "nn.Parameter | None"], nn.Module]
ProgressFn = Callable[[int, int, str], None]


@dataclass
class Int8Plan:
    """Layers (full names inside the converted root) → kind, and the report (names relative to the prefix)."""

    layers: dict[str, str] = field(default_factory=dict)
    report: QuantReport = field(default_factory=lambda: QuantReport(scheme=INT8.describe()))

    def count(self, kind: str) -> int:
        return sum(1 for k in self.layers.values() if k == kind)


def linear_kind(m: nn.Module) -> tuple[str, str]:
    """(kind, reason): ``convert`` / ``requantize`` / ``int8``, or ``keep`` with why."""
    scheme = getattr(m, "scheme", None)
    if scheme is not None and hasattr(scheme, "dequantize"):
        return (ALREADY, "") if scheme.name == INT8.name else (REQUANTIZE, scheme.describe())
    if is_fp8_stored(m):
        return REQUANTIZE, "fp8 weight storage"
    w = m._parameters.get("weight")
    if w is None or w.is_meta:
        return "keep", "no weight"
    if type(w) not in (torch.Tensor, nn.Parameter):
        return "keep", f"already quantized by ComfyUI ({type(w).__name__})"
    if not w.dtype.is_floating_point:
        return "keep", f"weight is {str(w.dtype).removeprefix('torch.')}"
    if type(m) is not nn.Linear and not hasattr(m, "forward_comfy_cast_weights"):
        return "keep", f"custom layer class {type(m).__name__}"
    return CONVERT, ""


def _is_linear(m: nn.Module) -> bool:
    """An ``nn.Linear`` (ComfyUI's ops included) or this pack's ``QuantLinear``."""
    return isinstance(m, nn.Linear) or (getattr(m, "scheme", None) is not None and hasattr(m, "out_features"))


def plan_int8(root: nn.Module, prefix: str = "", detected: DetectedModel | None = None, preset: str = "default",
              ignore: str | Iterable[str] | None = None, min_features: int = 16, npu: bool = False) -> Int8Plan:
    """Which linear layers under ``prefix`` become INT8; names are matched without the prefix.

    ``npu``: also keep layers beyond ``npu_quant_matmul``'s limits (N or K > 65535).
    """
    rules = keep_rules(detected, preset, ignore)
    plan = Int8Plan()
    for name, m in root.named_modules():
        if not _is_linear(m) or not name.startswith(prefix):
            continue
        short, shape = name[len(prefix):], (m.out_features, m.in_features)
        kind, why = linear_kind(m)
        if kind == "keep":
            plan.report.skipped.append(LayerRecord(short, shape, reason=why))
            continue
        if kind != ALREADY:
            why = layer_choice(short, shape, rules, INT8, min_features)[1] or (
                npu_backend.unsupported_reason(*shape) if npu else None) or ""
            if why:
                plan.report.skipped.append(LayerRecord(short, shape, reason=why))
                continue
        plan.layers[name] = kind
        plan.report.quantized.append(LayerRecord(short, shape, INT8.name))
    return plan


def _float_weight(old: nn.Module, w: torch.Tensor, kind: str) -> torch.Tensor:
    """The high-precision weight behind ``w`` (the unpatched codes / float weight of ``old``)."""
    if kind == CONVERT:
        return w
    if is_fp8_stored(old):
        return dequantize_fp8(w, old.loaded_scale, torch.float32)
    loaded = getattr(old, "loaded_scale", None)
    scale = loaded if loaded is not None else old.weight_scale
    return old.scheme.dequantize(w, scale.to(w.device), torch.float32)


def convert_int8(root: nn.Module, plan: Int8Plan, make_layer: LayerFactory, device: torch.device | str | None = None,
                 source: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
                 compute_device: torch.device | str | None = None, progress: ProgressFn | None = None
                 ) -> tuple[nn.Module, dict[int, nn.Module]]:
    """A new tree with the planned layers replaced by ``make_layer(...)`` INT8 layers; ``root`` is untouched.

    ``device`` / ``source``: as ``rebuild_tree`` (where the new tensors live; the unpatched tensor of a key).
    The quantization math runs on ``compute_device`` (default: where the weight is), one layer at a time.
    """
    todo = {n: k for n, k in plan.layers.items() if k != ALREADY}
    done: list[str] = []

    def build(name: str, old: nn.Module, new: nn.Module, w: torch.Tensor) -> nn.Module:
        home = w.device
        weight = _float_weight(old, w if compute_device is None else w.to(compute_device), todo[name])
        if not all_finite(weight):
            raise NonFiniteWeightError(f"layer {name!r}: weight contains NaN or inf")
        stored = INT8.quantize(weight)
        del weight
        layer = make_layer(old, stored["weight"].to(home), stored["weight_scale"].to(home),
                           new._parameters.get("bias"))
        done.append(name)
        if progress is not None:
            progress(len(done), len(todo), name)
        return layer

    return rebuild_tree(root, lambda name, m: name in todo, build, device, source)
