"""Under ComfyUI's Python: load checkpoints with the stock UNETLoader node and run the Wan forward.

argv: MODELS_DIR REFERENCE_NAME NAME [NAME ...]. Prints JSON: per file, the model class, how many Linear
weights ComfyUI holds as QuantizedTensor (by layout), and the cosine of the forward output against the reference.
"""

import json
import os
import sys

sys.path.insert(0, os.environ["COMFYUI_PATH"])
from comfy.cli_args import args

args.cpu = True

import folder_paths
import torch

import nodes
from comfy.quant_ops import QuantizedTensor

models_dir, ref_name, names = sys.argv[1], sys.argv[2], sys.argv[3:]
folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)


def forward(name: str) -> tuple[torch.Tensor, dict]:
    (patcher,) = nodes.UNETLoader().load_unet(name, "default")
    model = patcher.model
    dm = model.diffusion_model
    layouts: dict[str, int] = {}
    for mod in dm.modules():
        w = getattr(mod, "weight", None)
        if isinstance(w, QuantizedTensor):
            layouts[str(getattr(mod, "quant_format", "?"))] = layouts.get(str(getattr(mod, "quant_format", "?")), 0) + 1
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 1, 8, 8, generator=gen)
    ctx = torch.randn(1, 8, 4096, generator=gen)
    t = torch.tensor([500.0])
    with torch.no_grad():
        out = dm(x.to(model.get_dtype() if model.get_dtype() != torch.float8_e4m3fn else torch.float32), t, ctx)
    return out.float(), {"model_class": type(model).__name__, "quantized_layers": layouts,
                         "dtype": str(model.get_dtype())}


ref, _ = forward(ref_name)
result = {}
for name in names:
    out, info = forward(name)
    info["cosine"] = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0).item()
    info["finite"] = bool(torch.isfinite(out).all())
    result[name] = info
print(json.dumps(result))
