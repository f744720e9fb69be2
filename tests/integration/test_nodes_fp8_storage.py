"""Integration tier: "Apply FP8 Weight Storage to VAE / CLIP" in a real ComfyUI (CPU) on a tiny Wan 2.1 VAE
(comfy.sd.VAE from a state dict, dim 16) and a CLIP-L text encoder (comfy.sd.load_text_encoder_state_dicts),
both with random weights, and on a VAE with real trained weights: TAESD for Flux.2 (``tests/data/taef2``,
madebyollin/taesd, MIT), loaded by ComfyUI's own VAELoader ("taef2") and run through VAEEncode / VAEDecode on a
real photo, in fp32 (ComfyUI's CPU pick) and bf16.

Accuracy, random weights: every one of the ~70 layers adds its full e4m3 rounding error (one layer: cosine
~0.9997) with nothing trained to absorb it; the thresholds there are for that worst case.

Accuracy, real weights (taef2, 82 convolutions, all stored in FP8; numbers fp32 / bf16):

- decode (of the photo's own latent) vs the plain VAE: cosine 0.99989 / 0.99987 per-channel, 0.99985 / 0.99985
  per-tensor (0.9994-0.9995 with the [0, 1] images centred), pixel PSNR 41.5 / 40.8 dB per-channel, 40.4 / 40.6
  dB per-tensor: meets the issue's >= 0.999.
- encode vs the plain VAE: latent cosine 0.9982 / 0.9983 per-channel, 0.9974 / 0.9973 per-tensor: BELOW the
  issue's 0.999 (``test_vae_real_weights_encode_all_layers_meets_0999`` is a strict xfail saying so). In pixels
  (plain decode of the FP8 latent vs of the plain latent) that is 36.4 / 37.2 dB per-channel, 32.9 / 36.0 dB
  per-tensor, against the VAE's own reconstruction error of 28.5 dB: well under what the VAE itself loses.
  Where it comes from (one encoder layer in FP8 at a time; the single-layer losses add up to the all-layer
  loss, so the errors are independent): three layers carry ~70% of it, ``taesd_encoder.14`` (the last conv,
  writing the latent with nothing after it; ~40%), ``taesd_encoder.0`` (the first conv, 3 -> 64, on the image)
  and ``taesd_encoder.10`` (the last stride-2 conv). No bug: every layer's weights round alike (~2.5% relative
  error, e4m3's 3 mantissa bits; per-channel or per-tensor scales barely differ), but the first and last convs
  pass more of it to their outputs (5.1% and 3.9% relative error, median layer 1.6%): inputs with a large mean
  (the image; post-ReLU activations) against filters that mostly cancel it, and for the last one nothing
  after it to absorb the error. Keeping those three in high precision (``ignored_layers``; 57 K of the
  encoder's 1.34 M weights) gives encode cosine 0.9994 / 0.9994 per-channel, 0.9994 / 0.9994 per-tensor.
"""

from __future__ import annotations

import pytest

from comfy_env import comfyui, run_comfy_script
from comfy_server import REPO, ComfyServer

VAE_NODE, CLIP_NODE = "DiTQuantApplyFP8StorageVAE", "DiTQuantApplyFP8StorageCLIP"


@pytest.fixture(scope="module")
def vae() -> dict:
    return run_comfy_script("fp8_storage.py", str(REPO), "vae")


@pytest.fixture(scope="module")
def vae_real() -> dict:
    return run_comfy_script("fp8_storage.py", str(REPO), "vae_real")


@pytest.fixture(scope="module")
def clip() -> dict:
    return run_comfy_script("fp8_storage.py", str(REPO), "clip")


def test_vae_decode_encode_close_to_plain(vae: dict) -> None:
    print({k: {m: v[m] for m in ("decode_cosine", "encode_cosine")} for k, v in vae.items() if isinstance(v, dict)})
    assert vae["vae_class"] == "comfy.ldm.wan.vae.WanVAE"
    for label in ("per-channel", "per-tensor"):
        r = vae[label]
        assert r["finite"] and r["fp8_layers"] == 71, r
        assert r["decode_cosine"] >= 0.995, r
        assert r["encode_cosine"] >= 0.99, r


def test_vae_reports_bytes_input_untouched_and_twice_equals_once(vae: dict) -> None:
    assert vae["input_unchanged"]
    for label in ("per-channel", "per-tensor"):
        r = vae[label]
        assert r["new_objects"] and r["twice_identical"]
        assert r["size_after"] < 0.3 * r["size_before"]  # fp32 VAE on CPU: ~4x smaller weights
        assert "layers stored in FP8: 71" in r["text"] and "(saved " in r["text"]
        assert "layers stored in FP8: 0 (+71 already FP8)" in r["text_twice"]
        assert "(saved 0.00 MB)" in r["text_twice"]
    assert "layers stored in FP8: 39\nkept: 32 by ignore list" in vae["ignored"]


REAL_DTYPES = {"fp32": "torch.float32", "bf16": "torch.bfloat16"}
DOMINANT = ("taesd_encoder.0", "taesd_encoder.10", "taesd_encoder.14")
_REAL_KEYS = ("decode_cosine", "decode_psnr", "encode_cosine", "encode_psnr", "encode_cosine_dominant_kept")


def _real(vae_real: dict):
    for dtype, torch_dtype in REAL_DTYPES.items():
        o = vae_real[dtype]
        assert o["vae_class"] == "TAESD" and o["vae_dtype"] == torch_dtype and o["latent_shape"] == [1, 128, 8, 8]
        for label in ("per-channel", "per-tensor"):
            yield dtype, label, o, o[label]


