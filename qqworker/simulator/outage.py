"""Timed faults: each mode is on for its seconds, then ends by itself (a timer inside the simulator, because
during `refuse` nobody can reach the main port to end it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["MODES", "Outages"]

MODES: dict[str, str] = {
    "refuse": "the main port stops listening (connections refused) and every connection on it is dropped",
    "blackhole": "the main port accepts connections but answers nothing and sends nothing",
    "no_ack": "heartbeats are not acknowledged",
    "token_error": "the token endpoint answers HTTP 500",
    "no_hello": "new gateway connections get no Hello",
    "no_ready": "Identify and Resume get no answer (no READY, no RESUMED)",
    "internal_error": "Identify and Resume are answered with close 4901 (a platform internal error)",
}
MAX_SECONDS = 24 * 3600.0


class Outages:
    def __init__(
        self,
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        on_start: Callable[[str], None],
        on_end: Callable[[str], Awaitable[None]],
    ) -> None:
        self._spawn = spawn
        self._on_start = on_start
        self._on_end = on_end
        self._deadline: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._clear: dict[str, asyncio.Event] = {}

    def active(self, mode: str) -> bool:
        return mode in self._deadline

    def start(self, mode: str, seconds: float) -> None:
        """Start `mode` for `seconds` (again: restart its clock)."""
        if mode not in MODES:
            raise ValueError(f"unknown outage mode {mode!r}; one of {', '.join(MODES)}")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds <= MAX_SECONDS
        ):
            raise ValueError(f"seconds must be a number in (0, {MAX_SECONDS:.0f}]")
        was_active = self.active(mode)
        timer = self._timers.pop(mode, None)
        if timer is not None:
            timer.cancel()
        self._deadline[mode] = time.monotonic() + seconds
        self._timers[mode] = asyncio.get_running_loop().call_later(
            seconds, lambda: self._spawn(self.end(mode))
        )
        self._event(mode).clear()
        if not was_active:
            self._on_start(mode)

    async def end(self, mode: str) -> None:
        if mode not in self._deadline:
            return
        del self._deadline[mode]
        timer = self._timers.pop(mode, None)
        if timer is not None:
            timer.cancel()
        self._event(mode).set()
        await self._on_end(mode)

    async def end_all(self) -> None:
        for mode in list(self._deadline):
            await self.end(mode)

    async def wait_clear(self, mode: str) -> None:
        """Until `mode` is over; ends with the outage or with end_all() at shutdown."""
        await self._event(mode).wait()

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        return {mode: {"remaining_s": round(max(0.0, t - now), 3)} for mode, t in self._deadline.items()}

    def _event(self, mode: str) -> asyncio.Event:
        event = self._clear.get(mode)
        if event is None:
            event = self._clear[mode] = asyncio.Event()
            event.set()
        return event
