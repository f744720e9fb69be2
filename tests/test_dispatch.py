"""Backend decisions as a pure function of simulated devices (``expected_caps`` + ``table.choose``), and the
cached selection on the real (CPU) device."""

from __future__ import annotations

import logging

import pytest

from comfyui_dit_quant.kernels.caps import DeviceCaps, expected_caps, parse_version
from comfyui_dit_quant.kernels.dispatch import backend_for
from comfyui_dit_quant.kernels.table import IMPLEMENTATIONS, choose

H100 = expected_caps("cuda", (9, 0), (2, 9), cublas_version=(12, 9))
H100_OLD_TORCH = expected_caps("cuda", (9, 0), (2, 8), cublas_version=(12, 9))
H100_OLD_CUBLAS = expected_caps("cuda", (9, 0), (2, 9), cublas_version=(12, 6))
ADA = expected_caps("cuda", (8, 9), (2, 9), cublas_version=(12, 9))
BLACKWELL_RTX = expected_caps("cuda", (12, 0), (2, 9), cublas_version=(12, 9))
ADA_WINDOWS_NO_TRITON = expected_caps("cuda", (8, 9), (2, 9), triton=False, windows=True)
A100 = expected_caps("cuda", (8, 0), (2, 9))
A10 = expected_caps("cuda", (8, 6), (2, 9))
A100_NO_TRITON = expected_caps("cuda", (8, 0), (2, 9), triton=False)
T4 = expected_caps("cuda", (7, 5), (2, 9))
CPU = expected_caps("cpu", torch_version=(2, 13))
NPU = expected_caps("npu", torch_version=(2, 9))
MI300 = expected_caps("cuda", (9, 4), (2, 9), rocm=True)

B128, B64 = (128, 128), (64, 64)
# device, scheme, block, (auto choice, fallback note expected?)
TABLE = [
    (H100, "fp8_tensor", None, "scaled_mm_tensorwise", False),
    (H100, "fp8_channel", None, "scaled_mm_rowwise", False),
    (H100, "fp8_block", B128, "scaled_mm_blockwise", False),
    (H100, "fp8_block", B64, "triton_block", False),
    (H100, "fp8_weight_only", None, "triton_weight_only", False),
    (H100, "int8", None, "int_mm", False),
    (H100_OLD_TORCH, "fp8_block", B128, "triton_block", False),
    (H100_OLD_CUBLAS, "fp8_block", B128, "triton_block", False),
    (ADA, "fp8_tensor", None, "scaled_mm_tensorwise", False),
    (ADA, "fp8_channel", None, "scaled_mm_rowwise", False),
    (ADA, "fp8_block", B128, "triton_block", False),
    (BLACKWELL_RTX, "fp8_channel", None, "triton_scaled", False),
    (BLACKWELL_RTX, "fp8_block", B128, "triton_block", False),
    (ADA_WINDOWS_NO_TRITON, "fp8_tensor", None, "scaled_mm_tensorwise", False),
    (ADA_WINDOWS_NO_TRITON, "fp8_channel", None, "eager", True),
    (ADA_WINDOWS_NO_TRITON, "fp8_block", B128, "eager", True),
    (ADA_WINDOWS_NO_TRITON, "fp8_weight_only", None, "dequant_mm", False),
    (ADA_WINDOWS_NO_TRITON, "int8", None, "int_mm", False),
    (A100, "fp8_tensor", None, "triton_weight_only", True),
    (A100, "fp8_channel", None, "triton_weight_only", True),
    (A100, "fp8_block", B128, "triton_weight_only", True),
    (A100, "fp8_weight_only", B64, "triton_weight_only", False),
    (A100, "int8", None, "int_mm", False),
    (A10, "fp8_channel", None, "triton_weight_only", True),
    (A100_NO_TRITON, "fp8_block", B128, "dequant_mm", True),
    (A100_NO_TRITON, "int8", None, "int_mm", False),
    (T4, "fp8_channel", None, "dequant_mm", True),
    (T4, "int8", None, "eager", True),
    (MI300, "fp8_channel", None, "eager", True),
    (CPU, "fp8_tensor", None, "eager", False),
    (CPU, "fp8_channel", None, "eager", False),
    (CPU, "fp8_block", B128, "eager", False),
    (CPU, "fp8_weight_only", None, "eager", False),
    (CPU, "int8", None, "eager", False),
    (NPU, "int8", None, "npu_quant_matmul", False),
    (NPU, "fp8_block", B128, "eager", False),
]


@pytest.mark.parametrize(("caps", "scheme", "block", "backend", "fallback"), TABLE)
def test_auto_choice_table(caps: DeviceCaps, scheme: str, block: tuple[int, int] | None, backend: str,
                           fallback: bool) -> None:
    if caps.device_type == "cuda" and caps.capability and caps.capability < (8, 9) and scheme != "fp8_weight_only":
        assert scheme == "int8" or fallback  # Ampere and older: FP8 activations never run
    choice = choose(caps, scheme, 5120, 13824, block)
    assert choice.backend == backend
    assert bool(choice.note) == fallback
    assert choice.backend in IMPLEMENTATIONS


@pytest.mark.parametrize("caps", [H100, ADA, A100, CPU])
@pytest.mark.parametrize(("n", "k"), [(5120, 13830), (5128, 5120), (8, 16)])
def test_unaligned_shapes_run_eager(caps: DeviceCaps, n: int, k: int) -> None:
    choice = choose(caps, "fp8_channel", n, k)
    assert choice.backend == "eager" and (caps.device_type == "cpu" or "multiples of 16" in choice.note)


def test_blockwise_needs_128_multiples() -> None:
    assert choose(H100, "fp8_block", 5120, 5120 + 64, B128).backend == "triton_block"


