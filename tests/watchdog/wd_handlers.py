"""A handler the watchdog tests load into the real worker (QQ_HANDLER=tests.watchdog.wd_handlers:act).

It logs each event like the built-in `log` handler (the `dispatch` lines the no-lost-events checks
count), then, when a message's content names a misbehaviour, does it, once per test run: the
marker files under $QQW_TEST_MARKER keep a respawned worker that is handed the same event again
(Resume replays it) from repeating it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
import sys
import time
from collections.abc import Callable
from typing import Any

from qqworker.contract.beat import Phase
from qqworker.handlers import log_handler

_HOLD: list[bytes] = []


def _block_loop() -> None:
    time.sleep(600)  # on the event loop's own thread: no beat can be sent any more


def _allocate() -> None:
    _HOLD.append(b"\x01" * (300 << 20))  # written, so resident


def _print() -> None:
    print("plain text from a handler", flush=True)
    os.write(2, b"C-level output on fd 2\n")
    sys.stderr.write('Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n')
    sys.stderr.flush()


def _foreign_json() -> None:
    """JSON lines that look like contract lines but are not the worker logger's own."""
    print('{"event": "gateway.connecting", "level": "info", "logger": "structlog.lib"}', flush=True)
    print('{"event": "gateway.connecting", "role": "worker", "pid": 1, "note": "another pid"}', flush=True)


def _big_line() -> None:
    sys.stdout.write("x" * (5 << 20) + "\n")
    sys.stdout.flush()


def _stall() -> None:
    """The next reconnect attempt awaits forever without a log line: the original incident."""
    import qqworker.worker as worker

    async def stuck(self: Any, attempt: int) -> Any:
        await asyncio.Event().wait()

    worker.Worker._attempt = stuck  # type: ignore[method-assign]


def _silent() -> None:
    """Every next attempt fails at once and logs nothing, though its phases move as usual."""
    import qqworker.worker as worker

    async def silent(self: Any, attempt: int) -> Any:
        loop = asyncio.get_running_loop()
        self.progress.update(
            phase=Phase.CONNECTING, attempt=attempt, attempt_started_at=loop.time(), next_attempt_at=None
        )
        await asyncio.sleep(0.05)
        return self.policy.attempt_failed("failed without a word")

    worker.Worker._attempt = silent  # type: ignore[method-assign]


def _close_beat_pipe() -> None:
    """The heartbeat pipe's only write end is replaced by /dev/null: the watchdog reads EOF while
    this process keeps running and believes it is beating. That end is found as the one pipe write
    end made non-blocking (the Beater does) that is not the log pipe's (fds 1 and 2, and the outputs'
    reopened stdout); multiprocess's sentinel end, also a pipe, stays blocking."""
    log_pipe = os.fstat(1).st_ino
    (beat_fd,) = [
        fd
        for fd in map(int, os.listdir("/proc/self/fd"))
        if _non_blocking_pipe_write_end(fd) and os.fstat(fd).st_ino != log_pipe
    ]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, beat_fd)
    os.close(devnull)


def _non_blocking_pipe_write_end(fd: int) -> bool:
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:  # the listing's own fd, closed by now
        return False
    return is_pipe and flags & os.O_ACCMODE == os.O_WRONLY and bool(flags & os.O_NONBLOCK)


def _stuck_lookup() -> None:
    """A call that never returns on the loop's default executor, as getaddrinfo is there when the
    DNS server is gone: asyncio.run would wait for it at exit."""
    asyncio.get_running_loop().run_in_executor(None, time.sleep, 600)


def _exit(code: int) -> Callable[[], None]:
    def leave() -> None:
        os._exit(code)

    return leave


COMMANDS: dict[str, Callable[[], None]] = {
    "block": _block_loop,
    "alloc": _allocate,
    "print": _print,
    "stall": _stall,
    "silent": _silent,
    "closepipe": _close_beat_pipe,
    "stucklookup": _stuck_lookup,
    "exit3": _exit(3),
    "foreignjson": _foreign_json,
    "bigline": _big_line,
}


def _first_time(command: str) -> bool:
    marker = os.environ.get("QQW_TEST_MARKER")
    if not marker:
        return True
    try:
        os.close(os.open(f"{marker}.{command}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


async def act(event: Any, reply: Any) -> None:
    await log_handler(event, reply)
    content = event.data.get("content") if isinstance(event.data, dict) else None
    command = str(content or "").strip()
    if command in COMMANDS and _first_time(command):
        COMMANDS[command]()
