"""Every CLI failure is one ``error:`` line naming the file, exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfyui_dit_quant.cli import main as cli_main
from comfyui_dit_quant.cli.main import main

from conftest import write_random_checkpoint
from hostile_files import entry, raw_safetensors


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("header", "data", "message"), [
    ({"w.weight": entry("F32", [2, 2], -16, 0)}, b"\0" * 16, "'w.weight': data_offsets [-16, 0] are not two"),
    ({"a.weight": entry("F32", [2, 2], 0, 16), "b.weight": entry("F32", [2, 2], 0, 16)}, b"\0" * 16,
     "tensor 'b.weight' (bytes 0-16) overlaps tensor 'a.weight'"),
    ({"a.weight": entry("BF16", [2**31, 2**31], 0, 16)}, b"\0" * 16, "holds more elements than"),
    ({"__metadata__": [["a", "b"]]}, b"", "__metadata__ is a list"),
    ([1], b"", "is not a JSON object"),
])
@pytest.mark.parametrize("command", ["quantize", "inspect"])
def test_hostile_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, command: str, header: object,
                                  data: bytes, message: str) -> None:
    path = raw_safetensors(tmp_path / "h.safetensors", header, data)
    out = tmp_path / "q.safetensors"
    argv = [command, str(path), *([str(out), "--scheme", "fp8_tensor", "--family", "none"]
                                  if command == "quantize" else [])]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert line.startswith(f"error: {path}: ") and message in line, line
    assert not out.exists()


def test_unknown_family_names_the_file_and_family_none(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = write_random_checkpoint(tmp_path / "other.safetensors", {"foo.weight": (64, 64)})
    assert main(["quantize", str(src), str(tmp_path / "q.safetensors"), "--scheme", "fp8_tensor"]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"error: {src}: not a supported diffusion transformer") and "--family none" in line
    assert main(["quantize", str(src), str(tmp_path / "q.safetensors"), "--scheme", "fp8_tensor",
                 "--family", "none"]) == 0


def test_argument_errors_name_the_file(tmp_path: Path, wan_bf16_file: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "q.safetensors"
    assert main(["quantize", str(wan_bf16_file), str(out), "--scheme", "fp8_block", "--block-size", "axb"]) == 2
    assert _one_line(capsys) == f"error: {wan_bf16_file}: block size 'axb': expected 'BNxBK' such as '128x128'"
    assert main(["quantize", str(wan_bf16_file), str(out), "--scheme", "fp8_tensor", "--ignore", "re:(a+)+"]) == 2
    assert "ignore pattern 're:(a+)+' refused" in _one_line(capsys)
    assert main(["inspect", str(tmp_path / "missing.safetensors")]) == 2
    assert _one_line(capsys) == (f"error: {tmp_path / 'missing.safetensors'}: cannot read safetensors header: "
                                 "No such file or directory")
    assert not out.exists()


def test_unexpected_error_is_still_one_line(tmp_path: Path, wan_bf16_file: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: object) -> int:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(cli_main, "_run", boom)
    assert main(["inspect", str(wan_bf16_file)]) == 2
    assert _one_line(capsys) == (f"error: {wan_bf16_file}: unexpected RuntimeError: mat1 and mat2 shapes cannot "
                                 "be multiplied (run with -v for the traceback)")
