"""The webhook handler's I/O against local aiohttp servers over real loopback sockets, driven
through the real Dispatcher: what is POSTed (body, headers, signature), retries with the same id in
order, a consumer that hangs, and the handed seq held below every unacknowledged event."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from qqworker.contract.settings import Settings
from qqworker.handlers import Dispatcher, DispatchEvent
from qqworker.logs import configure_logging
from qqworker.webhook import WebhookHandler
from qqworker.webhook_sign import Signer

SECRET = "webhook-test-secret"
APP_ID = "102005"


@pytest.fixture
def logged() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(role="worker", stream=stream)
    return stream


def lines(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    return [r for line in stream.getvalue().splitlines() if (r := json.loads(line))["event"] == event]


def event(n: int) -> DispatchEvent:
    return DispatchEvent(
        "C2C_MESSAGE_CREATE", f"C2C_MESSAGE_CREATE:{n}", n, {"id": f"m{n}", "content": f"t{n}"}
    )


class Consumer:
    """A local bot endpoint whose answer the test sets: a status, or hang."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answer: int | str = 200
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()  # ends the hanging requests (at stop)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/qq/webhook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/qq/webhook"

    async def stop(self) -> None:
        assert self._runner is not None
        self._release.set()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        if self.answer == "hang":
            await self._release.wait()
        return web.Response(status=int(self.answer))

    def ids(self) -> list[str]:
        return [json.loads(body)["id"] for _, body in self.received]


@pytest.fixture
async def consumer() -> AsyncIterator[Consumer]:
    c = Consumer()
    await c.start()
    yield c
    await c.stop()


Run = Callable[..., Awaitable[tuple[WebhookHandler, Dispatcher]]]


@pytest.fixture
async def run() -> AsyncIterator[Run]:
    made: list[tuple[WebhookHandler, Dispatcher]] = []

    async def start(*urls: str, **overrides: Any) -> tuple[WebhookHandler, Dispatcher]:
        settings = replace(
            Settings(),
            app_id=APP_ID,
            app_secret=SECRET,
            handler="webhook",
            webhook_url=",".join(urls),
            retry_initial=0.05,
            webhook_retry_max=0.2,
            webhook_timeout=0.5,
            **overrides,
        ).validate()
        handler = WebhookHandler(settings)
        dispatcher = Dispatcher(
            handler, rest=None, concurrency=handler.runners, queue_size=1000, session_id="s1"
        )
        dispatcher.start()
        await handler.start()
        made.append((handler, dispatcher))
        return handler, dispatcher

    yield start
    for handler, dispatcher in made:
        await dispatcher.close()
        await handler.close()


