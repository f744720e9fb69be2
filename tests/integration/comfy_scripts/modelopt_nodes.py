"""Under ComfyUI's Python: the ModelOpt Checkpoint Loader on a tiny Wan export vs stock UNETLoader on the same
bf16 weights (KSampler, CPU). argv: REPO_ROOT MODELS_DIR SOURCE BF16_FILE. Prints one JSON line last."""

import json
import sys

from comfy_boot import boot, wan_sample

boot(sys.argv[1])

import folder_paths
import torch

import nodes

repo, models_dir, source, bf16 = sys.argv[1:5]
from comfyui_dit_quant.nodes.modelopt_loader import ModelOptCheckpointLoader, source_options

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)



ref = wan_sample(nodes.UNETLoader().load_unet(bf16, "default")[0])
result = {"options": source_options()}
for compute in ("as exported",):
    res = ModelOptCheckpointLoader.execute(source=source, component="transformer", compute=compute,
                                           compute_dtype="auto", backend="auto")
    model, summary = res.args
    out = wan_sample(model)
    n_q = sum(getattr(m, "scheme", None) is not None for m in model.model.diffusion_model.modules())
    result[compute] = {"cosine": torch.nn.functional.cosine_similarity(out, ref, dim=0).item(), "quantized": n_q,
                       "finite": bool(torch.isfinite(out).all()), "summary": summary,
                       "model": type(model.model).__name__}
print(json.dumps(result))
