"""The handler API: declared (`qqworker.handlers.__all__`) and documented; loading the handler (which import
errors are permanent, exit 78, and which are retried); sync and async calls off the receive path, errors,
and the bounded queue."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from qqworker import handlers
from qqworker.contract.settings import ConfigError
from qqworker.handlers import Dispatcher, DispatchEvent, HandlerImportFailed, Reply, load_handler
from qqworker.logs import configure_logging
from qqworker.protocol import Dispatch

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_handler_api_is_declared() -> None:
    assert sorted(handlers.__all__) == ["DispatchEvent", "Handler", "Reply"]
    assert handlers.DispatchEvent is Dispatch  # the event type the protocol produces, not a copy
    namespace: dict[str, object] = {}
    exec("from qqworker.handlers import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(handlers.__all__)


def test_the_readmes_handler_section_names_the_api() -> None:
    readme = README.read_text()
    section = readme[readme.index("**Handlers.**") : readme.index("Handlers run off the receive path")]
    declared = re.search(r"declares in `__all__`: (.*?);", section, re.S)
    assert declared is not None, "the Handlers section says which names are the API"
    named = set(re.findall(r"`(\w+)` \(", declared.group(1)))
    assert named == set(handlers.__all__)
    assert "from qqworker.handlers import DispatchEvent, Reply" in section


@pytest.fixture
def modules(tmp_path: Path):
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("qqw_probe_")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("body", "permanent"),
    [
        ("raise ConnectionError('broker not up')", False),
        ("raise OSError(111, 'refused')", False),
        ("raise RuntimeError('not yet')", False),
        ("import qqw_no_such_module_anywhere", True),
        ("def broken(:\n    pass", True),
        ("import os\nos.no_such_attribute", True),
        ("def handle(event):\n    pass", False),
    ],
)
def test_only_errors_of_the_spec_itself_are_permanent(modules: Path, body: str, permanent: bool) -> None:
    name = f"qqw_probe_{abs(hash(body))}"
    (modules / f"{name}.py").write_text(body + "\n")
    if body.startswith("def handle"):
        assert callable(load_handler(f"{name}:handle"))
        with pytest.raises(ConfigError, match="has no"):
            load_handler(f"{name}:missing")
        return
    with pytest.raises(ConfigError if permanent else HandlerImportFailed):
        load_handler(f"{name}:handle")


@pytest.fixture
def logged() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(role="worker", stream=stream)
    return stream


def lines(stream: io.StringIO, event: str | None = None) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [r for r in records if event is None or r["event"] == event]


def event(n: int, event_type: str = "C2C_MESSAGE_CREATE") -> DispatchEvent:
    return DispatchEvent(event_type, f"{event_type}:{n}", n, {"id": f"m{n}", "content": f"text {n}"})


# Module-level handlers for load_handler ------------------------------------------------------

seen: list[Any] = []


def sync_handler(ev: DispatchEvent, reply: Reply) -> None:
    seen.append(("sync", ev.seq, threading.current_thread() is threading.main_thread()))


async def async_handler(ev: DispatchEvent, reply: Reply) -> None:
    seen.append(("async", ev.seq))


class Holder:
    @staticmethod
    def nested(ev: DispatchEvent, reply: Reply) -> None:
        seen.append(("nested", ev.seq))


def test_builtins_and_module_functions_load() -> None:
    assert load_handler("log") is handlers.log_handler
    assert load_handler(" echo ") is handlers.echo_handler
    assert load_handler(f"{__name__}:sync_handler") is sync_handler
    assert load_handler(f"{__name__}:Holder.nested") is Holder.nested


@pytest.mark.parametrize(
    "spec", ["", "nocolon", "no_such_module_qq:fn", f"{__name__}:missing", f"{__name__}:seen", ":fn", "mod:"]
)
def test_a_bad_handler_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        load_handler(spec)


async def run_events(handler: Any, events: list[DispatchEvent], **kw: Any) -> Dispatcher:
    dispatcher = Dispatcher(
        handler, rest=None, concurrency=kw.get("concurrency", 2), queue_size=kw.get("queue", 10)
    )
    dispatcher.start()
    for ev in events:
        dispatcher.submit(ev)
    await asyncio.wait_for(dispatcher.join(), 10)
    await dispatcher.close()
    return dispatcher


async def test_sync_handlers_run_on_threads_and_async_ones_on_the_loop(logged: io.StringIO) -> None:
    seen.clear()
    await run_events(sync_handler, [event(1), event(2)])
    await run_events(async_handler, [event(3)])
    assert sorted(seen, key=lambda x: x[1]) == [("sync", 1, False), ("sync", 2, False), ("async", 3)]


async def test_the_log_builtin_writes_one_dispatch_line_per_event(logged: io.StringIO) -> None:
    await run_events(handlers.log_handler, [event(1), event(2, "GROUP_AT_MESSAGE_CREATE")], concurrency=1)
    got = lines(logged, "dispatch")
    assert [(r["event_type"], r["event_id"], r["seq"]) for r in got] == [
        ("C2C_MESSAGE_CREATE", "C2C_MESSAGE_CREATE:1", 1),
        ("GROUP_AT_MESSAGE_CREATE", "GROUP_AT_MESSAGE_CREATE:2", 2),
    ]


async def test_a_raising_handler_is_logged_and_the_next_event_goes_on(logged: io.StringIO) -> None:
    calls: list[int] = []

    def flaky(ev: DispatchEvent, reply: Reply) -> None:
        calls.append(ev.seq or 0)
        if ev.seq == 1:
            raise RuntimeError("boom in handler")

    dispatcher = await run_events(flaky, [event(1), event(2)], concurrency=1)
    assert calls == [1, 2] and dispatcher.errors == 1 and dispatcher.handled == 1
    (err,) = lines(logged, "handler.error")
    assert err["event_type"] == "C2C_MESSAGE_CREATE" and "boom in handler" in err["error"]
    assert "RuntimeError" in err["traceback"]


async def test_a_full_queue_drops_and_says_so_with_the_count(logged: io.StringIO) -> None:
    release = asyncio.Event()

    async def stuck(ev: DispatchEvent, reply: Reply) -> None:
        await release.wait()

    dispatcher = Dispatcher(stuck, rest=None, concurrency=1, queue_size=2)
    dispatcher.start()
    await asyncio.sleep(0)
    accepted = [dispatcher.submit(event(n)) for n in range(1, 11)]
    await asyncio.sleep(0)
    # One runs, two wait; the next submissions are refused without blocking.
    assert accepted[:2] == [True, True] and accepted.count(True) <= 3 and dispatcher.dropped >= 7
    backlog = lines(logged, "handler.backlog")
    assert len(backlog) == 1, "rate-limited: one line for a burst"
    assert backlog[0]["dropped"] == 1
    release.set()
    await dispatcher.close()
    total = sum(r["dropped"] for r in lines(logged, "handler.backlog"))
    assert total == dispatcher.dropped, "every drop is reported, the rest when the dispatcher closes"


async def test_drops_after_the_first_line_are_reported_by_a_timer(
    logged: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "BACKLOG_LOG_INTERVAL_S", 0.1)
    release = asyncio.Event()

    async def stuck(ev: DispatchEvent, reply: Reply) -> None:
        await release.wait()

    dispatcher = Dispatcher(stuck, rest=None, concurrency=1, queue_size=1)
    dispatcher.start()
    await asyncio.sleep(0)
    for n in range(6):
        dispatcher.submit(event(n))
    await asyncio.sleep(0.3)
    reported = [r["dropped"] for r in lines(logged, "handler.backlog")]
    assert len(reported) == 2 and sum(reported) == dispatcher.dropped
    release.set()
    await dispatcher.close()


async def test_a_blocked_sync_handler_does_not_block_the_loop_or_close(logged: io.StringIO) -> None:
    gate = threading.Event()

    def blocked(ev: DispatchEvent, reply: Reply) -> None:
        gate.wait(5)

    dispatcher = Dispatcher(blocked, rest=None, concurrency=1, queue_size=5)
    dispatcher.start()
    dispatcher.submit(event(1))
    started = asyncio.get_running_loop().time()
    await asyncio.sleep(0.05)  # the loop keeps running while the thread is blocked
    await asyncio.wait_for(dispatcher.close(), 2)
    assert asyncio.get_running_loop().time() - started < 2
    gate.set()


async def test_replies_without_a_rest_client_raise(logged: io.StringIO) -> None:
    reply = Reply(event(1), None, asyncio.get_running_loop())
    assert not reply.possible
    with pytest.raises(handlers.RestError):
        await reply("hi")


async def test_the_handed_seq_never_passes_an_unfinished_event(logged: io.StringIO) -> None:
    """What the watchdog hands a successor must not skip events still queued or running."""
    gates = {seq: asyncio.Event() for seq in (5, 6, 7)}

    async def gated(event: DispatchEvent, reply: Reply) -> None:
        await gates[event.seq].wait()

    dispatcher = Dispatcher(gated, rest=None, concurrency=3, queue_size=10)
    dispatcher.start()
    try:
        assert dispatcher.handed_seq(4) == 4
        for seq in (5, 6, 7):
            dispatcher.submit(DispatchEvent("C2C_MESSAGE_CREATE", f"e{seq}", seq, {}))
        await asyncio.sleep(0.01)
        assert dispatcher.handed_seq(7) == 4
        gates[6].set()  # out of order: 5 still runs, so nothing moves
        await asyncio.sleep(0.01)
        assert dispatcher.handed_seq(7) == 4
        gates[5].set()
        await asyncio.sleep(0.01)
        assert dispatcher.handed_seq(7) == 6
        gates[7].set()
        await asyncio.sleep(0.01)
        assert dispatcher.handed_seq(8) == 8
    finally:
        await dispatcher.close()


async def test_events_cancelled_at_shutdown_stay_held(logged: io.StringIO) -> None:
    async def forever(event: DispatchEvent, reply: Reply) -> None:
        await asyncio.Event().wait()

    dispatcher = Dispatcher(forever, rest=None, concurrency=1, queue_size=10)
    dispatcher.start()
    dispatcher.submit(DispatchEvent("C2C_MESSAGE_CREATE", "e1", 11, {}))
    dispatcher.submit(DispatchEvent("C2C_MESSAGE_CREATE", "e2", 12, {}))
    await asyncio.sleep(0.01)
    await dispatcher.close()
    assert dispatcher.handed_seq(12) == 10


async def test_runners_share_the_queue_up_to_the_concurrency_and_no_further(logged: io.StringIO) -> None:
    """Idle runners are woken one per event; the queue bound counts events not yet taken."""
    running: set[int] = set()
    most = 0
    release = asyncio.Event()

    async def slow(event: DispatchEvent, reply: Reply) -> None:
        nonlocal most
        running.add(event.seq)
        most = max(most, len(running))
        await release.wait()
        running.discard(event.seq)

    dispatcher = Dispatcher(slow, rest=None, concurrency=3, queue_size=4)
    dispatcher.start()
    try:
        await asyncio.sleep(0.01)  # every runner idle first
        assert all(dispatcher.submit(event(n)) for n in range(1, 5))
        await asyncio.sleep(0.01)
        assert running == {1, 2, 3}, "three runners, three events at once; the fourth waits"
        assert all(dispatcher.submit(event(n)) for n in range(5, 8)), "4 waiting fit a queue of 4"
        assert not dispatcher.submit(event(8)), "a fifth waiting event does not"
        release.set()
        await asyncio.wait_for(dispatcher.join(), 5)
        assert dispatcher.handled == 7 and dispatcher.dropped == 1 and most == 3
        assert dispatcher.handed_seq(8) == 8
    finally:
        await dispatcher.close()


async def test_totals_for_the_heartbeat_count_handled_failed_dropped_and_queued(logged: io.StringIO) -> None:
    release = asyncio.Event()

    async def gated(ev: DispatchEvent, reply: Reply) -> None:
        await release.wait()
        if ev.seq == 2:
            raise RuntimeError("boom")

    dispatcher = Dispatcher(gated, rest=None, concurrency=1, queue_size=2)
    dispatcher.start()
    await asyncio.sleep(0)
    for n in range(1, 6):
        dispatcher.submit(event(n))
    await asyncio.sleep(0)
    # Two fit the queue (the runner has taken the first since), three were refused.
    assert dispatcher.totals() == (0, 0, 3, 1)
    release.set()
    await dispatcher.join()
    assert dispatcher.totals() == (1, 1, 3, 0)
    await dispatcher.close()


async def test_an_old_sessions_event_in_a_handler_never_holds_the_new_sessions_seq(
    logged: io.StringIO,
) -> None:
    """Seq 40 of session A is still running when an Identify anew makes session B (from seq 1)."""
    release = asyncio.Event()

    async def gated(event: DispatchEvent, reply: Reply) -> None:
        if event.seq == 40:
            await release.wait()

    dispatcher = Dispatcher(gated, rest=None, concurrency=2, queue_size=10, session_id="A")
    changes: list[int] = []
    dispatcher.on_stranded_done = lambda: changes.append(1)
    dispatcher.start()
    try:
        dispatcher.submit(event(40))
        await asyncio.sleep(0.01)
        assert dispatcher.handed_seq(40) == 39
        dispatcher.session(None)  # dropped (op 9)
        dispatcher.session("B")  # READY
        for n in (2, 3):
            dispatcher.submit(event(n))
        await asyncio.sleep(0.01)
        assert dispatcher.handed_seq(3) == 3, "B's seq must not be held back by A's 40"
        assert [s.fields() for s in dispatcher.inflight.stranded()] == [
            {"session_id": "A", "first_seq": 40, "last_seq": 40, "count": 1}
        ]
        release.set()
        await asyncio.sleep(0.01)
        assert dispatcher.inflight.stranded() == [] and changes == [1]
        assert dispatcher.handled == 3
    finally:
        await dispatcher.close()


async def test_while_watched_every_change_of_the_oldest_event_is_announced(logged: io.StringIO) -> None:
    seen: list[int | None] = []
    dispatcher = Dispatcher(handlers.log_handler, rest=None, concurrency=1, queue_size=10)

    def oldest() -> None:
        first = dispatcher.inflight.oldest()
        seen.append(first.seq if first else None)

    dispatcher.on_oldest = oldest
    dispatcher.start()
    for n in (5, 6, 7):
        dispatcher.submit(event(n))
    await asyncio.wait_for(dispatcher.join(), 5)
    await dispatcher.close()
    assert seen == [5, 6, 7], "each event announced as the oldest before its handler ran"
