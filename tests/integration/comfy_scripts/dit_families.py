"""Under ComfyUI's Python: Load FP8 DiT on tiny Wan 2.2 TI2V-5B / Qwen-Image / HunyuanVideo 1.5 models (CPU).

argv: REPO_ROOT MODELS_DIR OUTPUT_DIR CASE[,CASE...] (one process for several cases saves ComfyUI's start-up).
Cases: ``build`` (write the tiny bf16 files, check ComfyUI detects the right class), ``schemes:FAMILY`` (each
scheme through KSampler vs stock UNETLoader bf16), ``hv_renames`` (a HunyuanVideo 1.5 file in tencent names:
quantize at load, save, reload, a pre-quantized file), ``qwen_native`` (fp8 per-tensor Qwen-Image saved in
ComfyUI's format, modulation layers weight-only, run by stock UNETLoader), ``widgets`` (compute_dtype, backend,
preset, ignored_layers). Prints one JSON line last: case → result.
"""

import gc
import json
import os
import sys

from comfy_boot import boot, cos

boot(sys.argv[1])

import comfy.model_management as mm
import folder_paths
import torch

import nodes

repo, models_dir, out_dir, case = sys.argv[1:5]
import tiny_models
from comfyui_dit_quant.nodes.load_dit import LoadFP8DiT
from comfyui_dit_quant.nodes.save_dit import SaveQuantizedDiT
from comfyui_dit_quant.quant.formats.safetensors_io import SafetensorsWriter, atomic_output

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)
folder_paths.set_output_directory(out_dir)
FILES = {"wan22_5b": "tiny_wan22_5b_bf16.safetensors", "qwen_image": "tiny_qwen_image_bf16.safetensors",
         "hunyuan_video15": "tiny_hv15_bf16.safetensors"}
TENCENT = "tiny_hv15_tencent_bf16.safetensors"
# latent (as the family's EmptyLatent node makes it) and text-conditioning width
INPUTS = {"wan22_5b": ((1, 48, 1, 8, 8), 4096), "qwen_image": ((1, 16, 8, 8), 3584),
          "hunyuan_video15": ((1, 32, 1, 4, 4), 3584)}
SCHEMES = ("auto", "fp8 per-tensor", "fp8 per-token x channel", "fp8 block", "fp8 weight-only (per-channel)",
           "fp8 weight-only (block)", "int8 W8A8")


def write(path: str, shapes: dict, rename=lambda k: k) -> None:
    gen = torch.Generator().manual_seed(11)
    names = sorted(shapes)
    with atomic_output(path) as f:
        w = SafetensorsWriter(f, [(rename(n), torch.bfloat16, shapes[n]) for n in names])
        for n in names:
            w.write(rename(n), tiny_models.random_tensor(n, shapes[n], gen).to(torch.bfloat16))
        w.close()


# Qwen-Image is full width (ComfyUI fixes it): cfg 1 (one model call per step) and no "auto" (on CPU it is the
# per-channel weight-only scheme) keep its run short
CFG = {"wan22_5b": 2.0, "qwen_image": 1.0, "hunyuan_video15": 2.0}


def cond(seed: int, width: int) -> list:
    return [[torch.randn(1, 8, width, generator=torch.Generator().manual_seed(seed)), {"pooled_output": None}]]


def sample(model, family: str) -> torch.Tensor:
    shape, width = INPUTS[family]
    latent = {"samples": torch.zeros(shape)}
    (out,) = nodes.common_ksampler(model, 7, 2, CFG[family], "euler", "simple", cond(1, width), cond(2, width), latent)
    return out["samples"].float().flatten()


def load(name: str, scheme: str = "auto", **kw):
    widgets = {"unet_name": name, "scheme": scheme, "block_size": "64x64", "preset": "family default",
               "ignored_layers": "", "compute_dtype": "auto", "backend": "auto", **kw}
    res = LoadFP8DiT.execute(**widgets)
    return res.args[0], res.ui.as_dict()["text"][0]


def quantized_modules(model) -> dict:
    return {n: m for n, m in model.model.diffusion_model.named_modules() if getattr(m, "scheme", None) is not None}


def release() -> None:
    mm.unload_all_models()
    gc.collect()


