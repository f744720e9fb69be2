"""``inspect FILE``: family, format, per-layer dtypes and scales, bytes — from the header (no weights read)."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter

from ..quant.families import UnknownFamilyError, detect_family
from ..quant.formats import comfy_native, layer_marker, lightx2v, pack_format
from ..quant.formats.io import detect_format
from ..quant.formats.modelopt_config import INDEX_SUFFIX
from ..quant.formats.safetensors_io import Header, read_header, read_tensor


def _layer_schemes(header: Header, fmt: str) -> dict[str, str]:
    if fmt == "dit_quant":
        return {n: s.describe() for n, s in pack_format.pack_layers(header.metadata, header.path).items()}
    if fmt == "comfy_quant":
        out = {n: c["format"] for n, c in comfy_native.header_layers(header.metadata, header.path).items()}
        with open(header.path, "rb") as f:
            for key in header.tensors:
                if key.endswith(comfy_native.MARKER_SUFFIX):
                    layer = key[: -len(comfy_native.MARKER_SUFFIX)]
                    out.setdefault(layer, layer_marker.decode(read_tensor(f, header, key), header.path, key)["format"])
        return out
    if fmt == "scaled_fp8":
        return {k[: -len(".scale_weight")]: "scaled_fp8 (per-tensor)" for k in header.tensors
                if k.endswith(".scale_weight")}
    if fmt == lightx2v.FORMAT:
        return lightx2v.header_schemes(header)
    return {}


def inspect_file(path: str) -> dict:
    """A JSON-able description of a checkpoint."""
    header = read_header(path)
    fmt = detect_format(header)
    try:
        fam = detect_family(header.shapes()).describe()
    except UnknownFamilyError as e:
        fam = f"unknown ({str(e).splitlines()[0]})"
    schemes = _layer_schemes(header, fmt)
    layers = []
    for key, info in sorted(header.tensors.items()):
        if key.endswith(".weight") and len(info.shape) == 2:
            layer = key[: -len(".weight")]
            scale = header.tensors.get(f"{layer}.weight_scale") or header.tensors.get(f"{layer}.scale_weight")
            layers.append({"layer": layer, "dtype": info.dtype, "shape": list(info.shape),
                           "scale_shape": None if scale is None else list(scale.shape),
                           "scheme": schemes.get(layer, "")})
    dtypes = Counter()
    for info in header.tensors.values():
        dtypes[info.dtype] += info.nbytes
    return {"file": path, "format": fmt, "family": fam, "tensors": len(header.tensors),
            "bytes": sum(dtypes.values()), "bytes_by_dtype": dict(dtypes), "linear_layers": layers}


def inspect_modelopt(path: str, as_json: bool, component: str = "transformer") -> int:
    """A ModelOpt export folder: algo, family, per-layer schemes (reads the tensors to check the scales)."""
    from ..quant.modelopt_load import load_export

    loaded = load_export(path, component)
    info = {"source": path, "format": "modelopt", "quant_algo": loaded.export.config.quant_algo,
            "files": loaded.export.files, "family": loaded.family, "report": loaded.report.to_dict()}
    print(json.dumps(info, indent=2) if as_json else
          f"source:  {path}\nformat:  modelopt ({info['quant_algo']}, {len(info['files'])} file(s))\n"
          f"family:  {loaded.family}\n{loaded.report.summary()}")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    if os.path.isdir(args.file) or args.file.endswith(INDEX_SUFFIX):
        return inspect_modelopt(args.file, args.json, getattr(args, "component", "transformer"))
    info = inspect_file(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"file:    {info['file']}\nformat:  {info['format']}\nfamily:  {info['family']}")
    print(f"tensors: {info['tensors']}, {info['bytes'] / 1024**2:.1f} MiB "
          + "(" + ", ".join(f"{d} {b / 1024**2:.1f} MiB" for d, b in sorted(info["bytes_by_dtype"].items())) + ")")
    quantized = [r for r in info["linear_layers"] if r["scheme"]]
    print(f"2-D weights: {len(info['linear_layers'])}, quantized: {len(quantized)}")
    for r in info["linear_layers"][: args.limit]:
        scale = "" if r["scale_shape"] is None else f" scale{r['scale_shape']}"
        print(f"  {r['layer']:<60} {r['dtype']:<8} {str(r['shape']):<14}{scale} {r['scheme']}")
    if len(info["linear_layers"]) > args.limit:
        print(f"  ... {len(info['linear_layers']) - args.limit} more (use --limit)")
    return 0
