"""The connection shell: recv timeouts, close codes, and `drive` against scripted loopback servers."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from qqworker import gateway
from qqworker.closecodes import CloseAction
from qqworker.contract.settings import ConfigError
from qqworker.gateway import MAX_WAIT_S, Callbacks, drive, open_link, wake_at
from qqworker.logs import configure_logging
from qqworker.protocol import Disconnect, Dispatch, Established, GatewayProtocol, ResumePoint

HELLO = json.dumps({"op": 10, "d": {"heartbeat_interval": 200}})


def ready(seq: int = 1) -> str:
    return json.dumps(
        {"op": 0, "s": seq, "t": "READY", "d": {"session_id": "S-1", "user": {}, "shard": [0, 1]}}
    )


def new_conn(session: ResumePoint | None = None, now: float = 0.0) -> GatewayProtocol:
    return GatewayProtocol(token="QQBot t", intents=1, session=session or ResumePoint(), now=now)


def test_before_hello_recv_waits_until_the_attempt_deadline() -> None:
    conn = new_conn()
    assert wake_at(conn, deadline=10.0, now=4.0) == 10.0
    assert wake_at(conn, deadline=1000.0, now=0.0) == MAX_WAIT_S


def test_after_hello_recv_waits_until_the_next_heartbeat_or_the_deadline() -> None:
    conn = new_conn()
    conn.receive_text(HELLO, now=0.0)  # heartbeat due at 0.2
    assert wake_at(conn, deadline=10.0, now=0.05) == pytest.approx(0.2)
    assert wake_at(conn, deadline=0.1, now=0.05) == pytest.approx(0.1)
    conn.receive_text(ready(), now=0.1)  # established: the deadline no longer applies
    assert wake_at(conn, deadline=0.1, now=0.15) == pytest.approx(0.2)


async def test_plain_ws_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ConfigError):
        await open_link("ws://203.0.113.9/websocket", 1.0)


# drive() against scripted servers -------------------------------------------------------------

Script = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    servers: list[Any] = []

    async def start(script: Script) -> str:
        srv = await serve(script, "127.0.0.1", 0, max_size=None, compression=None)
        servers.append(srv)
        port = srv.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/websocket/"

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


@pytest.fixture
def logged() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(role="worker", stream=stream)
    return stream


def events(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


class Seen:
    def __init__(self) -> None:
        self.established: list[Established] = []
        self.dispatches: list[Dispatch] = []
        self.control_frames = 0

    def callbacks(self) -> Callbacks:
        def control(conn: GatewayProtocol) -> None:
            self.control_frames += 1

        return Callbacks(
            established=self.established.append, dispatch=self.dispatches.append, control=control
        )


async def run(url: str, seen: Seen, timeout: float = 2.0, session: ResumePoint | None = None) -> Disconnect:
    loop = asyncio.get_running_loop()
    ws = await open_link(url, timeout)
    conn = new_conn(session, now=loop.time())
    return await asyncio.wait_for(drive(ws, conn, seen.callbacks(), deadline=loop.time() + timeout), 10)


async def test_a_server_that_never_says_hello_ends_the_attempt_at_its_deadline(
    server: Any, logged: Any
) -> None:
    async def silent(ws: ServerConnection) -> None:
        await ws.wait_closed()

    url = await server(silent)
    started = asyncio.get_running_loop().time()
    result = await run(url, Seen(), timeout=0.3)
    assert result.action is CloseAction.RESUME and "no Hello" in result.reason
    assert asyncio.get_running_loop().time() - started < 3


async def test_malformed_frames_are_logged_and_survived(server: Any, logged: io.StringIO) -> None:
    async def messy(ws: ServerConnection) -> None:
        await ws.send(HELLO)
        await ws.recv()  # identify
        await ws.send("not json")
        await ws.send(b"\x00binary")
        await ws.send(json.dumps({"op": 99}))
        await ws.send(ready())
        await ws.send(
            json.dumps({"op": 0, "s": 2, "t": "C2C_MESSAGE_CREATE", "id": "E:2", "d": {"id": "m2"}})
        )
        await ws.send(json.dumps({"op": 7}))
        await ws.wait_closed()

    url = await server(messy)
    seen = Seen()
    result = await run(url, seen)
    assert result.action is CloseAction.RESUME and "op 7" in result.reason
    assert len(seen.established) == 1 and [d.seq for d in seen.dispatches] == [2]
    assert events(logged).count("gateway.frame_rejected") == 3


async def test_an_oversized_frame_is_logged_and_ends_the_connection(
    server: Any, logged: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway, "MAX_FRAME_BYTES", 4096)

    async def huge(ws: ServerConnection) -> None:
        await ws.send(HELLO)
        await ws.recv()
        await ws.send(ready())
        await ws.send(json.dumps({"op": 0, "s": 2, "t": "X", "d": "y" * 10_000}))
        await ws.wait_closed()

    url = await server(huge)
    ws = await gateway.open_link(url, 2.0, max_size=4096)
    loop = asyncio.get_running_loop()
    result = await drive(ws, new_conn(now=loop.time()), Seen().callbacks(), deadline=loop.time() + 2)
    assert result.close_code == 1009 and result.action is CloseAction.RESUME
    assert "gateway.frame_rejected" in events(logged)


async def test_unacknowledged_heartbeats_end_the_connection(server: Any, logged: io.StringIO) -> None:
    heartbeats: list[Any] = []

    async def no_acks(ws: ServerConnection) -> None:
        await ws.send(HELLO)
        await ws.recv()
        await ws.send(ready())
        async for message in ws:
            heartbeats.append(json.loads(message))

    url = await server(no_acks)
    started = asyncio.get_running_loop().time()
    result = await run(url, Seen())
    elapsed = asyncio.get_running_loop().time() - started
    assert "unacknowledged" in result.reason and result.action is CloseAction.RESUME
    assert [h["op"] for h in heartbeats] == [1, 1] and heartbeats[0]["d"] == 1
    assert "gateway.ack_timeout" in events(logged)
    assert elapsed < 3, "two 200 ms intervals, then the drop"


async def test_a_close_right_after_the_handshake_is_reported_with_its_code(server: Any, logged: Any) -> None:
    async def rejects_at_once(ws: ServerConnection) -> None:
        await ws.close(4004, "invalid token")

    url = await server(rejects_at_once)
    result = await run(url, Seen())
    assert result.close_code == 4004 and result.auth_rejected


async def test_a_close_code_from_the_server_is_reported(server: Any, logged: Any) -> None:
    async def rejects(ws: ServerConnection) -> None:
        await ws.send(HELLO)
        await ws.recv()
        await ws.close(4914, "bot delisted")

    url = await server(rejects)
    session = ResumePoint(session_id="old", seq=5)
    result = await run(url, Seen(), session=session)
    assert result.close_code == 4914 and result.action is CloseAction.FATAL
    assert session.session_id is None, "a fatal close drops the session"
