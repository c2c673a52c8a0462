"""Misbehaving dispatch handlers for the process faults (QQ_HANDLER=tests.faults.handlers:NAME).

Each logs every event as the built-in `log` handler does (so the matrix can count deliveries), and
misbehaves on an event whose content is its trigger word. The first worker process to see a trigger
claims it in QQF_FLAG_DIR; a respawned worker that gets the event replayed on Resume does not misbehave
again, so each case shows one fault and one recovery.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from qqworker.handlers import log_dispatch, log_handler

_leaked: list[bytearray] = []


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
