"""Capabilities, probes and backend choices on the real device, and the fallbacks the policy promises.

- ``probe_caps`` runs each torch GEMM recipe on this GPU: every recipe the version rules expect must pass its
  probe (a disabled one is a finding: its name is in the failure).
- The policy table for this device is printed (``-rP`` shows it: which backend ``auto`` and each request picks
  per scheme on Wan-sized layers), and every choice runs here and matches the eager reference.
- Fallbacks: unknown requests raise; unavailable requests fall back to the scheme's best backend with a warning;
  unaligned layers run eager; the backends the policy picks for other GPUs (no FP8 tensor cores, no Triton, no
  rowwise) compute the right numbers here; forcing a recipe the device cannot run raises rather than returning
  wrong numbers.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import asdict, replace

import pytest
import torch
from kernel_cases import gpu_skip_reason

pytestmark = pytest.mark.gpu
if (_reason := gpu_skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from kernel_cases import GPU_MS, GPU_SCHEMES, TOL, block_weight, inputs, rel_err  # noqa: E402

from comfyui_dit_quant.kernels.caps import DeviceCaps, expected_caps, parse_version  # noqa: E402
from comfyui_dit_quant.kernels.detect import cublas_version  # noqa: E402
from comfyui_dit_quant.kernels.dispatch import backend_for, quant_linear  # noqa: E402
from comfyui_dit_quant.kernels.eager_backend import eager  # noqa: E402
from comfyui_dit_quant.kernels.probe import probe_caps  # noqa: E402
from comfyui_dit_quant.kernels.select import run_named  # noqa: E402
from comfyui_dit_quant.kernels.table import IMPLEMENTATIONS, REQUESTS, choose  # noqa: E402
from comfyui_dit_quant.quant.schemes import get_scheme  # noqa: E402

SCHEMES = GPU_SCHEMES
WAN_SHAPES = [(5120, 5120), (13824, 5120), (5120, 13824)]  # (N, K)
N, K = 384, 640


def _expected(cuda: torch.device) -> DeviceCaps:
    """What the version rules promise for this device (``detect_caps`` before its probes)."""
    return expected_caps("cuda", torch.cuda.get_device_capability(cuda), parse_version(torch.__version__),
                         importlib.util.find_spec("triton") is not None, cublas_version(),
                         rocm=torch.version.hip is not None, windows=sys.platform == "win32")


def _weights(scheme_name: str, opts: dict, n: int, k: int, cuda: torch.device, seed: int = 0):
    scheme = get_scheme(scheme_name, **opts)
    _, w, b = inputs(1, n, k, torch.bfloat16, seed, cuda)
    stored = scheme.quantize(w)
    return scheme, stored["weight"], stored["weight_scale"], b


def _tol(backend: str) -> float:
    # dequant_mm rounds the dequantized weight to the activation dtype (its own ~2e-3 vs the float32 reference).
    return 4e-3 if backend == "dequant_mm" else TOL


def test_probes_confirm_expected_caps(caps: DeviceCaps, cuda: torch.device) -> None:
    expected = _expected(cuda)
    probed = probe_caps(expected, cuda)
    print(f"device: {torch.cuda.get_device_name(cuda)}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    print(f"expected caps: {asdict(expected)}")
    print(f"probe results: {probed}")
    print(f"detected caps: {asdict(caps)}")
    disabled = [k for k, ok in probed.items() if getattr(expected, k) and not ok]
    assert not disabled, f"probes disabled {disabled} on {expected.describe()} (see the log for each probe's error)"
    assert caps == replace(expected, **probed)
    if expected.capability == (9, 0) and expected.torch_version >= (2, 9) and cublas_version() >= (12, 9):
        assert caps.cublas_blockwise and caps.scaled_mm_rowwise and caps.int_mm and caps.triton


def test_policy_table(caps: DeviceCaps, cuda: torch.device) -> None:
    """Prints the choice for every scheme x request on Wan layers; the cached dispatch agrees with the policy."""
    print(f"\nbackend choices on {caps.describe()} ({torch.cuda.get_device_name(cuda)}):")
    print(f"{'scheme':26} {'N x K':13} " + " ".join(f"{r:22}" for r in REQUESTS))
    for label, name, opts in SCHEMES:
        block = get_scheme(name, **opts).block
        for n, k in WAN_SHAPES:
            row = []
            for req in REQUESTS:
                choice = choose(caps, name, n, k, block, req)
                assert choice.backend in IMPLEMENTATIONS
                assert backend_for(cuda, name, n, k, req, *(block or (0, 0))) == choice.backend
                row.append(choice.backend + ("*" if choice.note else ""))
            print(f"{label:26} {f'{n}x{k}':13} " + " ".join(f"{c:22}" for c in row))
            auto = choose(caps, name, n, k, block)
            if caps.fp8_tensor_cores:
                assert auto.backend != "eager" and not auto.note, f"{label}: auto runs {auto}"
    print("(* = fallback, logged as a warning)")


def test_hopper_auto_choices(caps: DeviceCaps) -> None:
    """On an H100/H200 whose probes all pass: the table ``test_dispatch.py`` simulates."""
    if caps.capability != (9, 0) or not (caps.cublas_blockwise and caps.scaled_mm_rowwise and caps.triton):
        pytest.skip(f"not a fully capable sm_90 device: {caps}")
    table = {"fp8_tensor": "scaled_mm_tensorwise", "fp8_channel": "scaled_mm_rowwise",
             "fp8_block-128": "scaled_mm_blockwise", "fp8_block-64": "triton_block",
             "fp8_weight_only": "triton_weight_only", "fp8_weight_only-tensor": "triton_weight_only",
             "fp8_weight_only-block128": "triton_weight_only", "int8": "int_mm"}
    for label, name, opts in SCHEMES:
        assert choose(caps, name, 5120, 13824, get_scheme(name, **opts).block).backend == table[label], label


@pytest.mark.parametrize("m", GPU_MS)
@pytest.mark.parametrize(("label", "name", "opts"), SCHEMES, ids=[s[0] for s in SCHEMES])
def test_auto_backend_matches_eager(label: str, name: str, opts: dict, m: int, cuda: torch.device) -> None:
    scheme, wq, ws, b = _weights(name, opts, N, K, cuda)
    x, _, _ = inputs(m, N, K, torch.bfloat16, 200 + m, cuda)
    x = x.reshape(1, m, K)  # the op flattens leading dims
    chosen = backend_for(cuda, name, N, K, "auto", *(scheme.block or (0, 0)))
    out = scheme.linear(x, wq, ws, b)
    expected = scheme.linear(x, wq, ws, b, backend="eager")
    assert out.shape == (1, m, N) and out.dtype == torch.bfloat16
    err = rel_err(out, expected)
    print(f"{label} M={m}: auto = {chosen}, relative error vs eager {err:.3g}")
    assert err < _tol(chosen), f"{label}: {chosen} vs eager: relative error {err:.3g}"


@pytest.mark.parametrize("request_", [r for r in REQUESTS if r != "auto"])
@pytest.mark.parametrize(("label", "name", "opts"), SCHEMES, ids=[s[0] for s in SCHEMES])
def test_requests_run_and_match_eager(label: str, name: str, opts: dict, request_: str, caps: DeviceCaps,
                                      cuda: torch.device) -> None:
    scheme, wq, ws, b = _weights(name, opts, N, K, cuda, seed=1)
    x, _, _ = inputs(130, N, K, torch.float16, 300, cuda)
    choice = choose(caps, name, N, K, scheme.block, request_)
    assert backend_for(cuda, name, N, K, request_, *(scheme.block or (0, 0))) == choice.backend
    out = scheme.linear(x, wq, ws, b.half(), backend=request_)
    expected = scheme.linear(x, wq, ws, b.half(), backend="eager")
    assert out.dtype == torch.float16
    err = rel_err(out, expected)
    print(f"{label} request {request_}: {choice.backend} {choice.note}; relative error {err:.3g}")
    assert err < _tol(choice.backend)


# --- fallbacks --------------------------------------------------------------------------------------------------


def test_unknown_requests_raise(cuda: torch.device) -> None:
    scheme, wq, ws, b = _weights("fp8_channel", {}, N, K, cuda)
    x = torch.randn(4, K, device=cuda, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="unknown backend"):
        quant_linear(x, wq, ws, b, None, "fp8_channel", backend="cuda")
    with pytest.raises(ValueError, match="unknown backend"):
        quant_linear(x, wq, ws, b, None, "fp8_channel", backend="scaled_mm_rowwise")  # implementations: not requests
    with pytest.raises(ValueError, match="unknown quantization scheme"):
        quant_linear(x, wq, ws, b, None, "fp4", backend="auto")
    with pytest.raises(ValueError, match="expects last dim"):
        quant_linear(x[:, :-16], wq, ws, b, None, "fp8_channel")


@pytest.mark.parametrize(("name", "opts", "n", "k", "request_"), [
    ("fp8_block", {"block_size": "64x64"}, 272, 400, "cublas"),  # cuBLAS blockwise takes 128x128 blocks only
    ("fp8_block", {"block_size": "128x128"}, 144, 384, "torch"),  # ... and N, K multiples of 128
    ("fp8_block", {"block_size": "128x128"}, 256, 384, "eager"),
])
def test_unavailable_request_falls_back_with_warning(name: str, opts: dict, n: int, k: int, request_: str,
                                                     caps: DeviceCaps, cuda: torch.device,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="comfyui_dit_quant")
    scheme, wq, ws, b = _weights(name, opts, n, k, cuda, seed=2)
    choice = choose(caps, name, n, k, scheme.block, request_)
    chosen = backend_for(cuda, name, n, k, request_, *scheme.block)
    assert chosen == choice.backend
    if request_ != "eager" and caps.triton and caps.fp8_tensor_cores:
        assert chosen == "triton_block" and f"requested {request_!r} is not available" in choice.note
        assert any(f"[N={n}, K={k}]" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    x, _, _ = inputs(40, n, k, torch.bfloat16, 400, cuda)
    out = scheme.linear(x, wq, ws, b, backend=request_)
    assert rel_err(out, scheme.linear(x, wq, ws, b, backend="eager")) < TOL


@pytest.mark.parametrize("request_", REQUESTS)
def test_unaligned_layers_run_eager(request_: str, cuda: torch.device) -> None:
    scheme, wq, ws, b = _weights("fp8_channel", {}, 72, 200, cuda, seed=3)
    assert backend_for(cuda, "fp8_channel", 72, 200, request_) == "eager"
    x, _, _ = inputs(17, 72, 200, torch.bfloat16, 500, cuda)
    assert rel_err(scheme.linear(x, wq, ws, b, backend=request_), scheme.linear(x, wq, ws, b, backend="eager")) < 1e-6


def _simulated(real: DeviceCaps) -> dict[str, DeviceCaps]:
    """Other GPUs' capabilities (policy inputs): their choices must run, and be right, on this superset device."""
    tv = real.torch_version
    return {
        "A100 (no FP8 tensor cores)": expected_caps("cuda", (8, 0), tv),
        "A100 without Triton": expected_caps("cuda", (8, 0), tv, triton=False),
        "Ada on Windows without Triton": expected_caps("cuda", (8, 9), tv, triton=False, windows=True),
        "RTX 50 (no rowwise)": expected_caps("cuda", (12, 0), tv, cublas_version=(12, 9)),
        "this GPU without Triton": replace(real, triton=False),
        "this GPU without cuBLAS blockwise": replace(real, cublas_blockwise=False),
    }


