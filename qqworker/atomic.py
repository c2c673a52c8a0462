"""Replacing a small file so that a crash at any moment leaves the old one or the new one, whole."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable

BLOCKED_HERE = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2}


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


class LatestWriter:
    """Writes the newest content handed to it to `path` (atomically) on a daemon thread, so the caller
    never waits for the disk (a supervision loop must not hang on fsync on a dying disk); a content
    superseded before its turn is skipped. `failure` is the last write's error, None once one works."""

    def __init__(self, path: str, *, write: Callable[[str, bytes], None] = write_atomic) -> None:
        self.path = path
        self._write = write
        self._cond = threading.Condition()
        self._pending: bytes | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        self.failure: str | None = None
        self.written = 0

    def put(self, data: bytes) -> None:
        with self._cond:
            self._pending = data
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="qqwatchdog-state-write", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Waits (at most `timeout`) until everything handed over is written or has failed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        # Signals are the main thread's business: one delivered here would find no Python handler
        # waiting (e.g. a SIGTERM while the watchdog exits, with the default action restored).
        signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_HERE)
        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                data, self._pending, self._busy = self._pending, None, True
            try:
                self._write(self.path, data)
                failure = None
            except OSError as exc:
                failure = exc.strerror or str(exc) or type(exc).__name__
            with self._cond:
                self.failure = failure
                self.written += failure is None
                self._busy = False
                self._cond.notify_all()
