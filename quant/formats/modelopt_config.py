"""Finding a NVIDIA ModelOpt export on disk: its safetensors files and its quantization config.

Sources (see ``docs``/the issue): a diffusers pipeline folder (``transformer/``, ``transformer_2/``, ...), a single
component folder (``config.json`` + ``diffusion_pytorch_model*.safetensors`` [+ ``.index.json``]), or one
``.safetensors`` file. The config is the component's ``config.json["quantization_config"]``, else
``hf_quant_config.json`` (component folder, then the pipeline root), else a JSON safetensors header entry
(``_quantization_metadata`` / ``quantization_config``). It is ModelOpt's when ``quant_method`` starts with
``modelopt`` or ``producer.name`` is ``modelopt``; ``quant_algo`` is compared upper-cased.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .safetensors_io import CheckpointError, Header

SUPPORTED_ALGOS = ("FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_PB_WO")
COMPONENTS = ("transformer", "transformer_2")
HEADER_KEYS = ("_quantization_metadata", "quantization_config")
INDEX_SUFFIX = ".safetensors.index.json"


@dataclass(frozen=True)
class ModelOptConfig:
    """What the export says about its quantization (``quant_algo`` upper-case; per-layer algos when mixed)."""

    quant_algo: str
    ignore: tuple[str, ...] = ()
    source: str = ""
    producer: str = ""
    layer_algos: dict[str, str] = field(default_factory=dict)
    kv_cache: bool = False

    def algo_for(self, layer: str) -> str:
        return self.layer_algos.get(layer, self.quant_algo)


def unsupported_algo_message(algo: str, where: str) -> str:
    return (f"{where}: ModelOpt quant_algo {algo!r} is not supported; this loader reads "
            f"{', '.join(SUPPORTED_ALGOS)} (NVFP4, MXFP8, W4A8_*, INT4/INT8 AWQ/SmoothQuant exports need "
            "another loader)")


def _producer(q: dict[str, Any]) -> str:
    p = q.get("producer")
    if isinstance(p, dict):
        return f"{p.get('name', '')} {p.get('version', '')}".strip()
    return str(p or "")


def is_modelopt(q: dict[str, Any]) -> bool:
    method = str(q.get("quant_method", "")).lower()
    return method.startswith("modelopt") or _producer(q).lower().startswith("modelopt")


def parse_config(raw: dict[str, Any], source: str) -> ModelOptConfig | None:
    """A ModelOpt config from ``config.json`` / ``hf_quant_config.json`` / a header dict; None if it has none.

    Raises ``CheckpointError`` for a quantization config that is not ModelOpt's or has no ``quant_algo``.
    """
    if "quantization_config" in raw:
        q = dict(raw["quantization_config"] or {})
    elif isinstance(raw.get("quantization"), dict):  # hf_quant_config.json
        q = {**raw["quantization"], "producer": raw.get("producer"), "quant_method": "modelopt"}
    elif "quant_algo" in raw or "quant_method" in raw:
        q = dict(raw)
    else:
        return None
    if not is_modelopt(q):
        raise CheckpointError(f"{source}: quantization config is not ModelOpt's (quant_method="
                              f"{q.get('quant_method')!r}, producer={_producer(q)!r})")
    algo = q.get("quant_algo")
    if not algo:
        raise CheckpointError(f"{source}: ModelOpt quantization config has no quant_algo")
    layers = q.get("quantized_layers") or {}
    layer_algos = {str(k): str(v.get("quant_algo", "")).upper() for k, v in layers.items() if isinstance(v, dict)}
    ignore = q.get("ignore") or q.get("exclude_modules") or []
    return ModelOptConfig(str(algo).upper(), tuple(str(p) for p in ignore), source, _producer(q), layer_algos,
                          bool(q.get("kv_cache_scheme") or q.get("kv_cache_quant_algo")))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read JSON: {e}") from e


def find_config(component_dir: Path | None, header: Header | None) -> ModelOptConfig | None:
    """The ModelOpt config of a component: config.json, hf_quant_config.json (here or the pipeline root),
    then the safetensors header. None when no quantization config exists at all."""
    dirs = [] if component_dir is None else [component_dir, component_dir.parent]
    if component_dir is not None and (component_dir / "config.json").is_file():
        cfg = parse_config(_read_json(component_dir / "config.json"), str(component_dir / "config.json"))
        if cfg is not None:
            return cfg
    for d in dirs:
        f = d / "hf_quant_config.json"
        if f.is_file():
            cfg = parse_config(_read_json(f), str(f))
            if cfg is not None:
                return cfg
    for key in HEADER_KEYS if header is not None else ():
        text = header.metadata.get(key)
        if not text:
            continue
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{header.path}: header entry {key!r} is not JSON: {e}") from e
        if isinstance(raw, dict) and "layers" in raw and not is_modelopt(raw):
            continue  # ComfyUI's own per-layer metadata, not a ModelOpt config
        cfg = parse_config(raw if isinstance(raw, dict) else {}, f"{header.path} header {key!r}")
        if cfg is not None:
            return cfg
    return None


def is_export_dir(path: Path) -> bool:
    """A folder holding a component (safetensors or an index) or a pipeline with a transformer component."""
    if not path.is_dir():
        return False
    if any(path.glob("*.safetensors")) or any(path.glob(f"*{INDEX_SUFFIX}")):
        return True
    return any((path / c).is_dir() and is_export_dir(path / c) for c in COMPONENTS)


def component_dir(path: Path, component: str) -> tuple[Path, str]:
    """(folder holding the component's files, note). A pipeline folder picks ``component``."""
    sub = path / component
    if sub.is_dir() and is_export_dir(sub):
        return sub, f"component {component}"
    if any(path.glob("*.safetensors")) or any(path.glob(f"*{INDEX_SUFFIX}")):
        note = "" if component == COMPONENTS[0] else f"{path} is a single component: {component!r} not used"
        return path, note
    found = [c.name for c in sorted(path.iterdir()) if c.is_dir() and is_export_dir(c)]
    raise CheckpointError(f"{path}: no {component!r} component with safetensors files; components found: "
                          f"{', '.join(found) or 'none'}")


def shard_files(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """The safetensors files of a component folder and the index's key -> shard map ({} without an index)."""
    indexes = sorted(folder.glob(f"*{INDEX_SUFFIX}"))
    if indexes:
        weight_map = _read_json(indexes[0]).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{indexes[0]}: no weight_map")
        files = [folder / f for f in sorted(set(weight_map.values()))]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{indexes[0]}: shard file(s) missing: {', '.join(missing)}")
        return files, {str(k): str(v) for k, v in weight_map.items()}
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder}: no .safetensors files")
    return files, {}


def resolve_source(path: str | os.PathLike, component: str = "transformer"
                   ) -> tuple[Path | None, list[Path], dict[str, str], str]:
    """(component folder or None, safetensors files, index weight map, note) of a file or export folder."""
    p = Path(path)
    if p.is_file():
        if p.name.endswith(INDEX_SUFFIX):
            files, wmap = shard_files(p.parent)
            return p.parent, files, wmap, ""
        if p.suffix != ".safetensors":
            raise CheckpointError(f"{p}: expected a .safetensors file or a diffusers export folder")
        return p.parent, [p], {}, ""
    if not p.is_dir():
        raise CheckpointError(f"{p}: no such file or folder")
    folder, note = component_dir(p, component)
    files, wmap = shard_files(folder)
    return folder, files, wmap, note
