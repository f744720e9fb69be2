"""``DeviceCaps``: what a device can run, as plain data, so kernel choices are a pure function of it.

``expected_caps`` derives the capabilities from versions alone (simulated devices in tests, and the starting point
of ``detect.detect_caps``, which confirms them on a real device with one-time probes).
"""

from __future__ import annotations

from dataclasses import dataclass

Version = tuple[int, int]


@dataclass(frozen=True)
class DeviceCaps:
    """Capabilities of one device. ``capability`` is the CUDA compute capability (None off CUDA)."""

    device_type: str
    capability: Version | None = None
    torch_version: Version = (0, 0)
    triton: bool = False  # Triton importable and usable on this device (CUDA sm_80+, not ROCm)
    scaled_mm: bool = False  # torch._scaled_mm tensorwise
    scaled_mm_rowwise: bool = False  # per-token x per-channel scales
    cublas_blockwise: bool = False  # 1x128 x 128x128 block scales (torch >= 2.9, sm_90, cuBLAS >= 12.9)
    int_mm: bool = False  # torch._int_mm
    fp16_rowwise: bool = False  # rowwise _scaled_mm accepts an fp16 output (else bf16 output, then cast)

    @property
    def npu_int8(self) -> bool:
        """Ascend NPU: W8A8 INT8 through ``torch_npu.npu_quant_matmul`` (``npu_backend``)."""
        return self.device_type == "npu"

    @property
    def fp8_tensor_cores(self) -> bool:
        return self.device_type == "cuda" and self.capability is not None and self.capability >= (8, 9)

    def describe(self) -> str:
        sm = f" sm_{self.capability[0]}{self.capability[1]}" if self.capability else ""
        return f"{self.device_type}{sm} torch {self.torch_version[0]}.{self.torch_version[1]}"


def parse_version(text: str | None) -> Version:
    """``"2.13.0+cpu"`` → ``(2, 13)``; None or garbage → ``(0, 0)``."""
    parts = (text or "").split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0


def expected_caps(device_type: str, capability: Version | None = None, torch_version: Version = (2, 13),
                  triton: bool = True, cublas_version: Version = (0, 0), rocm: bool = False,
                  windows: bool = False) -> DeviceCaps:
    """Capabilities implied by versions alone (no probing). ``triton``: the package is importable."""
    if device_type == "cpu":
        ok = torch_version >= (2, 8)
        return DeviceCaps("cpu", None, torch_version, False, ok, ok, False, ok, ok)
    if device_type != "cuda" or capability is None or rocm:
        # NPU, XPU, MPS, ROCm (fnuz FP8): the eager reference for now.
        return DeviceCaps(device_type, capability, torch_version)
    fp8 = capability >= (8, 9)
    rowwise = fp8 and capability[0] != 12 and not windows  # rowwise is unreliable on sm_120 and Windows builds
    blockwise = torch_version >= (2, 9) and capability[0] == 9 and cublas_version >= (12, 9)
    return DeviceCaps(
        "cuda", capability, torch_version,
        triton=triton and capability >= (8, 0),
        scaled_mm=fp8, scaled_mm_rowwise=rowwise, cublas_blockwise=blockwise,
        int_mm=capability >= (8, 0), fp16_rowwise=rowwise and torch_version >= (2, 9),
    )
