"""``quantize_model``: replace the ``nn.Linear`` layers of a module with ``QuantLinear``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from torch import nn

from ..kernels.dispatch import backend_for
from .finite import all_finite
from .ignore import IgnoreMatcher, parse_ignore
from .linear import QuantLinear
from .plan import KeepRules, layer_choice, plan_description
from .report import LayerRecord, QuantReport
from .schemes import NonFiniteWeightError, Scheme

log = logging.getLogger("comfyui_dit_quant")

ProgressFn = Callable[[int, int, str], None]


def tensor_bytes(module: nn.Module) -> int:
    """Bytes of all parameters and buffers of a module (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def quantize_model(
    module: nn.Module,
    scheme: Scheme,
    ignore: str | Iterable[str] | None = None,
    min_features: int = 16,
    backend: str = "auto",
    progress: ProgressFn | None = None,
    weight_only: str | Iterable[str] | None = None,
) -> QuantReport:
    """Quantize every eligible ``nn.Linear`` of ``module`` in place with ``scheme``.

    Skipped (kept in high precision, reason in the report): layers matching ``ignore`` (see ``quant.ignore``),
    layers with a dimension below ``min_features`` and layers the scheme cannot take. Ignored layers that also
    match ``weight_only`` (a family's ``preset_weight_only``) are quantized with ``plan.small_m_scheme(scheme)``
    (``plan.KeepRules``).
    A weight with NaN/inf raises ``NonFiniteWeightError`` naming the layer, before anything is changed.
    """
    rules = KeepRules(IgnoreMatcher(parse_ignore(ignore)), quantize_anyway=IgnoreMatcher(parse_ignore(weight_only)))
    report = QuantReport(scheme=scheme.describe(), bytes_before=tensor_bytes(module))
    linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    plan: list[tuple[str, nn.Linear, Scheme]] = []
    for name, lin in linears:
        shape = (lin.out_features, lin.in_features)
        chosen, reason = layer_choice(name, shape, rules, scheme, min_features)
        if reason:
            report.skipped.append(LayerRecord(name, shape, reason=reason))
            continue
        if not all_finite(lin.weight):
            raise NonFiniteWeightError(f"layer {name!r}: weight contains NaN or inf")
        plan.append((name, lin, chosen))

    for i, (name, lin, chosen) in enumerate(plan):
        q = QuantLinear.from_linear(lin, chosen, backend=backend)
        set_submodule(module, name, q)
        used = backend_for(q.weight.device, chosen.name, q.out_features, q.in_features, backend,
                           *(chosen.block or (0, 0)))
        report.quantized.append(LayerRecord(name, (q.out_features, q.in_features), chosen.name, used))
        if progress is not None:
            progress(i + 1, len(plan), name)
    report.scheme = plan_description(scheme, [chosen for _, _, chosen in plan])
    report.bytes_after = tensor_bytes(module)
    log.info("quantized %d layers with %s, kept %d", len(report.quantized), scheme.describe(),
             len(report.skipped))
    return report
