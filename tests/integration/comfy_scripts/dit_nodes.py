"""Under ComfyUI's Python: run this pack's nodes in-process on a tiny Wan model (CPU) and compare with stock.

argv: REPO_ROOT MODELS_DIR OUTPUT_DIR CASE. Cases: ``schemes`` (each scheme through KSampler vs stock bf16),
``lora`` (LoraLoaderModelOnly on bf16 and quantized, then unpatched), ``save`` (Save Quantized DiT → stock
UNETLoader), ``repeat`` (same file loaded twice, each sampled twice), ``assign`` (weights loaded with assign=True, as
the dynamic-VRAM patcher does), ``prefixed`` (the same files with every key under
``model.diffusion_model.``), ``fp8cast`` (a plain FP8 cast file vs stock), ``legacy`` (scaled_fp8 files on a model
with large activations vs stock), ``ctq`` (convert_to_quant's rowwise / blockwise files vs their dequantized
weights in stock), ``cfgbatch`` (cond + uncond in one model call vs the cond call alone, per scheme). Prints one
JSON line last.
"""

import json
import os
import sys

from comfy_boot import boot, cos, wan_sample

boot(sys.argv[1])

import folder_paths
import torch

import nodes

repo, models_dir, out_dir, case = sys.argv[1:5]
from comfyui_dit_quant.nodes.load_dit import LoadFP8DiT
from comfyui_dit_quant.nodes.save_dit import SaveQuantizedDiT

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)
folder_paths.add_model_folder_path("loras", models_dir, is_default=True)
folder_paths.set_output_directory(out_dir)
BF16 = "tiny_wan_bf16.safetensors"


def load(scheme: str = "auto", name: str = BF16, **kw):
    widgets = {"unet_name": name, "scheme": scheme, "block_size": "128x128", "preset": "family default",
               "ignored_layers": "", "compute_dtype": "auto", "backend": "auto", **kw}
    res = LoadFP8DiT.execute(**widgets)
    return res.args[0], res.ui.as_dict()["text"][0]


def stock(name: str = BF16):
    return nodes.UNETLoader().load_unet(name, "default")[0]


result: dict = {}
if case == "schemes":
    ref = wan_sample(stock())
    for label in ("auto", "fp8 per-tensor", "fp8 per-token x channel", "fp8 block", "fp8 weight-only (per-channel)",
                  "fp8 weight-only (block)", "int8 W8A8"):
        model, text = load(label, block_size="64x64")
        out = wan_sample(model)
        kinds = sorted({type(m).__name__ for m in model.model.diffusion_model.modules()
                        if getattr(m, "scheme", None) is not None})
        n_q = sum(getattr(m, "scheme", None) is not None for m in model.model.diffusion_model.modules())
        result[label] = {"cosine": cos(out, ref), "finite": bool(torch.isfinite(out).all()), "quantized": n_q,
                         "op_classes": kinds, "summary": text}
elif case == "lora":
    lora_name = sys.argv[5]
    res = {}
    for kind in ("bf16", "fp8 per-token x channel", "fp8 block", "int8 W8A8", "fp8 per-tensor"):
        model = stock() if kind == "bf16" else load(kind, block_size="64x64")[0]
        base = wan_sample(model)
        (patched,) = nodes.LoraLoaderModelOnly().load_lora_model_only(model, lora_name, 3.0)
        with_lora = wan_sample(patched)
        again = wan_sample(model)  # the LoRA clone was patched into the shared module, then unpatched
        res[kind] = (base, with_lora, again)
    b_base, b_lora, _ = res["bf16"]
    for kind, (base, with_lora, again) in res.items():
        result[kind] = {"lora_vs_bf16_lora": cos(with_lora, b_lora), "delta_cosine": cos(with_lora - base,
                        b_lora - b_base), "delta_norm_ratio": ((with_lora - base).norm() / (b_lora - b_base).norm())
                        .item(), "lora_changed": (with_lora - base).norm().item() / base.norm().item(),
                        "unpatched_identical": bool(torch.equal(again, base))}
