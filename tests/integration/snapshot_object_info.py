"""Write ``tests/data/object_info_snapshot.json`` from a real ComfyUI (the CI workflow test checks against it).

Run with the integration environment set: ``COMFYUI_PATH=... COMFYUI_PYTHON=... .venv/bin/python
tests/integration/snapshot_object_info.py``. The snapshot holds the node types the example workflows use plus
every node of this pack, without machine-specific file lists; ``test_workflows_live.py`` checks it is current.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from comfy_server import ComfyServer  # noqa: E402
from workflow_graph import snapshot  # noqa: E402
from workflow_specs import SNAPSHOT, node_types  # noqa: E402

PACK_PREFIX = "DiTQuant"


def live_snapshot(object_info: dict) -> dict:
    """The snapshot entries for the workflows' node types and the pack's nodes."""
    ours = {k for k in object_info if k.startswith(PACK_PREFIX)}
    return snapshot(object_info, node_types() | ours)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ComfyServer(Path(tmp)) as srv:
        data = live_snapshot(srv.get("/object_info"))
    SNAPSHOT.write_text(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {SNAPSHOT} ({len(data)} node types)")


if __name__ == "__main__":
    main()
