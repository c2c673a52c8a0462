"""Handlers the integration tests load into the real worker process via QQ_HANDLER=module:function."""

from __future__ import annotations

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
