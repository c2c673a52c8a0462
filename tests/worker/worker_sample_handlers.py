"""Handlers the integration tests load into the real worker process via QQ_HANDLER=module:function."""

from __future__ import annotations

import threading
import time
from typing import Any


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
    from qqworker.handlers import log_dispatch

    log_dispatch(event)


def three_args(event: Any, reply: Any, extra: Any) -> None:
    """No accepted form: refused when the handler is loaded."""
