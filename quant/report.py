"""What a quantization run did: layers quantized (scheme, backend), layers kept and why, bytes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LayerRecord:
    name: str
    shape: tuple[int, int]
    scheme: str = ""
    backend: str = ""
    reason: str = ""


@dataclass
class QuantReport:
    scheme: str
    quantized: list[LayerRecord] = field(default_factory=list)
    skipped: list[LayerRecord] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    notes: list[str] = field(default_factory=list)

    def backends(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in self.quantized:
            if rec.backend:  # empty for offline conversion: no kernel runs
                counts[rec.backend] = counts.get(rec.backend, 0) + 1
        return counts

    def summary(self, max_skipped: int = 12) -> str:
        """Human-readable summary (what the nodes and the CLI print)."""
        gb = 1024**3
        lines = [
            f"scheme: {self.scheme}",
            f"layers quantized: {len(self.quantized)}, kept in high precision: {len(self.skipped)}",
            f"weights: {self.bytes_before / gb:.3f} GB -> {self.bytes_after / gb:.3f} GB"
            + (f" ({self.bytes_after / self.bytes_before:.0%})" if self.bytes_before else ""),
        ]
        if self.backends():
            lines.append("backend: " + ", ".join(f"{b} x{n}" for b, n in sorted(self.backends().items())))
        for rec in self.skipped[:max_skipped]:
            lines.append(f"  kept {rec.name} {list(rec.shape)}: {rec.reason}")
        if len(self.skipped) > max_skipped:
            lines.append(f"  ... and {len(self.skipped) - max_skipped} more kept")
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
