"""Under ComfyUI's Python: the INT8 NPU Quantize node in-process on a tiny Wan model (CPU).

argv: REPO_ROOT MODELS_DIR CASE [LORA]. Cases: ``sample`` (stock UNETLoader → node → KSampler vs bf16 per backend
widget, input model untouched, MODELs from Load FP8 DiT), ``lora`` (LoraLoaderModelOnly before / after the node vs
bf16). Prints one JSON line last.
"""

import json
import sys

from comfy_boot import boot, cos, wan_sample

boot(sys.argv[1])

import folder_paths
import torch

import nodes

repo, models_dir, case = sys.argv[1:4]
from comfyui_dit_quant.nodes.int8_quantize import Int8NPUQuantize
from comfyui_dit_quant.nodes.load_dit import LoadFP8DiT

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)
folder_paths.add_model_folder_path("loras", models_dir, is_default=True)
BF16 = "tiny_wan_bf16.safetensors"



def stock():
    return nodes.UNETLoader().load_unet(BF16, "default")[0]


def quantize(model, backend: str = "auto", preset: str = "family default", ignored: str = ""):
    res = Int8NPUQuantize.execute(model, preset, ignored, 16, backend)
    return res.args[0], res.ui.as_dict()["text"][0]


def int8_layers(model) -> int:
    return sum(1 for m in model.model.diffusion_model.modules()
               if getattr(m, "weight", None) is not None and m.weight.dtype == torch.int8)


def snapshot(model) -> dict:
    return {k: (v, v.data_ptr(), v.detach().clone()) for k, v in model.model.state_dict(keep_vars=True).items()}


def unchanged(before: dict, model) -> bool:
    after = model.model.state_dict(keep_vars=True)
    return before.keys() == after.keys() and all(after[k] is t and torch.equal(t, c) for k, (t, _, c) in before.items())


result: dict = {}
if case == "sample":
    base = stock()
    ref = wan_sample(base)
    before = snapshot(base)
    classes = [type(m).__name__ for m in base.model.modules()]
    for backend in ("auto", "cpu", "npu", "cuda"):
        q, text = quantize(base, backend)
        out = wan_sample(q)
        result[backend] = {"cosine": cos(out, ref), "finite": bool(torch.isfinite(out).all()), "text": text,
                           "int8_layers": int8_layers(q), "new": q is not base and q.model is not base.model,
                           "size": [base.model_size(), q.model_size()]}
    result["input_untouched"] = (unchanged(before, base) and torch.equal(wan_sample(base), ref)
                                 and [type(m).__name__ for m in base.model.modules()] == classes
                                 and int8_layers(base) == 0)
    for label in ("fp8 block", "int8 W8A8"):  # MODELs from this pack's loader
        loaded = LoadFP8DiT.execute(unet_name=BF16, scheme=label, block_size="64x64", preset="family default",
                                    ignored_layers="", compute_dtype="auto", backend="auto").args[0]
        loaded_out = wan_sample(loaded)
        q, text = quantize(loaded, "cpu")
        result[label] = {"cosine": cos(wan_sample(q), ref), "text": text, "int8_layers": int8_layers(q),
                         "loaded_unchanged": bool(torch.equal(wan_sample(loaded), loaded_out))}
    q, text = quantize(base, "auto", "none", "blocks.0.ffn.*")
    result["ignored"] = {"text": text, "int8_layers": int8_layers(q)}
elif case == "lora":
    lora = sys.argv[4]

    def with_lora(model):
        return nodes.LoraLoaderModelOnly().load_lora_model_only(model, lora, 3.0)[0]

    base = stock()
    b_base = wan_sample(base)
    b_lora = wan_sample(with_lora(base))
    q, _ = quantize(base)
    q_base = wan_sample(q)
    after = wan_sample(with_lora(q))  # LoRA after quantization
    q_again = wan_sample(q)  # the LoRA clone shares q's modules: unpatched, they must be exactly as before
    patched = with_lora(base)
    before_unsampled = wan_sample(quantize(patched)[0])  # LoRA before quantization (patches carried over)
    wan_sample(patched)  # bake the LoRA into the shared modules (with backups) ...
    before_sampled = wan_sample(quantize(patched)[0])  # ... the node must read the unpatched backups, not double it
    for name, out, b0 in (("after", after, q_base), ("before", before_unsampled, q_base),
                          ("before_sampled", before_sampled, q_base)):
        result[name] = {"vs_bf16_lora": cos(out, b_lora), "delta_cosine": cos(out - b0, b_lora - b_base),
                        "delta_norm_ratio": ((out - b0).norm() / (b_lora - b_base).norm()).item()}
    result["lora_changed"] = ((b_lora - b_base).norm() / b_base.norm()).item()
    result["unpatched_identical"] = bool(torch.equal(q_again, q_base))
    result["stock_identical"] = bool(torch.equal(wan_sample(base), b_base))
print(json.dumps(result))
