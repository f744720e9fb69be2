"""``kernels/triton_tuning``: keys, candidates, the disk cache and when tuning runs, on the CPU with a fake CUDA
device (``device_info`` patched), a fake ``run`` and an injected timer. The real tuning on a GPU is in
``tests/gpu/test_triton_tuning.py``."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from comfyui_dit_quant.kernels import triton_tuning as tt
from comfyui_dit_quant.kernels.triton_configs import GemmConfig, gemm_config

CUDA = torch.device("cuda", 0)
INFO = tt.DeviceInfo("NVIDIA_H200", (9, 0), "3.5.0")
M, N, K = 300, 5120, 13824  # the 64 < M <= 512 bucket
LOGGER = "comfyui_dit_quant"
REAL_INTERPRETING, REAL_CAPTURING = tt._interpreting, tt._capturing  # the autouse fixture patches them


@pytest.fixture(autouse=True)
def fake_cuda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fake H200 (no CUDA needed), an empty cache dir, tuning on, no interpreter, a fresh in-memory cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(tt.ENV_CACHE_DIR, str(cache))
    monkeypatch.delenv(tt.ENV_TUNE, raising=False)
    monkeypatch.setattr(tt, "device_info", lambda index: INFO)
    monkeypatch.setattr(tt, "_interpreting", lambda: False)
    monkeypatch.setattr(tt, "_capturing", lambda: False)
    tt.clear_memory()
    yield cache
    tt.clear_memory()


class Fake:
    """``run`` records the configs launched; ``timer`` runs ``fn`` once and returns the time given to its config
    (default 1.0 ms); ``fail``: configs whose launch raises."""

    def __init__(self, times: dict[GemmConfig, float] | None = None, fail: set[GemmConfig] | None = None) -> None:
        self.times = times or {}
        self.fail = fail or set()
        self.runs: list[GemmConfig] = []
        self.timed = 0

    def run(self, cfg: GemmConfig) -> None:
        if cfg in self.fail:
            raise RuntimeError(f"out of resources: {cfg}")
        self.runs.append(cfg)

    def timer(self, fn: Callable[[], None]) -> float:
        self.timed += 1
        fn()
        return self.times.get(self.runs[-1], 1.0)


def select(fake: Fake, m: int = M, n: int = N, k: int = K, group_n: int = 1, group_k: int | None = None,
           weight_only: bool = False, int8: bool = False, device: torch.device = CUDA) -> GemmConfig:
    return tt.select_config(device, m, n, k, group_n, group_k, weight_only, int8, fake.run, timer=fake.timer)


def cache_entries(cache: Path) -> dict[str, dict]:
    data = json.loads(tt.cache_file(INFO, cache).read_text())
    assert data["schema"] == tt.SCHEMA and data["device"] == "NVIDIA_H200" and data["triton"] == "3.5.0"
    return data["entries"]


def h200_candidates(m: int, n: int, k: int, group_k: int | None = None, weight_only: bool = False,
                    int8: bool = False) -> list[GemmConfig]:
    """What ``select_config`` times on the fake H200."""
    return tt.candidates(m, n, k, group_k, weight_only, int8, INFO.smem, INFO.capability)


def key(m: int = M, n: int = N, k: int = K, group_n: int = 1, group_k: int | None = None, weight_only: bool = False,
        int8: bool = False) -> str:
    return tt.shape_key(INFO, m, n, k, group_n, group_k, weight_only, int8)


# --- keys and candidates --------------------------------------------------------------------------------------------


def test_m_bucket() -> None:
    assert [tt.m_bucket(m) for m in (0, 1, 2, 3, 4, 5, 17, 64, 65, 4096, 4097, 8192)] == \
        [1, 1, 2, 4, 4, 8, 32, 64, 128, 4096, 8192, 8192]
    assert tt.m_bucket(8193) == tt.m_bucket(75600) == tt.LARGE_M_BUCKET > 8192


def test_shape_key() -> None:
    assert key(256, 5120, 13824, 128, 128) == "NVIDIA_H200/sm90/triton3.5.0/block-128x128/m256/n5120/k13824"
    assert key(17) == "NVIDIA_H200/sm90/triton3.5.0/scaled/m32/n5120/k13824"
    assert key(32760, int8=True) == "NVIDIA_H200/sm90/triton3.5.0/int8/m>8192/n5120/k13824"
    assert key(75600, int8=True) == key(32760, int8=True)
    assert key(1, weight_only=True).split("/")[3] == "weight_only"
    assert key(1, group_n=64, group_k=32, weight_only=True).split("/")[3] == "weight_only-64x32"
    assert tt.slug("NVIDIA GeForce RTX 4090") == "NVIDIA_GeForce_RTX_4090"
    assert tt.cache_file(INFO, Path("/c")) == Path("/c/triton_gemm-NVIDIA_H200-sm90-triton3.5.0.json")


GRID = [(m, n, k, gk, wo, i8)
        for m in (1, 16, 17, 40, 64, 100, 512, 513, 4096, 75600)
        for n, k in ((72, 200), (5120, 5120), (13824, 5120))
        for gk, wo, i8 in ((None, False, False), (None, False, True), (128, False, False), (64, False, False),
                           (32, False, False), (None, True, False), (128, True, False), (32, True, False))]


@pytest.mark.parametrize("smem_limit", [tt.SMEM_LIMIT, 99 * 1024])
def test_candidates_are_valid(smem_limit: int) -> None:
    for m, n, k, gk, wo, i8 in GRID:
        cands = tt.candidates(m, n, k, gk, wo, i8, smem_limit)
        where = (m, n, k, gk, wo, i8)
        assert cands[0] == gemm_config(m, n, k, gk, wo), where  # the heuristic first, always
        assert 2 <= len(cands) <= tt.MAX_CANDIDATES and len(set(cands)) == len(cands), (where, cands)
        for c in cands:
            assert gk is None or gk % c.block_k == 0, (where, c)
            assert tt.smem_bytes(c, wo) <= tt.SMEM_LIMIT, (where, c)
        for c in cands[1:]:
            assert c.block_k >= (16 if wo else 32), (where, c)  # FP8 / INT8 dots need K >= 32
            assert tt.smem_bytes(c, wo) <= smem_limit, (where, c)


def test_candidates_fill_up_to_the_limit_for_real_shapes() -> None:
    for m in (1, 17, 256, 4096, 75600):
        assert len(tt.candidates(m, 5120, 5120, 128)) == tt.MAX_CANDIDATES
        assert len(tt.candidates(m, 5120, 5120, None, int8=True)) == tt.MAX_CANDIDATES


def test_capability_aware_heuristic_and_candidates() -> None:
    """Hopper: 8-bit tiles of >= 64 rows (16/32-row tiles have no wgmma, and Hopper no FP8 mma.sync); every GPU:
    the heuristic's pipeline fits its shared memory; 64x128x128 with 4 warps is tried first above M = 512."""
    for m in (1, 16, 17, 40, 64, 300, 4096, 75600):
        for gk, wo, i8 in ((None, False, False), (128, False, False), (None, False, True), (None, True, False)):
            cands = tt.candidates(m, 5120, 5120, gk, wo, i8, tt.SMEM_LIMIT, (9, 0))
            assert cands[0] == gemm_config(m, 5120, 5120, gk, wo, (9, 0)), (m, gk, wo)
            if not wo:
                assert all(c.block_m >= 64 for c in cands), (m, gk, i8, cands)
    for cc, limit in (((8, 9), 101376), ((8, 6), 101376), ((8, 0), 166912), ((9, 0), 232448)):
        for m in (1, 40, 300, 4096):
            for gk in (None, 128):
                for wo in (False, True):
                    assert tt.smem_bytes(gemm_config(m, 5120, 5120, gk, wo, cc), wo) <= limit, (cc, m, gk, wo)
    assert gemm_config(4096, 5120, 5120, None, True) == GemmConfig(128, 128, 128, 8, 8, 3)  # 160 KB
    assert gemm_config(4096, 5120, 5120, None, True, (8, 9)) == GemmConfig(128, 128, 64, 8, 8, 3)
    assert gemm_config(16, 5120, 5120, None, False, (9, 0)).block_m == 64
    hopper = tt.candidates(4096, 5120, 5120, 128, capability=(9, 0))
    assert hopper[:3] == [GemmConfig(128, 128, 128, 8, 8, 3, tma=True), GemmConfig(128, 128, 128, 8, 8, 3),
                          GemmConfig(64, 128, 128, 8, 4, 4, tma=True)]


