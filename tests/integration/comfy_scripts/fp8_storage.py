"""Under ComfyUI's Python: the FP8 weight storage nodes on a real comfy.sd.VAE (tiny Wan 2.1 VAE, random weights;
TAESD for Flux.2 with its real trained weights) and a real comfy.sd.CLIP (CLIP-L architecture, random weights;
all-MiniLM-L6-v2's real trained weights in ComfyUI's BERT text encoder), CPU, in-process.

argv: REPO_ROOT CASE. Cases: ``vae`` (decode / encode vs the plain VAE, input untouched, twice == once, with and
without keep_first_last), ``vae_real`` (taef2 from ``tests/data/taef2`` through ComfyUI's own VAELoader /
VAEEncode / VAEDecode, fp32 and bf16: decode / encode of a real photo vs the plain VAE, cosine and pixel PSNR, with
the node's default (first / last layer of encoder and decoder kept) and with every layer in FP8, and the encoder
layers that carry the error), ``first_last`` (the layers keep_first_last keeps vs the first / last layer each
part of ComfyUI's TAESD, Wan 2.1, Wan 2.2 and KL VAEs actually runs in encode / decode), ``clip`` (encode vs
plain, input untouched, twice == once, LoRA after / before the node, low-VRAM LoRA), ``clip_real MODEL_DIR``
(all-MiniLM-L6-v2's real trained weights in ComfyUI's BERT text encoder: encode vs plain, fp32 and bf16, and
ComfyUI's own unscaled fp8 text encoder for comparison). Prints one JSON line last.
"""

import json
import sys

from comfy_boot import boot

boot(sys.argv[1])

import comfy.ldm.wan.vae
import comfy.lora
import comfy.sd
import comfy.utils
import torch
from comfy import sd1_clip

repo, case = sys.argv[1:3]
from comfyui_dit_quant.nodes.fp8_storage import ApplyFP8StorageCLIP, ApplyFP8StorageVAE

FP8 = torch.float8_e4m3fn


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def random_state_dict(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights with fan-in scaling (norm gains 1), so deep random nets stay in range."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in module.state_dict().items():
        if not v.is_floating_point():
            sd[k] = v.clone()
        elif k.endswith("gamma") or ("norm" in k and k.endswith("weight")) or "layer_norm" in k:
            sd[k] = torch.ones(v.shape) if k.endswith(("gamma", "weight")) else torch.zeros(v.shape)
        elif v.dim() >= 2:
            fan_in = v[0].numel()
            sd[k] = torch.randn(v.shape, generator=gen) / fan_in ** 0.5
        else:
            sd[k] = torch.randn(v.shape, generator=gen) * 0.02
    return sd


def snapshot(module: torch.nn.Module) -> dict:
    return {k: (v.detach().clone(), v.dtype, v.data_ptr()) for k, v in module.state_dict().items()}


def unchanged(before: dict, module: torch.nn.Module) -> bool:
    after = snapshot(module)
    return before.keys() == after.keys() and all(
        t.dtype == after[k][1] and p == after[k][2] and torch.equal(t.float(), after[k][0].float())
        for k, (t, _, p) in before.items())


def fp8_layers(module: torch.nn.Module) -> int:
    return sum(1 for m in module.modules() if getattr(m, "weight", None) is not None and m.weight.dtype == FP8)


def apply(node, obj, granularity: str = "per-channel", ignored: str = "", keep_first_last: bool | None = None):
    """The node as ComfyUI runs it; ``keep_first_last`` None: the widget's default (VAE node only)."""
    kw = {} if keep_first_last is None else {"keep_first_last": keep_first_last}
    res = node.execute(obj, granularity, ignored, **kw)
    return res.args[0], res.ui.as_dict()["text"][0]


def called_first_last(root: torch.nn.Module, *runs) -> dict[str, str]:
    """{layer: "first" / "last" / "only"}: the first and last weighted layer each top-level part of ``root`` runs,
    recorded by forward hooks while ``runs`` (callables) execute. Parts as ``quant.storage.first_last_layers``."""
    order: list[str] = []
    weighted = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: order.append(name))
             for name, m in root.named_modules() if isinstance(m, weighted)]
    try:
        with torch.no_grad():
            for run in runs:
                run()
    finally:
        for h in hooks:
            h.remove()
    parts: dict[str, list[str]] = {}
    for name in order:
        parts.setdefault(name.split(".")[0], []).append(name)
    out = {}
    for seq in parts.values():
        if seq[0] == seq[-1] and len(set(seq)) == 1:
            out[seq[0]] = "only"
        else:
            out[seq[0]], out[seq[-1]] = "first", "last"
    return out