@pytest.mark.parametrize(("caps", "requested", "scheme", "backend", "note"), [
    (H100, "triton", "fp8_channel", "triton_scaled", False),
    (H100, "triton", "int8", "triton_int8", False),
    (H100, "torch", "fp8_weight_only", "dequant_mm", False),
    (H100, "cublas", "fp8_block", "scaled_mm_blockwise", False),
    (H100, "eager", "fp8_tensor", "eager", False),
    (ADA_WINDOWS_NO_TRITON, "triton", "fp8_tensor", "scaled_mm_tensorwise", True),
    (CPU, "torch", "fp8_tensor", "scaled_mm_tensorwise", False),
    (CPU, "torch", "fp8_channel", "scaled_mm_rowwise", False),
    (CPU, "cublas", "int8", "int_mm", False),
    (CPU, "torch", "fp8_weight_only", "dequant_mm", False),
    (CPU, "torch", "fp8_block", "eager", True),
    (CPU, "triton", "fp8_channel", "eager", True),
])
def test_requests(caps: DeviceCaps, requested: str, scheme: str, backend: str, note: bool) -> None:
    choice = choose(caps, scheme, 4096, 4096, B128 if scheme == "fp8_block" else None, requested)
    assert choice.backend == backend and bool(choice.note) == note


def test_caps_derivation() -> None:
    assert H100.cublas_blockwise and not H100_OLD_TORCH.cublas_blockwise and not H100_OLD_CUBLAS.cublas_blockwise
    assert not ADA.cublas_blockwise and ADA.scaled_mm_rowwise and not BLACKWELL_RTX.scaled_mm_rowwise
    assert not A100.scaled_mm and A100.int_mm and A100.triton and not A100_NO_TRITON.triton
    assert not T4.triton and not T4.int_mm
    assert not CPU.triton and CPU.scaled_mm and CPU.int_mm
    assert DeviceCaps("npu", None, (2, 9)) == NPU and not MI300.scaled_mm
    assert parse_version("2.13.0+cpu") == (2, 13) and parse_version(None) == (0, 0)


def test_backend_for_on_cpu_is_cached_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="comfyui_dit_quant")
    args = ("cpu", "fp8_block", 4112, 4128, "torch", 64, 64)
    assert backend_for(*args) == "eager"
    assert backend_for(*args) == "eager"
    assert len([r for r in caplog.records if "4112" in r.getMessage()]) == 1
    assert backend_for("cpu", "int8", 64, 64, "torch") == "int_mm"
    with pytest.raises(ValueError, match="unknown backend"):
        backend_for("cpu", "int8", 64, 64, "cuda")


def test_kernel_table_runs_exactly_the_registry_schemes() -> None:
    from comfyui_dit_quant.kernels.table import KERNELS, SCHEMES
    from comfyui_dit_quant.quant.schemes import CHOICES, SCHEME_NAMES

    assert set(SCHEMES) == set(SCHEME_NAMES) == {c.scheme for c in CHOICES}
    for scheme in SCHEMES:  # every scheme has its eager reference, last in the table
        assert [k.family for k in KERNELS if scheme in k.schemes][-1] == "eager"


def test_choice_carries_the_refusals_of_better_kernels() -> None:
    c = choose(ADA, "fp8_block", 5120, 13824, B128)
    assert c.backend == "triton_block" and c.kernel.family == "triton"
    assert [name for name, _ in c.refused] == ["scaled_mm_blockwise"] and "cuBLAS" in c.refused[0][1]
    t4 = choose(T4, "int8", 5120, 13824)
    assert t4.backend == "eager" and "no fast path" in t4.note and "torch._int_mm" in t4.note


def test_cublas_blockwise_only_on_its_supported_layout() -> None:
    """K/128 not a multiple of 4 is silently wrong in cuBLASLt blockwise (older torch): the Triton kernel runs."""
    bad = choose(H100, "fp8_block", 5120, 6 * 128, B128)
    assert bad.backend == "triton_block" and "K/128" in dict(bad.refused)["scaled_mm_blockwise"]
    assert choose(H100, "fp8_block", 5120, 8 * 128, B128).backend == "scaled_mm_blockwise"


def test_cublas_blockwise_runner_pads_m_to_four(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from comfyui_dit_quant.kernels import torch_backend

    seen = []

    def fake_gemm(x_q, weight, x_s, w_s, bias, out_dtype):
        seen.append((x_q.shape[0], x_s.shape[0], x_s.stride()))
        return torch.zeros(x_q.shape[0], weight.shape[0], dtype=out_dtype)

    monkeypatch.setattr(torch_backend, "blockwise_gemm", fake_gemm)
    out = torch_backend.scaled_mm_blockwise(torch.randn(5, 512), torch.zeros(256, 512), torch.ones(2, 4), None,
                                            None, B128, torch.bfloat16)
    assert out.shape == (5, 256) and seen == [(8, 8, (1, 8))]


@pytest.mark.parametrize(("caps", "scheme", "block"), [(H100, "fp8_weight_only", None), (A100, "fp8_channel", None),
                                                       (A100, "fp8_block", B128)])
def test_weight_only_at_large_m_dequantizes_into_a_bf16_gemm(caps: DeviceCaps, scheme: str, block) -> None:
    from comfyui_dit_quant.kernels.table import M_SPLIT

    small = choose(caps, scheme, 5120, 13824, block, m=M_SPLIT)
    large = choose(caps, scheme, 5120, 13824, block, m=32760)
    assert small.backend == "triton_weight_only" and large.backend == "dequant_mm"
    assert ("triton_weight_only", f"M > {M_SPLIT}: dequantize + a bf16 GEMM is faster") in large.refused
