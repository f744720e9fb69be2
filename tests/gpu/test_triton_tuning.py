"""Triton GEMM tuning on the real GPU (``kernels/triton_tuning``): a first call times the candidates and caches the
fastest on disk, its output matches the eager twin, later calls (and a fresh in-memory cache) time nothing; and
every candidate config the tuner may pick compiles to correct results, for each kernel mode and M bucket.

The rest of the tier runs with tuning off (``conftest.no_tuning``); these tests turn it on with a temporary cache."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from kernel_cases import gpu_skip_reason

pytestmark = pytest.mark.gpu
if (_reason := gpu_skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)
pytest.importorskip("triton")

from kernel_cases import (  # noqa: E402
    GPU_MS,
    GPU_RAGGED,
    WEIGHT_ONLY_BLOCK,
    check_block_gemm,
    check_scaled_gemm,
    check_weight_only_gemm,
)

from comfyui_dit_quant.kernels import triton_tuning as tt  # noqa: E402
from comfyui_dit_quant.kernels.caps import DeviceCaps  # noqa: E402
from comfyui_dit_quant.kernels.triton_configs import GemmConfig  # noqa: E402

N, K = GPU_RAGGED
TUNED_M = 130
Check = Callable[[int, torch.device, "GemmConfig | None"], float]

# mode → (check(m, device, cfg), group_n, group_k, weight_only, int8, needs FP8 tensor cores)
MODES: dict[str, tuple[Check, int, int | None, bool, bool, bool]] = {
    "scaled": (lambda m, d, c: check_scaled_gemm(m, N, K, torch.bfloat16, True, "fp8_token", d, cfg=c),
               1, None, False, False, True),
    "int8": (lambda m, d, c: check_scaled_gemm(m, N, K, torch.bfloat16, True, "int8", d, cfg=c),
             1, None, False, True, False),
    "block-128x128": (lambda m, d, c: check_block_gemm(m, N, K, torch.bfloat16, True, (128, 128), d, cfg=c),
                      128, 128, False, False, True),
    "weight_only": (lambda m, d, c: check_weight_only_gemm(m, N, K, torch.bfloat16, True, "channel", d, cfg=c),
                    1, None, True, False, False),
    "weight_only-block": (lambda m, d, c: check_weight_only_gemm(m, N, K, torch.float16, False, "block", d, cfg=c),
                          *WEIGHT_ONLY_BLOCK, True, False, False),
}


def _mode(name: str, caps: DeviceCaps) -> tuple[Check, int, int | None, bool, bool]:
    check, gn, gk, wo, i8, fp8 = MODES[name]
    if fp8 and not caps.fp8_tensor_cores:
        pytest.skip(f"{name}: FP8 x FP8 dots need sm_89+ ({caps.describe()})")
    return check, gn, gk, wo, i8


@pytest.fixture
def tuning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, list[int]]:
    """Tuning on, a fresh cache in ``tmp_path``; the list counts the candidate timings (``cuda_timer`` calls)."""
    monkeypatch.setenv(tt.ENV_CACHE_DIR, str(tmp_path))
    monkeypatch.setenv(tt.ENV_TUNE, "1")
    tt.clear_memory()
    timed: list[int] = []
    real = tt.cuda_timer

    def counting(fn: Callable[[], None]) -> float:
        timed.append(1)
        return real(fn)

    monkeypatch.setattr(tt, "cuda_timer", counting)
    yield tmp_path, timed
    tt.clear_memory()


@pytest.mark.parametrize("mode", list(MODES))
def test_tunes_at_first_use_then_uses_the_cache(mode: str, tuning: tuple[Path, list[int]], cuda: torch.device,
                                                caps: DeviceCaps, caplog: pytest.LogCaptureFixture) -> None:
    cache, timed = tuning
    check, gn, gk, wo, i8 = _mode(mode, caps)
    info = tt.device_info(cuda.index or 0)
    key = tt.shape_key(info, TUNED_M, N, K, gn, gk, wo, i8)
    n_candidates = len(tt.candidates(TUNED_M, N, K, gk, wo, i8, info.smem, info.capability))

    with caplog.at_level(logging.INFO, logger="comfyui_dit_quant"):
        err = check(TUNED_M, cuda, None)  # tunes, then the real launch: the output matches the eager twin
    if n_candidates == 1:  # the heuristic alone: nothing timed, nothing stored
        assert timed == [] and not tt.cache_file(info, cache).exists()
        return
    assert len(timed) == n_candidates
    tuned = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"tuned {key}: ")]
    assert len(tuned) == 1, [r.getMessage() for r in caplog.records]
    print(f"{tuned[0]}; relative error {err:.3g}")

    data = json.loads(tt.cache_file(info, cache).read_text())
    assert data["schema"] == tt.SCHEMA and data["device"] == info.name and key in data["entries"]
    entry = data["entries"][key]
    assert entry["ms"] > 0 and entry["timed"] >= 1 and entry["m"] == TUNED_M
    assert entry["default_ms"] is None or entry["ms"] <= entry["default_ms"]

    check(TUNED_M + 50, cuda, None)  # same bucket: the cached config, nothing timed
    tt.clear_memory()  # a new process: read back from disk
    check(TUNED_M, cuda, None)
    assert len(timed) == n_candidates


@pytest.mark.parametrize("m", GPU_MS)
@pytest.mark.parametrize("mode", list(MODES))
def test_every_candidate_is_correct(mode: str, m: int, cuda: torch.device, caps: DeviceCaps) -> None:
    """Each config the tuner may time and keep gives the eager twin's numbers. A candidate that does not compile
    or fit (the tuner skips those) is reported; the heuristic must work."""
    check, _, gk, wo, i8 = _mode(mode, caps)
    info = tt.device_info(cuda.index or 0)
    cands = tt.candidates(m, N, K, gk, wo, i8, info.smem, info.capability)
    skipped = []
    for i, cfg in enumerate(cands):
        try:
            check(m, cuda, cfg)
        except AssertionError as e:
            raise AssertionError(f"{mode} M={m} {tt.describe(cfg)}: {e}") from e
        except Exception as e:  # compile / resource errors: the tuner skips such candidates
            if i == 0:
                raise
            skipped.append(f"{tt.describe(cfg)}: {type(e).__name__}: {str(e)[:200]}")
    print(f"{mode} M={m}: {len(cands) - len(skipped)}/{len(cands)} candidates correct; skipped {skipped}")
