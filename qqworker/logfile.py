"""Opening the log file (QQW_LOG_FILE / --log-file) without ever blocking, and only if it is a file.

A FIFO's open() for writing blocks until a reader comes, which hung the watchdog before its first line;
a directory or a device is no log file either. Anything but a regular file (or a path that does not
exist yet, created here) is refused with a `ConfigError` naming the path and what it is (exit 78).
"""

from __future__ import annotations

import os
import stat
from typing import IO

from qqworker.settings import ConfigError

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
}


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _refuse(path: str, mode: int) -> ConfigError:
    return ConfigError(
        f"log_file: {path} is {kind_of(mode)}, not a regular file (stdout already carries every line; "
        "give a file path, or none)"
    )


def open_log_file(path: str) -> IO[str]:
    """The file, opened for appending, line buffered; a lone surrogate is written as its escape."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"log_file: cannot use {path}: {exc.strerror or exc}") from None
    else:
        if not stat.S_ISREG(mode):
            raise _refuse(path, mode)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        # O_NONBLOCK: should a FIFO appear between the check and here, open() fails (ENXIO) or returns
        # at once, instead of blocking; the fstat below refuses it either way.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"log_file: cannot open {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _refuse(path, mode)
    os.set_blocking(fd, True)
    return open(fd, "a", encoding="utf-8", errors="backslashreplace", buffering=1)