def test_hopper_8bit_configs_load_by_tma_and_the_tuner_times_the_pointer_twin() -> None:
    """``GemmConfig.tma``: the heuristic's pick for Hopper 8-bit GEMMs (the compiled evidence in
    ``triton_configs``); every tuning of such a shape also times the pointer kernel at the heuristic's tile."""
    for m in (1, 17, 64, 300, 4096, 75600):
        for gk, i8 in ((None, False), (128, False), (None, True)):
            cands = tt.candidates(m, 5120, 13824, gk, False, i8, tt.SMEM_LIMIT, (9, 0))
            assert cands[0].tma and cands[1] == replace(cands[0], tma=False), (m, gk, i8, cands)
            assert all(c.tma for c in cands[2:]) and len(cands) <= tt.MAX_CANDIDATES + 1
            assert len(cands) == tt.MAX_CANDIDATES + 1 or m <= 16  # the twin adds one; M <= 16 has 3 alternatives
        for cc in (None, (8, 9), (8, 0), (10, 0), (12, 0)):
            assert not any(c.tma for c in tt.candidates(m, 5120, 13824, None, False, False, tt.SMEM_LIMIT, cc))
        assert not any(c.tma for c in tt.candidates(m, 5120, 13824, None, True, False, tt.SMEM_LIMIT, (9, 0)))
    assert "tma" in tt.describe(GemmConfig(64, 64, 128, tma=True)) and "tma" not in tt.describe(GemmConfig(64, 64, 128))


