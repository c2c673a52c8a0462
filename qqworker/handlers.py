"""Dispatch event handlers, run off the receive path.

`QQ_HANDLER` names a built-in (`log`, `echo`) or `module:function`, sync or async, called as
`handler(event)` or `handler(event, reply)` (checked at load: `signatures.py`). Events wait in a
bounded queue for one of `handler_concurrency` runners, so a slow handler can never delay the
gateway heartbeat; a full queue drops the event and says so (`handler.backlog`, rate-limited, with
the count). Sync handlers run on daemon threads; a handler that raises is logged (`handler.error`)
and the next event goes on. The queue is a plain deque with one waiter per idle runner:
asyncio.Queue's bookkeeping cost more per event than the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.contract.settings import ConfigError
from qqworker.delivery import InFlight, Span
from qqworker.protocol import Dispatch
from qqworker.rest import RestClient, RestError, reply_route
from qqworker.signatures import adapt, is_async

__all__ = ["DispatchEvent", "Handler", "Reply"]  # what a bot author uses (the README's "Handlers")

log = logging.getLogger("qqworker.handlers")

BACKLOG_LOG_INTERVAL_S = 5.0
REPLY_SYNC_TIMEOUT_S = 30.0
ECHO_EVENTS = frozenset({"C2C_MESSAGE_CREATE", "GROUP_AT_MESSAGE_CREATE"})


# What a handler gets: `event.type`, `event.id`, `event.seq`, `event.data` (the event's `d`).
DispatchEvent = Dispatch


class Reply:
    """Passive replies to one event: `await reply("text")` (or `reply.sync("text")` from a sync
    handler). Each reply carries the event's message id and the next `msg_seq` (1, 2, ...)."""

    __slots__ = ("_loop", "_rest", "_seq", "event")

    def __init__(
        self, event: DispatchEvent, rest: RestClient | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.event = event
        self._rest = rest
        self._loop = loop
        self._seq = 0

    @property
    def possible(self) -> bool:
        return self._rest is not None and reply_route(self.event.type, self.event.data) is not None

    async def __call__(self, content: str) -> Any:
        if self._rest is None:
            raise RestError("replies are not available (no REST client)")
        self._seq += 1
        return await self._rest.reply(self.event.type, self.event.data, content, self._seq)

    def sync(self, content: str, timeout: float = REPLY_SYNC_TIMEOUT_S) -> Any:
        """For sync handlers (they run on a worker thread, never on the event loop)."""
        return asyncio.run_coroutine_threadsafe(self(content), self._loop).result(timeout)


Handler = Callable[[DispatchEvent, Reply], Any]


# Built-ins -----------------------------------------------------------------------------------


def log_dispatch(event: DispatchEvent) -> None:
    """The `dispatch` line for one event (what the `log` built-in does; usable from sync handlers)."""
    log_event(
        log,
        LogEvent.DISPATCH,
        f"Received {event.type} (seq {event.seq})",
        event_type=event.type,
        event_id=event.id,
        seq=event.seq,
    )


async def log_handler(event: DispatchEvent, reply: Reply) -> None:
    log_dispatch(event)


async def echo_handler(event: DispatchEvent, reply: Reply) -> None:
    """Logs the event, and answers C2C and group @ messages with their own text."""
    await log_handler(event, reply)
    if event.type not in ECHO_EVENTS or not isinstance(event.data, dict):
        return
    content = str(event.data.get("content") or "").strip()
    if not content:
        return
    try:
        await reply(content)
    except RestError as exc:
        log_event(
            log,
            LogEvent.REPLY_FAILED,
            f"Echo reply to {event.type} failed: {exc}",
            level=logging.WARNING,
            event_type=event.type,
            error=str(exc),
            status=exc.status,
            code=exc.code,
            trace_id=exc.trace_id,
        )


BUILTINS: dict[str, Handler] = {"log": log_handler, "echo": echo_handler}


class HandlerImportFailed(Exception):
    """The handler module raised something other than an import, syntax or attribute error while
    being imported: possibly transient (see qqworker.handler_import), never exit 78."""

    def __init__(self, module: str, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        super().__init__(f"handler: importing {module!r} raised {self.error}")


def load_handler(spec: str) -> Handler:
    """A built-in name or `module:function`; ConfigError (exit 78) when it cannot be loaded,
    HandlerImportFailed when its module raised anything else on import."""
    spec = spec.strip()
    if spec in BUILTINS:
        return BUILTINS[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"handler: expected log, echo or module:function, got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except (ImportError, SyntaxError, AttributeError) as exc:  # the spec is wrong: no retry can help
        raise ConfigError(f"handler: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # the module raised on import: its server may just not be up yet
        raise HandlerImportFailed(module_name, exc) from None
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError(f"handler: {module_name!r} has no {attr!r}")
    if not callable(target):
        raise ConfigError(f"handler: {spec!r} is not callable")
    return adapt(target, spec)


class DaemonThreads:
    """A fixed pool of daemon threads for sync handlers: a handler stuck forever cannot hold up the
    process exit the way a ThreadPoolExecutor worker (joined at interpreter exit) would."""

    def __init__(self, size: int) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"qqworker-handler-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, args, loop, future))
        return future

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, loop, future = job
            try:
                result, error = fn(*args), None
            except BaseException as exc:
                result, error = None, exc
            # A closed loop (RuntimeError) means nobody waits for this result any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Dispatcher:
    def __init__(
        self,
        handler: Handler,
        *,
        rest: RestClient | None,
        concurrency: int,
        queue_size: int,
        clock: Callable[[], float] = time.monotonic,
        session_id: str | None = None,
    ) -> None:
        self.handler = handler
        self.rest = rest
        self.concurrency = concurrency
        self.queue_size = queue_size
        self._pending: deque[DispatchEvent] = deque()
        self._idle: list[asyncio.Future[None]] = []  # one per runner waiting for an event
        self._busy = 0  # events taken by a runner and not finished
        self._joiners: list[asyncio.Future[None]] = []
        self._async = is_async(handler)
        self._threads: DaemonThreads | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._clock = clock
        self.dropped = 0  # in total
        self._unreported = 0  # dropped since the last backlog line
        self._last_report: float | None = None
        self._report_timer: asyncio.TimerHandle | None = None
        self.handled = 0
        self.errors = 0
        # Events queued or running, per session (delivery.py); `_in_flight` is the current session's.
        self.inflight = InFlight(session_id)
        self._in_flight = self.inflight.current
        self.on_stranded_done: Callable[[], None] | None = None
        # While set, called each time the oldest unhandled event changes (see Worker: only while a
        # successor handles its replay, where a poison event would strike before any periodic beat).
        self.on_oldest: Callable[[], None] | None = None

    def start(self) -> None:
        if not self._async:
            self._threads = DaemonThreads(self.concurrency)
        self._tasks = [
            asyncio.create_task(self._runner(), name=f"handler-runner-{i}") for i in range(self.concurrency)
        ]

    def handed_seq(self, received_seq: int | None) -> int | None:
        """The seq a successor process may Resume the current session from without losing an event:
        just below its oldest event still queued or running, else the last seq received. Events
        finished after that point are delivered again on such a Resume: at least once, never lost."""
        return self.inflight.handed_seq(received_seq)

    def session(self, session_id: str | None) -> Span | None:
        """The gateway session is now `session_id`: events still in flight from another one are
        stranded (handled, but no Resume can replay them). Returns their span, if any."""
        return self.inflight.switch(session_id)

    def totals(self) -> tuple[int, int, int, int]:
        """(handled, failed, dropped, queued): for the heartbeat, so the watchdog can export them."""
        return self.handled, self.errors, self.dropped, len(self._pending)

    def unfinished(self) -> list[DispatchEvent]:
        """Events queued or running (or cancelled while running): not handled yet."""
        return [*self._in_flight.values(), *(e for e in self._pending if e.seq is None)]

    def submit(self, event: DispatchEvent) -> bool:
        """Never blocks: queues the event, or drops it (and reports the drop) when the queue is full."""
        if len(self._pending) >= self.queue_size:
            self.dropped += 1
            self._unreported += 1
            self._report_backlog()
            return False
        self._pending.append(event)
        if event.seq is not None:
            in_flight = self._in_flight
            if not in_flight and self.on_oldest is not None:
                in_flight[event.seq] = event
                self.on_oldest()
            else:
                in_flight[event.seq] = event
        if self._idle:
            waiter = self._idle.pop()
            if not waiter.done():
                waiter.set_result(None)
        return True

    @property
    def idle(self) -> bool:
        """Nothing queued or running."""
        return not self._pending and not self._busy

    async def join(self) -> None:
        """Until every event submitted so far has been handled."""
        if self._pending or self._busy:
            waiter = asyncio.get_running_loop().create_future()
            self._joiners.append(waiter)
            await waiter

    async def close(self) -> None:
        """Cancels and awaits every runner; reports drops not yet reported."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        if self._unreported:
            self._log_backlog()
        if self._threads is not None:
            self._threads.close()
            self._threads = None

    def _report_backlog(self) -> None:
        now = self._clock()
        if self._last_report is None or now - self._last_report >= BACKLOG_LOG_INTERVAL_S:
            self._log_backlog()
        elif self._report_timer is None:
            delay = self._last_report + BACKLOG_LOG_INTERVAL_S - now
            self._report_timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        self._report_timer = None
        if self._unreported:
            self._log_backlog()

    def _log_backlog(self) -> None:
        self._last_report = self._clock()
        count, self._unreported = self._unreported, 0
        log_event(
            log,
            LogEvent.HANDLER_BACKLOG,
            f"Handler queue full ({self.queue_size} waiting): dropped {count} event(s), "
            f"{self.dropped} in total",
            level=logging.WARNING,
            dropped=count,
            dropped_total=self.dropped,
            queue_size=self.queue_size,
        )

    async def _runner(self) -> None:
        loop = asyncio.get_running_loop()
        pending, idle, in_flight = self._pending, self._idle, self._in_flight
        handler, rest, run_async = self.handler, self.rest, self._async
        while True:
            if not pending:
                waiter = loop.create_future()
                idle.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in idle:  # cancelled while idle
                        idle.remove(waiter)
                continue
            event = pending.popleft()
            self._busy += 1
            try:
                if run_async:
                    await handler(event, Reply(event, rest, loop))
                else:
                    await self._call_sync(event, Reply(event, rest, loop))
                self.handled += 1
            except Exception as exc:
                self._failed(event, exc)
            finally:
                self._busy -= 1
            # Only a finished call releases its seq (a cancelled one, at shutdown, keeps it held).
            seq = event.seq
            if seq is not None:
                if in_flight.get(seq) is event:
                    if self.on_oldest is not None and in_flight and next(iter(in_flight)) == seq:
                        del in_flight[seq]
                        if in_flight:
                            self.on_oldest()
                    else:
                        del in_flight[seq]
                elif self.inflight.release_stranded(event) and self.on_stranded_done is not None:
                    self.on_stranded_done()
            if self._joiners and not pending and not self._busy:
                for joiner in self._joiners:
                    if not joiner.done():
                        joiner.set_result(None)
                self._joiners.clear()

    async def _call_sync(self, event: DispatchEvent, reply: Reply) -> None:
        assert self._threads is not None
        result = await self._threads.submit(self.handler, event, reply)
        if inspect.isawaitable(result):
            await result

    def _failed(self, event: DispatchEvent, exc: Exception) -> None:
        self.errors += 1
        log_event(
            log,
            LogEvent.HANDLER_ERROR,
            f"The handler raised on {event.type}: {type(exc).__name__}: {exc}",
            level=logging.ERROR,
            event_type=event.type,
            event_id=event.id,
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:],
        )
