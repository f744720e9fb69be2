"""The example workflows as data, and the builder that writes them in ComfyUI's frontend format.

``python tests/workflow_specs.py`` rewrites ``example_workflows/*.json`` (and a labelled ``.jpg`` thumbnail each)
from the specs below and the node schemas in ``tests/data/object_info_snapshot.json``. Settings follow
ComfyUI's own templates (Comfy-Org/workflow_templates); file names are those of the Comfy-Org repackaged models.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow_graph import combo_options, input_specs, is_widget, sockets, widget_slots

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "example_workflows"
SNAPSHOT = Path(__file__).resolve().parent / "data" / "object_info_snapshot.json"

HF = "https://huggingface.co/Comfy-Org/{repo}/resolve/main/split_files/{folder}/{name}"
REPOS = {"wan2.2": "Wan_2.2_ComfyUI_Repackaged", "wan2.1": "Wan_2.1_ComfyUI_repackaged",
         "qwen": "Qwen-Image_ComfyUI", "qwen_edit": "Qwen-Image-Edit_ComfyUI",
         "hv15": "HunyuanVideo_1.5_repackaged"}
WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，"
                "最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，"
                "畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")


@dataclass
class N:
    """One node: widget values by input name, linked inputs as ``name: (source id, output index)``."""

    id: int
    type: str
    col: int
    row: float
    w: dict[str, Any] = field(default_factory=dict)
    i: dict[str, tuple[int, int]] = field(default_factory=dict)
    title: str | None = None
    model: tuple[str, str] | None = None  # (repo key, folder) for the frontend's missing-model download


@dataclass
class Workflow:
    name: str
    title: str
    note: str
    nodes: list[N]


def _model_entry(node: N, value: str) -> dict:
    repo, folder = node.model
    return {"name": value, "url": HF.format(repo=REPOS[repo], folder=folder, name=value), "directory": folder}


def build(wf: Workflow, info: dict[str, dict]) -> dict:
    """The frontend-format JSON of ``wf`` (positions on a grid; sizes roughly as the frontend draws them)."""
    links: list[list] = []
    out_links: dict[tuple[int, int], list[int]] = {}
    types = {n.id: n.type for n in wf.nodes}
    nodes = []
    for order, n in enumerate(wf.nodes):
        if n.type == "Note":
            nodes.append({"id": n.id, "type": "Note", "pos": [n.col * 380 - 420, n.row * 150], "size": [400, 560],
                          "flags": {}, "order": order, "mode": 0, "inputs": [], "outputs": [],
                          "title": n.title or "Files and folders", "properties": {}, "widgets_values": [wf.note],
                          "color": "#432", "bgcolor": "#653"})
            continue
        spec = info[n.type]
        inputs = []
        for name, kind in sockets(spec):
            entry: dict[str, Any] = {"name": name, "type": kind, "link": None}
            if name in spec["input"].get("optional", {}):
                entry["shape"] = 7
            inputs.append(entry)
        widget_kinds = {name: kind for name, kind, _ in input_specs(spec) if is_widget(kind)}
        for name in n.i:
            if name in widget_kinds:  # a widget driven by a link (e.g. TrimVideoLatent.trim_amount)
                kind = widget_kinds[name]
                inputs.append({"name": name, "type": "COMBO" if isinstance(kind, list) else kind,
                               "widget": {"name": name}, "link": None})
        for entry in inputs:
            if entry["name"] in n.i:
                src, slot = n.i[entry["name"]]
                link_id = len(links) + 1
                links.append([link_id, src, slot, n.id, inputs.index(entry), info[types[src]]["output"][slot]])
                entry["link"] = link_id
                out_links.setdefault((src, slot), []).append(link_id)
        values, models = [], []
        opts_of = {name: (kind, opts) for name, kind, opts in input_specs(spec)}
        for name, extra in widget_slots(spec):
            kind, opts = opts_of[name]
            if extra == "control":
                values.append(n.w.get("control_after_generate", "fixed"))
            elif extra == "upload":
                values.append("image")
            elif name in n.w:
                values.append(n.w[name])
                if n.model and opts.get("file_folder"):
                    models.append(_model_entry(n, n.w[name]))
            elif "default" in opts:
                values.append(opts["default"])
            else:
                options = combo_options(kind, opts)
                if not options:
                    raise ValueError(f"{wf.name}: node {n.id} ({n.type}) needs a value for {name}")
                values.append(options[0])
        multiline = sum(1 for name, _ in widget_slots(spec) if opts_of[name][1].get("multiline"))
        button = 28 if "ignored_layers" in opts_of else 0  # the web extension's "Pick layers..." button
        height = 50 + 24 * (len(values) + len(inputs)) + 96 * multiline + button
        node = {"id": n.id, "type": n.type, "pos": [n.col * 380, n.row * 150],
                "size": [340, height], "flags": {}, "order": order, "mode": 0,
                "inputs": inputs,
                "outputs": [{"name": name, "type": kind, "links": None}
                            for name, kind in zip(spec["output_name"], spec["output"], strict=True)],
                "properties": {"Node name for S&R": n.type, **({"models": models} if models else {})},
                "widgets_values": values}
        if n.title:
            node["title"] = n.title
        nodes.append(node)
    for node in nodes:
        for slot, out in enumerate(node["outputs"]):
            out["links"] = out_links.get((node["id"], slot), [])
    _stack_columns(nodes)
    return {"id": f"dit-quant-{wf.name}", "revision": 0, "last_node_id": max(n.id for n in wf.nodes),
            "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.7, "offset": [480, 80]}, "dit_quant": {"title": wf.title}}, "version": 0.4}


def _stack_columns(nodes: list[dict[str, Any]], gap: int = 40) -> None:
    """Move nodes down within their column so that none overlaps the one above it (row order is kept)."""
    bottom: dict[int, float] = {}
    for node in sorted(nodes, key=lambda nd: (nd["pos"][0], nd["pos"][1])):
        x, y = node["pos"]
        y = max(y, bottom.get(x, y - gap) + gap)
        node["pos"] = [x, y]
        bottom[x] = y + node["size"][1] + 30  # the title bar is drawn above pos
    return None


def files_note(title: str, files: dict[str, list[str]], text: str) -> str:
    """Note text: what the workflow shows, then the files and where they go under ComfyUI/models/."""
    lines = [title, "", text, "", "Files (Comfy-Org repackaged models) and where they go:", "", "ComfyUI/models/"]
    for folder, names in files.items():
        lines.append(f"  {folder}/")
        lines.extend(f"    {name}" for name in names)
    return "\n".join(lines)


def load_dit(id: int, row: float, name: str, repo: str, title: str | None = None, **w: Any) -> N:
    return N(id, "DiTQuantLoadFP8DiT", 0, row, {"unet_name": name, **w}, title=title, model=(repo, "diffusion_models"))


def clip_loader(id: int, row: float, name: str, type: str, repo: str) -> N:
    return N(id, "CLIPLoader", 0, row, {"clip_name": name, "type": type}, model=(repo, "text_encoders"))


def vae_loader(id: int, row: float, name: str, repo: str) -> N:
    return N(id, "VAELoader", 0, row, {"vae_name": name}, model=(repo, "vae"))


def encode(id: int, row: float, text: str, clip: int, negative: bool = False) -> N:
    title = "CLIP Text Encode (Negative Prompt)" if negative else "CLIP Text Encode (Positive Prompt)"
    return N(id, "CLIPTextEncode", 1, row, {"text": text}, {"clip": (clip, 0)}, title=title)


def video_out(first: int, col: int, latent: tuple[int, int], vae: int, fps: float, prefix: str) -> list[N]:
    return [N(first, "VAEDecode", col, 0, i={"samples": latent, "vae": (vae, 0)}),
            N(first + 1, "CreateVideo", col, 1, {"fps": fps}, {"images": (first, 0)}),
            N(first + 2, "SaveVideo", col, 2, {"filename_prefix": prefix}, {"video": (first + 1, 0)})]


def two_stage(high: int, low: int, pos: tuple[int, int], neg: tuple[int, int], latent: tuple[int, int],
              first: int) -> list[N]:
    """Wan 2.2 A14B: shift 8 on both experts, 20 steps, cfg 3.5, high noise for steps 0-10, low noise after."""
    common = {"steps": 20, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple"}
    return [
        N(first, "ModelSamplingSD3", 1, -1.2, {"shift": 8.0}, {"model": (high, 0)}),
        N(first + 1, "ModelSamplingSD3", 1, -0.6, {"shift": 8.0}, {"model": (low, 0)}),
        N(first + 2, "KSamplerAdvanced", 2, 0, {"add_noise": "enable", "noise_seed": 42,
                                                "control_after_generate": "randomize", **common, "start_at_step": 0,
                                                "end_at_step": 10, "return_with_leftover_noise": "enable"},
          {"model": (first, 0), "positive": pos, "negative": neg, "latent_image": latent},
          title="KSamplerAdvanced (high noise, steps 0-10)"),
        N(first + 3, "KSamplerAdvanced", 3, -1, {"add_noise": "disable", "noise_seed": 0, **common,
                                                 "start_at_step": 10, "end_at_step": 10000,
                                                 "return_with_leftover_noise": "disable"},
          {"model": (first + 1, 0), "positive": pos, "negative": neg, "latent_image": (first + 2, 0)},
          title="KSamplerAdvanced (low noise, steps 10-end)"),
    ]


UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
LOADER_TEXT = ("Load FP8 DiT quantizes the bf16/fp16 file while it loads (scheme auto picks per GPU: FP8 "
               "per-token x channel on Ada/Hopper, INT8 W8A8 on Ampere, FP8 weight-only elsewhere) and keeps the "
               "family preset's layers in bf16. 'Pick layers...' on the node lists the file's layers. Its "
               "summary (layers, GB before -> after, backend) shows on the node after a run.")


def wan22_a14b(kind: str) -> Workflow:
    i2v = kind == "i2v"
    high, low = f"wan2.2_{kind}_high_noise_14B_fp16.safetensors", f"wan2.2_{kind}_low_noise_14B_fp16.safetensors"
    prompt = ("The white dragon warrior stands still, eyes full of determination and strength. The camera slowly "
              "moves closer or circles around the warrior." if i2v else
              "A close-up of a young woman smiling gently in the rain, raindrops glistening on her face and "
              "eyelashes, soft light reflecting off her skin.")
    nodes = [
        N(1, "Note", 0, -4),
        load_dit(10, -1.6, high, "wan2.2", "Load FP8 DiT (high noise)"),
        load_dit(11, 0, low, "wan2.2", "Load FP8 DiT (low noise)"),
        clip_loader(12, 1.6, UMT5, "wan", "wan2.1"),
        vae_loader(13, 2.4, WAN_VAE, "wan2.2"),
        encode(14, 0.4, prompt, 12),
        encode(15, 1.6, WAN_NEGATIVE, 12, negative=True),
    ]
    if i2v:
        nodes += [N(16, "LoadImage", 0, 3.2, {"image": "example.png"}),
                  N(17, "WanImageToVideo", 1, 2.8, {"width": 640, "height": 640, "length": 81, "batch_size": 1},
                    {"positive": (14, 0), "negative": (15, 0), "vae": (13, 0), "start_image": (16, 0)})]
        pos, neg, latent = (17, 0), (17, 1), (17, 2)
    else:
        nodes.append(N(17, "EmptyHunyuanLatentVideo", 1, 2.8,
                       {"width": 1280, "height": 704, "length": 121, "batch_size": 1}))
        pos, neg, latent = (14, 0), (15, 0), (17, 0)
    nodes += two_stage(10, 11, pos, neg, latent, 20)
    nodes += video_out(30, 4, (23, 0), 13, 16.0, f"video/wan2.2_{kind}_fp8")
    label = "Image to Video" if i2v else "Text to Video"
    files = {"diffusion_models": [high, low], "text_encoders": [UMT5], "vae": [WAN_VAE]}
    text = (f"Wan 2.2 {label} A14B: two experts, each loaded with Load FP8 DiT. The high-noise expert samples "
            "steps 0-10, the low-noise expert the rest (two KSamplerAdvanced). " + LOADER_TEXT)
    if i2v:
        text += " Put your start image in ComfyUI/input (example.png is ComfyUI's sample image)."
    return Workflow(f"wan2.2_{kind}_a14b_fp8", f"Wan 2.2 {kind.upper()} A14B (FP8)",
                    files_note(f"Wan 2.2 {label} A14B, quantized at load", files, text), nodes)


def wan22_ti2v_5b(int8: bool = False) -> Workflow:
    unet, vae = "wan2.2_ti2v_5B_fp16.safetensors", "wan2.2_vae.safetensors"
    if int8:
        loader = [N(10, "UNETLoader", 0, 0, {"unet_name": unet, "weight_dtype": "default"},
                    model=("wan2.2", "diffusion_models")),
                  N(11, "DiTQuantInt8NPUQuantize", 1, -1.4, {"preset": "family default", "ignored_layers": "",
                                                             "min_layer_size": 16, "backend": "auto"},
                    {"model": (10, 0)})]
        model = 11
    else:
        loader, model = [load_dit(10, 0, unet, "wan2.2")], 10
    nodes = [
        N(1, "Note", 0, -4), *loader,
        clip_loader(12, 1.6, UMT5, "wan", "wan2.1"),
        vae_loader(13, 2.4, vae, "wan2.2"),
        N(18, "DiTQuantApplyFP8StorageVAE", 1, 3.6, {"granularity": "per-channel", "ignored_layers": "",
                                                    "keep_first_last": True},
          {"vae": (13, 0)}),
        encode(14, 0.2, "Low contrast. In a retro 1970s-style subway station, a street musician plays in dim "
                        "colors and rough textures.", 12),
        encode(15, 1.4, WAN_NEGATIVE, 12, negative=True),
        N(16, "Wan22ImageToVideoLatent", 1, 2.6, {"width": 1280, "height": 704, "length": 121, "batch_size": 1},
          {"vae": (18, 0)}),
        N(17, "ModelSamplingSD3", 2, -1, {"shift": 8.0}, {"model": (model, 0)}),
        N(20, "KSampler", 2, 0, {"seed": 42, "control_after_generate": "randomize", "steps": 20, "cfg": 5.0,
                                 "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0},
          {"model": (17, 0), "positive": (14, 0), "negative": (15, 0), "latent_image": (16, 0)}),
        *video_out(30, 3, (20, 0), 18, 24.0, "video/wan2.2_ti2v_5B_" + ("int8" if int8 else "fp8")),
    ]
    files = {"diffusion_models": [unet], "text_encoders": [UMT5], "vae": [vae]}
    if int8:
        text = ("INT8 NPU Quantize turns the loaded bf16 model into W8A8 INT8 (per-channel INT8 weights, "
                "per-token dynamic INT8 activations): Ascend NPUs (npu_quant_matmul), CUDA GPUs with INT8 tensor "
                "cores (RTX 30xx, A100) and CPUs. The input MODEL is left unchanged; LoRAs work before and after "
                "the node. The 1.4 GB Wan 2.2 VAE is stored in FP8 (bf16 compute).")
        return Workflow("int8_npu_quantize_wan2.2_ti2v_5b", "INT8 NPU Quantize (Wan 2.2 TI2V 5B)",
                        files_note("Wan 2.2 TI2V 5B in INT8 W8A8 (NPU / Ampere / CPU)", files, text), nodes)
    text = ("Wan 2.2 TI2V 5B text to video at 1280x704, 121 frames, 24 fps. " + LOADER_TEXT +
            " The 1.4 GB Wan 2.2 VAE is stored in FP8 (bf16 compute) by Apply FP8 Weight Storage to VAE.")
    return Workflow("wan2.2_ti2v_5b_fp8", "Wan 2.2 TI2V 5B (FP8)",
                    files_note("Wan 2.2 TI2V 5B, quantized at load", files, text), nodes)


def wan21_vace() -> Workflow:
    unet = "wan2.1_vace_14B_fp16.safetensors"
    nodes = [
        N(1, "Note", 0, -4),
        load_dit(10, 0, unet, "wan2.1"),
        clip_loader(12, 1.6, UMT5, "wan", "wan2.1"),
        vae_loader(13, 2.4, WAN_VAE, "wan2.2"),
        N(16, "LoadImage", 0, 3.2, {"image": "example.png"}, title="Reference image"),
        encode(14, 0.2, "A cute girl in a yellow raincoat walks through a flower field, the camera following her.",
               12),
        encode(15, 1.4, WAN_NEGATIVE, 12, negative=True),
        N(17, "WanVaceToVideo", 1, 2.6, {"width": 720, "height": 720, "length": 81, "batch_size": 1,
                                         "strength": 1.0},
          {"positive": (14, 0), "negative": (15, 0), "vae": (13, 0), "reference_image": (16, 0)}),
        N(18, "ModelSamplingSD3", 2, -1, {"shift": 8.0}, {"model": (10, 0)}),
        N(20, "KSampler", 2, 0, {"seed": 42, "control_after_generate": "randomize", "steps": 20, "cfg": 6.0,
                                 "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0},
          {"model": (18, 0), "positive": (17, 0), "negative": (17, 1), "latent_image": (17, 2)}),
        N(21, "TrimVideoLatent", 3, -1, {"trim_amount": 0}, {"samples": (20, 0), "trim_amount": (17, 3)}),
        *video_out(30, 4, (21, 0), 13, 16.0, "video/wan2.1_vace_fp8"),
    ]
    files = {"diffusion_models": [unet], "text_encoders": [UMT5], "vae": [WAN_VAE]}
    text = ("Wan 2.1 VACE 14B reference-to-video (connect control_video / control_masks on WanVaceToVideo for "
            "control or inpainting). The VACE blocks are quantized with the main blocks. " + LOADER_TEXT)
    return Workflow("wan2.1_vace_14b_fp8", "Wan 2.1 VACE 14B (FP8)",
                    files_note("Wan 2.1 VACE 14B, quantized at load", files, text), nodes)


QWEN_TE, QWEN_VAE = "qwen_2.5_vl_7b_fp8_scaled.safetensors", "qwen_image_vae.safetensors"


def qwen_image(edit: bool) -> Workflow:
    unet = "qwen_image_edit_bf16.safetensors" if edit else "qwen_image_bf16.safetensors"
    te = "qwen_2.5_vl_7b.safetensors" if edit else QWEN_TE
    repo = "qwen_edit" if edit else "qwen"
    nodes = [N(1, "Note", 0, -4), load_dit(10, 0, unet, repo), clip_loader(12, 1.6, te, "qwen_image", "qwen"),
             vae_loader(13, 2.4, QWEN_VAE, "qwen")]
    if edit:
        nodes += [
            N(19, "DiTQuantApplyFP8StorageCLIP", 1, 1.4, {"granularity": "per-channel", "ignored_layers": ""},
              {"clip": (12, 0)}),
            N(16, "LoadImage", 0, 3.2, {"image": "example.png"}),
            N(17, "ImageScaleToTotalPixels", 1, 3.4, {"upscale_method": "lanczos", "megapixels": 1.0},
              {"image": (16, 0)}),
            N(18, "VAEEncode", 2, 3.2, i={"pixels": (17, 0), "vae": (13, 0)}),
            N(14, "TextEncodeQwenImageEdit", 2, 0.8, {"prompt": "Replace the background with a snowy mountain "
                                                                "landscape, keep the subject unchanged."},
              {"clip": (19, 0), "vae": (13, 0), "image": (17, 0)}, title="Positive"),
            N(15, "TextEncodeQwenImageEdit", 2, 2.0, {"prompt": ""}, {"clip": (19, 0), "vae": (13, 0),
                                                                      "image": (17, 0)}, title="Negative"),
            N(21, "ModelSamplingAuraFlow", 1, -1.2, {"shift": 3.1}, {"model": (10, 0)}),
            N(22, "CFGNorm", 2, -1.2, {"strength": 1.0}, {"model": (21, 0)}),
        ]
        model, latent = 22, (18, 0)
    else:
        nodes += [
            encode(14, 0.2, "A cozy coffee shop at dusk, a chalkboard sign reading \"DiT Quant Cafe\", warm "
                            "light, photorealistic.", 12),
            encode(15, 1.4, "", 12, negative=True),
            N(16, "EmptySD3LatentImage", 1, 2.6, {"width": 1328, "height": 1328, "batch_size": 1}),
            N(21, "ModelSamplingAuraFlow", 2, -1, {"shift": 3.1}, {"model": (10, 0)}),
        ]
        model, latent = 21, (16, 0)
    nodes += [
        N(20, "KSampler", 3, 0, {"seed": 42, "control_after_generate": "randomize", "steps": 20, "cfg": 2.5,
                                 "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0},
          {"model": (model, 0), "positive": (14, 0), "negative": (15, 0), "latent_image": latent}),
        N(30, "VAEDecode", 4, 0, i={"samples": (20, 0), "vae": (13, 0)}),
        N(31, "SaveImage", 4, 1, {"filename_prefix": "qwen_image_edit_fp8" if edit else "qwen_image_fp8"},
          {"images": (30, 0)}),
    ]
    files = {"diffusion_models": [unet], "text_encoders": [te], "vae": [QWEN_VAE]}
    if edit:
        text = ("Qwen-Image-Edit: the input image (ComfyUI/input) is scaled to 1 megapixel and edited by the "
                "prompt. The bf16 Qwen2.5-VL 7B text encoder is stored in FP8 by Apply FP8 Weight Storage to CLIP "
                "(about 15 -> 8 GB, bf16 compute). " + LOADER_TEXT)
        return Workflow("qwen_image_edit_fp8", "Qwen-Image-Edit (FP8)",
                        files_note("Qwen-Image-Edit, quantized at load", files, text), nodes)
    text = "Qwen-Image text to image at 1328x1328, 20 steps, cfg 2.5, shift 3.1. " + LOADER_TEXT
    return Workflow("qwen_image_t2i_fp8", "Qwen-Image T2I (FP8)",
                    files_note("Qwen-Image text to image, quantized at load", files, text), nodes)


def hunyuan_video15() -> Workflow:
    unet, byt5 = "hunyuanvideo1.5_720p_t2v_fp16.safetensors", "byt5_small_glyphxl_fp16.safetensors"
    vae = "hunyuanvideo15_vae_fp16.safetensors"
    nodes = [
        N(1, "Note", 0, -4),
        load_dit(10, 0, unet, "hv15"),
        N(12, "DualCLIPLoader", 0, 1.6, {"clip_name1": QWEN_TE, "clip_name2": byt5, "type": "hunyuan_video_15"},
          model=("hv15", "text_encoders")),
        vae_loader(13, 2.6, vae, "hv15"),
        N(18, "DiTQuantApplyFP8StorageVAE", 1, 3.6, {"granularity": "per-channel", "ignored_layers": "",
                                                    "keep_first_last": True},
          {"vae": (13, 0)}),
        encode(14, 0.2, "A paper boat drifts down a rain-soaked city street at night, neon reflections rippling "
                        "in the water, cinematic.", 12),
        encode(15, 1.4, "", 12, negative=True),
        N(16, "EmptyHunyuanVideo15Latent", 1, 2.6, {"width": 1280, "height": 720, "length": 121, "batch_size": 1}),
        N(17, "ModelSamplingSD3", 2, -1.4, {"shift": 7.0}, {"model": (10, 0)}),
        N(19, "CFGGuider", 2, -0.6, {"cfg": 6.0}, {"model": (17, 0), "positive": (14, 0), "negative": (15, 0)}),
        N(21, "RandomNoise", 2, 0.4, {"noise_seed": 42, "control_after_generate": "randomize"}),
        N(22, "KSamplerSelect", 2, 1.2, {"sampler_name": "euler"}),
        N(23, "BasicScheduler", 2, 2.0, {"scheduler": "simple", "steps": 20, "denoise": 1.0}, {"model": (17, 0)}),
        N(20, "SamplerCustomAdvanced", 3, 0, i={"noise": (21, 0), "guider": (19, 0), "sampler": (22, 0),
                                                "sigmas": (23, 0), "latent_image": (16, 0)}),
        *video_out(30, 4, (20, 0), 18, 24.0, "video/hunyuanvideo1.5_fp8"),
    ]
    files = {"diffusion_models": [unet], "text_encoders": [QWEN_TE, byt5], "vae": [vae]}
    text = ("HunyuanVideo 1.5 720p text to video: 1280x720, 121 frames, 24 fps, 20 steps, cfg 6, shift 7. "
            + LOADER_TEXT + " The 2.5 GB VAE is stored in FP8 (bf16 compute).")
    return Workflow("hunyuan_video1.5_t2v_fp8", "HunyuanVideo 1.5 T2V (FP8)",
                    files_note("HunyuanVideo 1.5 720p T2V, quantized at load", files, text), nodes)


def modelopt() -> Workflow:
    export = "wan2.2_t2v_a14b_modelopt_fp8/"
    nodes = [
        N(1, "Note", 0, -4),
        N(10, "DiTQuantModelOptLoader", 0, -1.6, {"source": export, "component": "transformer"},
          title="ModelOpt Checkpoint Loader (high noise)"),
        N(11, "DiTQuantModelOptLoader", 0, 0, {"source": export, "component": "transformer_2"},
          title="ModelOpt Checkpoint Loader (low noise)"),
        clip_loader(12, 1.6, UMT5, "wan", "wan2.1"),
        vae_loader(13, 2.4, WAN_VAE, "wan2.2"),
        encode(14, 0.4, "A close-up of a young woman smiling gently in the rain, raindrops glistening on her "
                        "face and eyelashes, soft light reflecting off her skin.", 12),
        encode(15, 1.6, WAN_NEGATIVE, 12, negative=True),
        N(17, "EmptyHunyuanLatentVideo", 1, 2.8, {"width": 1280, "height": 704, "length": 121, "batch_size": 1}),
        *two_stage(10, 11, (14, 0), (15, 0), (17, 0), 20),
        *video_out(30, 4, (23, 0), 13, 16.0, "video/wan2.2_t2v_modelopt"),
    ]
    files = {"diffusion_models": [export + "transformer/", export + "transformer_2/"], "text_encoders": [UMT5],
             "vae": [WAN_VAE]}
    text = ("An NVIDIA ModelOpt FP8 export of the Wan 2.2 T2V A14B diffusers pipeline (a folder with "
            "transformer/ = high noise and transformer_2/ = low noise, each config.json + "
            "diffusion_pytorch_model*.safetensors), e.g. from `python -m comfyui_dit_quant calibrate`. Put the "
            "folder in models/diffusion_models and pick it in 'source' (rename the value to your folder). "
            "compute 'as exported' keeps ModelOpt's scales; 'block W8A8' runs 128x128 block FP8.")
    return Workflow("modelopt_wan2.2_t2v_a14b", "ModelOpt FP8 export (Wan 2.2 T2V A14B)",
                    files_note("ModelOpt FP8 export, two-stage Wan 2.2", files, text), nodes)


def workflows() -> list[Workflow]:
    return [wan22_a14b("t2v"), wan22_a14b("i2v"), wan22_ti2v_5b(), wan21_vace(), qwen_image(False),
            qwen_image(True), hunyuan_video15(), modelopt(), wan22_ti2v_5b(int8=True)]


def node_types() -> set[str]:
    return {n.type for wf in workflows() for n in wf.nodes if n.type != "Note"}


def thumbnail(title: str, path: Path) -> None:
    """A small labelled JPEG (the template browser shows it next to the workflow)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (512, 384), (24, 28, 38))
    draw = ImageDraw.Draw(img)
    try:
        big, small = ImageFont.load_default(size=34), ImageFont.load_default(size=20)
    except TypeError:  # Pillow < 10.1
        big = small = ImageFont.load_default()
    draw.rectangle([0, 0, 512, 8], fill=(80, 160, 255))
    words, lines = title.split(), [""]
    for word in words:
        if len(lines[-1]) + len(word) + 1 > 20:
            lines.append(word)
        else:
            lines[-1] = (lines[-1] + " " + word).strip()
    for k, line in enumerate(lines):
        draw.text((32, 110 + 44 * k), line, fill=(235, 240, 250), font=big)
    draw.text((32, 330), "comfyui-dit-quant", fill=(130, 170, 230), font=small)
    img.save(path, "JPEG", quality=85)


def main() -> None:
    info = json.loads(SNAPSHOT.read_text())
    OUT_DIR.mkdir(exist_ok=True)
    for wf in workflows():
        data = build(wf, info)
        (OUT_DIR / f"{wf.name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        thumbnail(wf.title, OUT_DIR / f"{wf.name}.jpg")
        print(f"wrote {wf.name}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