async def until(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_each_event_is_posted_as_the_platform_does(consumer: Consumer, run: Run) -> None:
    handler, dispatcher = await run(consumer.url)
    dispatcher.submit(event(1))
    await asyncio.wait_for(dispatcher.join(), 5)
    [(headers, body)] = consumer.received
    assert json.loads(body) == {
        "id": "C2C_MESSAGE_CREATE:1",
        "op": 0,
        "d": {"id": "m1", "content": "t1"},
        "t": "C2C_MESSAGE_CREATE",
    }
    assert headers["User-Agent"] == "QQBot-Callback"
    assert headers["X-Bot-Appid"] == APP_ID
    assert Signer(SECRET).verify(headers["X-Signature-Timestamp"], body, headers["X-Signature-Ed25519"])
    assert handler.beat_fields() == {
        "webhook_pending": 0,
        "webhook_oldest_age_s": None,
        "webhook_delivered": 1,
        "webhook_failures": 0,
        "webhook_dropped": 0,
    }


async def test_failures_are_retried_in_order_with_the_same_id_and_never_resent_after_a_2xx(
    consumer: Consumer, run: Run, logged: io.StringIO
) -> None:
    consumer.answer = 500
    _handler, dispatcher = await run(consumer.url)
    for n in range(1, 4):
        dispatcher.submit(event(n))
    await until(lambda: len(consumer.received) >= 4)
    assert set(consumer.ids()) == {"C2C_MESSAGE_CREATE:1"}  # the head only, again and again
    assert dispatcher.handed_seq(3) == 0  # nothing acknowledged: a successor would replay all
    consumer.answer = 200
    await asyncio.wait_for(dispatcher.join(), 5)
    ids = consumer.ids()
    assert ids[-3:] == [f"C2C_MESSAGE_CREATE:{n}" for n in (1, 2, 3)]
    assert ids.count("C2C_MESSAGE_CREATE:2") == 1 and ids.count("C2C_MESSAGE_CREATE:3") == 1
    assert dispatcher.handed_seq(3) == 3
    failed = lines(logged, "webhook.failed")
    assert len(failed) == 1  # one line for the burst, not one per retry
    assert failed[0]["status"] == 500 and failed[0]["pending"] == 3 and failed[0]["url"] == consumer.url
    await asyncio.sleep(0.1)
    assert consumer.ids() == ids  # and nothing sent again afterwards


async def test_a_hanging_consumer_times_out_and_never_blocks_submit(consumer: Consumer, run: Run) -> None:
    consumer.answer = "hang"
    handler, dispatcher = await run(consumer.url)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(1, 51):
        assert dispatcher.submit(event(n))
    assert loop.time() - start < 0.5
    await until(lambda: len(consumer.received) >= 2, timeout=5)  # the first POST timed out (0.5 s)
    assert set(consumer.ids()) == {"C2C_MESSAGE_CREATE:1"}
    assert handler.beat_fields()["webhook_pending"] == 50
    consumer.answer = 200
    await asyncio.wait_for(dispatcher.join(), 10)
    assert consumer.ids()[-50:] == [f"C2C_MESSAGE_CREATE:{n}" for n in range(1, 51)]


async def test_overflow_drops_the_oldest_counted_and_logged(
    consumer: Consumer, run: Run, logged: io.StringIO
) -> None:
    consumer.answer = "hang"  # the head stays on the wire (0.5 s timeout) while the rest arrive
    handler, dispatcher = await run(consumer.url, webhook_queue=3)
    dispatcher.submit(event(1))
    await until(lambda: consumer.received)
    for n in range(2, 7):
        dispatcher.submit(event(n))
    await until(lambda: handler.beat_fields()["webhook_dropped"] == 3)
    assert dispatcher.handed_seq(6) == 0  # the dropped events were released, the rest are held
    consumer.answer = 200
    await asyncio.wait_for(dispatcher.join(), 5)
    assert consumer.ids()[-3:] == [f"C2C_MESSAGE_CREATE:{n}" for n in (1, 5, 6)]
    await until(lambda: lines(logged, "webhook.dropped"), timeout=3)
    assert sum(r["events"] for r in lines(logged, "webhook.dropped")) == 3


async def test_every_url_gets_every_event_and_a_dead_one_holds_the_seq(consumer: Consumer, run: Run) -> None:
    other = Consumer()
    await other.start()
    other.answer = 500
    try:
        _handler, dispatcher = await run(consumer.url, other.url)
        dispatcher.submit(event(1))
        dispatcher.submit(event(2))
        await until(lambda: len(consumer.received) == 2)
        assert dispatcher.handed_seq(2) == 0  # the second URL has not acknowledged
        other.answer = 200
        await asyncio.wait_for(dispatcher.join(), 5)
        assert consumer.ids() == other.ids()[-2:] == ["C2C_MESSAGE_CREATE:1", "C2C_MESSAGE_CREATE:2"]
        assert dispatcher.handed_seq(2) == 2
    finally:
        await other.stop()


async def test_acknowledgements_beat_soon_coalesced(consumer: Consumer, run: Run) -> None:
    handler, dispatcher = await run(consumer.url)
    beats: list[int | None] = []
    handler.on_progress = lambda: beats.append(dispatcher.handed_seq(50))
    for n in range(1, 51):
        dispatcher.submit(event(n))
    await asyncio.wait_for(dispatcher.join(), 5)
    await until(lambda: beats and beats[-1] == 50, timeout=2)  # the last beat hands the last seq
    assert len(beats) < 50  # coalesced, not one beat per event