def rule(root: torch.nn.Module) -> dict[str, str]:
    from comfyui_dit_quant.quant.storage import first_last_layers

    return {k: v.split(" ")[0] for k, v in first_last_layers(root).items()}


PROMPTS = ("a photograph of an astronaut riding a horse on the moon",
           "A cinematic shot of a red fox running through fresh snow at dawn, shallow depth of field",
           "an old lighthouse on a rocky coast during a storm, waves crashing, dramatic clouds",
           "close-up of a bowl of ramen with a soft-boiled egg, steam rising, warm light")


def minilm_clip(model_dir: str, dtype: torch.dtype) -> comfy.sd.CLIP:
    """all-MiniLM-L6-v2 (trained BERT, 6 layers x 384) as a ComfyUI CLIP: ComfyUI's own BERT text encoder
    (comfy.text_encoders.bert, as HunyuanDiT's CLIP uses it) and SD tokenizer wrapper with the model's vocab."""
    import os

    from comfy.text_encoders.bert import BertModel
    from transformers import BertTokenizer

    class MiniLM(sd1_clip.SDClipModel):
        def __init__(self, device="cpu", layer="last", layer_idx=None, dtype=None, model_options=None):
            super().__init__(device=device, layer=layer, layer_idx=layer_idx, dtype=dtype, model_class=BertModel,
                             textmodel_json_config=os.path.join(model_dir, "config.json"),
                             special_tokens={"start": 101, "end": 102, "pad": 0}, enable_attention_masks=True,
                             return_attention_masks=True, model_options=model_options or {})

    class MiniLMTokenizer(sd1_clip.SDTokenizer):
        def __init__(self, embedding_directory=None, tokenizer_data=None):
            super().__init__(model_dir, pad_with_end=False, embedding_size=384, embedding_key="minilm",
                             tokenizer_class=BertTokenizer, pad_to_max_length=False, max_length=512, min_length=1,
                             tokenizer_data=tokenizer_data or {})

    class Target:
        params = {}
        clip = lambda **kw: sd1_clip.SD1ClipModel(clip_name="minilm", clip_model=MiniLM, **kw)
        tokenizer = lambda **kw: sd1_clip.SD1Tokenizer(clip_name="minilm", tokenizer=MiniLMTokenizer, **kw)

    sd = comfy.utils.load_torch_file(os.path.join(model_dir, "model.safetensors"))
    sd = {f"bert.{k}": v for k, v in sd.items() if not k.startswith("pooler.")}
    clip = comfy.sd.CLIP(Target, model_options={"dtype": dtype}, parameters=comfy.utils.calculate_parameters(sd))
    missing, unexpected = clip.load_sd(sd)
    assert not missing and set(unexpected) <= {"bert.embeddings.position_ids"}, (missing, unexpected)
    return clip


