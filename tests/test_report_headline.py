"""The quantization summary a node shows: its first lines are the headline (scheme and why, layers quantized /
kept, weights before -> after, the backend that runs and why); file, family, kept layers and notes follow."""

from __future__ import annotations

from comfyui_dit_quant.quant.report import LayerRecord, QuantReport, size_text


def report() -> QuantReport:
    r = QuantReport(scheme="fp8 per-token x channel", scheme_why="sm_90 has FP8 tensor cores",
                    bytes_before=28 * 1024**3, bytes_after=15 * 1024**3 + 512 * 1024**2)
    r.quantized = [LayerRecord(f"blocks.{i}.ffn.0", (64, 64), "fp8_channel", "scaled_mm_rowwise") for i in range(3)]
    r.quantized.append(LayerRecord("blocks.3.ffn.0", (40, 64), "fp8_channel", "eager"))
    r.skipped = [LayerRecord("head", (64, 64), reason="family preset")]
    r.backend_why = {"scaled_mm_rowwise": "the scheme's fast path on cuda sm_90",
                     "eager": "N=40, K=64 not multiples of 16"}
    r.notes = ["compute dtype: bfloat16"]
    return r


def test_headline_comes_first_then_context_then_details() -> None:
    lines = report().summary(context=["file: wan.safetensors", "family: Wan 2.1/2.2"]).splitlines()
    assert lines[0] == ("fp8 per-token x channel (auto: sm_90 has FP8 tensor cores): layers quantized: 4, "
                        "kept in high precision: 1")
    assert lines[1] == "weights: 28.00 GB -> 15.50 GB (55%)"
    assert lines[2] == ("backend: scaled_mm_rowwise x3 (the scheme's fast path on cuda sm_90), "
                        "eager x1 (N=40, K=64 not multiples of 16)")  # the one that runs most layers first
    assert lines[3:5] == ["file: wan.safetensors", "family: Wan 2.1/2.2"]
    assert lines[5] == "  kept head [64, 64]: family preset" and lines[-1] == "compute dtype: bfloat16"


def test_headline_without_backends_or_auto() -> None:
    r = QuantReport(scheme="int8 W8A8", bytes_before=3 * 1024**2, bytes_after=1024**2)
    assert r.headline() == ["int8 W8A8: layers quantized: 0, kept in high precision: 0",
                            "weights: 3.0 MB -> 1.0 MB (33%)"]
    assert size_text(1024**3) == "1.00 GB" and size_text(0) == "0.0 MB"
