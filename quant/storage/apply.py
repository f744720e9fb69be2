"""``apply_fp8_storage``: a new module tree whose eligible Linear / Conv layers store FP8 weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..ignore import IgnoreMatcher
from ..module_tree import rebuild_tree
from ..report import LayerRecord, QuantReport
from .first_last import first_last_layers
from .fp8_weight import GRANULARITIES, quantize_weight
from .layer import is_fp8_stored, stored_class
from .report import ALREADY, FIRST_LAST, IGNORED, NOT_ELIGIBLE, STORED, storage_details, storage_scheme

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _skip_reason(module: nn.Module) -> str | None:
    """Why a Linear / ConvNd cannot be stored in FP8 (None: it can)."""
    cls = type(module)
    if not (hasattr(module, "forward_comfy_cast_weights") or cls in LAYER_TYPES):
        return f"custom layer class {cls.__name__}"
    w = module._parameters.get("weight")
    if w is None or getattr(w, "is_meta", False):
        return "no weight"
    if type(w) not in (torch.Tensor, nn.Parameter):
        return f"weight is a {type(w).__name__}"  # e.g. ComfyUI's QuantizedTensor: already quantized
    if not w.dtype.is_floating_point or w.element_size() < 2:
        return f"weight is already {str(w.dtype).removeprefix('torch.')}"
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.transposed:
        return "transposed convolution"
    return None


def _tree_bytes(root: nn.Module) -> int:
    return sum(t.nbytes for t in root.state_dict().values() if isinstance(t, torch.Tensor))


def apply_fp8_storage(root: nn.Module, granularity: str = "channel", ignore: str | IgnoreMatcher | None = None,
                      device: torch.device | str | None = None,
                      source: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
                      keep_first_last: bool = False, what: str = "model"
                      ) -> tuple[nn.Module, QuantReport, dict[int, nn.Module]]:
    """A new tree with FP8-stored Linear / Conv weights; ``root`` is left untouched.

    ``ignore``: layers kept as they are (``quant.ignore`` syntax, names relative to ``root``).
    ``keep_first_last``: also keep the first and last layer of each top-level part (``first_last_layers``);
    a layer the ignore list names is reported as ignored, one already in FP8 stays as it is.
    ``device``: where the new tree's tensors live (default: where they are). ``source(key, tensor)`` gives the
    tensor to use for state-dict key ``key`` (e.g. a patcher's unpatched backup); default: the live tensor.
    ``what`` names the model in the report ("VAE", "CLIP"). Returns (new root, report, {id(old module): new module});
    the report's records say what happened to each layer (``kind``), its bytes are the whole tree's.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity {granularity!r}: expected one of {GRANULARITIES}")
    matcher = ignore if isinstance(ignore, IgnoreMatcher) else IgnoreMatcher(ignore)
    report = QuantReport(storage_scheme(granularity))
    report.bytes_before = _tree_bytes(root)
    layer_names: list[str] = []
    first_last = first_last_layers(root) if keep_first_last else {}

    def convert(name: str, m: nn.Module) -> bool:
        if not isinstance(m, LAYER_TYPES):
            return False
        layer_names.append(name)
        w = m._parameters.get("weight")
        shape, nbytes = (tuple(w.shape), w.nbytes) if w is not None else ((), 0)
        if is_fp8_stored(m):
            report.quantized.append(LayerRecord(name, shape, "fp8 storage", kind=ALREADY, nbytes=nbytes))
        elif (pattern := matcher.match(name)) is not None:
            report.skipped.append(LayerRecord(name, shape, reason=f"ignored by pattern {pattern!r}", kind=IGNORED,
                                              nbytes=nbytes))
        elif (why := _skip_reason(m)) is not None:
            report.skipped.append(LayerRecord(name, shape, reason=why, kind=NOT_ELIGIBLE, nbytes=nbytes))
        elif name in first_last:
            report.skipped.append(LayerRecord(name, shape, reason=first_last[name], kind=FIRST_LAST, nbytes=nbytes))
        else:
            return True
        return False

    def build(name: str, old: nn.Module, new: nn.Module, w: torch.Tensor) -> nn.Module:
        codes, scale = quantize_weight(w, granularity)
        new.__class__ = stored_class(type(old))
        new.set_fp8_storage(codes, scale, w.dtype, granularity)
        report.quantized.append(LayerRecord(name, tuple(w.shape), "fp8 storage", kind=STORED,
                                            nbytes=codes.nbytes + scale.nbytes))
        return new

    new_root, modules = rebuild_tree(root, convert, build, device, source)
    report.unused_patterns = matcher.unused(layer_names)
    report.bytes_after = _tree_bytes(new_root)
    order = {FIRST_LAST: 0, IGNORED: 1, NOT_ELIGIBLE: 2}  # the summary lists the first kept: the rule's picks first
    report.skipped.sort(key=lambda r: order.get(r.kind, 3))
    report.details = storage_details(report, keep_first_last, what)
    return new_root, report, modules