def test_vae_real_weights_decode_meets_0999(vae_real: dict) -> None:
    print({(d, g): {k: round(r[k], 6) for k in _REAL_KEYS} for d, g, _, r in _real(vae_real)})
    assert "taef2" in vae_real["vae_list"]  # VAELoader offers it from tests/data/taef2 (.safetensors)
    for _, _, o, r in _real(vae_real):
        assert r["finite"] and r["fp8_layers"] == 82, r
        assert o["recon_psnr"] > 27  # the plain VAE reconstructs the photo (28.5 dB)
        assert r["decode_cosine"] >= 0.999, r  # the bar; measured >= 0.99985
        assert r["decode_cosine_centered"] >= 0.999, r  # without the [0, 1] mean's help: >= 0.99939
        assert r["decode_psnr"] >= 38, r  # measured 40.4-41.5 dB
        assert "layers stored in FP8: 82\nkept: 0 by ignore list, 0 not eligible" in r["text"]
        assert r["size_after"] < 0.55 * r["size_before"]  # fp32: ~4x, bf16: ~2x smaller


def test_vae_real_weights_encode_and_where_its_error_comes_from(vae_real: dict) -> None:
    for _, label, o, r in _real(vae_real):
        # all 82 layers in FP8: below the 0.999 (module docstring; the strict xfail below)
        assert r["encode_cosine"] >= (0.9975 if label == "per-channel" else 0.9965), r
        # ... and in pixels well under the VAE's own reconstruction error (28.5 dB): 32.9-37.2 dB
        assert r["encode_psnr"] >= o["recon_psnr"] + 3.5, r
        assert r["roundtrip_psnr"] >= o["recon_psnr"] + 3.5, r  # FP8 encode then FP8 decode: 32.5-37.4 dB
        # the three dominant encoder layers kept in high precision: the bar is met
        assert r["encode_cosine_dominant_kept"] >= 0.999, r
        assert "layers stored in FP8: 79\nkept: 3 by ignore list" in r["text_dominant_kept"]
    loss = vae_real["fp32"]["encoder_single_layer_loss"]
    ranked = sorted(loss, key=loss.get, reverse=True)
    print({k: f"{loss[k]:.2e}" for k in ranked[:6]}, "sum", sum(loss.values()))
    assert len(loss) == 41 and set(ranked[:3]) == set(DOMINANT) and ranked[0] == "taesd_encoder.14"
    assert sum(loss[k] for k in DOMINANT) > 0.6 * sum(loss.values())  # measured 69%
    # independent errors: one layer at a time adds up to all layers at once (1.88e-3 vs 1.77e-3)
    all_layers = 1 - vae_real["fp32"]["per-channel"]["encode_cosine"]
    assert 0.8 * all_layers < sum(loss.values()) < 1.25 * all_layers


@pytest.mark.xfail(strict=True, reason="taef2 encode with every layer in FP8: latent cosine 0.9973-0.9983 "
                                       "(module docstring); an XPASS means the storage got better: tighten")
def test_vae_real_weights_encode_all_layers_meets_0999(vae_real: dict) -> None:
    assert all(r["encode_cosine"] >= 0.999 for *_, r in _real(vae_real))


def test_clip_encode_close_to_plain_input_untouched_twice_equals_once(clip: dict) -> None:
    r = clip["plain"]
    print({k: r[k] for k in ("cosine", "per_tensor_cosine", "size_before", "size_after")})
    assert clip["input_unchanged"] and clip["input_values_unchanged_after_lora"]
    assert r["fp8_layers"] == 73 and r["twice_identical"]
    assert r["cosine"] >= 0.995 and r["per_tensor_cosine"] >= 0.995
    assert r["size_after"] < 0.7 * r["size_before"]  # fp16 Linear weights halve; the embeddings stay
    assert "layers stored in FP8: 73" in r["text"] and "CLIP weights:" in r["text"]


def test_clip_lora_after_and_before_the_node(clip: dict) -> None:
    r = clip["lora"]
    print(r)
    assert clip["lora_keys"] == 24 and r["changed"] > 0.1
    assert r["fp8_lora_vs_plain_lora"] >= 0.995 and r["delta_cosine"] >= 0.98
    assert r["lora_then_fp8_vs_plain_lora"] >= 0.995  # a LoRA applied before the node stays applied
    assert r["unpatched_identical"] and r["unpatched_after_lowvram"]
    assert r["lowvram_layers"] == 24 and r["lowvram_vs_baked"] >= 0.999


def test_nodes_listed_with_tooltips() -> None:
    comfyui()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp, ComfyServer(Path(tmp)) as srv:
        info = srv.get("/object_info")
    for node_id, kind, name in ((VAE_NODE, "VAE", "Apply FP8 Weight Storage to VAE"),
                                (CLIP_NODE, "CLIP", "Apply FP8 Weight Storage to CLIP")):
        node = info[node_id]
        assert node["display_name"] == name and node["category"] == "advanced/quantized"
        assert node["output"] == [kind]
        req = node["input"]["required"]
        assert list(req) == [kind.lower(), "granularity", "ignored_layers"]
        assert req["granularity"][1]["options"] == ["per-channel", "per-tensor"]
        assert req["ignored_layers"][1]["multiline"] is True
        for inp, spec in req.items():
            assert spec[1].get("tooltip"), f"{node_id}.{inp} has no tooltip"
