"""Replacing a small file so that a crash at any moment leaves the old one or the new one, whole."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomic(path: str, data: bytes, *, prefix: str = ".qqwatchdog-session-") -> None:
    """Temporary file in the same directory, fsync, rename over `path`, fsync the directory: after a
    crash at any moment the file is the old one or the new one, whole. Mode 0600 (mkstemp's)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
