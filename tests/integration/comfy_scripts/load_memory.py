"""Under ComfyUI's Python: peak resident memory while Load FP8 DiT loads a Wan 2.2 A14B-style high-noise and then
low-noise bf16 file (quantize at load), keeping both MODELs like ComfyUI's node cache does.

argv: REPO_ROOT MODELS_DIR SCHEME. A sampler thread reads /proc/self/status (VmRSS, RssAnon, RssFile) every 2 ms.
Prints one JSON line last (bytes): file size, baseline, peak and end per load, and the models' weight bytes.
"""

import gc
import json
import os
import sys
import threading
import time

from comfy_boot import boot

boot(sys.argv[1])

import folder_paths

import nodes  # noqa: F401  (ComfyUI's own import order)

repo, models_dir, scheme = sys.argv[1:4]
sys.path.insert(0, os.path.join(repo, "tests"))
from conftest import wan_comfy_shapes, write_random_checkpoint

from comfyui_dit_quant.nodes.load_dit import LoadFP8DiT

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)
SHAPES = wan_comfy_shapes(dim=1024, ffn=4096, layers=12, text_dim=4096, freq_dim=256)
NAMES = ("wan22_high_noise_bf16.safetensors", "wan22_low_noise_bf16.safetensors")


def status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


class Peak:
    """The highest value of each /proc/self/status field while active."""

    def __init__(self) -> None:
        self.peak: dict[str, int] = status()
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while self.running:
            for k, v in status().items():
                self.peak[k] = max(self.peak[k], v)
            time.sleep(0.002)

    def stop(self) -> dict[str, int]:
        self.running = False
        self.thread.join()
        return self.peak


def weight_bytes(model) -> int:
    sd = model.model.diffusion_model.state_dict()
    return sum(t.numel() * t.element_size() for t in sd.values())


for i, name in enumerate(NAMES):
    write_random_checkpoint(os.path.join(models_dir, name), SHAPES, seed=i)
gc.collect()
result: dict = {"file_bytes": os.path.getsize(os.path.join(models_dir, NAMES[0])), "base": status(), "loads": []}
models = []
for name in NAMES:
    peak = Peak()
    res = LoadFP8DiT.execute(unet_name=name, scheme=scheme, block_size="128x128", preset="family default",
                             ignored_layers="", compute_dtype="bf16", backend="auto")
    models.append(res.args[0])
    gc.collect()
    result["loads"].append({"peak": peak.stop(), "end": status(), "model_bytes": weight_bytes(models[-1])})
print(json.dumps(result))
