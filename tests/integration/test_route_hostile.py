"""Integration tier: hostile requests to ``GET /dit_quant/layers`` in a real ComfyUI (CPU) cannot stall the server.

The catastrophic regex of issue #16 (hours of backtracking per layer name under the GIL before the fix) and a
100 MB header are sent, several at once; meanwhile ``/system_stats`` keeps answering within a second, and each
hostile request is refused quickly by name (400 / 422) while a legitimate ``re:`` pattern still works.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from comfy_env import comfyui
from comfy_server import ComfyServer
from conftest import wan_comfy_shapes, write_random_checkpoint

CATASTROPHIC = "re:^([a-z_.0-9]|[a-z_.0-9]|[a-z_.0-9])*$Z"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    comfyui()
    root = tmp_path_factory.mktemp("comfy_hostile")
    models = root / "models/diffusion_models"
    write_random_checkpoint(models / "tiny_wan.safetensors", wan_comfy_shapes())
    blob = json.dumps({"__metadata__": {"pad": "x" * 99_990_000}}).encode()
    (models / "big_header.safetensors").write_bytes(len(blob).to_bytes(8, "little") + blob)
    with ComfyServer(root) as srv:
        yield srv


def get(server: ComfyServer, route: str, timeout: float = 120) -> tuple[int, dict, float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(server.url + route, timeout=timeout) as r:
            status, body = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        status, body = e.code, json.loads(e.read())
    return status, body, time.perf_counter() - start


def layers(server: ComfyServer, name: str, ignored: str = "") -> tuple[int, dict, float]:
    query = urllib.parse.urlencode({"folder": "diffusion_models", "name": name, "ignored": ignored})
    return get(server, f"/dit_quant/layers?{query}")


def test_hostile_requests_do_not_stall_the_server(server: ComfyServer) -> None:
    results: dict[str, tuple[int, dict, float]] = {}
    hostile = {f"regex{i}": ("tiny_wan.safetensors", CATASTROPHIC) for i in range(3)}
    hostile.update({f"header{i}": ("big_header.safetensors", "") for i in range(3)})
    hostile["nested"] = ("tiny_wan.safetensors", "re:(blocks|[a-z.0-9]+)+$Z")
    threads = [threading.Thread(target=lambda k=k, a=a: results.__setitem__(k, layers(server, *a)))
               for k, a in hostile.items()]
    latencies = []
    for t in threads:
        t.start()
    deadline = time.time() + 4
    while time.time() < deadline or any(t.is_alive() for t in threads):
        status, _, took = get(server, "/system_stats", timeout=30)
        assert status == 200
        latencies.append(took)
        time.sleep(0.05)
        if time.time() > deadline + 120:
            break
    for t in threads:
        t.join(timeout=1)
    assert len(results) == len(hostile), sorted(results)
    assert max(latencies) < 1.0, f"/system_stats took up to {max(latencies):.2f} s"
    for key, (status, body, took) in results.items():
        if key.startswith("header"):
            assert status == 422 and "big_header.safetensors" in body["error"] and "limit here" in body["error"], body
        else:
            assert status == 400 and "refused" in body["error"] and "exponential" in body["error"], body
        assert took < 10, (key, took)


def test_legitimate_regex_still_lists(server: ComfyServer) -> None:
    status, body, _ = layers(server, "tiny_wan.safetensors", "re:blocks\\.(0|39)\\.\nre:.*norm.*")
    assert status == 200, body
    by_name = {r["name"]: r for r in body["layers"]}
    assert by_name["blocks.0.ffn.0"]["ignored_by"] == "re:blocks\\.(0|39)\\."
    assert by_name["blocks.1.ffn.0"]["ignored_by"] is None


def test_widget_refuses_the_catastrophic_pattern_at_validation(server: ComfyServer) -> None:
    start = time.perf_counter()
    status, body = server.post_prompt({
        "1": {"class_type": "DiTQuantLoadFP8DiT", "inputs": {
            "unet_name": "tiny_wan.safetensors", "scheme": "fp8 block", "block_size": "64x64",
            "preset": "family default", "ignored_layers": CATASTROPHIC, "compute_dtype": "auto", "backend": "auto"}},
        "2": {"class_type": "DiTQuantSaveQuantizedDiT",
              "inputs": {"model": ["1", 0], "filename_prefix": "bad", "format": "auto"}}})
    assert status == 400 and "exponential" in str(body["node_errors"]["1"]), body
    assert time.perf_counter() - start < 5
