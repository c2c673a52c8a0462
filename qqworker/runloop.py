"""How a worker process runs its event loop and leaves it: the same for the worker alone (cli.py) and
for the watchdog's child (child.py).

`asyncio.run` waits, at exit, for the loop's default executor, and the interpreter joins every
non-daemon thread (the executor's included) before it exits: a thread stuck in getaddrinfo (a dead
DNS server during an outage) would hold up a stop that was asked for, until the watchdog's SIGKILL.
So `run_loop` closes the loop without waiting for the executor, and `exit_despite_stuck_threads`
gives leftover threads a moment, then ends the process anyway.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any

from qqworker.logs import current_handler

__all__ = ["THREAD_GRACE_S", "exit_despite_stuck_threads", "run_loop"]

THREAD_GRACE_S = 1.0
LEFTOVER_TASKS_S = 1.0  # tasks still pending when `main` returned: cancelled, and awaited this long


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Like asyncio.run (leftover tasks cancelled, async generators closed), but without waiting for
    the default executor."""
    loop = asyncio.new_event_loop()
    try:
        return int(loop.run_until_complete(main))
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()  # shuts the default executor down without waiting


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.wait(tasks, timeout=LEFTOVER_TASKS_S))


def exit_despite_stuck_threads(code: int, grace_s: float = THREAD_GRACE_S) -> None:
    """Gives leftover threads (DNS lookups, a sync handler's library) `grace_s`, then, if any is still
    there, exits at once with `code` (the output flushed first): the interpreter would otherwise join
    them at exit, for as long as they take. Returns when none is left."""
    deadline = time.monotonic() + grace_s
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(
        t.is_alive() and not t.daemon and t is not threading.current_thread() for t in threading.enumerate()
    ):
        sys.stdout.flush()
        handler = current_handler()
        if handler is not None:
            handler.flush()  # a stalled stdout's last lines get their bounded chance
        os._exit(code)
