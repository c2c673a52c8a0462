"""Each outage mode does what it says for its seconds, then ends by itself; the control port stays up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from qqworker.simulator import Simulator
from qqworker.simulator.docs_client import STEP, Gateway, auth, fetch_token

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP)) as session:
        yield session


async def outage(http: aiohttp.ClientSession, sim: Simulator, mode: str, seconds: float) -> dict[str, Any]:
    resp = await http.post(f"{sim.control_url}/_sim/outage", json={"mode": mode, "seconds": seconds})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def over(sim: Simulator) -> None:
    await sim.wait_until(lambda s: not s["outages"], timeout=STEP)


async def ready(sim: Simulator, token: str) -> tuple[Gateway, str]:
    gw = await Gateway.open(sim.gateway_url)
    frame = await gw.identify(token)
    assert frame["t"] == "READY"
    return gw, frame["d"]["session_id"]


async def raw_request(sim: Simulator, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(request)
    await writer.drain()
    return reader, writer


GET_GATEWAY = b"GET /gateway HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"


async def test_refuse_drops_connections_refuses_new_ones_and_comes_back(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=5000) as sim:
        token = await fetch_token(http, sim)
        gw, session_id = await ready(sim, token)
        answer = await outage(http, sim, "refuse", 0.5)
        assert set(answer["outages"]) == {"refuse"}
        assert (await gw.closed())[0] == 1006
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", sim.port)
        state = await (await http.get(f"{sim.control_url}/_sim/state")).json()  # control port still up
        assert "refuse" in state["outages"]
        await sim.dispatch("C2C_MESSAGE_CREATE")  # kept for the session while it is away
        await over(sim)
        gw2 = await Gateway.open(sim.gateway_url)  # the same port again
        await gw2.resume(token, session_id, 1)
        assert [(await gw2.recv())["t"] for _ in range(2)] == ["C2C_MESSAGE_CREATE", "RESUMED"]
        await gw2.close()


async def test_blackhole_answers_nothing_then_catches_up(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=1000) as sim:
        token = await fetch_token(http, sim)
        gw, _ = await ready(sim, token)
        await outage(http, sim, "blackhole", 0.8)
        await gw.send({"op": 1, "d": 1})
        await sim.dispatch("C2C_MESSAGE_CREATE", count=2)
        assert await gw.silent_for(0.3)  # no ACK, no events
        reader, writer = await raw_request(sim, GET_GATEWAY)  # accepted, never answered...
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reader.readline(), 0.2)
        await over(sim)
        # ...until the hole closes: what was held comes through, in order, like delayed packets.
        status = await asyncio.wait_for(reader.readline(), STEP)
        assert status.startswith(b"HTTP/1.1 401")
        writer.close()
        frames = [await gw.recv() for _ in range(3)]
        # The events went out during the hole; the heartbeat only arrives after it: ACK last.
        assert [f.get("s") for f in frames] == [2, 3, None] and frames[2] == {"op": 11}
        await gw.send({"op": 1, "d": 3})
        assert await gw.recv() == {"op": 11}
        await gw.close()


async def test_blackhole_holds_requests_on_open_keepalive_connections(http: aiohttp.ClientSession):
    async with Simulator() as sim:
        token = await fetch_token(http, sim)
        assert (await http.get(f"{sim.api_base}/gateway", headers=auth(token))).status == 200
        await outage(http, sim, "blackhole", 0.5)
        started = time.monotonic()
        resp = await http.get(f"{sim.api_base}/gateway", headers=auth(token))
        assert resp.status == 200 and time.monotonic() - started >= 0.4


async def test_blackhole_longer_than_the_server_timeout_drops_the_link(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=200) as sim:  # the server gives up after 1 s of silence
        token = await fetch_token(http, sim)
        gw, session_id = await ready(sim, token)
        await outage(http, sim, "blackhole", 1.3)
        code, frames = await gw.closed()
        assert code == 1006 and frames == []
        gw2 = await Gateway.open(sim.gateway_url)
        await gw2.resume(token, session_id, 1)
        assert (await gw2.recv())["t"] == "RESUMED"
        await gw2.close()


async def test_no_ack(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=5000) as sim:
        token = await fetch_token(http, sim)
        gw, _ = await ready(sim, token)
        await outage(http, sim, "no_ack", 0.4)
        await gw.send({"op": 1, "d": 1})
        assert await gw.silent_for(0.25)
        await over(sim)
        await gw.send({"op": 1, "d": 1})
        assert await gw.recv() == {"op": 11}
        assert sim.snapshot()["counters"]["acks_withheld"] == 1
        await gw.close()


async def test_token_error(http: aiohttp.ClientSession):
    async with Simulator() as sim:
        await outage(http, sim, "token_error", 0.3)
        body = {"appId": sim.app_id, "clientSecret": sim.app_secret}
        resp = await http.post(sim.token_url, json=body)
        assert resp.status == 500 and resp.headers["Content-Type"] == "application/json"
        await over(sim)
        resp = await http.post(sim.token_url, json=body)
        assert resp.status == 200 and "access_token" in await resp.json()


async def test_no_hello_and_no_ready(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=5000) as sim:
        token = await fetch_token(http, sim)
        await outage(http, sim, "no_hello", 0.3)
        gw = await Gateway.open(sim.gateway_url)
        assert await gw.silent_for(0.2)
        await gw.close()
        await over(sim)
        await outage(http, sim, "no_ready", 0.3)
        gw = await Gateway.open(sim.gateway_url)
        await gw.hello()
        await gw.send({"op": 2, "d": {"token": f"QQBot {token}", "intents": 1 << 25, "shard": [0, 1]}})
        await gw.send({"op": 1, "d": None})  # ignored too: the connection just stalls
        assert await gw.silent_for(0.2)
        await gw.close()
        await over(sim)
        gw, _ = await ready(sim, token)
        await gw.close()


async def test_outage_requests_are_checked_and_seconds_zero_ends_one(http: aiohttp.ClientSession):
    async with Simulator() as sim:
        for bad in ({"mode": "meteor", "seconds": 1}, {"mode": "refuse", "seconds": -1},
                    {"mode": "refuse", "seconds": "1"}, {"mode": "refuse"}):  # fmt: skip
            resp = await http.post(f"{sim.control_url}/_sim/outage", json=bad)
            assert resp.status == 400 and "error" in await resp.json()
        await outage(http, sim, "refuse", 30)
        await outage(http, sim, "no_ack", 30)
        answer = await outage(http, sim, "refuse", 0)
        assert set(answer["outages"]) == {"no_ack"}
        _, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.close()


async def test_stop_during_outages_is_prompt(http: aiohttp.ClientSession):
    sim = Simulator(heartbeat_interval_ms=5000)
    await sim.start()
    token = await fetch_token(http, sim)
    gw, _ = await ready(sim, token)
    await outage(http, sim, "blackhole", 60)
    _, writer = await raw_request(sim, GET_GATEWAY)
    started = time.monotonic()
    await asyncio.wait_for(sim.stop(), STEP)
    assert time.monotonic() - started < 3
    writer.close()
    await gw.closed()


async def test_refuse_asked_over_the_main_port_is_answered_first(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=5000) as sim:
        token = await fetch_token(http, sim)
        gw, _ = await ready(sim, token)
        # The main port serves /_sim/* too; the request's own connection must get its answer.
        resp = await http.post(
            f"http://127.0.0.1:{sim.port}/_sim/outage", json={"mode": "refuse", "seconds": 1}
        )
        assert resp.status == 200, await resp.text()
        assert set((await resp.json())["outages"]) == {"refuse"}
        assert resp.headers.get("Connection", "").lower() == "close"
        assert (await gw.closed())[0] == 1006, "the other connections on the main port are still dropped"
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", sim.port)
        await over(sim)
        reader, writer = await raw_request(sim, GET_GATEWAY)
        assert (await asyncio.wait_for(reader.readline(), STEP)).startswith(b"HTTP/1.1 "), "listening again"
        writer.close()
