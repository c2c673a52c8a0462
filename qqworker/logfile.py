"""The log file (QQW_LOG_FILE / --log-file) must be a file: what is checked before it is opened.

A FIFO's open() for writing blocks until a reader comes, which hung the watchdog before its first line;
a directory or a device is no log file either. Anything but a regular file (or a path that does not
exist yet, created here) is refused with a `ConfigError` naming the path and what it is (exit 78).
"""

from __future__ import annotations

import os
import stat

from qqworker.contract.settings import ConfigError

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


def refuse_unless_regular(path: str) -> None:
    """ConfigError when `path` exists and is not a regular file (a path not there yet is fine: the
    log output creates it). The output itself opens it O_NONBLOCK, so should a FIFO appear after this
    check, the open fails (ENXIO) or returns at once and never blocks (qqworker/outputs.py)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"log_file: cannot use {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise _refuse(path, mode)
