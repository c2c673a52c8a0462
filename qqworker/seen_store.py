"""The dedupe window on disk, next to the persisted session, so that it outlives the worker process.

A Resume replays every event after the seq it names, and the seq handed to a successor stops short
of any event not yet handled, so a successor may be handed events its predecessor had already
handled (a respawn, a restart of the watchdog, whose view of the seq lags a beat behind). The worker
therefore keeps the keys of the events it has handled (the protocol's dedupe window minus what is
still queued or running) in a small file of its own, `<state file>.seen.json`: written from the
event loop's side at most every SAVE_EVERY_S while keys change, and at its stop; read by the next
worker that resumes the same session of the same bot. The hot path only adds a key to the window,
as it always did; the file is written by a daemon thread, so a slow disk never stalls the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from qqworker.atomic import BLOCKED_HERE, write_atomic
from qqworker.contract.events import LogEvent
from qqworker.protocol import DEDUPE_WINDOW, ResumePoint, event_key

log = logging.getLogger("qqworker.seen")

VERSION = 1
SAVE_EVERY_S = 1.0
FINAL_SAVE_TIMEOUT_S = 2.0  # at the stop: the write may take this long, then the process exits anyway
MAX_FILE_BYTES = 1 << 20


def seen_path(state_file: str) -> str:
    """`./run/qqwatchdog.session.json` → `./run/qqwatchdog.session.seen.json`."""
    base, ext = os.path.splitext(state_file)
    return f"{base}.seen{ext or '.json'}"


def encode(app_id: str, session_id: str | None, keys: list[str]) -> bytes:
    return json.dumps(
        {"version": VERSION, "app_id": app_id, "session_id": session_id, "keys": keys[-DEDUPE_WINDOW:]},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def decode(data: bytes, *, app_id: str, session_id: str) -> list[str]:
    """The keys, if the file belongs to this bot's session; ValueError says why not."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({type(exc).__name__}): truncated or corrupt") from None
    if not isinstance(raw, dict) or raw.get("version") != VERSION:
        raise ValueError("not a dedupe window file of this version")
    if raw.get("app_id") != app_id:
        raise ValueError("it belongs to another bot")
    if raw.get("session_id") != session_id:
        raise ValueError("it belongs to another session")
    keys = raw.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("keys is not a list of strings")
    return keys[-DEDUPE_WINDOW:]


def load(path: str, *, app_id: str, session_id: str) -> tuple[list[str], str | None]:
    """(keys, None), or ([], why not); never raises. No file: ([], None)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        return [], f"unreadable: {exc.strerror or exc}"
    if len(data) > MAX_FILE_BYTES:
        return [], f"larger than {MAX_FILE_BYTES} bytes"
    try:
        return decode(data, app_id=app_id, session_id=session_id), None
    except ValueError as exc:
        return [], str(exc)


def handled_keys(session: ResumePoint, unfinished: Iterable[Any]) -> list[str]:
    """The window's keys minus those of events not handled yet: a successor must get those again."""
    pending = {key for e in unfinished if (key := event_key(e.type, e.id, e.data)) is not None}
    keys = session.recent_keys()
    return [k for k in keys if k not in pending] if pending else keys


class SeenKeeper:
    """Writes the handled keys of `session` to `path` when they change (at most every SAVE_EVERY_S),
    one write at a time and in order, so an older content can never land after a newer one."""

    def __init__(
        self,
        path: str,
        app_id: str,
        session: ResumePoint,
        unfinished: Callable[[], Iterable[Any]],
        *,
        write: Callable[[str, bytes], None] = write_atomic,
    ) -> None:
        self.path = path
        self.app_id = app_id
        self.session = session
        self.unfinished = unfinished
        self._write = write
        self._saved_mark: tuple[Any, ...] | None = None
        self._inflight: asyncio.Future[Any] | None = None  # the write under way, on its thread
        self.failed: str | None = None  # the last write error, once said
        self.saves = 0

    def _mark(self) -> tuple[Any, ...]:
        return (self.session.session_id, self.session.window_mark(), len(self.unfinished()))

    def snapshot(self) -> bytes | None:
        """The file's new content, or None when nothing changed since the last save."""
        mark = self._mark()
        if mark == self._saved_mark:
            return None
        self._saved_mark = mark
        return encode(self.app_id, self.session.session_id, handled_keys(self.session, self.unfinished()))

    async def save(self, timeout: float | None = None) -> None:
        """Writes what changed, waiting at most `timeout` (None: as long as it takes) in all."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        previous = self._inflight
        if previous is not None:
            # A write under way (its waiter was cancelled, e.g. at the stop) finishes first.
            await asyncio.wait({previous}, timeout=None if deadline is None else deadline - loop.time())
            if not previous.done():
                self._failed("the previous write is still under way (the disk is not answering)")
                return
            self._settled(previous)
        data = self.snapshot()
        if data is None:
            return
        self._inflight = current = _in_daemon_thread(self._write, self.path, data)
        await asyncio.wait({current}, timeout=None if deadline is None else deadline - loop.time())
        if not current.done():
            self._failed(f"not written within {timeout:g}s (the disk is not answering)")
            return
        self._settled(current)

    def _settled(self, future: asyncio.Future[Any]) -> None:
        """A write's outcome, taken once."""
        if future is not self._inflight:
            return
        self._inflight = None
        error = future.exception()
        if error is None:
            self.saves += 1
            self.failed = None
        else:
            self._saved_mark = None  # try again next time
            self._failed(str(error) or type(error).__name__)

    def _failed(self, error: str) -> None:
        if self.failed is None:
            log.warning(
                "Cannot write the dedupe window %s: %s (a successor may see some events twice)",
                self.path,
                error,
                extra={"event": LogEvent.DEDUPE_UNSAVED.value, "path": self.path, "error": error},
            )
        self.failed = error

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY_S)
            await self.save(timeout=None)


def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Runs `fn` in a daemon thread: unlike an executor's, it cannot hold the process's exit hostage."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def target() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED_HERE)  # signals stay the loop's business
        try:
            result, error = fn(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name="qqworker-seen-write", daemon=True).start()
    return future
