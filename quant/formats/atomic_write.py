"""Atomic output: write ``.<name>.<pid>.partial`` beside the target, rename it into place only when complete.

On any error, ``KeyboardInterrupt`` or SIGTERM (turned into ``Terminated`` while the file is open, when on the
main thread) the partial file is deleted. A SIGKILL cannot be caught: the next write to the same output removes
partial files of that output whose process is gone. Filesystem failures (read-only folder, full disk, a parent
that is a file, an output that is a folder) are one ``OutputWriteError`` naming the output.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, cast


class OutputWriteError(OSError):
    """The output file cannot be written; the message names it and says why (``errno`` kept)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.errno = code


class Terminated(SystemExit):
    """SIGTERM arrived while an output was being written (exit status 128 + 15)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_partials(final: Path) -> list[Path]:
    """Delete ``.<name>.<pid>.partial`` files of ``final`` left by processes that no longer run."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return []
    removed = []
    prefix, suffix = f".{final.name}.", ".partial"
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return []
    for p in entries:
        pid = p.name[len(prefix): -len(suffix)] if p.name.startswith(prefix) and p.name.endswith(suffix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


class _Guarded:
    """The open file, with write errors (ENOSPC, EFBIG, EIO) raised as ``OutputWriteError`` naming the output."""

    def __init__(self, f: BinaryIO, final: Path) -> None:
        self._f, self._final = f, final

    def write(self, data: bytes | memoryview) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            raise _write_error(self._final, e) from e

    def __getattr__(self, name: str):
        return getattr(self._f, name)


def _write_error(final: Path, e: OSError) -> OutputWriteError:
    if isinstance(e, OutputWriteError):
        return e
    return OutputWriteError(e.errno, f"{final}: cannot write the output: {e.strerror or e}")


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(128 + signum)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` (only the main thread may set signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:  # None: the previous handler was not set from Python
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; rename it to ``path`` on success, delete it on any error."""
    final = Path(path)
    if final.is_dir():
        raise OutputWriteError(errno.EISDIR, f"{final}: cannot write the output: it is a folder")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((a for a in final.parents if a.exists() and not a.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else e.strerror or str(e)
        raise OutputWriteError(e.errno, f"{final}: cannot create its folder {final.parent}: {why}") from e
    remove_stale_partials(final)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.partial")
    with _sigterm_raises():
        try:
            try:
                f = open(tmp, "wb")  # noqa: SIM115 - closed below on every path
            except OSError as e:
                raise _write_error(final, e) from e
            try:
                yield cast(BinaryIO, _Guarded(f, final))
                try:
                    f.flush()
                    os.fsync(f.fileno())
                    f.close()
                    os.replace(tmp, final)
                except OSError as e:
                    raise _write_error(final, e) from e
            finally:
                with suppress(OSError):
                    f.close()
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