elif case == "lowvram":
    from comfy.model_patcher import LowVramPatch

    lora_name = sys.argv[5]
    for kind in ("int8 W8A8", "fp8 block"):
        model = load(kind, block_size="64x64")[0]
        (patched,) = nodes.LoraLoaderModelOnly().load_lora_model_only(model, lora_name, 3.0)
        layer = patched.model.diffusion_model.blocks[0].ffn[0]
        x = torch.randn(4, 256, generator=torch.Generator().manual_seed(5))
        plain = layer(x)
        layer.weight_function = [LowVramPatch("diffusion_model.blocks.0.ffn.0.weight", patched.patches)]
        on_the_fly = layer(x)
        del layer.weight_function
        patched.patch_model()
        baked = layer(x)
        patched.unpatch_model()
        result[kind] = {"delta_cosine": cos(on_the_fly - plain, baked - plain),
                        "changed": ((baked - plain).norm() / plain.norm()).item(),
                        "restored_identical": bool(torch.equal(layer(x), plain))}
elif case == "save":
    # every scheme (and a non-square block, which no community name fits) -> Save Quantized DiT -> stock UNETLoader
    for i, (label, block) in enumerate([("fp8 per-tensor", "64x64"), ("int8 W8A8", "64x64"),
                                        ("fp8 per-token x channel", "64x64"), ("fp8 block", "64x64"),
                                        ("fp8 block", "32x64"), ("fp8 weight-only (per-channel)", "64x64"),
                                        ("fp8 weight-only (block)", "64x64")]):
        model, _ = load(label, block_size=block)
        ours = wan_sample(model)
        prefix = f"tiny_saved_{i}"
        ui = SaveQuantizedDiT.execute(model, f"diffusion_models/{prefix}", "auto").ui.as_dict()["text"][0]
        saved = [f for f in os.listdir(os.path.join(out_dir, "diffusion_models")) if f.startswith(prefix)]
        path = os.path.join(out_dir, "diffusion_models", saved[0])
        folder_paths.add_model_folder_path("diffusion_models", os.path.dirname(path))
        entry = {"text": ui, "file": saved[0]}
        try:
            st = stock(saved[0])
            entry["stock_cosine"] = cos(wan_sample(st), ours)
        except Exception as e:  # no stock format for the scheme: refused, naming the format
            entry["stock_error"] = f"{type(e).__name__}: {e}"[:300]
        again, _ = load(name=saved[0])
        entry["reload_identical"] = bool(torch.equal(wan_sample(again), ours))
        result[label if block == "64x64" else f"{label} {block}"] = entry
elif case == "repeat":
    outs = []
    for _ in range(2):
        model, _ = load("fp8 block", block_size="64x64")
        outs += [wan_sample(model), wan_sample(model)]
    result = {"identical": [bool(torch.equal(outs[0], o)) for o in outs[1:]]}
elif case == "assign":
    # The dynamic-VRAM patcher (NVIDIA) makes ComfyUI load weights with load_state_dict(assign=True); on a CPU
    # it is never used, so force that path for the load and compare with the ordinary load.
    import comfy.model_base
    import comfy.model_patcher

    seen: list[bool] = []
    real_load = comfy.model_base.BaseModel.load_model_weights

    def spy(self, sd, unet_prefix="", assign=False):
        seen.append(assign)
        return real_load(self, sd, unet_prefix, assign=assign)

    comfy.model_base.BaseModel.load_model_weights = spy
    for label in ("fp8 per-token x channel", "fp8 block", "int8 W8A8"):
        plain = wan_sample(load(label, block_size="64x64")[0])
        real = comfy.model_patcher.ModelPatcher.is_dynamic
        comfy.model_patcher.ModelPatcher.is_dynamic = lambda self: True
        try:
            model, _ = load(label, block_size="64x64")
        finally:
            comfy.model_patcher.ModelPatcher.is_dynamic = real
        result[label] = {"identical": bool(torch.equal(wan_sample(model), plain)), "assign": seen[-2:]}
