"""Read a NVIDIA ModelOpt FP8 export into a ``QuantizedCheckpoint`` (diffusers key names, this pack's layouts).

Per quantized Linear ``<m>`` (trusted over the config's ``ignore`` list: a layer is quantized iff its weight is
float8 and it has ``weight_scale``):

| quant_algo | scheme | ``weight_scale`` on disk -> here |
|---|---|---|
| FP8 | fp8_tensor (+ static ``input_scale``) | ``[]`` or ``[1]`` -> ``[]`` |
| FP8_PER_CHANNEL_PER_TOKEN | fp8_channel | ``[N]`` (or ``[N, 1]``) -> ``[N]`` |
| FP8_PB_WO | fp8_weight_only block 128x128 | ``[gn, 1, gk, 1]``, ``[gn, gk]`` or 0-dim (one block) -> ``[gn, gk]`` |

Raw attention ``*_bmm_quantizer._amax`` keys and KV-cache ``k_scale`` / ``v_scale`` are skipped with a log line.
Other algos raise ``CheckpointError`` listing the supported ones. Where the export has no quantization config, the
algo is inferred from the scales.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from ...kernels import reference as ref
from ..schemes import FP8Channel, FP8Tensor, FP8WeightOnly, Scheme
from .checkpoint import QuantizedCheckpoint, layer_of
from .io import validate_layers
from .modelopt_config import SUPPORTED_ALGOS, ModelOptConfig, find_config, resolve_source, unsupported_algo_message
from .safetensors_io import CheckpointError, Header, read_header

log = logging.getLogger("comfyui_dit_quant")

PB_BLOCK = (128, 128)
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
UNSUPPORTED_MARKERS = ("weight_scale_2", "pre_quant_scale")  # NVFP4 / AWQ tensors


@dataclass
class ModelOptExport:
    """A read export: the checkpoint (diffusers names), its config, files and what was skipped."""

    checkpoint: QuantizedCheckpoint
    config: ModelOptConfig
    files: list[str]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


KV_CACHE_PARTS = ("k_scale", "v_scale", "k_bias", "v_bias")  # ModelOpt's LLM export: k_proj.k_scale, v_proj.v_scale


def is_skipped_key(key: str) -> bool:
    """Raw quantizer state (``attn.q_bmm_quantizer._amax``, ...) and KV-cache scales (``attn.k_proj.k_scale``, from
    ModelOpt's ``_KV_CACHE_REPLACEMENTS``) that no ComfyUI attention uses."""
    return (key.endswith("._amax") and "_quantizer" in key) or key.rpartition(".")[2] in KV_CACHE_PARTS


INFERRED = "inferred from the scale shapes"


def _load(files: list[Path], weight_map: dict[str, str]) -> tuple[dict[str, torch.Tensor], Header]:
    tensors: dict[str, torch.Tensor] = {}
    origin: dict[str, Path] = {}
    first: Header | None = None
    for f in files:
        header = read_header(f)  # checks the file is complete (truncated shard -> error naming it)
        first = first or header
        for key, shard in weight_map.items():
            if shard == f.name and key not in header.tensors:
                raise CheckpointError(f"{f}: the index lists key {key!r} in this shard but the file lacks it")
        try:
            with safe_open(str(f), framework="pt", device="cpu") as sf:
                for k in sf.keys():  # noqa: SIM118 - safe_open is not a dict
                    if k in tensors:
                        raise CheckpointError(_duplicate_message(k, origin[k], f, bool(weight_map)))
                    tensors[k], origin[k] = sf.get_tensor(k), f
        except CheckpointError:
            raise
        except Exception as e:  # safetensors' own error types
            raise CheckpointError(f"{f}: cannot read tensors: {e}") from e
    assert first is not None
    return tensors, first


def _duplicate_message(key: str, first: Path, second: Path, indexed: bool) -> str:
    if indexed:
        return f"{second}: key {key!r} is also in shard {first.name}, but the index lists it once"
    return (f"{second.parent}: not a ModelOpt export: key {key!r} is in both {first.name} and {second.name}, so its "
            ".safetensors files are not the shards of one model; inspect or load one file at a time")


def infer_algo(tensors: dict[str, torch.Tensor]) -> str:
    """FP8_PB_WO if any 4-D block scale, FP8_PER_CHANNEL_PER_TOKEN if any per-row scale, else FP8."""
    shapes = [t.shape for k, t in tensors.items() if k.endswith(".weight_scale")]
    if any(len(s) == 4 for s in shapes):
        return "FP8_PB_WO"
    if any(len(s) >= 1 and s[0] > 1 for s in shapes):
        return "FP8_PER_CHANNEL_PER_TOKEN"
    return "FP8"


def convert_layer(algo: str, weight: torch.Tensor, scale: torch.Tensor, where: str
                  ) -> tuple[Scheme, torch.Tensor]:
    """(scheme, scale in this pack's layout) of one ModelOpt layer; ``CheckpointError`` on a wrong shape."""
    n, k = weight.shape
    shape = list(scale.shape)
    if algo == "FP8":
        if scale.numel() != 1:
            raise CheckpointError(f"{where}.weight_scale has shape {shape}; FP8 (per-tensor) expects [] or [1]")
        return FP8Tensor(), scale.float().reshape(())
    if algo == "FP8_PER_CHANNEL_PER_TOKEN":
        if shape not in ([n], [n, 1]):
            raise CheckpointError(f"{where}.weight_scale has shape {shape}; FP8_PER_CHANNEL_PER_TOKEN expects "
                                  f"[{n}] for a {[n, k]} weight")
        return FP8Channel(), scale.float().reshape(n)
    if algo == "FP8_PB_WO":
        gn, gk = ref.ceil_div(n, PB_BLOCK[0]), ref.ceil_div(k, PB_BLOCK[1])
        ok = shape in ([gn, 1, gk, 1], [gn, gk]) or (scale.dim() == 0 and gn == gk == 1)
        if not ok:
            raise CheckpointError(f"{where}.weight_scale has shape {shape}; FP8_PB_WO expects [{gn}, 1, {gk}, 1] "
                                  f"(128x128 blocks) for a {[n, k]} weight")
        return FP8WeightOnly("block", PB_BLOCK), scale.float().reshape(gn, gk)
    raise CheckpointError(unsupported_algo_message(algo, where))


def _check_algos(config: ModelOptConfig, where: str) -> None:
    algos = {config.quant_algo} if not config.layer_algos else set(config.layer_algos.values())
    if config.quant_algo not in ("MIXED_PRECISION", *SUPPORTED_ALGOS) or not algos <= set(SUPPORTED_ALGOS):
        bad = sorted(algos - set(SUPPORTED_ALGOS)) or [config.quant_algo]
        raise CheckpointError(unsupported_algo_message(", ".join(bad), where))


def build_layers(tensors: dict[str, torch.Tensor], config: ModelOptConfig, where: str) -> dict[str, Scheme]:
    """Per-layer schemes from the tensors (scales converted in place in ``tensors``)."""
    for key in tensors:
        if key.rpartition(".")[2] in UNSUPPORTED_MARKERS:
            raise CheckpointError(f"{where}: key {key!r} belongs to a NVFP4/AWQ layout; "
                                  + unsupported_algo_message(config.quant_algo, "this export"))
    layers: dict[str, Scheme] = {}
    for key in [k for k in tensors if k.endswith(".weight_scale")]:
        layer = layer_of(key)
        w = tensors.get(f"{layer}.weight")
        if w is None or w.dtype not in FP8_DTYPES or w.dim() != 2:
            desc = "missing" if w is None else f"{w.dtype} {list(w.shape)}"
            raise CheckpointError(f"{where}: {key!r} has no 2-D float8 weight to scale ({layer}.weight is {desc})")
    for key in [k for k, t in tensors.items() if k.endswith(".weight") and t.dtype in FP8_DTYPES]:
        layer = layer_of(key)
        scale = tensors.get(f"{layer}.weight_scale")
        if scale is None:
            raise CheckpointError(f"{where}: float8 weight {key!r} has no {layer + '.weight_scale'!r}")
        algo = config.algo_for(layer)
        if algo == "MIXED_PRECISION":  # a quantized layer the config's quantized_layers does not list
            algo = infer_algo({f"{layer}.weight_scale": scale})
        scheme, tensors[f"{layer}.weight_scale"] = convert_layer(algo, tensors[key], scale, f"{where}: {layer}")
        inp = tensors.pop(f"{layer}.input_scale", None)
        if inp is not None and isinstance(scheme, FP8Tensor):
            if inp.numel() != 1:
                raise CheckpointError(f"{where}: {layer}.input_scale has shape {list(inp.shape)}; expected []")
            tensors[f"{layer}.input_scale"] = inp.float().reshape(())
        layers[layer] = scheme
    for key in [k for k in tensors if k.endswith(".input_scale") and layer_of(k) not in layers]:
        raise CheckpointError(f"{where}: {key!r} belongs to no float8 layer")
    return layers


def read_modelopt(path: str | os.PathLike, component: str = "transformer") -> ModelOptExport:
    """Read a ModelOpt export (folder, component folder, index or single file); tensors on CPU."""
    folder, files, weight_map, note = resolve_source(path, component)
    tensors, header = _load(files, weight_map)
    where = str(folder if len(files) > 1 else files[0])
    notes = [note] if note else []
    config = find_config(folder, header)
    if config is None:
        config = ModelOptConfig(infer_algo(tensors), source=INFERRED)
        notes.append(f"no quantization config found; quant_algo {config.quant_algo} inferred from the scales")
    _check_algos(config, config.source or where)
    skipped = sorted(k for k in tensors if is_skipped_key(k))
    for k in skipped:
        del tensors[k]
    if skipped:
        log.info("ModelOpt export %s: skipped %d raw quantizer key(s) (%s ...)", where, len(skipped), skipped[0])
        notes.append(f"skipped {len(skipped)} attention quantizer _amax / KV-cache scale key(s)")
    layers = build_layers(tensors, config, where)
    unlisted = [n for n in layers if config.quant_algo == "MIXED_PRECISION" and n not in config.layer_algos]
    if unlisted:
        notes.append(f"MIXED_PRECISION: {len(unlisted)} quantized layer(s) missing from quantized_layers "
                     f"({unlisted[0]}, ...): quant_algo inferred from their scale shapes")
    if not layers and config.source == INFERRED:
        raise CheckpointError(f"{where}: not a ModelOpt export: no quantization config (config.json, "
                              "hf_quant_config.json or the safetensors header) and no float8 weight with a "
                              "weight_scale")
    ckpt = QuantizedCheckpoint(tensors, layers, "modelopt", {"quant_algo": config.quant_algo})
    validate_layers(ckpt, where)
    return ModelOptExport(ckpt, config, [str(f) for f in files], skipped, notes)
