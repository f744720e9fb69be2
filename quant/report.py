"""What a quantization run did: layers quantized (scheme, backend), layers kept and why, bytes. One report type
for every node and the CLI: DiT quantization, INT8 conversion, ModelOpt loading and FP8 weight storage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LayerRecord:
    name: str
    shape: tuple[int, ...]
    scheme: str = ""
    backend: str = ""
    reason: str = ""
    kind: str = ""  # what happened to it, where a run tells cases apart (FP8 storage: stored / already / ignored /
    # not eligible / first-last)
    nbytes: int = 0  # its weight's bytes as they are in the result


def size_text(n_bytes: int) -> str:
    """``14.52 GB`` (``512.0 MB`` under 1 GB: tiny test models still show a number)."""
    return f"{n_bytes / 1024**3:.2f} GB" if n_bytes >= 1024**3 else f"{n_bytes / 1024**2:.1f} MB"


@dataclass
class QuantReport:
    scheme: str
    quantized: list[LayerRecord] = field(default_factory=list)
    skipped: list[LayerRecord] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    notes: list[str] = field(default_factory=list)
    scheme_why: str = ""  # why this scheme (scheme "auto"'s choice for the device); shown in the headline
    backend_why: dict[str, str] = field(default_factory=dict)  # backend -> why it is the one that runs
    details: list[str] = field(default_factory=list)  # lines right after the headline (a run's own breakdown)
    unused_patterns: list[str] = field(default_factory=list)  # ignore patterns that matched no layer

    def of_kind(self, kind: str) -> list[LayerRecord]:
        """The quantized and kept records of one ``kind``, in order."""
        return [r for r in (*self.quantized, *self.skipped) if r.kind == kind]

    def backends(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in self.quantized:
            if rec.backend:  # empty for offline conversion: no kernel runs
                counts[rec.backend] = counts.get(rec.backend, 0) + 1
        return counts

    def headline(self) -> list[str]:
        """The first lines of the summary, what a user looks for: scheme (and why), layers quantized / kept,
        weights before -> after, the backend that runs (and why)."""
        scheme = self.scheme + (f" (auto: {self.scheme_why})" if self.scheme_why else "")
        lines = [f"{scheme}: layers quantized: {len(self.quantized)}, kept in high precision: {len(self.skipped)}",
                 f"weights: {size_text(self.bytes_before)} -> {size_text(self.bytes_after)}"
                 + (f" ({self.bytes_after / self.bytes_before:.0%})" if self.bytes_before else "")]
        if self.backends():
            lines.append("backend: " + ", ".join(
                f"{b} x{n}" + (f" ({self.backend_why[b]})" if self.backend_why.get(b) else "")
                for b, n in sorted(self.backends().items(), key=lambda item: -item[1])))
        return lines

    def summary(self, max_skipped: int = 12, context: tuple[str, ...] | list[str] = ()) -> str:
        """Human-readable summary (what the nodes and the CLI print): the headline first, then ``context`` (the
        file, the family), the layers kept and the notes."""
        lines = [*self.headline(), *context, *self.details]
        for rec in self.skipped[:max_skipped]:
            lines.append(f"  kept {rec.name} {list(rec.shape)}: {rec.reason}")
        if len(self.skipped) > max_skipped:
            lines.append(f"  ... and {len(self.skipped) - max_skipped} more kept")
        if self.unused_patterns:
            lines.append(f"ignore patterns matching no layer: {', '.join(self.unused_patterns)}")
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