def build() -> dict:
    result = {}
    for family, name in FILES.items():
        shapes = tiny_models.meta_shapes(family)
        write(os.path.join(models_dir, name), shapes)
        result[family] = {"class": tiny_models.detected_class(shapes), "keys": len(shapes)}
    shapes = tiny_models.meta_shapes("hunyuan_video15")
    write(os.path.join(models_dir, TENCENT), shapes, tiny_models.to_tencent)
    tencent = {tiny_models.to_tencent(k): s for k, s in shapes.items()}
    result["hv15_tencent"] = {"class": tiny_models.detected_class(tencent),
                              "renamed": sum(k not in shapes for k in tencent)}
    return result


def schemes(family: str) -> dict:
    stock = nodes.UNETLoader().load_unet(FILES[family], "default")[0]
    ref, cls = sample(stock, family), type(stock.model.model_config).__name__
    # the text conditioning visibly steers the result: the comparisons below are not of near-constant outputs
    shape, width = INPUTS[family]
    (swapped,) = nodes.common_ksampler(stock, 7, 2, CFG[family], "euler", "simple", cond(3, width), cond(2, width),
                                       {"samples": torch.zeros(shape)})
    result = {"_stock": {"other_prompt_cosine": cos(swapped["samples"].float(), ref)}}
    del stock
    release()
    # ComfyUI's own fp8 path: UNETLoader weight_dtype fp8_e4m3fn (weights cast without a scale; on CPU the _fast
    # variant computes the same way)
    stock_fp8 = nodes.UNETLoader().load_unet(FILES[family], "fp8_e4m3fn")[0]
    result["_stock"]["fp8_e4m3fn_cosine"] = cos(sample(stock_fp8, family), ref)
    del stock_fp8
    release()
    for label in SCHEMES[1:] if family == "qwen_image" else SCHEMES:
        model, text = load(FILES[family], label)
        out = sample(model, family)
        result[label] = {"cosine": cos(out, ref), "finite": bool(torch.isfinite(out).all()), "summary": text,
                         "quantized": len(quantized_modules(model)), "class": cls,
                         "ours_class": type(model.model.model_config).__name__}
        del model
        release()
    return result


def hv_renames() -> dict:
    from comfyui_dit_quant.quant.convert import convert_file
    from comfyui_dit_quant.quant.formats.io import read_checkpoint
    from comfyui_dit_quant.quant.schemes import get_scheme

    fam, result = "hunyuan_video15", {}
    ref = sample(nodes.UNETLoader().load_unet(TENCENT, "default")[0], fam)
    native_ref = sample(nodes.UNETLoader().load_unet(FILES[fam], "default")[0], fam)
    model, text = load(TENCENT, "fp8 block")
    mods, out = quantized_modules(model), sample(model, fam)
    result["at_load"] = {"cosine": cos(out, ref), "stock_tencent_vs_native": cos(ref, native_ref), "summary": text,
                         "layers": sorted(mods)}
    SaveQuantizedDiT.execute(model, "diffusion_models/hv15_tencent_saved", "auto")
    saved_dir = os.path.join(out_dir, "diffusion_models")
    saved = sorted(f for f in os.listdir(saved_dir) if f.startswith("hv15_tencent"))[-1]
    folder_paths.add_model_folder_path("diffusion_models", saved_dir)
    again, text2 = load(saved)
    result["saved"] = {"layers": sorted(read_checkpoint(os.path.join(saved_dir, saved)).layers), "summary": text2,
                       "reload_identical": bool(torch.equal(sample(again, fam), out)),
                       "reload_layers": sorted(quantized_modules(again))}
    pre = os.path.join(models_dir, "tiny_hv15_tencent_fp8block.safetensors")
    convert_file(os.path.join(models_dir, TENCENT), pre, get_scheme("fp8_block", block_size="64x64"))
    pre_model, text3 = load(os.path.basename(pre))
    result["prequantized"] = {"file_layers": sorted(read_checkpoint(pre).layers), "summary": text3,
                              "layers": sorted(quantized_modules(pre_model)),
                              "identical_to_at_load": bool(torch.equal(sample(pre_model, fam), out))}
    return result


