"""``demo``: quantize tiny copies of Wan, Qwen-Image and HunyuanVideo 1.5 with every scheme and compare.

No download, CPU only, about a minute: each tiny diffusers model (``cli.tiny_models``) is quantized with the family's
``default`` ignore preset and its output compared with the bf16 model's on the same inputs. The numbers show the
error each scheme adds and the weight memory it saves; the tiny models' times only show the eager overhead (real
speed needs a GPU and real sizes: see ``bench/``).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..quant.families import preset_ignore, preset_weight_only
from ..quant.model import quantize_model, tensor_bytes
from ..quant.schemes import CHOICES, Scheme, SchemeChoice
from .tiny_models import TINY_MODELS, Inputs, run_model

# The tiny models are 128 wide: a 128x128 block would be one block per layer (= per-tensor), so the demo uses
# 32x32 blocks to exercise a real block grid. Full-size models use the 128x128 default.
TINY_BLOCK = "32x32"


@dataclass(frozen=True)
class DemoScheme:
    """One demo row: a registry choice (block schemes at the tiny block size), and a note for the table."""

    choice: SchemeChoice

    @property
    def note(self) -> str:
        return f"{self.choice.label}, {TINY_BLOCK} (tiny dims; 128x128 on real)" if self.choice.uses_block \
            else self.choice.label

    def build(self) -> Scheme:
        return self.choice.build(TINY_BLOCK if self.choice.uses_block else None)


DEMO_SCHEMES: dict[str, DemoScheme] = {c.key: DemoScheme(c) for c in CHOICES}


def compare(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Relative error ``mean|q - ref| / mean|ref|`` and cosine similarity, both in float32 on flattened outputs."""
    q, r = out.float().flatten(), ref.float().flatten()
    return {
        "rel_error": float((q - r).abs().mean() / r.abs().mean().clamp(min=1e-12)),
        "cosine": float(torch.nn.functional.cosine_similarity(q, r, dim=0)),
    }


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (None: unchanged); restores the previous count."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def median_time(model: nn.Module, kwargs: Inputs, repeats: int) -> tuple[torch.Tensor, float]:
    """The output of one warm-up forward and the median wall time (seconds) of ``repeats`` more."""
    out = run_model(model, kwargs)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        run_model(model, kwargs)
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def _layers_ratio(before: nn.Module, after: nn.Module, names: Sequence[str]) -> float:
    """Bytes of the quantized layers (codes, scales, bias) over the same layers' bytes in the bf16 model."""
    total = sum(tensor_bytes(before.get_submodule(n)) for n in names)
    return sum(tensor_bytes(after.get_submodule(n)) for n in names) / total if total else 1.0


def _split(value: str | Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    if value is None:
        return list(known)
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    items = [v for v in items if v]
    bad = [v for v in items if v not in known]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad))}; choose from {', '.join(known)}")
    return items


def run_demo(
    models: str | Sequence[str] | None = None,
    schemes: str | Sequence[str] | None = None,
    repeats: int = 5,
    log: Callable[[str], None] | None = None,
    threads: int | None = 1,
) -> list[dict[str, Any]]:
    """One row per (model, scheme): backends, bytes, error vs bf16 and time; plus a ``bf16`` row per model.

    ``threads``: intra-op threads while running (default 1: the tiny models' ops are too small to split, and on a
    busy machine several threads make the times erratic; None keeps torch's setting).
    """
    with _threads(threads):
        return _run(models, schemes, repeats, log)


def _run(models: str | Sequence[str] | None, schemes: str | Sequence[str] | None, repeats: int,
         log: Callable[[str], None] | None) -> list[dict[str, Any]]:
    model_keys = _split(models, list(TINY_MODELS), "model")
    scheme_keys = _split(schemes, list(DEMO_SCHEMES), "scheme")
    rows: list[dict[str, Any]] = []
    for key in model_keys:
        if log:
            log(f"building tiny {key} ...")
        model, kwargs = TINY_MODELS[key]()
        ref, ref_time = median_time(model, kwargs, repeats)
        ignore = preset_ignore(key, "default", naming="diffusers")
        weight_only = preset_weight_only(key, "default", naming="diffusers")
        size = tensor_bytes(model)
        rows.append({"model": key, "scheme": "bf16", "note": "reference", "backends": "", "layers_quantized": 0,
                     "layers_kept": 0, "bytes_before": size, "bytes_after": size, "ratio": 1.0,
                     "quantized_layers_ratio": 1.0, "rel_error": 0.0, "cosine": 1.0, "time_s": ref_time,
                     "time_ratio": 1.0})
        for skey in scheme_keys:
            demo = DEMO_SCHEMES[skey]
            qmodel = copy.deepcopy(model)
            report = quantize_model(qmodel, demo.build(), ignore=ignore, weight_only=weight_only)
            out, q_time = median_time(qmodel, kwargs, repeats)
            rows.append({
                "model": key, "scheme": skey, "note": demo.note,
                "backends": ", ".join(f"{b} x{n}" for b, n in sorted(report.backends().items())),
                "layers_quantized": len(report.quantized), "layers_kept": len(report.skipped),
                "bytes_before": report.bytes_before, "bytes_after": report.bytes_after,
                "ratio": report.bytes_after / report.bytes_before if report.bytes_before else 1.0,
                "quantized_layers_ratio": _layers_ratio(model, qmodel, [r.name for r in report.quantized]),
                **compare(out, ref),
                "time_s": q_time, "time_ratio": q_time / ref_time if ref_time else float("nan"),
            })
            if log:
                log(f"  {key} {skey}: cosine {rows[-1]['cosine']:.5f}")
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of ``run_demo`` rows."""
    mb = 1024**2
    head = ["model", "scheme", "note", "backend", "weights MB", "bf16 MB", "ratio", "q-layers", "rel err", "cosine",
            "ms", "x bf16"]
    body = []
    for r in rows:
        body.append([r["model"], r["scheme"], r["note"], r["backends"], f"{r['bytes_after'] / mb:.2f}",
                     f"{r['bytes_before'] / mb:.2f}", f"{r['ratio']:.2f}", f"{r['quantized_layers_ratio']:.2f}",
                     f"{r['rel_error']:.4f}", f"{r['cosine']:.5f}", f"{r['time_s'] * 1e3:.0f}",
                     f"{r['time_ratio']:.2f}"])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``demo`` subcommand's options."""
    parser.add_argument("--models", help=f"comma-separated, from: {', '.join(TINY_MODELS)} (default: all)")
    parser.add_argument("--schemes", help=f"comma-separated, from: {', '.join(DEMO_SCHEMES)} (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per model (median; default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")


def demo_command(args: argparse.Namespace) -> int:
    """Run the demo, print the table (and write JSON when ``--json`` is given); returns the exit status."""
    rows = run_demo(getattr(args, "models", None), getattr(args, "schemes", None),
                    repeats=getattr(args, "repeats", None) or 5, log=print)
    print()
    print(format_table(rows))
    print("\nrel err = mean|q - bf16| / mean|bf16|, cosine on flattened float32 outputs; weights = all parameters "
          "and buffers (ratio: whole model; q-layers: the quantized layers only; layers kept by the preset weigh "
          "more in a tiny model than in a real one, e.g. the tiny HunyuanVideo 1.5's 2048-wide ByT5 projector); "
          "ms = median CPU forward (eager reference, not a speed benchmark).")
    path = getattr(args, "json", None)
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comfyui-dit-quant demo", description=__doc__.splitlines()[0])
    add_demo_arguments(parser)
    return demo_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