def clip_real(model_dir: str) -> dict:
    """FP8 storage on a text encoder with real trained weights (all-MiniLM-L6-v2 in ComfyUI's BERT), fp32 and bf16:
    the token hidden states (what a DiT cross-attends to) and the mean-pooled sentence embeddings vs the plain
    encoder, per granularity, all layers and with the last block kept; the pairwise sentence similarities the plain
    encoder gives, kept; and ComfyUI's own fp8 text encoder (weights cast to float8_e4m3fn, no scale) for scale."""
    out: dict = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        clip = minilm_clip(model_dir, dtype)
        tokens = [clip.tokenize(p) for p in PROMPTS]

        def encode(c, tokens=tokens) -> list[torch.Tensor]:
            return [c.encode_from_tokens(t).float()[0] for t in tokens]

        def similarity(states: list[torch.Tensor]) -> torch.Tensor:
            pooled = torch.nn.functional.normalize(torch.stack([s.mean(0) for s in states]).double(), dim=-1)
            return pooled @ pooled.T

        def measure(got: list[torch.Tensor], ref: list[torch.Tensor]) -> dict:
            pairs = list(zip(got, ref, strict=True))
            return {"cosine": cos(torch.cat(got), torch.cat(ref)),
                    "min_prompt_cosine": min(cos(a, b) for a, b in pairs),
                    "pooled_cosine": min(cos(a.mean(0), b.mean(0)) for a, b in pairs),
                    "similarity_max_diff": (similarity(got) - similarity(ref)).abs().max().item(),
                    "finite": all(bool(torch.isfinite(g).all()) for g in got)}

        ref = encode(clip)
        layer0 = clip.cond_stage_model.clip_minilm.transformer.bert.encoder.layer[0].intermediate.dense
        r = {"te_dtype": str(layer0.weight.dtype), "tokens": [len(s) for s in ref],
             "size_before": clip.patcher.model_size(), "plain_similarity": similarity(ref).tolist()}
        for gran in ("per-channel", "per-tensor"):
            for kept, ignored in (("", ""), ("-last-block-kept", "re:encoder\\.layer\\.5\\.")):
                new, text = apply(ApplyFP8StorageCLIP, clip, gran, ignored)
                r[gran + kept] = {**measure(encode(new), ref), "fp8_layers": fp8_layers(new.cond_stage_model),
                                  "size_after": new.patcher.model_size(), "text": text}
                del new
        comfy_fp8 = minilm_clip(model_dir, torch.float8_e4m3fn)
        layer0 = comfy_fp8.cond_stage_model.clip_minilm.transformer.bert.encoder.layer[0].intermediate.dense
        r["comfy_fp8_e4m3fn"] = {**measure(encode(comfy_fp8), ref), "weight_dtype": str(layer0.weight.dtype)}
        # the node on a text encoder ComfyUI already loaded in fp8: those layers are left as they are, said so
        again, text = apply(ApplyFP8StorageCLIP, comfy_fp8)
        r["node_on_comfy_fp8"] = {"text": text, "identical": all(
            torch.equal(a, b) for a, b in zip(encode(again), encode(comfy_fp8), strict=True))}
        out[label] = r
    return out


