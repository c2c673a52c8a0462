"""Handlers for tests/ops/test_restart.py: a journal of every handler call, started and finished."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any


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
    """Writes `start ID` and `done ID`; an event saying "slow" takes a minute, the first time only (so a
    stop in the meantime cancels it, and the successor's replayed copy finishes at once)."""
    _note("start", event)
    data = event.data if isinstance(event.data, dict) else {}
    if data.get("content") == "slow" and _first_slow():
        await asyncio.sleep(60)
    _note("done", event)
