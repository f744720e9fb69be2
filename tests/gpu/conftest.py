"""GPU tier (``tests/gpu``): needs a CUDA device; every module skips itself, with the reason, where there is none.

Run on a GPU with ``python -m pytest tests/gpu`` (``bench/gpu_session.sh`` runs it with the benchmarks);
``DIT_QUANT_GPU_QUICK=1`` trims the case matrix for a smoke run.

Triton GEMM tuning (``kernels/triton_tuning``) is off in this tier and its cache points at a temporary directory
(``no_tuning``): the kernel tests test the heuristic configs, take no tuning time and neither read nor write the
user's cache. ``test_triton_tuning.py`` turns tuning on for itself and checks every candidate config separately.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from comfyui_dit_quant.kernels.caps import DeviceCaps
from comfyui_dit_quant.kernels.detect import detect_caps


def pytest_report_header(config: pytest.Config) -> list[str]:
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    lines = [f"dit-quant GPU tier: python {platform.python_version()}, torch {torch.__version__} "
             f"(CUDA {torch.version.cuda}), triton {triton_version}"]
    if torch.cuda.is_available():
        cap = torch.cuda.get_device_capability(0)
        lines.append(f"device 0: {torch.cuda.get_device_name(0)} sm_{cap[0]}{cap[1]}, "
                     f"{torch.cuda.device_count()} visible")
    else:
        lines.append("no CUDA device: the GPU tier skips")
    return lines


@pytest.fixture(scope="session")
def tuning_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tuning_cache")


@pytest.fixture(autouse=True)
def no_tuning(monkeypatch: pytest.MonkeyPatch, tuning_cache_dir: Path) -> None:
    """Triton GEMMs use the heuristic configs (COMFYUI_DIT_QUANT_TUNE=0, an empty temporary cache directory)."""
    monkeypatch.setenv("COMFYUI_DIT_QUANT_TUNE", "0")
    monkeypatch.setenv("COMFYUI_DIT_QUANT_CACHE_DIR", str(tuning_cache_dir))


@pytest.fixture(scope="session")
def cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


@pytest.fixture(scope="session")
def caps(cuda: torch.device) -> DeviceCaps:
    """The probed capabilities of the device (``kernels.detect.detect_caps``)."""
    return detect_caps("cuda", cuda.index or 0)
