"""Under ComfyUI's Python: Load FP8 DiT on files other tools wrote (LightX2V int8 / fp8 and --comfyui_mode, Kijai's
e5m2 scaled FP8) vs stock UNETLoader on the bf16 source (KSampler, CPU), and the node's refusal of a shard.

argv: REPO_ROOT MODELS_DIR BF16_FILE FILE[,FILE...] SHARD_FILE. Prints one JSON line last: file -> result.
"""

import json
import sys

from comfy_boot import boot, cos, wan_sample

boot(sys.argv[1])

import comfy.model_management as mm
import folder_paths
import torch

import nodes

repo, models_dir, bf16, files, shard = sys.argv[1:6]
from comfyui_dit_quant.nodes.load_dit import LoadFP8DiT

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)

ref = wan_sample(nodes.UNETLoader().load_unet(bf16, "default")[0])
result = {}
for name in files.split(","):
    res = LoadFP8DiT.execute(unet_name=name, scheme="auto", block_size="128x128", preset="family default",
                             ignored_layers="", compute_dtype="auto", backend="auto")
    model, text = res.args[0], res.ui.as_dict()["text"][0]
    out = wan_sample(model)
    schemes = sorted({m.scheme.name for m in model.model.diffusion_model.modules()
                      if getattr(m, "scheme", None) is not None})
    n_q = sum(getattr(m, "scheme", None) is not None for m in model.model.diffusion_model.modules())
    result[name] = {"cosine": cos(out, ref), "finite": bool(torch.isfinite(out).all()), "quantized": n_q,
                    "schemes": schemes, "summary": text}
    del model
    mm.unload_all_models()
try:
    LoadFP8DiT.execute(unet_name=shard, scheme="auto", block_size="128x128", preset="family default",
                       ignored_layers="", compute_dtype="auto", backend="auto")
    result["shard"] = "loaded"
except Exception as e:
    result["shard"] = f"{type(e).__name__}: {e}"
print(json.dumps(result))
