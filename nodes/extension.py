"""The V3 extension ComfyUI gets from ``comfy_entrypoint``."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .fp8_storage import ApplyFP8StorageCLIP, ApplyFP8StorageVAE
from .int8_quantize import Int8NPUQuantize
from .load_dit import LoadFP8DiT
from .modelopt_loader import ModelOptCheckpointLoader
from .save_dit import SaveQuantizedDiT


class DiTQuantExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [LoadFP8DiT, SaveQuantizedDiT, ModelOptCheckpointLoader, ApplyFP8StorageVAE, ApplyFP8StorageCLIP,
                Int8NPUQuantize]
