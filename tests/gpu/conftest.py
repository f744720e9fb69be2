"""GPU tier (``tests/gpu``): needs a CUDA device; every module skips itself, with the reason, where there is none.

Run on a GPU with ``python -m pytest tests/gpu`` (``bench/gpu_session.sh`` runs it with the benchmarks);
``DIT_QUANT_GPU_QUICK=1`` trims the case matrix for a smoke run.
"""

from __future__ import annotations

import platform

import pytest
import torch

from comfyui_dit_quant.kernels.caps import DeviceCaps, detect_caps


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
def cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


@pytest.fixture(scope="session")
def caps(cuda: torch.device) -> DeviceCaps:
    """The probed capabilities of the device (``kernels.caps.detect_caps``)."""
    return detect_caps("cuda", cuda.index or 0)
