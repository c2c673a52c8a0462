"""Misbehaving dispatch handlers for the process faults (QQ_HANDLER=tests.faults.handlers:NAME).

Each logs every event as the built-in `log` handler does (so the matrix can count deliveries), and
misbehaves on an event whose content is its trigger word. The first worker process to see a trigger
claims it in QQF_FLAG_DIR; a respawned worker that gets the event replayed on Resume does not misbehave
again, so each case shows one fault and one recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

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
