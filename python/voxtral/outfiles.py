"""Output files that are either complete or absent.

`voxtral transcribe -o`, `voxtral speak --out` (and the model preparation commands) write into a
temporary file beside the target and rename it over the target only once everything is written:
an error, a full disk or Ctrl-C leaves no half-written file behind (and an earlier complete file
stays as it was). Special files (a FIFO, /dev/stdout) are written directly: they cannot be
renamed over, and a reader is already consuming them.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from voxtral.errors import VoxtralError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_special(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_output_path(path: str, what: str = "output file") -> None:
    """Fail early (before minutes of work) when `path` cannot be written: a missing or read-only
    folder, or a folder where a file is wanted."""
    if os.path.isdir(path):
        raise VoxtralError(f"cannot write {what} {path}: it is a directory")
    if _is_special(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise VoxtralError(f"cannot write {what} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VoxtralError(f"cannot write {what} {path}: the folder {folder} is not writable")


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "wb", encoding: str | None = None, what: str = "output file"):
    """`with atomic_output(path) as f: ...` - f is a temporary file in the target's folder; on a
    normal exit it is flushed, synced and renamed to `path`; on any exception (KeyboardInterrupt
    included) it is removed and the exception propagates."""
    check_output_path(path, what)
    if _is_special(path):
        with open(path, mode, encoding=encoding) as f:
            yield f
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
    except OSError as e:
        raise VoxtralError(f"cannot write {what} {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, (BrokenPipeError, ConnectionError)):
            raise VoxtralError(f"cannot write {what} {path}: {e.strerror or e}") from None
        raise
