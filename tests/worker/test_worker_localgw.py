"""QQ_HANDLER=gateway in one process: the real worker against the simulator (the platform), and a
client written from the platform's docs (qqworker/simulator/docs_client.py) against the local gateway,
over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from qqworker.contract.exitcodes import ExitCode
from qqworker.logs import configure_logging
from qqworker.simulator import Simulator
from qqworker.simulator.client_env import client_settings
from qqworker.simulator.docs_client import Gateway, auth
from qqworker.worker import Worker

STEP = 5.0


@dataclass
class Rig:
    sim: Simulator
    worker: Worker
    http: aiohttp.ClientSession
    logs: io.StringIO

    @property
    def base(self) -> str:
        assert self.worker.local_gateway is not None
        return self.worker.local_gateway.api_base

    async def token(self) -> str:
        resp = await self.http.post(
            f"{self.base}/app/getAppAccessToken",
            json={"appId": self.sim.app_id, "clientSecret": self.sim.app_secret},
        )
        return str((await resp.json())["access_token"])

    async def client(self) -> tuple[Gateway, dict[str, Any]]:
        gw = await Gateway.open(self.worker.local_gateway.gateway_url)  # type: ignore[union-attr]
        ready = await gw.identify(await self.token())
        return gw, ready

    def lines(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.logs.getvalue().splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if obj.get("event") == event:
                    out.append(obj)
        return out


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    logs = io.StringIO()
    configure_logging("worker", stream=logs)
    async with Simulator(heartbeat_interval_ms=1000) as sim, aiohttp.ClientSession() as http:
        settings = client_settings(
            sim.info(),
            handler="gateway",
            gateway_listen="127.0.0.1:0",
            gateway_heartbeat=0.5,
            gateway_buffer=50_000,
            retry_initial=0.05,
            retry_max=0.2,
            connect_timeout=3.0,
        )
        worker = Worker(settings)
        task = asyncio.create_task(worker.run())
        await sim.wait_until(lambda s: any(c["connected"] for c in s["sessions"]), timeout=STEP)
        assert worker.local_gateway is not None
        try:
            yield Rig(sim, worker, http, logs)
        finally:
            worker.stop()
            await asyncio.wait_for(task, STEP)


async def events(gw: Gateway, n: int) -> list[dict[str, Any]]:
    frames = []
    while len(frames) < n:
        frame = await gw.recv()
        if frame["op"] == 0:
            frames.append(frame)
    return frames


async def heartbeat(gw: Gateway, seq: int | None) -> None:
    await gw.send({"op": 1, "d": seq})
    while (await gw.recv())["op"] != 11:
        pass


async def test_token_and_discovery_are_local(rig: Rig) -> None:
    resp = await rig.http.post(f"{rig.base}/app/getAppAccessToken", json={"appId": rig.sim.app_id})
    assert resp.status == 200
    assert (await resp.json())["code"] == 100016  # wrong credentials: as the platform answers
    token = await rig.token()
    assert not rig.sim.tokens.is_valid(token)  # a local token, never the real one
    resp = await rig.http.get(f"{rig.base}/gateway/bot", headers=auth(token))
    body = await resp.json()
    assert body["url"] == rig.worker.local_gateway.gateway_url  # type: ignore[union-attr]
    assert body["shards"] == 1 and set(body["session_start_limit"]) >= {
        "total",
        "remaining",
        "max_concurrency",
    }
    # Reached under another name (a wildcard listen address with --gateway-allow-remote): that name.
    other = {**auth(token), "Host": f"bot-host.lan:{rig.worker.local_gateway.port}"}  # type: ignore[union-attr]
    body = await (await rig.http.get(f"{rig.base}/gateway", headers=other)).json()
    assert body["url"] == f"ws://bot-host.lan:{rig.worker.local_gateway.port}/websocket"  # type: ignore[union-attr]
    resp = await rig.http.get(f"{rig.base}/gateway", headers=auth("wrong"))
    assert resp.status == 401
    me = await (await rig.http.get(f"{rig.base}/users/@me", headers=auth(token))).json()
    assert me["id"] == rig.sim.options.bot_id


async def test_other_calls_are_forwarded_byte_for_byte_and_marked_when_upstream_is_gone(rig: Rig) -> None:
    token = await rig.token()
    path = "/v2/users/U1/messages"
    resp = await rig.http.post(
        f"{rig.base}{path}", headers=auth(token), json={"content": "hi", "msg_id": "M1", "msg_seq": 1}
    )
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    assert (await resp.json())["id"]
    replies = rig.sim.snapshot()["replies"]
    assert replies[-1]["body"]["msg_id"] == "M1" and replies[-1]["target"] == "U1"
    again = await rig.http.post(
        f"{rig.base}{path}", headers=auth(token), json={"content": "hi", "msg_id": "M1", "msg_seq": 1}
    )
    assert again.status == 400 and (await again.json())["code"] == 40054005  # the platform's own answer
    assert "X-Qqw-Proxy" not in again.headers
    # Any other path and query go as they are; the platform's answer comes back as it is.
    odd = await rig.http.get(f"{rig.base}/users/@me/guilds?limit=2&x=%2F", headers=auth(token))
    real = rig.worker.tokens.current.value  # type: ignore[union-attr]
    direct = await rig.http.get(f"{rig.sim.api_base}/users/@me/guilds?limit=2&x=%2F", headers=auth(real))
    assert odd.status == direct.status == 404 and odd.headers["X-Tps-trace-ID"]
    assert odd.headers["Content-Type"] == direct.headers["Content-Type"]
    assert (await odd.json())["code"] == (await direct.json())["code"]
    await rig.sim.outage("refuse", 2.0)
    gone = await rig.http.post(f"{rig.base}{path}", headers=auth(token), json={"msg_id": "M2"})
    assert gone.status == 502 and gone.headers["X-Qqw-Proxy"] == "error"
    text = await gone.text()
    assert rig.sim.app_secret not in text


async def test_events_flow_with_local_seqs_and_upstream_trouble_never_reaches_the_client(rig: Rig) -> None:
    gw, ready = await rig.client()
    assert ready["t"] == "READY" and type(ready["s"]) is int
    assert ready["d"]["user"]["id"] == rig.sim.options.bot_id and ready["d"]["shard"] == [0, 1]
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=3)
    got = await events(gw, 3)
    assert [f["s"] for f in got] == [1, 2, 3] and all(f["id"] for f in got)
    await heartbeat(gw, 3)
    await rig.sim.close_connections(4009)  # the 30-minute cycle upstream
    await rig.sim.outage("refuse", 1.5)  # and an outage
    for _ in range(4):  # heartbeats answered at once throughout
        await asyncio.sleep(0.3)
        await heartbeat(gw, 3)
    await rig.sim.wait_until(lambda s: any(c["connected"] for c in s["sessions"]), timeout=STEP)
    await rig.sim.dispatch("GROUP_AT_MESSAGE_CREATE", count=2)
    got = await events(gw, 2)
    assert [f["s"] for f in got] == [4, 5]
    connected = rig.lines("proxy.client_connected")
    assert len(connected) == 1 and not rig.lines("proxy.client_closed")  # never dropped
    await gw.ws.close()


async def test_a_client_that_resumes_gets_what_it_missed_in_order(rig: Rig) -> None:
    gw, ready = await rig.client()
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=2)
    await events(gw, 2)
    await heartbeat(gw, 2)
    await gw.ws.close()
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=3)
    await rig.sim.wait_until(lambda s: s["events_sent"] >= 5)
    await asyncio.sleep(0.2)
    gw2 = await Gateway.open(rig.worker.local_gateway.gateway_url)  # type: ignore[union-attr]
    await gw2.resume(await rig.token(), ready["d"]["session_id"], 2)
    frames = [await gw2.recv() for _ in range(4)]
    assert [f.get("s") for f in frames[:3]] == [3, 4, 5]
    assert frames[3]["t"] == "RESUMED"
    last = rig.lines("proxy.client_connected")[-1]
    assert last["resumed"] is True and last["replayed"] == 3
    await gw2.ws.close()


async def test_a_restarted_client_that_identifies_gets_everything_after_its_last_confirmation(
    rig: Rig,
) -> None:
    gw, _ = await rig.client()
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=4)
    await events(gw, 4)
    await heartbeat(gw, 2)  # it confirmed 2, got 4, then crashed
    await gw.ws.close()
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=1)
    await asyncio.sleep(0.3)
    gw2, ready = await rig.client()
    assert ready["t"] == "READY"
    got = await events(gw2, 3)
    assert [f["s"] for f in got] == [3, 4, 5]
    await gw2.ws.close()


async def test_the_handed_seq_waits_for_client_confirmation(rig: Rig) -> None:
    gw, _ = await rig.client()
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=3)
    got = await events(gw, 3)
    await asyncio.sleep(0.1)
    first_upstream = rig.worker.session.seq - 2  # upstream seqs of the three events
    assert rig.worker._handed_seq() == first_upstream - 1  # nothing confirmed yet
    await heartbeat(gw, got[1]["s"])
    assert rig.worker._handed_seq() == first_upstream + 1
    await gw.send({"op": 1, "s": got[2]["s"]})  # as Koishi's adapter-qq heartbeats: `s`, no `d`
    while (await gw.recv())["op"] != 11:
        pass
    assert rig.worker._handed_seq() == rig.worker.session.seq
    beat = rig.worker.progress.beat()
    assert beat.gateway_clients == 1 and beat.gateway_buffered == 3
    await gw.ws.close()


async def test_a_wrong_token_gets_4004_the_platforms_own_is_taken_and_no_secret_is_logged(rig: Rig) -> None:
    gw = await Gateway.open(rig.worker.local_gateway.gateway_url)  # type: ignore[union-attr]
    await gw.hello()
    await gw.send({"op": 2, "d": {"token": "QQBot nope", "intents": 1, "shard": [0, 1]}})
    code, _ = await gw.closed()
    assert code == 4004
    await asyncio.sleep(0.1)
    refused = rig.lines("proxy.client_closed")[-1]
    assert refused["close_code"] == 4004 and refused["reason"] == "wrong token"
    assert refused["session_id"] is None and refused["level"] == "WARNING"
    # The platform's own current token is taken (Koishi fetches its token from bots.qq.com itself).
    real = rig.worker.tokens.current.value  # type: ignore[union-attr]
    gw = await Gateway.open(rig.worker.local_gateway.gateway_url)  # type: ignore[union-attr]
    await gw.hello()
    await gw.send({"op": 2, "d": {"token": f"QQBot {real}", "intents": 1, "shard": [0, 1]}})
    assert (await gw.recv())["t"] == "READY"
    await gw.ws.close()
    text = rig.logs.getvalue()
    assert rig.sim.app_secret not in text and real not in text


async def test_a_burst_reaches_the_client_whole_and_in_order(rig: Rig) -> None:
    gw, _ = await rig.client()
    n = 5000
    started = asyncio.get_running_loop().time()
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=n)
    got = await events(gw, n)
    took = asyncio.get_running_loop().time() - started
    assert [f["s"] for f in got] == list(range(1, n + 1))
    assert len({f["id"] for f in got}) == n
    assert not rig.lines("handler.backlog")
    print(f"{n} events simulator -> worker -> local client in {took:.2f}s ({n / took:,.0f}/s)")
    await gw.ws.close()


async def test_a_client_that_reads_slowly_catches_up_from_the_buffer(rig: Rig) -> None:
    gw, _ = await rig.client()
    n = 20_000  # ~9 MB of frames: more than the loopback socket buffers hold

    async def beat() -> None:  # heartbeats go on while it reads slowly
        while True:
            await asyncio.sleep(0.2)
            await gw.send({"op": 1, "d": None})

    beating = asyncio.create_task(beat())
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=n)
    await asyncio.sleep(1.0)  # not reading: its socket and then the worker's output fill up
    got = await events(gw, n)
    beating.cancel()
    assert [f["s"] for f in got] == list(range(1, n + 1))
    assert rig.worker.local_gateway.lagged >= 1  # type: ignore[union-attr]
    assert not rig.lines("proxy.client_closed")
    await gw.ws.close()


async def test_several_clients_share_the_stream_and_are_told_apart(rig: Rig) -> None:
    first, _ = await rig.client()
    await rig.sim.dispatch("C2C_MESSAGE_CREATE", count=2)
    await events(first, 2)
    second, ready = await rig.client()  # another client is attached: it joins the live stream
    assert ready["s"] == 2
    await rig.sim.dispatch("GROUP_AT_MESSAGE_CREATE", count=2)
    a, b = await events(first, 2), await events(second, 2)
    assert [f["s"] for f in a] == [f["s"] for f in b] == [3, 4]
    assert [f["id"] for f in a] == [f["id"] for f in b]
    logins = rig.lines("proxy.client_connected")
    assert len({r["client"] for r in logins}) == 2 and len({r["session_id"] for r in logins}) == 2
    assert logins[-1]["replayed"] == 0
    await first.ws.close()
    await second.ws.close()


async def test_a_stopping_worker_closes_its_clients_and_says_why(rig: Rig) -> None:
    gw, _ = await rig.client()
    rig.worker.stop()
    code, _ = await gw.closed()
    assert code == 1006  # dropped: the framework reconnects (to the next worker) and resumes
    closed = rig.lines("proxy.client_closed")[-1]
    assert closed["reason"] == "the worker is stopping"


async def test_a_listen_address_taken_by_another_program_is_a_config_error() -> None:
    logs = io.StringIO()
    configure_logging("worker", stream=logs)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with Simulator() as sim:
            settings = client_settings(
                sim.info(),
                handler="gateway",
                gateway_listen=f"127.0.0.1:{port}",
            )
            code = await asyncio.wait_for(Worker(settings).run(), 20)
    assert code == ExitCode.CONFIG
    assert "gateway_listen: cannot listen on 127.0.0.1" in logs.getvalue()
