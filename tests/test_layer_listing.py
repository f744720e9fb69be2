"""The "Pick layers…" route logic without ComfyUI: file-name validation and the header-only layer list."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfyui_dit_quant.quant.layer_listing import LayerListingError, block_of, list_layers, resolve_model_file

from conftest import wan_comfy_shapes, write_random_checkpoint


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_random_checkpoint(tmp_path / "wan.safetensors", wan_comfy_shapes(), prefix="model.diffusion_model.")
    (tmp_path / "secret.safetensors").write_bytes(b"x")
    return tmp_path


def resolver(root: Path, listed: list[str]):
    def list_files(folder: str) -> list[str]:
        return listed

    def full_path(folder: str, name: str) -> str | None:
        p = root / name
        return str(p) if p.is_file() else None

    return list_files, full_path


def test_resolves_only_listed_files_of_allowed_folders(folder: Path) -> None:
    fns = resolver(folder, ["wan.safetensors"])
    assert resolve_model_file("diffusion_models", "wan.safetensors", *fns) == str(folder / "wan.safetensors")
    for f, name, status in [("diffusion_models", "../wan.safetensors", 404), ("diffusion_models", "secret.safetensors",
                            404), ("custom_nodes", "wan.safetensors", 400), ("diffusion_models", "/etc/passwd", 400),
                            ("diffusion_models", "", 400), ("vae", "a\x00.safetensors", 400)]:
        with pytest.raises(LayerListingError) as e:
            resolve_model_file(f, name, *fns)
        assert e.value.status == status, (f, name)


def test_listed_name_whose_file_vanished_is_404(folder: Path) -> None:
    with pytest.raises(LayerListingError) as e:
        resolve_model_file("vae", "gone.safetensors", *resolver(folder, ["gone.safetensors"]))
    assert e.value.status == 404


def test_lists_layers_with_presets_and_current_patterns(folder: Path) -> None:
    data = list_layers(str(folder / "wan.safetensors"), ignored="blocks.1.ffn.*\nnothing_here")
    assert data["family_id"] == "wan" and data["prefix"] == "model.diffusion_model."
    assert data["file"] == "wan.safetensors" and set(data["presets"]) == {"default", "quality"}
    by_name = {r["name"]: r for r in data["layers"]}
    q = by_name["blocks.0.self_attn.q"]
    assert q["shape"] == [64, 64] and q["bytes"] == 64 * 64 * 2 and q["dtype"] == "BF16" and q["block"] == "blocks.0"
    assert q["presets"]["default"] is None and q["presets"]["quality"] is not None  # first block kept by quality
    assert by_name["head.head"]["presets"]["default"] is not None
    assert by_name["patch_embedding"]["kind"] == "conv"
    assert by_name["blocks.1.ffn.0"]["ignored_by"] == "blocks.1.ffn.*" and q["ignored_by"] is None
    assert data["unused_patterns"] == ["nothing_here"]
    names = [r["name"] for r in data["layers"]]
    assert names.index("blocks.1.ffn.2") < names.index("head.head")


def test_modulation_layers_are_marked_weight_only_under_the_default_preset(tmp_path: Path) -> None:
    shapes = {"img_in.weight": (64, 64), "txt_norm.weight": (32,), "transformer_blocks.0.img_mod.1.weight": (384, 64),
              "transformer_blocks.0.txt_mod.1.weight": (384, 64), "transformer_blocks.0.attn.to_q.weight": (64, 64),
              "proj_out.weight": (64, 64)}
    data = list_layers(str(write_random_checkpoint(tmp_path / "qwen.safetensors", shapes)))
    assert data["family_id"] == "qwen_image" and data["weight_only_presets"] == {"default": ["img_mod", "txt_mod"]}
    by_name = {r["name"]: r for r in data["layers"]}
    mod = by_name["transformer_blocks.0.img_mod.1"]
    assert mod["presets"] == {"default": "img_mod", "quality": "img_mod"}
    assert mod["weight_only"] == {"default": "img_mod"}
    assert by_name["img_in"]["weight_only"] == {} and by_name["transformer_blocks.0.attn.to_q"]["weight_only"] == {}


def test_unknown_family_still_lists_layers(tmp_path: Path) -> None:
    path = write_random_checkpoint(tmp_path / "vae.safetensors", {"decoder.conv.weight": (8, 4, 3, 3),
                                                                  "proj.weight": (16, 8), "proj.bias": (16,)})
    data = list_layers(str(path))
    assert data["family"] is None and data["presets"] == {}
    assert [(r["name"], r["kind"]) for r in data["layers"]] == [("decoder.conv", "conv"), ("proj", "linear")]


def test_bad_file_and_bad_pattern_are_refused(tmp_path: Path, folder: Path) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(LayerListingError) as e:
        list_layers(str(tmp_path / "bad.safetensors"))
    assert e.value.status == 422 and str(tmp_path) not in str(e.value)
    with pytest.raises(LayerListingError, match="ignored_layers"):
        list_layers(str(folder / "wan.safetensors"), ignored="re:(")


def test_block_of() -> None:
    assert block_of("blocks.12.self_attn.q") == "blocks.12"
    assert block_of("transformer_blocks.3.img_mlp.net.0.proj") == "transformer_blocks.3"
    assert block_of("double_blocks.0.img_attn.qkv") == "double_blocks.0"
    assert block_of("head.head") == "head" and block_of("proj_out") == "proj_out"