def test_a_shape_with_only_the_heuristic_is_not_timed(monkeypatch: pytest.MonkeyPatch, fake_cuda: Path) -> None:
    heuristic = gemm_config(M, N, K, None, False, INFO.capability)
    monkeypatch.setattr(tt, "candidates", lambda *a, **kw: [heuristic])
    fake = Fake()
    assert select(fake) == heuristic and select(fake) == heuristic
    assert fake.timed == 0 and fake.runs == [] and not tt.cache_file(INFO, fake_cuda).exists()


# --- the tuner and its cache ------------------------------------------------------------------------------------------


def test_tunes_picks_the_fastest_stores_it_and_reads_it_back(fake_cuda: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    cands = h200_candidates(M, N, K)
    fast = cands[2]
    fake = Fake({cands[0]: 1.0, fast: 0.5, cands[1]: 0.8})
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert select(fake) == fast
    assert fake.timed == len(cands) and set(fake.runs) == set(cands)
    tuned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tuned ")]
    assert tuned == [f"tuned {key()}: {tt.describe(fast)} (0.5 ms vs default 1 ms)"]
    entry = cache_entries(fake_cuda)[key()]
    assert entry["config"] == {"block_m": fast.block_m, "block_n": fast.block_n, "block_k": fast.block_k,
                               "group_m": fast.group_m, "num_warps": fast.num_warps, "num_stages": fast.num_stages,
                               "tma": fast.tma}
    assert entry["ms"] == 0.5 and entry["default_ms"] == 1.0 and entry["m"] == M

    again = Fake()
    assert select(again, m=M + 100) == fast  # same bucket: from memory, nothing timed or launched
    assert again.timed == 0 and again.runs == []

    tt.clear_memory()  # a new process: read from disk
    fresh = Fake()
    assert select(fresh) == fast and fresh.timed == 0

    other = Fake()
    # another bucket is tuned (all equal: the heuristic)
    assert select(other, m=4096) == gemm_config(4096, N, K, capability=INFO.capability)
    assert other.timed == len(h200_candidates(4096, N, K))
    assert set(cache_entries(fake_cuda)) == {key(), key(4096)}


def test_later_calls_of_a_layer_skip_the_key_and_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path: once a shape bucket is resolved, select_config is one dict lookup."""
    fake = Fake({h200_candidates(M, N, K)[1]: 0.5})
    first = select(fake)
    monkeypatch.setattr(tt, "_store", lambda info: pytest.fail("the store was consulted again"))
    monkeypatch.setattr(tt, "shape_key", lambda *a: pytest.fail("the key was built again"))
    assert select(Fake(), m=M - 1) == first and fake.timed > 0  # same M bucket
    tt.clear_memory()
    with pytest.raises(pytest.fail.Exception, match="built again"):
        select(Fake())


def test_ties_keep_the_heuristic() -> None:
    assert select(Fake()) == gemm_config(M, N, K, capability=INFO.capability)


def test_keys_separate_modes_and_shapes(fake_cuda: Path) -> None:
    cands = h200_candidates(M, N, K, 128)
    assert select(Fake({cands[1]: 0.1}), group_n=128, group_k=128) == cands[1]
    scaled = Fake()
    select(scaled)
    assert scaled.timed > 0  # not the block-scaled entry
    assert set(cache_entries(fake_cuda)) == {key(), key(group_n=128, group_k=128)}


def test_failing_candidates_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    cands = h200_candidates(M, N, K)
    fake = Fake({cands[3]: 0.7, cands[4]: 0.9}, fail={cands[0], cands[1]})
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert select(fake) == cands[3]
    assert sum("failed: RuntimeError: out of resources" in r.getMessage() for r in caplog.records) == 2
    assert any("vs default failed" in r.getMessage() for r in caplog.records)


def test_all_candidates_failing_raises_the_first_error(fake_cuda: Path) -> None:
    cands = h200_candidates(M, N, K)
    with pytest.raises(RuntimeError, match=re.escape(f"out of resources: {cands[0]}")):
        select(Fake(fail=set(cands)))
    assert not tt.cache_file(INFO, fake_cuda).exists()


@pytest.mark.parametrize("content", ["{not json", '{"schema": 0, "entries": {}}', "[1, 2]", "\udcff"])
def test_unusable_cache_file_is_ignored_with_a_warning(fake_cuda: Path, caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    path = tt.cache_file(INFO, fake_cuda)
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    monkeypatch.setenv(tt.ENV_TUNE, "0")
    fake = Fake()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert select(fake) == gemm_config(M, N, K, capability=INFO.capability) and fake.timed == 0
        select(fake)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ignored" in warnings[0].getMessage(), warnings  # read once per process
    monkeypatch.setenv(tt.ENV_TUNE, "1")  # tuning rewrites it as a valid file
    select(fake)
    assert key() in cache_entries(fake_cuda)


def test_bad_entries_are_ignored(fake_cuda: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tt.cache_file(INFO, fake_cuda)
    path.parent.mkdir(parents=True)
    good = {"block_m": 64, "block_n": 64, "block_k": 64, "group_m": 8, "num_warps": 4, "num_stages": 2}
    path.write_text(json.dumps({"schema": tt.SCHEMA, "entries": {
        key(): {"config": {**good, "block_k": 48}}, key(4096): {"config": good}, key(1): "nonsense"}}))
    fake = Fake()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert select(fake, m=4096) == GemmConfig(64, 64, 64, 8, 4, 2) and fake.timed == 0
    assert sum("ignoring entry" in r.getMessage() for r in caplog.records) == 2
    assert select(fake) != GemmConfig(64, 64, 48, 8, 4, 2) and fake.timed > 0  # re-tuned


def test_cached_tma_flag_round_trips_and_older_files_read_as_pointer_kernel(fake_cuda: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    path = tt.cache_file(INFO, fake_cuda)
    path.parent.mkdir(parents=True)
    good = {"block_m": 64, "block_n": 64, "block_k": 64, "group_m": 8, "num_warps": 4, "num_stages": 2}
    path.write_text(json.dumps({"schema": tt.SCHEMA, "entries": {
        key(4096): {"config": {**good, "tma": True}}, key(1): {"config": good},
        key(): {"config": {**good, "tma": 1}}}}))
    fake = Fake()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert select(fake, m=4096) == GemmConfig(64, 64, 64, 8, 4, 2, tma=True)
        assert select(fake, m=1) == GemmConfig(64, 64, 64, 8, 4, 2)  # written before the field existed
    assert fake.timed == 0 and sum("tma must be" in r.getMessage() for r in caplog.records) == 1
    cands = h200_candidates(M, N, K)
    assert cands[0].tma and select(Fake({cands[1]: 0.1})) == cands[1]  # the pointer twin was faster
    assert cache_entries(fake_cuda)[key()]["config"]["tma"] is False


def test_cached_config_not_dividing_the_group_is_not_used(fake_cuda: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tt.cache_file(INFO, fake_cuda)
    path.parent.mkdir(parents=True)
    cfg = {"block_m": 64, "block_n": 64, "block_k": 128, "group_m": 8, "num_warps": 4, "num_stages": 2}
    path.write_text(json.dumps({"schema": tt.SCHEMA, "entries": {key(group_n=64, group_k=64): {"config": cfg}}}))
    monkeypatch.setenv(tt.ENV_TUNE, "0")
    assert select(Fake(), group_n=64, group_k=64) == gemm_config(M, N, K, 64, capability=INFO.capability)


def test_unwritable_cache_dir_keeps_configs_in_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(tt.ENV_CACHE_DIR, str(blocker / "cache"))  # mkdir fails, even as root
    cands = h200_candidates(M, N, K)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert select(Fake({cands[1]: 0.1})) == cands[1]
        select(Fake(), m=4096)
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1  # logged once
    again = Fake()
    assert select(again) == cands[1] and again.timed == 0  # kept in memory


def test_failed_replace_leaves_no_temp_file(fake_cuda: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", refuse)
    select(Fake())
    assert list(fake_cuda.iterdir()) == []


def test_concurrent_writers_merge(fake_cuda: Path) -> None:
    """Another process wrote a key after this one loaded the file: both keys survive this one's write."""
    select(Fake())
    entries = cache_entries(fake_cuda)
    path = tt.cache_file(INFO, fake_cuda)
    other = {"schema": tt.SCHEMA, "entries": {**entries, key(2): entries[key()]}}
    path.write_text(json.dumps(other))
    select(Fake(), m=4096)
    assert set(cache_entries(fake_cuda)) == {key(), key(2), key(4096)}


def test_threads_tune_a_key_once() -> None:
    fake = Fake()
    barrier = threading.Barrier(4)
    results: list[GemmConfig] = []

    def work() -> None:
        barrier.wait()
        results.append(select(fake))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert fake.timed == len(h200_candidates(M, N, K))


# --- when tuning is off ---------------------------------------------------------------------------------------------


def test_not_on_cpu(fake_cuda: Path) -> None:
    fake = Fake()
    assert select(fake, device=torch.device("cpu")) == gemm_config(M, N, K)
    assert fake.timed == 0 and not fake_cuda.exists()


def test_not_under_the_interpreter(fake_cuda: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    select(Fake())  # a cached config is not used either: the interpreter runs the heuristic
    monkeypatch.setattr(tt, "_interpreting", lambda: True)
    fake = Fake()
    assert select(fake) == gemm_config(M, N, K) and select(fake, m=4096) == gemm_config(4096, N, K)
    assert fake.timed == 0


@pytest.mark.parametrize("value", ["1", "true", "on"])
def test_interpreter_detected_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", value)
    assert REAL_INTERPRETING()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not REAL_INTERPRETING()


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_not_when_disabled(fake_cuda: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    cands = h200_candidates(M, N, K)
    select(Fake({cands[1]: 0.1}))
    monkeypatch.setenv(tt.ENV_TUNE, value)
    fake = Fake()
    assert select(fake, m=4096) == gemm_config(4096, N, K, capability=INFO.capability) and fake.timed == 0
    assert select(fake) == cands[1]  # configs tuned before are still used
    assert set(cache_entries(fake_cuda)) == {key()}


def test_not_while_capturing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tt, "_capturing", lambda: True)
    fake = Fake()
    assert select(fake) == gemm_config(M, N, K, capability=INFO.capability) and fake.timed == 0


def test_capturing_is_false_outside_capture_and_compile() -> None:
    assert REAL_CAPTURING() is False  # also where CUDA is missing (torch's capture query would raise there)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(tt.ENV_CACHE_DIR)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert tt.cache_dir() == Path.home() / ".cache" / "comfyui-dit-quant"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tt.cache_dir() == tmp_path / "comfyui-dit-quant"


def test_main_prints_the_cache(fake_cuda: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cands = h200_candidates(M, N, K)
    select(Fake({cands[0]: 1.0, cands[1]: 0.5}))
    assert tt.main([]) == 0
    out = capsys.readouterr().out
    assert "1 tuned configs" in out and key() in out and "2.00x vs default 1 ms" in out


# --- the wiring in triton_gemm ----------------------------------------------------------------------------------------


class FakeKernel:
    """Stands in for ``_scaled_gemm_kernel`` / ``_weight_only_kernel``: records the tile config of every launch."""

    def __init__(self) -> None:
        self.launches: list[GemmConfig] = []

    def __getitem__(self, grid: tuple[int]) -> Callable[..., None]:
        def launch(*args: object, **kw: int) -> None:
            self.launches.append(GemmConfig(kw["BLOCK_M"], kw["BLOCK_N"], kw["BLOCK_K"], kw["GROUP_M"],
                                            kw["num_warps"], kw["num_stages"]))
        return launch


def test_launch_uses_the_selected_config_last(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("triton")
    from comfyui_dit_quant.kernels import triton_gemm as tg

    kernel = FakeKernel()
    monkeypatch.setattr(tg, "_scaled_gemm_kernel", kernel)
    monkeypatch.setattr(tg, "_weight_only_kernel", kernel)
    monkeypatch.setattr(tg, "_INTERPRETED", False)
    a, b = torch.zeros(M, 256, dtype=torch.int8), torch.zeros(320, 256, dtype=torch.int8)
    s_a, s_b = torch.ones(M, 1), torch.ones(320)
    cands = tt.candidates(M, 320, 256, None, False, True)
    seen: list[tuple] = []

    def fake_select(device, m, n, k, group_n, group_k, weight_only, int8, run):
        seen.append((device.type, m, n, k, group_n, group_k, weight_only, int8))
        for c in cands:  # timing runs every candidate, the winner in the middle
            run(c)
        return cands[1]

    monkeypatch.setattr(tg, "select_config", fake_select)
    tg.scaled_mm(a, b, s_a, s_b, None, torch.bfloat16)
    assert seen == [("cpu", M, 320, 256, 1, None, False, True)]
    assert kernel.launches == [*cands, cands[1]]  # the last write to `out` is the chosen config's

    kernel.launches.clear()
    explicit = GemmConfig(32, 32, 32)
    tg.scaled_mm(a, b, s_a, s_b, None, torch.bfloat16, cfg=explicit)
    assert kernel.launches == [explicit] and len(seen) == 1  # an explicit config wins, no selection

    kernel.launches.clear()
    monkeypatch.setattr(tg, "_INTERPRETED", True)  # the interpreter: the heuristic, no selection
    x = torch.zeros(17, 256, dtype=torch.bfloat16)
    tg.weight_only_mm(x, b.view(torch.float8_e4m3fn), s_b, (64, 64), None, torch.bfloat16)
    assert kernel.launches == [gemm_config(17, 320, 256, 64, True)] and len(seen) == 1
