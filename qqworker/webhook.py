"""`QQ_HANDLER=webhook`: every dispatch event POSTed to local bots exactly as the platform's webhook
mode would, and never lost while they are down.

The decisions are `webhook_queue.UrlQueue`'s; this is the I/O around them. Each URL has its own
sender task and queue, so a slow or dead endpoint holds up only its own deliveries, never the gateway
(the handler call only queues) nor another URL. The handler call for an event returns when every URL
has acknowledged it (any 2xx) or dropped it on overflow: until then the dispatcher counts it as
running, so the seq handed to a successor stays below it and a respawn's Resume replays it. Every POST
is bounded by `--webhook-timeout`; the senders are cancelled and awaited on shutdown.

The body is the gateway envelope `{"id", "op": 0, "d", "t"}` with the upstream envelope id and no
`s` (the platform sends none on webhooks), signed over the exact bytes sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.contract.settings import Settings
from qqworker.protocol import Dispatch
from qqworker.webhook_queue import Report, UrlQueue, new_queue
from qqworker.webhook_sign import Signer

log = logging.getLogger("qqworker.webhook")

# How each of the queue's reports is said: its event, its level and its sentence (over the report's fields).
REPORT_LINES: dict[str, tuple[LogEvent, int, str]] = {
    "failed": (
        LogEvent.WEBHOOK_FAILED,
        logging.WARNING,
        "Webhook {url} failing: {error} ({failures} failed attempt(s), {pending} event(s) waiting; retried)",
    ),
    "recovered": (
        LogEvent.WEBHOOK_RECOVERED,
        logging.INFO,
        "Webhook {url} acknowledges again after {failures} failed attempt(s)",
    ),
    "dropped": (
        LogEvent.WEBHOOK_DROPPED,
        logging.WARNING,
        "Webhook {url} queue full ({capacity}): dropped the {events} oldest event(s), "
        "{dropped_total} in total",
    ),
    "backlog": (
        LogEvent.WEBHOOK_BACKLOG,
        logging.WARNING,
        "Webhook {url}: the oldest of {pending} waiting event(s) has waited {oldest_age_s:.0f}s",
    ),
    "delivered": (
        LogEvent.WEBHOOK_DELIVERED,
        logging.INFO,
        "Webhook {url}: delivered {events} event(s) ({delivered_total} in total)",
    ),
}
TICK_S = 1.0  # how often an idle sender looks at its due log lines
# After an acknowledgement, the handed seq moves on: a beat says so within this long (coalesced), so a
# worker killed right after acknowledgements replays (and resends) at most this much, not a beat period.
ACK_BEAT_DELAY_S = 0.1


def envelope(event: Dispatch) -> bytes:
    """The raw body the platform would POST for this event."""
    return orjson.dumps({"id": event.id, "op": 0, "d": event.data, "t": event.type})


class _Delivery:
    """One event on its way to every URL; `done` resolves when none still waits for it."""

    __slots__ = ("body", "done", "event", "remaining")

    def __init__(self, event: Dispatch, body: bytes, remaining: int, done: asyncio.Future[None]) -> None:
        self.event = event
        self.body = body
        self.remaining = remaining
        self.done = done

    def settle_one(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0 and not self.done.done():
            self.done.set_result(None)


class WebhookHandler:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = settings.app_id
        self.signer = Signer(settings.app_secret)
        self.timeout_s = settings.webhook_timeout
        self.queues: list[UrlQueue[_Delivery]] = [
            new_queue(
                url,
                settings.webhook_queue,
                settings.retry_initial,
                settings.webhook_retry_max,
                settings.webhook_backlog_warn,
            )
            for url in settings.webhook_urls
        ]
        # Dispatcher runners: one per event a queue can hold (plus one), so that the webhook queues,
        # not the dispatcher's, are where events wait and overflow (webhook.dropped).
        self.runners = settings.webhook_queue + 1
        self._clock = clock
        self._wall = wall
        self._wake: list[asyncio.Event] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._http: aiohttp.ClientSession | None = None
        self.on_progress: Callable[[], None] | None = None  # the worker's beat-now
        self._beat_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        self._wake = [asyncio.Event() for _ in self.queues]
        self._tasks = [
            asyncio.create_task(self._sender(i), name=f"webhook-sender-{i}") for i in range(len(self.queues))
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._beat_timer is not None:
            self._beat_timer.cancel()
            self._beat_timer = None
        for q in self.queues:
            q.abandon_send()
            self._log(q.reports(self._clock()))
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __call__(self, event: Dispatch, reply: Any) -> None:
        """Queues the event for every URL and waits until each has acknowledged or dropped it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery = _Delivery(event, envelope(event), len(self.queues), done)
        now = self._clock()
        for q, wake in zip(self.queues, self._wake, strict=True):
            for dropped in q.push(delivery, now):
                dropped.settle_one()
            wake.set()
        await done

    def beat_fields(self) -> dict[str, Any]:
        now = self._clock()
        ages = [age for q in self.queues if (age := q.oldest_age(now)) is not None]
        return {
            "webhook_pending": sum(len(q) for q in self.queues),
            "webhook_oldest_age_s": round(max(ages), 3) if ages else None,
            "webhook_delivered": sum(q.delivered for q in self.queues),
            "webhook_failures": sum(q.failures for q in self.queues),
            "webhook_dropped": sum(q.dropped for q in self.queues),
        }

    async def _sender(self, index: int) -> None:
        q, wake = self.queues[index], self._wake[index]
        while True:
            now = self._clock()
            self._log(q.reports(now))
            delivery = q.next_send(now)
            if delivery is None:
                wait = q.wait_s(now)
                wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), TICK_S if wait is None else min(wait, TICK_S))
                continue
            status, error = await self._post(q.url, delivery.body)
            if status is not None and 200 <= status < 300:
                q.acked(self._clock())
                delivery.settle_one()
                if self.on_progress is not None and self._beat_timer is None:
                    self._beat_timer = asyncio.get_running_loop().call_later(ACK_BEAT_DELAY_S, self._beat)
            else:
                q.failed(self._clock(), status, error)

    def _beat(self) -> None:
        self._beat_timer = None
        if self.on_progress is not None:
            self.on_progress()

    async def _post(self, url: str, body: bytes) -> tuple[int | None, str]:
        """(HTTP status or None, error text) of one signed POST; never raises but CancelledError."""
        assert self._http is not None
        headers = self.signer.headers(self.app_id, str(int(self._wall())), body)
        try:
            # No redirects: a 301/302 would turn the POST into a GET, and a consumer's redirect
            # (NoneBot's /qq -> /qq/) is a configuration to fix, said in the failure line.
            async with self._http.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.content.read(65536)
                if 200 <= resp.status < 300:
                    return resp.status, ""
                if 300 <= resp.status < 400:
                    return resp.status, f"HTTP {resp.status} redirect to {resp.headers.get('Location')}"
                return resp.status, f"HTTP {resp.status}"
        except asyncio.TimeoutError:
            return None, f"no answer within {self.timeout_s:g}s"
        except Exception as exc:  # ClientError, OSError, a bad URL...: a sender must never die of one
            text = str(exc)
            return None, f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def _log(self, reports: list[Report]) -> None:
        for report in reports:
            event, level, message = REPORT_LINES[report.kind]
            log_event(log, event, message.format(**report.fields), level=level, **report.fields)
