"""comfyui-dit-quant: FP8 / INT8 quantization of diffusion transformers for ComfyUI.

Importing this package never imports ComfyUI: the quantization core (``quant``), the kernels (``kernels``) and
the CLI work anywhere. ComfyUI finds the nodes through ``comfy_entrypoint`` (V3 API), which imports ``nodes``
only when ComfyUI calls it.
"""

from __future__ import annotations

WEB_DIRECTORY = "./web"
__version__ = "0.1.0"


async def comfy_entrypoint():  # returns comfy_api.latest.ComfyExtension
    """V3 entry point called by ComfyUI's loader."""
    from .nodes.extension import DiTQuantExtension
    from .nodes.routes import register_routes

    register_routes()
    return DiTQuantExtension()


__all__ = ["WEB_DIRECTORY", "__version__", "comfy_entrypoint"]
