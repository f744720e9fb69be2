"""Faults during ``quantize`` leave nothing behind and say one line: SIGTERM, SIGKILL (stale partials cleaned on
the next run), a folder output, a file parent, a full disk (a file size limit stands in), a read-only folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from comfyui_dit_quant.cli.main import main
from comfyui_dit_quant.quant.convert import convert_file
from comfyui_dit_quant.quant.formats.atomic_write import remove_stale_partials
from comfyui_dit_quant.quant.formats.safetensors_io import OutputWriteError
from comfyui_dit_quant.quant.schemes import FP8Tensor

from conftest import write_random_checkpoint

QUANTIZE = [sys.executable, "-m", "comfyui_dit_quant", "quantize"]


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 MB of bf16 linears: long enough to be caught mid-write."""
    path = tmp_path_factory.mktemp("big") / "big.safetensors"
    return write_random_checkpoint(path, {f"layers.{i}.weight": (1024, 1024) for i in range(48)})


def _partials(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.partial"))


def _start_and_catch_mid_write(big_file: Path, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([*QUANTIZE, str(big_file), str(out), "--scheme", "fp8_block", "--family", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = _partials(out.parent)
        if found and found[0].stat().st_size > 4 * 1024 * 1024:  # past the header, weights being written
            return proc
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"quantize never got mid-write (exit {proc.returncode}): {proc.communicate()[1][-2000:]}")


def test_sigterm_mid_write_leaves_no_partial(tmp_path: Path, big_file: Path) -> None:
    out = tmp_path / "q.safetensors"
    proc = _start_and_catch_mid_write(big_file, out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("\r[")]
    assert lines[-1] == f"error: {big_file}: terminated (SIGTERM); no output file left", err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_sigkill_partial_is_removed_by_the_next_run(tmp_path: Path, big_file: Path, wan_bf16_file: Path) -> None:
    out = tmp_path / "o" / "q.safetensors"
    proc = _start_and_catch_mid_write(big_file, out)
    proc.kill()
    proc.communicate(timeout=60)
    stale = _partials(out.parent)
    assert len(stale) == 1 and stale[0].name == f".q.safetensors.{proc.pid}.partial"
    convert_file(wan_bf16_file, out, FP8Tensor())
    assert sorted(p.name for p in out.parent.iterdir()) == ["q.safetensors"]


def test_only_dead_partials_of_the_same_output_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "30"])
    try:
        names = [f".q.safetensors.{dead.pid}.partial", f".q.safetensors.{live.pid}.partial",
                 f".other.safetensors.{dead.pid}.partial", ".q.safetensors.x.partial"]
        for n in names:
            (tmp_path / n).write_bytes(b"x")
        removed = remove_stale_partials(tmp_path / "q.safetensors")
        assert [p.name for p in removed] == [names[0]]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    finally:
        live.kill()
        live.wait()


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_output_is_a_folder(tmp_path: Path, wan_bf16_file: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out.safetensors"
    out.mkdir()
    assert main(["quantize", str(wan_bf16_file), str(out), "--scheme", "fp8_tensor"]) == 2
    assert _one_error_line(capsys) == f"error: {out}: cannot write the output: it is a folder"
    assert list(out.iterdir()) == []


def test_parent_is_a_file(tmp_path: Path, wan_bf16_file: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "sub" / "q.safetensors"
    assert main(["quantize", str(wan_bf16_file), str(out), "--scheme", "fp8_tensor"]) == 2
    assert _one_error_line(capsys) == (f"error: {out}: cannot create its folder {out.parent}: "
                                       f"{tmp_path / 'f'} is a file, not a folder")


def test_full_disk_is_one_line(tmp_path: Path, wan_bf16_file: Path) -> None:
    """A file size limit (EFBIG, as ENOSPC: the write fails part-way) in a child process."""
    out = tmp_path / "o" / "q.safetensors"
    out.parent.mkdir()
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
            "from comfyui_dit_quant.cli.main import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "quantize", str(wan_bf16_file), str(out), "--scheme",
                        "fp8_tensor"], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("\r[")]
    assert r.returncode == 2 and lines == [f"error: {out}: cannot write the output: File too large"], r.stderr
    assert list(out.parent.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path: Path, wan_bf16_file: Path, capsys: pytest.CaptureFixture) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["quantize", str(wan_bf16_file), str(ro / "q.safetensors"), "--scheme", "fp8_tensor"]) == 2
        assert _one_error_line(capsys).endswith("cannot write the output: Permission denied")
    finally:
        ro.chmod(0o755)


def test_write_errors_are_output_write_errors(tmp_path: Path) -> None:
    assert issubclass(OutputWriteError, OSError)
    assert str(OutputWriteError(28, "x: no space")) == "x: no space"
