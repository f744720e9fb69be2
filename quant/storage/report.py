"""``StorageReport``: what an FP8-storage run stored, kept and skipped, and the bytes before and after."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StorageReport:
    granularity: str
    stored: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (layer, pattern)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (layer, reason)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (layer, reason): keep_first_last
    keep_first_last: bool = False
    kept_bytes: int = 0  # weights of the ``kept`` layers, as they are
    unused_patterns: list[str] = field(default_factory=list)
    bytes_before: int = 0  # of the layers converted here
    bytes_after: int = 0
    model_bytes_before: int = 0  # the whole tree (state_dict tensors)
    model_bytes_after: int = 0

    @property
    def bytes_saved(self) -> int:
        return self.model_bytes_before - self.model_bytes_after

    def summary(self, what: str = "model") -> str:
        mb = 1024 * 1024
        lines = [f"FP8 weight storage ({'per-output-channel' if self.granularity == 'channel' else 'per-tensor'}"
                 f" scales), compute in the original dtype",
                 f"layers stored in FP8: {len(self.stored)}" + (f" (+{len(self.already)} already FP8)"
                                                              if self.already else ""),
                 f"kept: {len(self.ignored)} by ignore list, "
                 + (f"{len(self.kept)} first/last layers ({self.kept_bytes / mb:.2f} MB), "
                    if self.keep_first_last else "")
                 + f"{len(self.skipped)} not eligible",
                 f"{what} weights: {self.model_bytes_before / mb:.2f} MB -> {self.model_bytes_after / mb:.2f} MB "
                 f"(saved {self.bytes_saved / mb:.2f} MB)"]
        reasons: dict[str, int] = {}
        for _, why in self.skipped:
            reasons[why] = reasons.get(why, 0) + 1
        lines += [f"  not eligible: {why} x{n}" for why, n in sorted(reasons.items())]
        lines += [f"  kept, {why}: {name}" for name, why in self.kept]
        if self.unused_patterns:
            lines.append(f"ignore patterns matching no layer: {', '.join(self.unused_patterns)}")
        return "\n".join(lines)
