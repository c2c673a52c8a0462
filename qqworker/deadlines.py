"""Deadlines for awaits, on every supported Python: `within(seconds, aw)` and `deadline_scope(when)`.

Both raise asyncio.TimeoutError (the builtin TimeoutError from 3.11 on)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

if sys.version_info >= (3, 11):
    from asyncio import timeout_at as deadline_scope

    async def within(seconds: float, aw: Awaitable[T]) -> T:
        """Awaits with a deadline (cheaper than wait_for on 3.11+)."""
        async with asyncio.timeout(seconds):
            return await aw

else:  # pragma: no cover - aiohttp brings async-timeout on Python 3.10
    from async_timeout import timeout_at as deadline_scope

    async def within(seconds: float, aw: Awaitable[T]) -> T:
        return await asyncio.wait_for(aw, seconds)


__all__ = ["deadline_scope", "within"]