@pytest.mark.parametrize(("label", "name", "opts"), SCHEMES, ids=[s[0] for s in SCHEMES])
def test_other_devices_choices_compute_right_here(label: str, name: str, opts: dict, caps: DeviceCaps,
                                                  cuda: torch.device) -> None:
    scheme, wq, ws, b = _weights(name, opts, N, K, cuda, seed=4)
    x, _, _ = inputs(130, N, K, torch.bfloat16, 600, cuda)
    runnable = {"scaled_mm_tensorwise": caps.scaled_mm, "scaled_mm_rowwise": caps.scaled_mm_rowwise,
                "scaled_mm_blockwise": caps.cublas_blockwise, "int_mm": caps.int_mm, "npu_quant_matmul": False}
    for device, sim in _simulated(caps).items():
        choice = choose(sim, name, N, K, scheme.block)
        if not runnable.get(choice.backend, True) or (choice.backend.startswith("triton") and not caps.triton):
            continue
        out = run_named(choice.backend, x, wq, ws, b, None, name, scheme.block, torch.bfloat16)
        # A weight-only fallback for an FP8 scheme computes weight-only numbers (activations unquantized).
        twin = "fp8_weight_only" if choice.backend in ("triton_weight_only", "dequant_mm") else name
        expected = eager(x, wq, ws, b, None, twin, scheme.block, torch.bfloat16)
        err = rel_err(out, expected)
        print(f"{label} on {device}: {choice.backend} ({choice.note or 'native'}); relative error {err:.3g}")
        assert err < _tol(choice.backend), f"{label} on {device}: {choice.backend}: relative error {err:.3g}"


def test_forcing_blockwise_on_unsupported_blocks_raises(caps: DeviceCaps, cuda: torch.device) -> None:
    """cuBLAS blockwise with 64x64 weight blocks is not a recipe: it must raise, never return wrong numbers."""
    if not caps.cublas_blockwise:
        pytest.skip(f"no cuBLAS blockwise on {caps.describe()}")
    _, w, b = inputs(1, N, K, torch.bfloat16, 5, cuda)
    wq, ws = block_weight(w, (64, 64))
    x, _, _ = inputs(64, N, K, torch.bfloat16, 700, cuda)
    try:
        out = run_named("scaled_mm_blockwise", x, wq, ws, b, None, "fp8_block", (64, 64), torch.bfloat16)
    except (RuntimeError, ValueError) as e:
        print(f"raised as it should: {type(e).__name__}: {str(e).splitlines()[0]}")
        return
    err = rel_err(out, eager(x, wq, ws, b, None, "fp8_block", (64, 64), torch.bfloat16))
    assert err < TOL, f"scaled_mm_blockwise accepted 64x64 block scales and returned wrong numbers ({err:.3g})"

