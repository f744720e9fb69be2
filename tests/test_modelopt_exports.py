"""Real nvidia-modelopt exports (tiny Wan / Qwen-Image / HunyuanVideo 1.5, made on CPU in this session) read by
the pack: loaded into the diffusers model with QuantLinear vs ModelOpt's fake quantization and vs bf16, mapped
to ComfyUI names, and the vllm-omni / sharded / pipeline / attention-amax variants."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_dit_quant.cli.tiny_models import TINY_MODELS, run_model
from comfyui_dit_quant.quant.apply_checkpoint import load_checkpoint_into
from comfyui_dit_quant.quant.formats.modelopt import read_modelopt
from comfyui_dit_quant.quant.modelopt_load import load_export
from comfyui_dit_quant.quant.schemes import FP8Channel, FP8Tensor, FP8WeightOnly

from modelopt_exports import ALGOS, CONFIGS, DISABLED, Export, cosine, make_export

pytest.importorskip("modelopt.torch.quantization")

FAMILIES = tuple(TINY_MODELS)
SCHEMES = {"FP8_DEFAULT_CFG": FP8Tensor, "FP8_PER_CHANNEL_PER_TOKEN_CFG": FP8Channel,
           "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG": FP8WeightOnly}
ST = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory):
    """``get(family, cfg) -> Export``, each made once per session."""
    root = tmp_path_factory.mktemp("modelopt")
    cache: dict[tuple[str, str], Export] = {}

    def get(family: str, cfg: str) -> Export:
        if (family, cfg) not in cache:
            cache[family, cfg] = make_export(root, family, cfg)
        return cache[family, cfg]

    return get


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("family", FAMILIES)
def test_export_loads_and_matches_modelopt_fake_quant(exports, family: str, cfg: str) -> None:
    ex = exports(family, cfg)
    read = read_modelopt(ex.path)
    ckpt = read.checkpoint
    assert read.config.quant_algo == ALGOS[cfg] and read.config.producer.startswith("modelopt")
    assert set(ckpt.layers) == ex.quantized  # trust the tensors: exactly the enabled quantizers
    assert not any(DISABLED[family] in n for n in ckpt.layers)
    assert all(isinstance(s, SCHEMES[cfg]) for s in ckpt.layers.values())
    if cfg == "FP8_DEFAULT_CFG":
        assert all(f"{n}.input_scale" in ckpt.tensors for n in ckpt.layers)  # static activation scales
    model, kwargs = TINY_MODELS[family]()
    load_checkpoint_into(model, ckpt)
    ours = run_model(model, kwargs)
    c_fq, c_bf16 = cosine(ours, ex.fake_quant), cosine(ours, ex.bf16)
    print(f"{family} {cfg}: {len(ckpt.layers)} layers, cos vs fake-quant {c_fq:.6f}, vs bf16 {c_bf16:.6f}")
    assert c_fq >= 0.999 and c_bf16 >= 0.995


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("family", FAMILIES)
def test_export_maps_to_comfyui_names(exports, family: str, cfg: str) -> None:
    loaded = load_export(exports(family, cfg).path)
    src = loaded.export.checkpoint
    assert "diffusers names" in loaded.family or family == "qwen_image"
    ckpt = loaded.checkpoint
    if family == "qwen_image":
        assert ckpt.tensors.keys() == src.tensors.keys()
        return
    if family == "wan":
        assert len(ckpt.layers) == len(src.layers)
        name = "blocks.1.self_attn.q"
        assert torch.equal(ckpt.tensors[f"{name}.weight"].view(torch.uint8),
                           src.tensors["blocks.1.attn1.to_q.weight"].view(torch.uint8))
        assert "blocks.1.ffn.0.weight_scale" in ckpt.tensors and "head.head.weight" in ckpt.tensors
        if cfg == "FP8_DEFAULT_CFG":
            assert "blocks.1.cross_attn.o.input_scale" in ckpt.tensors
        return
    # HunyuanVideo 1.5: q/k/v fused into qkv with one scale layout.
    qkv = "double_blocks.0.img_attn.qkv"
    parts = [f"transformer_blocks.0.attn.to_{p}" for p in "qkv"]
    fused = ckpt.layers[qkv].dequantize(ckpt.tensors[f"{qkv}.weight"], ckpt.tensors[f"{qkv}.weight_scale"])
    ref = torch.cat([src.layers[p].dequantize(src.tensors[f"{p}.weight"], src.tensors[f"{p}.weight_scale"])
                     for p in parts])
    if cfg == "FP8_DEFAULT_CFG":
        assert ckpt.tensors[f"{qkv}.weight_scale"].shape == ()
        assert cosine(fused, ref) > 0.999  # requantized to the largest of the three scales
        assert ckpt.tensors[f"{qkv}.input_scale"] == max(src.tensors[f"{p}.input_scale"] for p in parts)
    else:
        assert torch.equal(fused, ref)  # per-channel / 128-row blocks concatenate exactly
    assert len(ckpt.layers) == len(src.layers) - 2 * 5  # img + txt qkv per double block (2), one refiner qkv


def test_vllm_omni_style_config(exports, tmp_path: Path) -> None:
    """Upper-case FP8_PB_WO and glob ignores naming layers that still hold fp8: the tensors win."""
    ex = exports("wan", "FP8_2D_BLOCKWISE_WEIGHT_ONLY_CFG")
    d = _copy(ex.path, tmp_path / "omni")
    cfg = json.loads((d / "config.json").read_text())
    cfg["quantization_config"].update(quant_algo="FP8_PB_WO", ignore=["condition_embedder.*", "blocks.1.attn1*"])
    (d / "config.json").write_text(json.dumps(cfg))
    loaded = load_export(d)
    assert loaded.export.config.quant_algo == "FP8_PB_WO"
    assert set(loaded.export.checkpoint.layers) == ex.quantized
    assert any("listed in 'ignore' hold float8 weights" in n for n in loaded.notes)


def test_hf_quant_config_json_fallback(exports, tmp_path: Path) -> None:
    d = _copy(exports("qwen_image", "FP8_PER_CHANNEL_PER_TOKEN_CFG").path, tmp_path / "hfq")
    cfg = json.loads((d / "config.json").read_text())
    q = cfg.pop("quantization_config")
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "hf_quant_config.json").write_text(json.dumps(
        {"producer": q["producer"], "quantization": {"quant_algo": "fp8_per_channel_per_token",
                                                     "exclude_modules": q["ignore"]}}))
    read = read_modelopt(d)
    assert read.config.quant_algo == "FP8_PER_CHANNEL_PER_TOKEN" and read.config.source.endswith("hf_quant_config.json")


def test_sharded_pipeline_with_two_transformers(exports, tmp_path: Path) -> None:
    src = exports("wan", "FP8_DEFAULT_CFG").path
    root = tmp_path / "pipe"
    (root / "vae").mkdir(parents=True)
    (root / "model_index.json").write_text("{}")
    _copy(src, root / "transformer")
    comp2 = root / "transformer_2"
    comp2.mkdir()
    shutil.copy(src / "config.json", comp2 / "config.json")
    tensors = load_file(str(src / ST))
    keys = sorted(tensors)
    shards = {"diffusion_pytorch_model-00001-of-00002.safetensors": keys[::2],
              "diffusion_pytorch_model-00002-of-00002.safetensors": keys[1::2]}
    for name, ks in shards.items():
        save_file({k: tensors[k] * 2 if k.endswith("weight_scale") else tensors[k] for k in ks}, str(comp2 / name))
    (comp2 / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: n for n, ks in shards.items() for k in ks}}))
    one, two = read_modelopt(root), read_modelopt(root, "transformer_2")
    assert len(two.files) == 2 and one.checkpoint.layers == two.checkpoint.layers
    k = "blocks.0.attn1.to_q.weight_scale"
    assert torch.equal(two.checkpoint.tensors[k], one.checkpoint.tensors[k] * 2)


def test_attention_amax_keys_are_skipped_with_a_log_line(exports, tmp_path: Path, caplog) -> None:
    d = _copy(exports("wan", "FP8_DEFAULT_CFG").path, tmp_path / "bmm")
    tensors = load_file(str(d / ST))
    for b in range(2):
        for q in "qkv":
            tensors[f"blocks.{b}.attn1.{q}_bmm_quantizer._amax"] = torch.tensor(3.5, dtype=torch.bfloat16)
    save_file(tensors, str(d / ST))
    with caplog.at_level(logging.INFO, logger="comfyui_dit_quant"):
        read = read_modelopt(d)
    assert len(read.skipped) == 6 and "skipped 6 raw quantizer key(s)" in caplog.text
    load_export(d)  # the skipped keys never reach the key map


def test_calibrate_cli_writes_an_export_the_loader_reads(tmp_path: Path) -> None:
    from comfyui_dit_quant.cli.main import main

    model, _ = TINY_MODELS["wan"]()
    model.save_pretrained(tmp_path / "bf16")
    out = tmp_path / "out"
    assert main(["calibrate", str(tmp_path / "bf16"), str(out), "--algo", "fp8_pb_wo", "--samples", "2",
                 "--ignore", "condition_embedder"]) == 0
    loaded = load_export(out)
    assert loaded.export.config.quant_algo == "FP8_PB_WO" and len(loaded.checkpoint.layers) == 20
    assert not any("embedding" in n for n in loaded.checkpoint.layers)


@pytest.mark.parametrize("family", ["qwen_image", "hunyuan_video15"])
def test_calibrate_random_inputs_and_family_preset(tmp_path: Path, family: str, capsys) -> None:
    from comfyui_dit_quant.cli.main import main
    from comfyui_dit_quant.quant.families import preset_ignore
    from comfyui_dit_quant.quant.ignore import IgnoreMatcher

    model, _ = TINY_MODELS[family]()
    model.save_pretrained(tmp_path / "bf16")
    out = tmp_path / "out"
    assert main(["calibrate", str(tmp_path / "bf16"), str(out), "--algo", "fp8", "--samples", "1"]) == 0
    assert "preset 'default'" in capsys.readouterr().out
    layers = load_export(out).checkpoint.layers
    preset = IgnoreMatcher(preset_ignore(family, "default", naming="diffusers"))
    assert layers and not any(preset.match(n) for n in layers)


def test_calibrate_without_modelopt_says_which_extra(monkeypatch, tmp_path: Path, capsys) -> None:
    import builtins

    from comfyui_dit_quant.cli.main import main

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda n, *a, **k: (_ for _ in ()).throw(ImportError(n))
                        if n.startswith("modelopt") else real(n, *a, **k))
    assert main(["calibrate", str(tmp_path), str(tmp_path / "o")]) == 2
    assert "comfyui-dit-quant[modelopt]" in capsys.readouterr().err


def test_inspect_a_modelopt_folder(exports, capsys) -> None:
    from comfyui_dit_quant.cli.main import main

    assert main(["inspect", str(exports("wan", "FP8_DEFAULT_CFG").path)]) == 0
    out = capsys.readouterr().out
    assert "format:  modelopt (FP8, 1 file(s))" in out and "layers quantized: 20" in out