result: dict = {}
if case == "vae":
    # Wan 2.1 VAE, scaled down: ComfyUI reads dim from decoder.head.0.gamma (real: 96)
    cfg = {"dim": 16, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
           "temperal_downsample": [False, True, True], "image_channels": 3, "conv_out_channels": 3, "dropout": 0.0}
    sd = random_state_dict(comfy.ldm.wan.vae.WanVAE(**cfg), seed=0)
    vae = comfy.sd.VAE(sd=sd)
    result["vae_class"] = type(vae.first_stage_model).__module__ + "." + type(vae.first_stage_model).__name__
    latent = torch.randn(1, 16, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    image = torch.rand(1, 5, 32, 32, 3, generator=torch.Generator().manual_seed(2))[0]
    ref_dec, ref_enc = vae.decode(latent), vae.encode(image)
    before = snapshot(vae.first_stage_model)
    fsm, patcher = vae.first_stage_model, vae.patcher
    for label, keep in (("per-channel", None), ("per-tensor", None), ("per-channel-all", False),
                        ("per-tensor-all", False)):
        new, text = apply(ApplyFP8StorageVAE, vae, label.removesuffix("-all"), "", keep)
        dec, enc = new.decode(latent), new.encode(image)
        twice, text2 = apply(ApplyFP8StorageVAE, new, label.removesuffix("-all"), "", keep)
        result[label] = {
            "decode_cosine": cos(dec, ref_dec), "encode_cosine": cos(enc, ref_enc),
            "finite": bool(torch.isfinite(dec).all()), "fp8_layers": fp8_layers(new.first_stage_model),
            "size_before": vae.patcher.model_size(), "size_after": new.patcher.model_size(),
            "twice_identical": bool(torch.equal(twice.decode(latent), dec)), "text": text, "text_twice": text2,
            "new_objects": new is not vae and new.first_stage_model is not fsm and new.patcher is not patcher,
        }
    result["input_unchanged"] = (unchanged(before, vae.first_stage_model) and vae.first_stage_model is fsm
                                 and vae.patcher is patcher and torch.equal(vae.decode(latent), ref_dec)
                                 and fp8_layers(vae.first_stage_model) == 0)
    result["ignored"] = apply(ApplyFP8StorageVAE, vae, "per-channel", "decoder.head, re:^encoder\\.", False)[1]
    result["ignored_keep_first_last"] = apply(ApplyFP8StorageVAE, vae, "per-channel", "decoder.head, re:^encoder\\.")[1]
    # keep_first_last after an all-layers pass: those layers are already FP8 and stay so (nothing to undo)
    all_fp8, _ = apply(ApplyFP8StorageVAE, vae, "per-channel", "", False)
    result["all_then_default"] = apply(ApplyFP8StorageVAE, all_fp8, "per-channel")[1]
elif case == "vae_real":
    # TAESD for Flux.2 (madebyollin/taesd, MIT), trained weights, loaded the way a user does: VAELoader "taef2"
    # reads taef2_encoder.* / taef2_decoder.* from the vae_approx folder (here only tests/data/taef2).
    import os
    import re

    import folder_paths
    import nodes
    import numpy as np
    from comfy.cli_args import args
    from PIL import Image

    data = os.path.join(repo, "tests", "data", "taef2")
    folder_paths.folder_names_and_paths["vae_approx"] = ([data], folder_paths.supported_pt_extensions)
    result["vae_list"] = nodes.VAELoader.vae_list(nodes.VAELoader)
    # a real photo (128x128 crop of the taesd README's example), as LoadImage gives it: [1, H, W, 3] in [0, 1]
    photo = np.array(Image.open(os.path.join(data, "dog_128.png")).convert("RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(photo)[None]

    def psnr(a: torch.Tensor, b: torch.Tensor) -> float:  # decoded images are in [0, 1]
        return (10 * torch.log10(1 / (a.double() - b.double()).pow(2).mean())).item()

    def encode(v, pixels: torch.Tensor) -> torch.Tensor:
        return nodes.VAEEncode().encode(v, pixels)[0]["samples"]

    def decode(v, latent: torch.Tensor) -> torch.Tensor:
        return nodes.VAEDecode().decode(v, {"samples": latent})[0]

    # on top of the default (first / last layer of encoder and decoder kept): the third encoder layer carrying
    # most of its error, the last stride-2 conv (see the test module)
    last_down = "taesd_encoder.10"
    for dtype in ("fp32", "bf16"):  # fp32: ComfyUI's pick on CPU; bf16: its pick on most GPUs (or --bf16-vae)
        args.bf16_vae = dtype == "bf16"
        (vae,) = nodes.VAELoader().load_vae("taef2")
        args.bf16_vae = False
        latent = encode(vae, image)  # the real image's latent: what decode is measured on (not noise)
        ref_dec = decode(vae, latent)
        out = {"vae_dtype": str(vae.vae_dtype), "vae_class": type(vae.first_stage_model).__name__,
               "latent_shape": list(latent.shape), "recon_psnr": psnr(ref_dec, image)}
        for label in ("per-channel", "per-tensor"):
            new, text = apply(ApplyFP8StorageVAE, vae, label)  # the node's default: keep_first_last on
            enc, dec = encode(new, image), decode(new, latent)
            every, every_text = apply(ApplyFP8StorageVAE, vae, label, "", False)  # every layer in FP8
            enc_all, dec_all = encode(every, image), decode(every, latent)
            kept, kept_text = apply(ApplyFP8StorageVAE, vae, label, last_down)
            enc_kept = encode(kept, image)
            out[label] = {
                "decode_cosine": cos(dec, ref_dec), "decode_psnr": psnr(dec, ref_dec),
                "decode_cosine_centered": cos(dec - 0.5, ref_dec - 0.5),  # on ComfyUI's [0, 1] the mean helps
                "encode_cosine": cos(enc, latent),
                "encode_psnr": psnr(decode(vae, enc), ref_dec),  # the encode error in pixels (plain decoder)
                "roundtrip_psnr": psnr(decode(new, enc), ref_dec),  # FP8 encode + FP8 decode vs plain
                "encode_cosine_last_down_kept": cos(enc_kept, latent),
                "finite": bool(torch.isfinite(dec).all() and torch.isfinite(enc).all()),
                "fp8_layers": fp8_layers(new.first_stage_model), "text": text, "text_last_down_kept": kept_text,
                "size_before": vae.patcher.model_size(), "size_after": new.patcher.model_size(),
                "all": {"decode_cosine": cos(dec_all, ref_dec), "decode_psnr": psnr(dec_all, ref_dec),
                        "decode_cosine_centered": cos(dec_all - 0.5, ref_dec - 0.5),
                        "encode_cosine": cos(enc_all, latent), "encode_psnr": psnr(decode(vae, enc_all), ref_dec),
                        "roundtrip_psnr": psnr(decode(every, enc_all), ref_dec),
                        "finite": bool(torch.isfinite(dec_all).all() and torch.isfinite(enc_all).all()),
                        "fp8_layers": fp8_layers(every.first_stage_model), "text": every_text,
                        "size_after": every.patcher.model_size()},
            }
        if dtype == "fp32":  # which encoder layers carry its error: one layer in FP8 at a time, per-channel
            loss = {}
            for name, m in vae.first_stage_model.taesd_encoder.named_modules(prefix="taesd_encoder"):
                if isinstance(m, torch.nn.Conv2d):
                    one, _ = apply(ApplyFP8StorageVAE, vae, "per-channel", "re:^(?!" + re.escape(name) + "$)",
                                   False)
                    loss[name] = 1 - cos(encode(one, image), latent)
            out["encoder_single_layer_loss"] = loss
        result[dtype] = out
elif case == "first_last":
    # keep_first_last's pick (module-registration order) vs what each VAE runs first / last, per top-level part
    import os

    import comfy.ldm.models.autoencoder
    import comfy.ldm.wan.vae2_2
    import folder_paths
    import nodes

    folder_paths.folder_names_and_paths["vae_approx"] = ([os.path.join(repo, "tests", "data", "taef2")],
                                                         folder_paths.supported_pt_extensions)
    (taef2,) = nodes.VAELoader().load_vae("taef2")
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    lat = taef2.encode(pixels)
    models = {"taef2": (taef2.first_stage_model, lambda: taef2.encode(pixels), lambda: taef2.decode(lat))}
    wan21 = comfy.sd.VAE(sd=random_state_dict(comfy.ldm.wan.vae.WanVAE(
        dim=16, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
        temperal_downsample=[False, True, True], image_channels=3, conv_out_channels=3, dropout=0.0), seed=0))
    video = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    wlat = wan21.encode(video)
    models["wan21"] = (wan21.first_stage_model, lambda: wan21.encode(video), lambda: wan21.decode(wlat))
    # Wan 2.2 (ComfyUI builds it at dim 160; the module tree is the same at dim 16) and the KL VAEs: the classes
    # comfy.sd.VAE instantiates, with small random weights, run directly
    wan22 = comfy.ldm.wan.vae2_2.WanVAE(dim=16, dec_dim=16, z_dim=8, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                        attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    wan22.load_state_dict(random_state_dict(wan22, seed=2))
    x22 = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(3))
    z22 = torch.randn(1, 8, 2, 2, 2, generator=torch.Generator().manual_seed(4))
    models["wan22"] = (wan22, lambda: wan22.encode(x22), lambda: wan22.decode(z22))
    dd = {"double_z": True, "z_channels": 4, "resolution": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
          "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    kl = comfy.ldm.models.autoencoder.AutoencoderKL(ddconfig=dd, embed_dim=4)  # SD 1.x / SDXL: quant convs
    flux_like = comfy.ldm.models.autoencoder.AutoencodingEngine(  # Flux / SD3: no quant convs
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder", "params": dd},
        decoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Decoder", "params": dd})
    x2 = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    z2 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    for key, m in (("kl", kl), ("flux_like", flux_like)):
        m.load_state_dict(random_state_dict(m, seed=7))
        models[key] = (m.eval(), lambda m=m: m.encode(x2), lambda m=m: m.decode(z2))
    for key, (root, enc, dec) in models.items():
        result[key] = {"rule": rule(root), "called": called_first_last(root, enc, dec),
                       "layers": sum(1 for m in root.modules()
                                     if isinstance(m, torch.nn.Linear | torch.nn.modules.conv._ConvNd))}
    new, text = apply(ApplyFP8StorageVAE, wan21, "per-channel")
    result["wan21"]["text"] = text
elif case == "clip":
    te = sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    sd = random_state_dict(te.transformer, seed=0)
    del te
    clip = comfy.sd.load_text_encoder_state_dicts([sd], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION)
    tokens = clip.tokenize("a photograph of an astronaut riding a horse on the moon")

    def encode(c) -> torch.Tensor:
        cond, pooled = c.encode_from_tokens(tokens, return_pooled=True)
        return torch.cat([cond.flatten(), pooled.flatten()]).float()

    ref = encode(clip)
    before = snapshot(clip.cond_stage_model)
    csm, patcher = clip.cond_stage_model, clip.patcher
    new, text = apply(ApplyFP8StorageCLIP, clip)
    out = encode(new)
    twice, text2 = apply(ApplyFP8StorageCLIP, new)
    tensor_clip, _ = apply(ApplyFP8StorageCLIP, clip, "per-tensor")
    # strict (same tensors, same storage) before any LoRA: ComfyUI's own unpatch re-wraps restored weights
    result["input_unchanged"] = (unchanged(before, clip.cond_stage_model) and clip.cond_stage_model is csm
                                 and clip.patcher is patcher and torch.equal(encode(clip), ref)
                                 and fp8_layers(clip.cond_stage_model) == 0)
    result["plain"] = {"cosine": cos(out, ref), "per_tensor_cosine": cos(encode(tensor_clip), ref),
                       "fp8_layers": fp8_layers(new.cond_stage_model),
                       "size_before": clip.patcher.model_size(), "size_after": new.patcher.model_size(),
                       "twice_identical": bool(torch.equal(encode(twice), out)), "text": text, "text_twice": text2}
    # LoRA on q_proj / fc1 of every layer, through ComfyUI's own key map and loader
    key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, {})
    gen, lora = torch.Generator().manual_seed(3), {}
    for lora_key, model_key in key_map.items():
        if isinstance(model_key, str) and model_key.endswith(("q_proj.weight", "fc1.weight")) \
                and lora_key.startswith("lora_te_"):
            n, k = clip.cond_stage_model.state_dict()[model_key].shape
            lora[lora_key + ".lora_up.weight"] = torch.randn(n, 4, generator=gen) * 0.1
            lora[lora_key + ".lora_down.weight"] = torch.randn(4, k, generator=gen) * 0.1
    result["lora_keys"] = len(lora) // 2
    _, plain_lora = comfy.sd.load_lora_for_models(None, clip, dict(lora), 0, 1.0)
    ref_lora = encode(plain_lora)
    _, fp8_then_lora = comfy.sd.load_lora_for_models(None, new, dict(lora), 0, 1.0)
    out_lora = encode(fp8_then_lora)
    out_after = encode(new)  # the LoRA clone shares new's modules: unpatched, they must be exactly as before
    lora_then_fp8, _ = apply(ApplyFP8StorageCLIP, plain_lora)
    out_lora2 = encode(lora_then_fp8)
    # low-VRAM: the patcher leaves the codes alone and hands the LoRA to weight_function (LowVramPatch), which
    # our layers run on the dequantized weight at every call
    import comfy.model_management
    from comfy.model_patcher import LowVramPatch

    comfy.model_management.unload_all_models()
    p = fp8_then_lora.patcher
    lowvram_layers = []
    for key in p.patches:
        layer = fp8_then_lora.cond_stage_model.get_submodule(key.rsplit(".", 1)[0])
        layer.weight_function = [LowVramPatch(key, p.patches)]
        lowvram_layers.append(layer)
    with torch.no_grad():
        cond, pooled = fp8_then_lora.cond_stage_model.encode_token_weights(tokens)[:2]
    lowvram_out = torch.cat([cond.flatten(), pooled.flatten()]).float()
    for layer in lowvram_layers:
        layer.weight_function = []
    result["lora"] = {"changed": ((ref_lora - ref).norm() / ref.norm()).item(),
                      "fp8_lora_vs_plain_lora": cos(out_lora, ref_lora),
                      "delta_cosine": cos(out_lora - out, ref_lora - ref),
                      "unpatched_identical": bool(torch.equal(out_after, out)),
                      "lora_then_fp8_vs_plain_lora": cos(out_lora2, ref_lora),
                      "lowvram_layers": len(lowvram_layers), "lowvram_vs_baked": cos(lowvram_out, out_lora),
                      "unpatched_after_lowvram": bool(torch.equal(encode(new), out))}
    after = clip.cond_stage_model.state_dict()
    result["input_values_unchanged_after_lora"] = (
        before.keys() == after.keys() and all(torch.equal(t.float(), after[k].float()) and t.dtype == after[k].dtype
                                              for k, (t, _, _) in before.items())
        and torch.equal(encode(clip), ref) and fp8_layers(clip.cond_stage_model) == 0)
elif case == "clip_real":
    result = clip_real(sys.argv[3])
print(json.dumps(result))
