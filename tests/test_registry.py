"""pyproject.toml has what the Comfy registry (comfy-cli `node publish`, ComfyUI's comfy_config) reads."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
DATA = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT, COMFY = DATA["project"], DATA["tool"]["comfy"]
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}


def test_project_fields() -> None:
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name)
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])
    assert PROJECT["description"] and PROJECT["license"] == {"file": "LICENSE"} and (REPO / "LICENSE").is_file()
    assert PROJECT["urls"]["Repository"].startswith("https://github.com/")
    assert not any(d.startswith("torch=") or d.startswith("torch==") for d in PROJECT["dependencies"])


def test_version_matches_package() -> None:
    init = (REPO / "__init__.py").read_text()
    assert f'__version__ = "{PROJECT["version"]}"' in init


def test_classifiers_are_ones_the_registry_understands() -> None:
    for c in PROJECT["classifiers"]:
        if c.startswith("Environment ::"):
            assert c.removeprefix("Environment :: ") in ACCELERATORS, c
        elif c.startswith("Operating System ::"):
            assert c.removeprefix("Operating System :: ").startswith(("Microsoft", "POSIX", "MacOS", "OS Independent"))


def test_tool_comfy() -> None:
    assert COMFY["PublisherId"] and re.fullmatch(r"[a-z0-9-]+", COMFY["PublisherId"])
    assert COMFY["DisplayName"]
    icon = COMFY["Icon"]
    assert icon.startswith("https://") and icon.endswith(".png")
    assert (REPO / icon.split("/main/", 1)[1]).is_file()  # the icon the URL points at is in the repository
    assert {"web/", "example_workflows/"} <= set(COMFY["includes"])
    assert COMFY["web"] == "web" and re.fullmatch(r">=\d+\.\d+\.\d+", COMFY["requires-comfyui"])


def test_included_folders_have_content() -> None:
    assert list((REPO / "web").glob("*.js")) and list((REPO / "example_workflows").glob("*.json"))
    assert not list((REPO / "web").rglob("*.test.js")), "tests must be .mjs: ComfyUI imports every web/**/*.js"


def test_comfyignore_keeps_tests_out_and_shipped_folders_in() -> None:
    """The registry archive leaves the test suite (and its weights) out but never a folder users need."""
    patterns = [p.strip() for p in (REPO / ".comfyignore").read_text().splitlines() if p.strip()
                and not p.startswith("#")]
    assert "tests/" in patterns and "web/tests/" in patterns
    shipped = {"nodes/", "quant/", "kernels/", "cli/", *(f.rstrip("/") + "/" for f in COMFY["includes"])}
    assert not any(p in shipped or p.rstrip("/") + "/" in shipped for p in patterns), patterns


def test_every_package_directory_is_packaged() -> None:
    """A wheel (``pip install .``, the CLI's install path) ships every importable directory of the pack: one left
    out of ``packages`` would install and then fail to import."""
    listed = set(DATA["tool"]["setuptools"]["packages"])
    skip = {"tests", "bench", "web", "example_workflows", "docs"}
    found = {"comfyui_dit_quant"} | {
        "comfyui_dit_quant." + ".".join(p.parent.relative_to(REPO).parts)
        for p in REPO.rglob("__init__.py")
        if p.parent != REPO and p.parent.relative_to(REPO).parts[0] not in skip
        and not p.parent.relative_to(REPO).parts[0].startswith(".")}
    assert found == listed
