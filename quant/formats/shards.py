"""Refusing one shard of a sharded checkpoint where a whole model is expected.

Sharded checkpoints are several ``.safetensors`` files plus a ``*.safetensors.index.json`` whose ``weight_map``
maps each key to its file: diffusers / transformers write ``diffusion_pytorch_model-00001-of-00003.safetensors``,
LightX2V's converter ``block_<i>.safetensors`` + ``non_block.safetensors`` or ``<name>_part<i>.safetensors`` (all
next to ``diffusion_pytorch_model.safetensors.index.json``). Loading one of them alone gives a model with missing
weights, which ComfyUI fills with uninitialized memory, so the single-file loaders refuse a shard by name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .safetensors_io import CheckpointError

SHARD_NAME = re.compile(r"-(\d+)-of-(\d+)\.safetensors$")
INDEX_SUFFIX = ".safetensors.index.json"
MAX_INDEX_BYTES = 16 << 20  # a Wan 14B index is ~100 KB; a larger "index" is not read (untrusted folder content)


def _index_listing(path: Path) -> tuple[Path, int] | None:
    """(index file, number of files it lists) for the first index next to ``path`` that lists ``path``."""
    for index in sorted(path.parent.glob(f"*{INDEX_SUFFIX}")):
        try:
            if index.stat().st_size > MAX_INDEX_BYTES:
                continue
            weight_map = json.loads(index.read_text()).get("weight_map")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(weight_map, dict) and path.name in {str(v) for v in weight_map.values()}:
            return index, len({str(v) for v in weight_map.values()})
    return None


def refuse_shard(path: str) -> None:
    """``CheckpointError`` when ``path`` is one of several shards of a checkpoint (by its index or its name)."""
    p = Path(path)
    listed = _index_listing(p)
    m = SHARD_NAME.search(p.name)
    if listed is not None and listed[1] > 1:
        where = f"one of the {listed[1]} files listed in {listed[0].name}"
    elif listed is None and m is not None and int(m.group(2)) > 1:
        where = f"shard {int(m.group(1))} of {int(m.group(2))} (by its name)"
    else:
        return
    raise CheckpointError(
        f"{path}: this file is {where}, a part of a sharded checkpoint: alone it lacks the other parts' weights. "
        "Merge the shards into one .safetensors file (load every shard's tensors and save them with "
        "safetensors.torch.save_file) and load that; a NVIDIA ModelOpt export folder loads as it is with the "
        "ModelOpt Checkpoint Loader")
