"""A diffusers-named ``QuantizedCheckpoint`` (e.g. a ModelOpt export) in ComfyUI-native names.

Every tensor goes through ``families.plan_state_dict_keys`` (an unmapped key raises ``KeyMapError`` naming it).
Quantized layers move with their scales:

- rename: as is;
- fuse (HunyuanVideo 1.5 q/k/v -> qkv): per-tensor parts are requantized to the largest scale (static input
  scales: the largest too); per-channel parts concatenate; block parts concatenate when each part's rows are a
  multiple of the block height, else the dequantized concatenation is requantized; a mix of quantized and
  plain parts (or of schemes) is kept in high precision;
- swap_halves: codes (and per-row / block scales) swap halves; a block grid that does not split evenly is
  requantized.
"""

from __future__ import annotations

import torch

from ..kernels import reference as ref
from .families import plan_state_dict_keys
from .formats.checkpoint import QuantizedCheckpoint, layer_of
from .schemes import Scheme

Layer = tuple[Scheme, torch.Tensor, torch.Tensor, torch.Tensor | None]  # scheme, codes, scale, input_scale


def _requantize(scheme: Scheme, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    stored = scheme.quantize(w)
    return stored["weight"], stored["weight_scale"]


def fuse_layers(parts: list[Layer]) -> tuple[Layer, str]:
    """One quantized layer from dim-0 parts of the same scheme, and a note ("" when exact)."""
    scheme = parts[0][0]
    codes, scales = [p[1] for p in parts], [p[2] for p in parts]
    ins = [p[3] for p in parts if p[3] is not None]
    inp = torch.stack([s.reshape(()) for s in ins]).amax() if ins else None
    if scheme.block is not None:
        bn = scheme.block[0]
        if all(c.shape[0] % bn == 0 for c in codes):
            return (scheme, torch.cat(codes), torch.cat([s.reshape(-1, s.shape[-1]) for s in scales]), inp), ""
        w = torch.cat([scheme.dequantize(c, s) for c, s in zip(codes, scales, strict=True)])
        return (scheme, *_requantize(scheme, w), inp), "requantized (rows not a multiple of the block)"
    if all(s.numel() == 1 for s in scales):
        common = torch.stack([s.reshape(()) for s in scales]).amax()
        if all(torch.equal(s.reshape(()), common) for s in scales):
            return (scheme, torch.cat(codes), common, inp), ""
        w = torch.cat([scheme.dequantize(c, s) for c, s in zip(codes, scales, strict=True)])
        return (scheme, ref.cast_fp8(w, common), common, inp), "requantized to a common per-tensor scale"
    return (scheme, torch.cat(codes), torch.cat([s.reshape(-1) for s in scales]), inp), ""


def swap_layer(layer: Layer) -> tuple[Layer, str]:
    """The layer with its two output halves exchanged."""
    scheme, w, s, inp = layer
    n = w.shape[0]
    if n % 2:
        raise ValueError(f"cannot swap halves of {n} rows")
    w2 = torch.cat([w[n // 2:], w[: n // 2]])
    if s.numel() == 1:
        return (scheme, w2, s, inp), ""
    if scheme.block is None:
        return (scheme, w2, torch.cat([s[n // 2:], s[: n // 2]]), inp), ""
    bn = scheme.block[0]
    if (n // 2) % bn == 0:
        g = s.shape[0] // 2
        return (scheme, w2, torch.cat([s[g:], s[:g]]), inp), ""
    full = scheme.dequantize(w, s)
    return (scheme, *_requantize(scheme, torch.cat([full[n // 2:], full[: n // 2]])), inp), "requantized (swap)"


def _plain(op: str, ts: list[torch.Tensor]) -> torch.Tensor:
    if op == "fuse":
        return torch.cat(ts)
    if op == "swap_halves":
        return torch.cat(list(reversed(ts[0].chunk(2))))
    return ts[0]


def to_comfyui_names(ckpt: QuantizedCheckpoint, family: str) -> tuple[QuantizedCheckpoint, list[str]]:
    """The checkpoint in ComfyUI-native names for ``family`` and notes on requantized / dequantized layers."""
    entries = plan_state_dict_keys(family, list(ckpt.tensors), "to_comfyui")
    tensors: dict[str, torch.Tensor] = {}
    layers: dict[str, Scheme] = {}
    notes: list[str] = []
    for e in entries:
        srcs = [layer_of(s) for s in e.sources]
        part = e.target.rpartition(".")[2]
        quantized = [s in ckpt.layers for s in srcs]
        if not any(quantized) or part not in ("weight", "weight_scale", "input_scale"):
            tensors[e.target] = _plain(e.op, [ckpt.tensors[s] for s in e.sources])
            continue
        if part != "weight":
            continue  # scales move with their weight below
        target = layer_of(e.target)
        parts = [(ckpt.layers[s], *(ckpt.layer_tensors(s).get(p) for p in ("weight", "weight_scale",
                                                                           "input_scale"))) for s in srcs
                 if s in ckpt.layers]
        note = ""
        if e.op == "fuse" and (not all(quantized) or len({p[0] for p in parts}) > 1):
            ws = [ckpt.layers[s].dequantize(ckpt.tensors[f"{s}.weight"], ckpt.tensors[f"{s}.weight_scale"],
                                            torch.bfloat16) if s in ckpt.layers else ckpt.tensors[f"{s}.weight"]
                  for s in srcs]
            tensors[e.target] = torch.cat([w.to(torch.bfloat16) for w in ws])
            notes.append(f"{target}: parts {srcs} mix quantized and plain layers: kept in bf16")
            continue
        if e.op == "fuse":
            layer, note = fuse_layers(parts)  # type: ignore[arg-type]
        elif e.op == "swap_halves":
            layer, note = swap_layer(parts[0])  # type: ignore[arg-type]
        else:
            layer = parts[0]  # type: ignore[assignment]
        if note:
            notes.append(f"{target}: {note}")
        layers[target] = layer[0]
        tensors[f"{target}.weight"], tensors[f"{target}.weight_scale"] = layer[1], layer[2]
        if layer[3] is not None:
            tensors[f"{target}.input_scale"] = layer[3]
    return QuantizedCheckpoint(tensors, layers, ckpt.format, dict(ckpt.metadata)), notes
