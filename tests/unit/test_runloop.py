"""The worker's loop runner (qqworker/runloop.py): a stop is never held up by a stuck executor thread."""

from __future__ import annotations

import asyncio
import threading
import time

from qqworker.runloop import run_loop


def test_the_loop_ends_without_waiting_for_a_stuck_executor_thread() -> None:
    release = threading.Event()

    async def main() -> int:
        asyncio.get_running_loop().run_in_executor(None, release.wait, 30)  # a getaddrinfo that hangs
        await asyncio.sleep(0.05)
        return 3

    started = time.monotonic()
    try:
        assert run_loop(main()) == 3
        assert time.monotonic() - started < 5
    finally:
        release.set()  # the test process's own exit must not wait for it either


def test_tasks_left_pending_are_cancelled_and_awaited_like_asyncio_run_does() -> None:
    cleaned: list[str] = []

    async def leftover() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append("leftover")

    async def main() -> int:
        asyncio.get_running_loop().create_task(leftover())
        await asyncio.sleep(0)
        return 0

    assert run_loop(main()) == 0
    assert cleaned == ["leftover"]


def test_a_task_that_ignores_cancellation_is_waited_for_only_a_bounded_time() -> None:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    async def main() -> int:
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)
        return 0

    started = time.monotonic()
    assert run_loop(main()) == 0
    assert time.monotonic() - started < 3
