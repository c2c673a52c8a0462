"""One watchdog per status file: an exclusive `flock` on `<status file>.lock`, held for the process's life.

Two watchdogs on one run directory would both supervise a worker on the same bot (every event handled
twice) while `stop` and `status` saw only one of them. The lock is taken before anything else is
written, so a second watchdog refuses with one line and exit 73, touching neither the status file nor
the pid file. The kernel drops the lock when the holder's last fd closes: a SIGKILLed watchdog leaves
no stale lock. The holder writes its pid into the lock file, and into the pid file that
`scripts/run.sh --background` asks for (QQW_PID_FILE), so that file always names the lock holder; that
pid file is guarded the same way (`<pid file>.lock`), so a second background watchdog on one run
directory is refused even with a status file of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

__all__ = ["AlreadyRunning", "acquire", "lock_path", "write_pid_file"]

HOLDER_READ_TRIES = 10
HOLDER_READ_PAUSE_S = 0.05


class AlreadyRunning(Exception):
    def __init__(self, path: str, holder: int | None) -> None:
        self.path = path
        self.holder = holder
        who = f"pid {holder}" if holder else "another process"
        super().__init__(f"another watchdog ({who}) holds {path}")


def lock_path(guarded: str) -> str:
    return os.path.abspath(guarded) + ".lock"


def acquire(guarded: str) -> int:
    """The locked fd of `<guarded>.lock` (keep it open while running); AlreadyRunning if another
    process holds it."""
    path = lock_path(guarded)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise AlreadyRunning(path, holder) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _holder(fd: int) -> int | None:
    """The holder's pid; it writes it just after taking the lock, so a start racing ours may find the
    file still empty for a moment: look again, briefly."""
    for _ in range(HOLDER_READ_TRIES):
        pid = _read_pid(fd)
        if pid is not None:
            return pid
        time.sleep(HOLDER_READ_PAUSE_S)
    return None


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or "0") or None
    return None


def write_pid_file(path: str) -> None:
    """Atomically: a reader sees the old content or ours, never a torn or empty file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"{os.getpid()}\n")
    os.replace(tmp, path)