def qwen_native() -> dict:
    """fp8 per-tensor Qwen-Image: the default preset stores the modulation layers weight-only, Save Quantized DiT
    writes ComfyUI's native format (those as float8_e4m3fn + full_precision_matrix_mult), stock UNETLoader runs it."""
    from comfyui_dit_quant.quant.formats import comfy_native
    from comfyui_dit_quant.quant.formats.safetensors_io import read_header, read_tensor

    fam = "qwen_image"
    ref = sample(nodes.UNETLoader().load_unet(FILES[fam], "default")[0], fam)
    model, text = load(FILES[fam], "fp8 per-tensor")
    out = sample(model, fam)
    save_text = SaveQuantizedDiT.execute(model, "diffusion_models/qwen_native_saved", "auto").ui.as_dict()["text"][0]
    del model
    release()
    saved_dir = os.path.join(out_dir, "diffusion_models")
    path = os.path.join(saved_dir, sorted(f for f in os.listdir(saved_dir) if f.startswith("qwen_native"))[-1])
    header = read_header(path)
    with open(path, "rb") as f:
        configs = {k.removesuffix(".comfy_quant"): comfy_native.decode_config(read_tensor(f, header, k))
                   for k in header.tensors if k.endswith(".comfy_quant")}
    folder_paths.add_model_folder_path("diffusion_models", saved_dir)
    stock = nodes.UNETLoader().load_unet(os.path.basename(path), "default")[0]
    full_precision = {n: bool(m._full_precision_mm_config) for n, m in stock.model.diffusion_model.named_modules()
                      if getattr(m, "quant_format", None)}
    stock_out = sample(stock, fam)
    return {"summary": text, "save": save_text, "configs": configs, "stock_full_precision": full_precision,
            "ours_vs_bf16": cos(out, ref), "stock_vs_bf16": cos(stock_out, ref), "stock_vs_ours": cos(stock_out, out)}


def widgets() -> dict:
    """Every Load FP8 DiT widget value that changes something, on the tiny Wan 2.2 TI2V-5B model."""
    fam, name, result = "wan22_5b", FILES["wan22_5b"], {}
    ref = sample(nodes.UNETLoader().load_unet(name, "default")[0], fam)
    runs = {f"compute_dtype={d}": {"compute_dtype": d} for d in ("auto", "bf16", "fp16", "fp32")}
    runs |= {f"backend={b}": {"backend": b} for b in ("cublas", "torch", "triton", "eager")}
    runs |= {f"preset={p}": {"preset": p} for p in ("none", "quality")}
    runs["ignored_layers"] = {"ignored_layers": "# keep the first FFN\nblocks.0.ffn.*, re:cross_attn\\.o$"}
    for key, kw in runs.items():
        model, text = load(name, kw.pop("scheme", "int8 W8A8"), **kw)
        out = sample(model, fam)
        dm = model.model.diffusion_model
        result[key] = {"summary": text, "cosine": cos(out, ref), "finite": bool(torch.isfinite(out).all()),
                       "quantized": sorted(quantized_modules(model)),
                       "kept_dtype": str(dm.blocks[0].norm3.weight.dtype).removeprefix("torch."),
                       "manual_cast": str(model.model.manual_cast_dtype), "backends": sorted(
                           {m.quant_backend for m in quantized_modules(model).values()})}
        del model
        release()
    # Qwen-Image leaves fp16 out of its inference dtypes (it overflows): the loader falls back and says so
    model, text = load(FILES["qwen_image"], "fp8 weight-only (per-channel)", compute_dtype="fp16")
    result["qwen_image compute_dtype=fp16"] = {
        "summary": text, "img_in_dtype": str(model.model.diffusion_model.img_in.weight.dtype).removeprefix("torch."),
        "model_dtype": str(model.model.get_dtype()).removeprefix("torch.")}
    del model
    release()
    result["t4_picks"] = t4_picks()
    return result


def t4_picks() -> dict:
    """compute_dtype on a GPU with fp16 but no bf16 (a T4, as ComfyUI's should_use_* see it): family -> choice ->
    [dtype, note]."""
    from unittest import mock

    import comfy.utils

    from comfyui_dit_quant.nodes.load_common import compute_dtype_for

    out = {}
    with mock.patch.object(mm, "should_use_bf16", lambda *a, **k: False), \
            mock.patch.object(mm, "should_use_fp16", lambda *a, **k: True):
        for family, name in FILES.items():
            sd = comfy.utils.load_torch_file(os.path.join(models_dir, name))
            out[family] = {c: (lambda d, n: [str(d).removeprefix("torch."), n])(*compute_dtype_for(c, sd, "cuda"))
                           for c in ("auto", "bf16", "fp16")}
    return out


CASES = {"build": build, "hv_renames": hv_renames, "qwen_native": qwen_native, "widgets": widgets}
result = {}
for part in case.split(","):
    kind, _, arg = part.partition(":")
    result[part] = CASES[kind]() if kind != "schemes" else schemes(arg)
print(json.dumps(result))
