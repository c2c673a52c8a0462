"""The handlers the tests load into the real worker process (QQ_HANDLER=tests.handlers:NAME).

Three kinds, each in its section below:
- forms and plain behaviours (`explode`, `block`, `echo_sync`, `event_only`, `three_args`, ...) for
  the worker's own handler tests, and `journal`, which notes when each call starts and ends;
- faults by trigger word (`block_loop`, `stall_reconnect`, `leak`, `supervision`, ...): each logs every
  event as the built-in `log` handler does (so a test can count deliveries) and misbehaves on an event
  whose content is its trigger word. The first worker process to see a trigger claims it in
  QQF_FLAG_DIR; a respawned worker that gets the event replayed on Resume does not misbehave again,
  so each case shows one fault and one recovery;
- `act`, the watchdog's tests' default handler: logs every event, and does the misbehaviour a
  message's content names (COMMANDS) once per run (QQF_FLAG_DIR again), whichever process sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qqworker.contract.beat import Phase
from qqworker.handlers import log_dispatch, log_handler

_leaked: list[bytearray] = []


def _import_fails_at_first() -> None:
    """QQF_IMPORT_FAILS=N: the first N imports of this module (counted in QQF_FLAG_DIR) raise a
    ConnectionError, as a module whose client connects at import while its server still boots."""
    fails = int(os.environ.get("QQF_IMPORT_FAILS") or 0)
    if not fails:
        return
    counter = Path(os.environ["QQF_FLAG_DIR"]) / "imports"
    with counter.open("a") as fh:
        fh.write("x")
    tries = len(counter.read_text())
    if tries <= fails:
        raise ConnectionError(f"import {tries}: the broker at 127.0.0.1:9 is not up yet")


_import_fails_at_first()


def _content(event: Any) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    return str(data.get("content") or "")


def _claim(name: str) -> bool:
    """True for the first process that claims this fault; later processes (respawns) get False."""
    flag = Path(os.environ["QQF_FLAG_DIR"]) / name
    try:
        fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return flag.read_text().strip() == str(os.getpid())
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    return True


# Forms and plain behaviours ----------------------------------------------------------------------


def explode(event: Any, reply: Any) -> None:
    raise ValueError(f"handler exploded on seq {event.seq}")


def block(event: Any, reply: Any) -> None:
    """A sync handler that holds its thread far longer than the gateway's heartbeat interval."""
    time.sleep(3)


def echo_sync(event: Any, reply: Any) -> None:
    """A sync handler replying twice through the thread-safe helper (distinct msg_seq each)."""
    if reply.possible:
        reply.sync("first")
        reply.sync("second")


def leave_a_stuck_thread(event: Any, reply: Any) -> None:
    """Starts a non-daemon thread that outlives any stop, as a stuck DNS lookup in the executor would."""
    threading.Thread(target=time.sleep, args=(60,), name="stuck", daemon=False).start()


def event_only(event: Any) -> None:
    """The one-argument form the contract allows: `f(event)` (logs each as the `log` built-in)."""
    log_dispatch(event)


def three_args(event: Any, reply: Any, extra: Any) -> None:
    """No accepted form: refused when the handler is loaded."""


def _note(what: str, event: Any) -> None:
    with Path(os.environ["QQW_TEST_JOURNAL"]).open("a", encoding="utf-8") as fh:
        fh.write(f"{what} {event.id}\n")


def _first_slow() -> bool:
    marker = Path(os.environ["QQW_TEST_JOURNAL"] + ".slow-once")
    if marker.exists():
        return False
    marker.touch()
    return True


async def journal(event: Any, reply: Any) -> None:
    """Writes `start ID` and `done ID` to $QQW_TEST_JOURNAL; an event saying "slow" takes a minute, the
    first time only (so a stop in the meantime cancels it, and the successor's replayed copy finishes
    at once)."""
    _note("start", event)
    data = event.data if isinstance(event.data, dict) else {}
    if data.get("content") == "slow" and _first_slow():
        await asyncio.sleep(60)
    _note("done", event)


# Faults by trigger word ----------------------------------------------------------------------------


async def block_loop(event: Any, reply: Any) -> None:
    """Blocks the worker's event loop (a sync call inside an async handler): no beat, no heartbeat."""
    await log_handler(event, reply)
    if _content(event) == "block-loop" and _claim("block-loop"):
        time.sleep(120)  # noqa: ASYNC251 - blocking the loop is the fault


async def stall_reconnect(event: Any, reply: Any) -> None:
    """Makes the reconnect path hang after it logged its backoff: the loop (and the pipe beat) live on,
    but the attempt that is due never comes and nothing is logged — the seed incident's bug."""
    await log_handler(event, reply)
    if _content(event) == "stall-reconnect" and _claim("stall-reconnect"):
        from qqworker import worker

        original = worker.Worker._wait

        async def stalled(self: Any, decision: Any) -> None:
            await original(self, decision)
            await asyncio.Event().wait()  # never set: no bound, no log

        worker.Worker._wait = stalled  # type: ignore[method-assign]


