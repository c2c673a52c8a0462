"""The sinks' I/O: each `SinkBuffer` written to its fd without ever blocking, and hooks for the loops.

* stdout gets a private, non-blocking description of the same pipe or terminal (reopened through
  /proc/self/fd), so O_NONBLOCK is not imposed on the shell or on children sharing fd 1; a socket
  (journald) gets O_NONBLOCK on a dup; a regular file is written as it is (it never blocks).
* the log file is opened O_APPEND and, when it fails, closed and reopened (its directory recreated)
  at each retry.
* a write that would block leaves the rest queued (the sink is `stalled`): the owner's loop waits for
  the fd to be writable (`writers()`, `AsyncioPump`); an error makes the sink `failing`, retried at
  `next_retry()`. Nothing here raises an OSError to its caller.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from qqworker.logfile import kind_of
from qqworker.sinks import SinkBuffer, SinkSet, SinkState

DRAIN_AT_EXIT_S = 1.0


def describe_error(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror or exc}" if name else str(exc)


def _refuse_unless_regular(path: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, f"{path} is {kind_of(mode)}, not a regular file")


def private_fd(fd: int) -> int:
    """A non-blocking fd writing where `fd` writes."""
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        new = os.dup(fd)  # shares the offset (and O_APPEND) of the original: nothing overwritten
    else:
        new = -1
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            with contextlib.suppress(OSError):
                new = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        if new < 0:
            new = os.dup(fd)
            os.set_blocking(new, False)
    os.set_inheritable(new, False)
    return new


class Output:
    """One sink's buffer and where it goes: an fd (stdout), a path (the log file) or a text stream."""

    def __init__(
        self,
        buffer: SinkBuffer,
        *,
        source_fd: int | None = None,
        path: str | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.buffer = buffer
        self.source_fd = source_fd
        self.path = path
        self.stream = stream  # a stream without an fd (tests): written as text, never blocks
        self.fd = -1
        self._fresh = False  # just (re)opened: a retry need not reopen it again

    def open(self) -> None:
        """Raises OSError; `connect` is the variant that makes it a condition of the sink."""
        self.close()
        if self.path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            # O_NONBLOCK: no effect on a regular file; a FIFO put at the path never blocks the open (ENXIO
            # without a reader), and is then refused like anything but a regular file: failing, retried.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
            with contextlib.suppress(FileNotFoundError):
                _refuse_unless_regular(self.path, os.stat(self.path).st_mode)
            fd = os.open(self.path, flags, 0o644)
            try:
                _refuse_unless_regular(self.path, os.fstat(fd).st_mode)  # it may have changed meanwhile
            except OSError:
                os.close(fd)
                raise
            self.fd = fd
        elif self.source_fd is not None:
            self.fd = private_fd(self.source_fd)
        self._fresh = True

    def connect(self) -> bool:
        try:
            self.open()
            return True
        except OSError as exc:
            self.buffer.failed(describe_error(exc))
            return False

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    @property
    def writable_fd(self) -> int | None:
        """The fd to wait on for writability, when the sink is stalled on it."""
        buffer = self.buffer
        if buffer.state is SinkState.STALLED and buffer.pending_bytes and self.fd >= 0:
            return self.fd
        return None

    def write_at_once(self, line: bytes) -> bool:
        """The hot path: an idle, healthy fd sink writes the line straight away (True: all of it)."""
        buffer = self.buffer
        if buffer.state is not SinkState.OK or buffer.pending_bytes or self.fd < 0:
            buffer.offer(line)
            return False
        try:
            count = os.write(self.fd, line)
        except OSError:  # the queue path writes it again and makes the error a condition
            buffer.offer(line)
            return False
        buffer.offer_written(line, count)
        return count == len(line)

    def flush(self, now: float) -> None:
        """Writes what it can now; never blocks, never raises OSError."""
        buffer = self.buffer
        if buffer.state is SinkState.FAILING:
            if not buffer.retry_due(now):
                return
            reopen = self.fd < 0 or (self.path is not None and not self._fresh)
            if self.stream is None and reopen and not self.connect():
                return
        self._fresh = False
        while buffer.pending_bytes:
            data = buffer.chunk()
            try:
                count = self._write(data)
            except BlockingIOError:
                buffer.blocked()
                return
            except InterruptedError:
                continue
            except (OSError, ValueError) as exc:  # ValueError: a closed Python stream
                buffer.failed(describe_error(exc) if isinstance(exc, OSError) else str(exc))
                if self.path is not None:
                    self.close()  # reopened at the retry: the file may have gone, or its file system
                return
            if count <= 0:
                buffer.blocked()
                return
            buffer.wrote(count)
        buffer.usable()

    def _write(self, data: bytes) -> int:
        if self.stream is not None:
            self.stream.write(data.decode("utf-8", errors="replace"))
            self.stream.flush()
            return len(data)
        if self.fd < 0:
            raise OSError(errno.EBADF, "no file descriptor")
        return os.write(self.fd, data)


class Outputs:
    """The sinks of one process, under one lock (log records may come from other threads)."""

    def __init__(self, outputs: list[Output], sinks: SinkSet, clock: Callable[[], float] = time.monotonic):
        self.outputs = outputs
        self.sinks = sinks
        self.clock = clock
        self.lock = threading.RLock()
        self.watched = False  # a loop waits for stalled fds: writing to them on each line is pointless
        self.on_change: Callable[[], None] | None = None
        self._troubled = False
        self._direct = all(o.stream is None for o in outputs)  # text streams (tests) take the queue path

    def write(self, line: bytes) -> None:
        with self.lock:
            if not self._troubled and self._direct:
                done = True
                for output in self.outputs:
                    done = output.write_at_once(line) and done
                if done:
                    return
            else:
                self.sinks.offer(line)
            self._flush(self.clock(), skip_stalled=self.watched)

    def flush(self, output: Output | None = None) -> None:
        with self.lock:
            if output is not None:
                output.flush(self.clock())
            self._flush(self.clock(), skip_stalled=False)

    def _flush(self, now: float, *, skip_stalled: bool) -> None:
        for _ in range(2):  # a second round writes the notices the first one produced
            for output in self.outputs:
                if skip_stalled and output.buffer.state is SinkState.STALLED:
                    continue
                output.flush(now)
            if not any(o.buffer.notices for o in self.outputs):
                break
            self.sinks.settle()
        troubled = any(o.buffer.state is not SinkState.OK for o in self.outputs)
        if (troubled or self._troubled) and self.on_change is not None:
            self.on_change()
        self._troubled = troubled

    def writers(self) -> list[tuple[int, Output]]:
        with self.lock:
            return [(fd, o) for o in self.outputs if (fd := o.writable_fd) is not None]

    def next_retry(self) -> float | None:
        with self.lock:
            times = [o.buffer.retry_at for o in self.outputs if o.buffer.state is SinkState.FAILING]
            return min((t for t in times if t is not None), default=None)

    def retry_due(self, now: float) -> None:
        due = self.next_retry()
        if due is not None and now >= due:
            self.flush()

    def drain(self, timeout: float = DRAIN_AT_EXIT_S) -> None:
        """At exit: waits (bounded) for stalled sinks to take their lines."""
        deadline = self.clock() + timeout
        while True:
            self.flush()
            fds = [fd for fd, _ in self.writers()]
            left = deadline - self.clock()
            if not fds or left <= 0:
                return
            with contextlib.suppress(OSError, ValueError):
                select.select([], fds, [], left)

    def describe(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return self.sinks.describe()


class AsyncioPump:
    """Drives `Outputs` from an asyncio loop: add_writer for a stalled fd, call_at for a retry."""

    def __init__(self, outputs: Outputs, loop: Any) -> None:
        self.outputs = outputs
        self.loop = loop
        self._watching: dict[int, Output] = {}
        self._timer: Any = None
        self._thread = threading.get_ident()
        outputs.on_change = self._changed
        outputs.watched = True
        self._sync()

    def _changed(self) -> None:
        if threading.get_ident() == self._thread:
            self._sync()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self.loop.call_soon_threadsafe(self._sync)

    def _sync(self) -> None:
        wanted = dict(self.outputs.writers())
        for fd in list(self._watching):
            if wanted.get(fd) is not self._watching[fd]:
                self.loop.remove_writer(fd)
                del self._watching[fd]
        for fd, output in wanted.items():
            if fd not in self._watching:
                try:
                    self.loop.add_writer(fd, self.outputs.flush, output)
                except (OSError, ValueError):  # not pollable: the retry timer covers it
                    continue
                self._watching[fd] = output
        due = self.outputs.next_retry()
        if self._timer is not None and (due is None or self._timer.when() != due):
            self._timer.cancel()
            self._timer = None
        if due is not None and self._timer is None:
            self._timer = self.loop.call_at(max(due, self.loop.time()), self._retry)

    def _retry(self) -> None:
        self._timer = None
        self.outputs.flush()
        self._sync()

    def close(self) -> None:
        self.outputs.on_change = None
        self.outputs.watched = False
        for fd in self._watching:
            with contextlib.suppress(Exception):
                self.loop.remove_writer(fd)
        self._watching.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
