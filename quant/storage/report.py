"""The FP8-storage run's report: a ``QuantReport`` (one report type for the pack) whose records say what happened
to each Linear / Conv layer (``kind``: stored, already, ignored, not eligible, first-last), with the breakdown
lines under its headline."""

from __future__ import annotations

from ..report import QuantReport

MB = 1024 * 1024
STORED, ALREADY, IGNORED, NOT_ELIGIBLE, FIRST_LAST = "stored", "already", "ignored", "not eligible", "first-last"


def storage_scheme(granularity: str) -> str:
    scales = "per-output-channel" if granularity == "channel" else "per-tensor"
    return f"FP8 weight storage ({scales} scales, compute in the original dtype)"


def storage_details(report: QuantReport, keep_first_last: bool, what: str) -> list[str]:
    """The lines under the headline: layers stored / kept by cause, the bytes saved, reasons not eligible."""
    stored, already = report.of_kind(STORED), report.of_kind(ALREADY)
    ignored, not_eligible, kept = report.of_kind(IGNORED), report.of_kind(NOT_ELIGIBLE), report.of_kind(FIRST_LAST)
    saved = report.bytes_before - report.bytes_after
    lines = [f"layers stored in FP8: {len(stored)}" + (f" (+{len(already)} already FP8)" if already else ""),
             f"kept: {len(ignored)} by ignore list, "
             + (f"{len(kept)} first/last layers ({sum(r.nbytes for r in kept) / MB:.2f} MB), "
                if keep_first_last else "")
             + f"{len(not_eligible)} not eligible",
             f"{what} weights: {report.bytes_before / MB:.2f} MB -> {report.bytes_after / MB:.2f} MB "
             f"(saved {saved / MB:.2f} MB)"]
    reasons: dict[str, int] = {}
    for r in not_eligible:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    lines += [f"  not eligible: {why} x{n}" for why, n in sorted(reasons.items())]
    return lines
