"""HTTP route of the pack: ``GET /dit_quant/layers?folder=diffusion_models&name=<file>[&ignored=<text>]``.

Answers the "Pick layers…" dialog with the file's layer list (``quant.layer_listing``: safetensors header only).
Only file names that ComfyUI lists in one of its model folders are read. What one request may cost is bounded:
the header size (``MAX_ROUTE_HEADER``), the ``ignored`` text and its regexes (``quant.regex_guard``); the work
runs in a worker thread, never on the server's event loop, and at most ``MAX_CONCURRENT`` requests at once.
"""

from __future__ import annotations

import asyncio
import logging

import folder_paths
from aiohttp import web

from ..quant.layer_listing import LayerListingError, list_layers, resolve_model_file

log = logging.getLogger(__name__)
ROUTE = "/dit_quant/layers"
MAX_CONCURRENT = 2
_slots = asyncio.Semaphore(MAX_CONCURRENT)


async def layers_handler(request: web.Request) -> web.Response:
    q = request.rel_url.query
    try:
        path = resolve_model_file(q.get("folder", "diffusion_models"), q.get("name", ""),
                                  folder_paths.get_filename_list, folder_paths.get_full_path)
        async with _slots:
            data = await asyncio.to_thread(list_layers, path, q.get("ignored", ""))
    except LayerListingError as e:
        return web.json_response({"error": str(e)}, status=e.status)
    return web.json_response(data)


def register_routes() -> bool:
    """Add the route to ComfyUI's server (before it starts serving); False when there is no server."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return False
    instance.routes.get(ROUTE)(layers_handler)
    log.debug("comfyui-dit-quant: route %s registered", ROUTE)
    return True