async def leak(event: Any, reply: Any) -> None:
    """Keeps 16 MiB per "leak" event, touched so it is resident."""
    await log_handler(event, reply)
    if _content(event) == "leak" and _claim("leak"):
        _leaked.append(bytearray(os.urandom(1024)) * (16 * 1024))


async def raises(event: Any, reply: Any) -> None:
    await log_handler(event, reply)
    raise RuntimeError("handler failure injected by the fault test")


def blocks(event: Any, reply: Any) -> None:
    """A sync handler (run on a worker thread) that never returns on a "block-handler" event."""
    log_dispatch(event)
    if _content(event) == "block-handler":
        time.sleep(3600)


async def supervision(event: Any, reply: Any) -> None:
    """The supervision-robustness faults, by trigger word (each once per run)."""
    await log_handler(event, reply)
    word = _content(event)
    if word in _SUPERVISION and _claim(word):
        await _SUPERVISION[word](reply)


async def _print_token(reply: Any) -> None:
    """The access token printed raw every way a process can: print(), os.write on fds 1 and 2, a JSON
    line, the Authorization header form, and a grandchild writing to the inherited fd 1."""
    token = await reply._rest._tokens.get()
    print(token, flush=True)
    os.write(1, f"raw {token} on fd 1\n".encode())
    os.write(2, f"QQBot {token} on fd 2\n".encode())
    sys.stderr.write(json.dumps({"event": "dispatch", "message": f"leaked {token}"}) + "\n")
    sys.stderr.flush()
    echo = await asyncio.create_subprocess_exec("echo", f"grandchild {token}")
    await asyncio.wait_for(echo.wait(), 10)
    (Path(os.environ["QQF_FLAG_DIR"]) / "printed").write_text("yes")


async def _close_output(reply: Any) -> None:
    """Every descriptor of the log pipe closed, as a daemonising library that closes all fds would:
    fds 1 and 2, and the worker's own non-blocking description of the same pipe (qqworker/outputs.py),
    so nothing can be logged any more and the watchdog's end reads EOF."""
    pipe = os.fstat(1).st_ino
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == pipe and fd > 0:
                os.close(fd)


async def _grandchild(reply: Any) -> None:
    """A subprocess of the worker and a double-forked one (its parent exits: it is re-parented)."""
    flags = Path(os.environ["QQF_FLAG_DIR"])
    child = await asyncio.create_subprocess_exec("sleep", "300", stdin=asyncio.subprocess.DEVNULL)
    daemon = await asyncio.create_subprocess_exec(
        "sh", "-c", f"sleep 301 </dev/null >/dev/null 2>&1 & echo $! > {flags}/daemon.pid"
    )
    await asyncio.wait_for(daemon.wait(), 10)
    (flags / "grandchild.pid").write_text(str(child.pid))


async def _newer_beats(reply: Any) -> None:
    """From now on this worker writes beats as a newer version would: a higher `v`, a field this
    watchdog does not know (an in-place upgrade that appended a Beat field)."""
    from qqworker.contract import beat

    original = beat.Beat.encode

    def newer(self: Any, version: int = beat.BEAT_VERSION) -> bytes:
        raw = json.loads(original(self, version))
        raw.update(v=beat.BEAT_VERSION + 1, from_the_future={"rtt_ms": 12})
        return json.dumps(raw, separators=(",", ":")).encode()

    beat.Beat.encode = newer  # type: ignore[method-assign]


_SUPERVISION = {
    "print-token": _print_token,
    "close-output": _close_output,
    "grandchild": _grandchild,
    "newer-beats": _newer_beats,
}


async def slow_word(event: Any, reply: Any) -> None:
    """Holds a "slow" event for a minute (the first process only): an LLM call across a session change."""
    await log_handler(event, reply)
    if _content(event) == "slow" and _claim("slow-word"):
        await asyncio.sleep(60)


async def slow_each(event: Any, reply: Any) -> None:
    """Takes 0.3 s per event and logs it when done, so a `dispatch` line means "handled"."""
    await asyncio.sleep(0.3)
    await log_handler(event, reply)


def exit_on_poison(event: Any, reply: Any) -> None:
    """Ends the process on a "poison" event, every time it is delivered (no claim): a poison event."""
    log_dispatch(event)
    if _content(event) == "poison":
        os._exit(3)


# act: the misbehaviour a message names, once per run ---------------------------------------------


def _act_block_loop() -> None:
    time.sleep(600)  # on the event loop's own thread: no beat can be sent any more


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
    "block": _act_block_loop,
    "print": _print,
    "silent": _silent,
    "closepipe": _close_beat_pipe,
    "stucklookup": _stuck_lookup,
    "exit3": _exit(3),
    "foreignjson": _foreign_json,
    "bigline": _big_line,
}


def _once(command: str) -> bool:
    """True the first time any process of this run sees `command` (always, without QQF_FLAG_DIR)."""
    flags = os.environ.get("QQF_FLAG_DIR")
    if not flags:
        return True
    try:
        os.close(os.open(Path(flags) / f"act.{command}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


async def act(event: Any, reply: Any) -> None:
    await log_handler(event, reply)
    command = _content(event).strip()
    if command in COMMANDS and _once(command):
        COMMANDS[command]()