elif case == "prefixed":
    # Files as checkpoint tools write them: every key under `model.diffusion_model.`; same tensors as the plain file.
    from safetensors.torch import load_file, save_file

    for name in sys.argv[5:]:
        src = os.path.join(models_dir, name)
        prefixed = "prefixed_" + name
        with open(src, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            meta = json.loads(f.read(header_len)).get("__metadata__")
        sd = load_file(src)
        save_file({"model.diffusion_model." + k: v for k, v in sd.items()}, os.path.join(models_dir, prefixed),
                  metadata=meta)
        entry = {}
        for label in ("fp8 per-token x channel", "fp8 block", "int8 W8A8"):
            try:
                ref = wan_sample(load(label, name=name, block_size="64x64")[0])
                model, text = load(label, name=prefixed, block_size="64x64")
                entry[label] = {"cosine": cos(wan_sample(model), ref), "summary": text}
            except Exception as e:
                entry[label] = {"error": f"{type(e).__name__}: {e}"[:300]}
        result[name] = entry
elif case == "fp8cast":
    # A plain FP8 cast file as Comfy-Org ships them (`*_fp8_e4m3fn`): block weights cast to FP8, no scales.
    from safetensors.torch import load_file, save_file

    sd = load_file(os.path.join(models_dir, BF16))
    save_file({k: v.to(torch.float8_e4m3fn) if v.dim() == 2 and k.startswith("blocks.") else v for k, v in sd.items()},
              os.path.join(models_dir, "tiny_wan_fp8_e4m3fn.safetensors"))
    cast = load_file(os.path.join(models_dir, "tiny_wan_fp8_e4m3fn.safetensors"))
    ref = wan_sample(stock("tiny_wan_fp8_e4m3fn.safetensors"))
    for label in ("fp8 per-tensor", "fp8 per-token x channel", "fp8 block", "fp8 weight-only (per-channel)",
                  "int8 W8A8"):
        model, text = load(label, name="tiny_wan_fp8_e4m3fn.safetensors", block_size="64x64")
        mods = {n: m for n, m in model.model.diffusion_model.named_modules()
                if n.startswith("blocks.") and getattr(m, "scheme", None) is not None}
        weights = [m.weight for m in mods.values()]
        same = [m.weight.dtype == torch.float8_e4m3fn and torch.equal(m.weight.view(torch.uint8),
                cast[f"{n}.weight"].view(torch.uint8)) and bool((m.weight_scale == 1).all()) for n, m in mods.items()]
        result[label] = {"cosine": cos(wan_sample(model), ref), "summary": text, "quantized": len(weights),
                         "one_byte": all(w.element_size() == 1 for w in weights),
                         "codes_kept": sum(same)}
elif case == "legacy":
    # Legacy scaled_fp8 files as older ComfyUI tools wrote them, on a Wan whose FFN hidden activations reach the
    # thousands (ffn.0 x300, ffn.2 / 300: the same function): scale_input 1.0 placeholders, and a 2-element marker.
    from safetensors.torch import load_file, save_file

    from comfyui_dit_quant.quant.schemes import FP8Tensor

    sd = load_file(os.path.join(models_dir, BF16))
    for k in [k for k in sd if k.endswith("ffn.0.weight") or k.endswith("ffn.0.bias")]:
        sd[k] = (sd[k].float() * 300).bfloat16()
    for k in [k for k in sd if k.endswith("ffn.2.weight")]:
        sd[k] = (sd[k].float() / 300).bfloat16()
    save_file(sd, os.path.join(models_dir, "tiny_wan_large_act_bf16.safetensors"))
    legacy = {k: v for k, v in sd.items() if not (k.startswith("blocks.") and v.dim() == 2)}
    for k in [k for k in sd if k.startswith("blocks.") and sd[k].dim() == 2]:
        stored = FP8Tensor().quantize(sd[k].float())
        layer = k[: -len(".weight")]
        legacy.update({k: stored["weight"], f"{layer}.scale_weight": stored["weight_scale"].reshape(1),
                       f"{layer}.scale_input": torch.ones(1)})
    peak: list[float] = []
    ref_model = stock("tiny_wan_large_act_bf16.safetensors")
    hook = ref_model.model.diffusion_model.blocks[0].ffn[2].register_forward_pre_hook(
        lambda m, args: peak.append(args[0].abs().max().item()))
    ref = wan_sample(ref_model)
    hook.remove()
    result["ffn2_input_peak"] = max(peak)
    for marker_name, marker in (("unit_scale_input", torch.empty(0, dtype=torch.float8_e4m3fn)),
                                ("two_element_marker", torch.zeros(2, dtype=torch.float8_e4m3fn))):
        name = f"tiny_wan_legacy_{marker_name}.safetensors"
        save_file({**legacy, "scaled_fp8": marker}, os.path.join(models_dir, name))
        theirs = wan_sample(stock(name))
        model, text = load(name=name)
        ours = wan_sample(model)
        result[marker_name] = {"vs_stock": cos(ours, theirs), "vs_bf16": cos(ours, ref),
                               "stock_vs_bf16": cos(theirs, ref), "summary": text}
elif case == "ctq":
    # Files laid out as silveroxides/convert_to_quant writes them (comfy_quant float8_e4m3fn_rowwise / _blockwise
    # markers, a dummy input_scale of 1.0, optionally the _quantization_metadata header) vs stock ComfyUI on a bf16
    # file holding the same dequantized weights (what convert_to_quant's own loader computes).
    from safetensors.torch import load_file, save_file

    from comfyui_dit_quant.quant.schemes import FP8Block, FP8Channel

    sd = load_file(os.path.join(models_dir, BF16))
    for fmt, scheme, extra in (("float8_e4m3fn_rowwise", FP8Channel(), {}),
                               ("float8_e4m3fn_blockwise", FP8Block("64x64"), {"group_size": 64})):
        config = {"format": fmt, **extra}
        quant, dequant, layers = dict(sd), dict(sd), {}
        for k in [k for k in sd if k.startswith("blocks.") and sd[k].dim() == 2]:
            layer, stored = k[: -len(".weight")], scheme.quantize(sd[k].float())
            dequant[k] = scheme.dequantize(stored["weight"], stored["weight_scale"]).bfloat16()
            quant.update({k: stored["weight"], f"{layer}.weight_scale": stored["weight_scale"],
                          f"{layer}.input_scale": torch.tensor(1.0),
                          f"{layer}.comfy_quant": torch.tensor(list(json.dumps(config).encode()), dtype=torch.uint8)})
            layers[layer] = config
        short = fmt.rsplit("_", 1)[1]
        save_file(dequant, os.path.join(models_dir, f"ctq_{short}_dequant.safetensors"))
        ref = wan_sample(stock(f"ctq_{short}_dequant.safetensors"))
        for variant, meta in (("markers", None), ("markers+header", {
                "_quantization_metadata": json.dumps({"format_version": "1.0", "layers": layers})})):
            name = f"ctq_{short}_{variant.replace('+', '_')}.safetensors"
            save_file(quant, os.path.join(models_dir, name), metadata=meta)
            model, text = load(name=name)
            weights = [m.weight for n, m in model.model.diffusion_model.named_modules()
                       if n.startswith("blocks.") and getattr(m, "scheme", None) is not None]
            entry = {"cosine": cos(wan_sample(model), ref), "summary": text, "quantized": len(weights),
                     "one_byte": all(w.element_size() == 1 for w in weights)}
            try:
                stock(name)
                entry["stock_error"] = None
            except Exception as e:
                entry["stock_error"] = f"{type(e).__name__}: {e}"[:300]
            result[f"{short} {variant}"] = entry
elif case == "cfgbatch":
    # ComfyUI batches cond and uncond into one model call; the cond half must not depend on the uncond half.
    import comfy.model_management as mm

    from comfy_boot import wan_cond

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 1, 8, 8, generator=gen)
    sigma = torch.tensor([0.7, 0.7])
    context = torch.cat([wan_cond(1)[0][0], 30 * wan_cond(2)[0][0]])  # uncond context 30x larger
    for label in ("bf16", "fp8 per-tensor", "fp8 per-token x channel", "fp8 block", "fp8 weight-only (per-channel)",
                  "fp8 weight-only (block)", "int8 W8A8"):
        model = stock() if label == "bf16" else load(label, block_size="64x64")[0]
        mm.load_models_gpu([model])
        with torch.no_grad():
            both = model.model.apply_model(x, sigma, c_crossattn=context).float()
            alone = model.model.apply_model(x[:1], sigma[:1], c_crossattn=context[:1]).float()
        result[label] = {"max_rel_diff": ((both[:1] - alone).abs().max() / alone.abs().max()).item()}
print(json.dumps(result))
