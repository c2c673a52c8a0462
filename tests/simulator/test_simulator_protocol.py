"""The simulator speaks the platform's side as documented: token, REST, gateway, replies, control API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from qqworker.simulator import Simulator
from qqworker.simulator.docs_client import GROUP_AND_C2C, INTENTS, STEP, Gateway, auth, fetch_token
from qqworker.simulator.events import GENERATED_TYPES, EventFactory, Identities, payload
from qqworker.simulator.tokens import TokenStore

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(heartbeat_interval_ms=5000) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=STEP)) as session:
        yield session


@pytest.fixture
async def token(sim: Simulator, http: aiohttp.ClientSession) -> str:
    return await fetch_token(http, sim)


async def control(http: aiohttp.ClientSession, sim: Simulator, path: str, body: Any = None) -> Any:
    if body is None:
        resp = await http.get(f"{sim.control_url}/_sim/{path}")
    else:
        resp = await http.post(f"{sim.control_url}/_sim/{path}", json=body)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def ready_client(sim: Simulator, token: str, intents: int = INTENTS) -> tuple[Gateway, dict[str, Any]]:
    gw = await Gateway.open(sim.gateway_url)
    ready = await gw.identify(token, intents)
    assert ready["t"] == "READY", ready
    return gw, ready


# Token -------------------------------------------------------------------------------------------


async def test_token_success_has_exact_content_type_and_string_expiry(
    sim: Simulator, http: aiohttp.ClientSession
):
    resp = await http.post(sim.token_url, json={"appId": sim.app_id, "clientSecret": sim.app_secret})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    body = await resp.json()
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert body["expires_in"] == "7200"
    again = await (
        await http.post(sim.token_url, json={"appId": sim.app_id, "clientSecret": sim.app_secret})
    ).json()
    assert again["access_token"] == body["access_token"]
    assert int(again["expires_in"]) <= 7200


@pytest.mark.parametrize(
    "body",
    [
        {"appId": "102000001", "clientSecret": "wrong"},
        {"appId": "999", "clientSecret": "qqsimTestSecret00000000000000000"},
        {},
        "not json",
    ],
)
async def test_token_failure_is_http_200_with_code(sim: Simulator, http: aiohttp.ClientSession, body: Any):
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    resp = await http.post(sim.token_url, **kwargs)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert await resp.json() == {"code": 100016, "message": "invalid appid or secret"}


def test_token_lifetime_rules():
    now = [1000.0]
    store = TokenStore(7200, clock=lambda: now[0])
    first, ttl = store.issue()
    assert ttl == 7200
    now[0] += 7000
    same, remaining = store.issue()
    assert same == first and remaining == 200
    now[0] += 150  # 50 s left: inside the last minute, a new token; the old one still works
    fresh, ttl = store.issue()
    assert fresh != first and ttl == 7200
    assert store.is_valid(first) and store.is_valid(fresh)
    now[0] += 51
    assert not store.is_valid(first) and store.is_valid(fresh)


# REST --------------------------------------------------------------------------------------------


async def test_discovery_and_profile(sim: Simulator, http: aiohttp.ClientSession, token: str):
    resp = await http.get(f"{sim.api_base}/gateway", headers=auth(token))
    assert resp.headers["Content-Type"] == "application/json"
    assert "X-Tps-trace-ID" in resp.headers
    assert await resp.json() == {"url": sim.gateway_url}
    bot = await (await http.get(f"{sim.api_base}/gateway/bot", headers=auth(token))).json()
    assert bot["url"] == sim.gateway_url and bot["shards"] == 1
    assert set(bot["session_start_limit"]) == {"total", "remaining", "reset_after", "max_concurrency"}
    assert bot["session_start_limit"]["remaining"] >= bot["shards"]
    me = await (await http.get(f"{sim.api_base}/users/@me", headers=auth(token))).json()
    assert int(me["id"]) > 0 and isinstance(me["id"], str) and me["username"]


async def test_a_retired_host_fails_discovery_and_the_token_path(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=5000, retired=True) as retired:
        body = {"appId": retired.app_id, "clientSecret": retired.app_secret}
        resp = await http.post(retired.token_url, json=body)
        assert resp.status == 404 and resp.headers["Content-Type"] == "application/json"
        for path in ("/gateway", "/gateway/bot"):
            resp = await http.get(f"{retired.api_base}{path}", headers=auth("anything"))
            assert resp.status == 500 and "X-Tps-trace-ID" in resp.headers
            answer = await resp.json()
            assert answer["code"] == 500 and answer["trace_id"] == resp.headers["X-Tps-trace-ID"]
        # Everything else answers as usual (an unauthorised profile request: 401).
        assert (await http.get(f"{retired.api_base}/users/@me")).status == 401
        assert retired.state.counters["retired_answers"] == 3


@pytest.mark.parametrize("header", [None, "Bearer x", "QQBot ", "QQBot not-a-token", "Bot 102000001.x"])
@pytest.mark.parametrize("path", ["/gateway", "/gateway/bot", "/users/@me"])
async def test_rest_requires_qqbot_token(sim: Simulator, http: aiohttp.ClientSession, header: Any, path: str):
    headers = {"Authorization": header} if header else {}
    resp = await http.get(f"{sim.api_base}{path}", headers=headers)
    assert resp.status == 401
    assert resp.headers["Content-Type"] == "application/json"
    body = await resp.json()
    assert body["code"] == 11244 and body["err_code"] == 11244 and "trace_id" in body


async def test_control_port_serves_only_control(sim: Simulator, http: aiohttp.ClientSession, token: str):
    assert sim.control_url != sim.api_base
    resp = await http.get(f"{sim.control_url}/gateway", headers=auth(token))
    assert resp.status == 404
    assert (await http.get(f"{sim.api_base}/_sim/state")).status == 200
    assert (await http.get(f"{sim.api_base}/no/such/route")).headers["Content-Type"] == "application/json"


def test_non_loopback_host_needs_allow_remote():
    with pytest.raises(ValueError, match="loopback"):
        Simulator(host="0.0.0.0")
    Simulator(host="0.0.0.0", allow_remote=True)  # allowed when asked for (not started)


# Gateway -----------------------------------------------------------------------------------------


async def test_hello_identify_ready(sim: Simulator, token: str):
    gw = await Gateway.open(sim.gateway_url)
    hello = await gw.hello()
    assert hello == {"op": 10, "d": {"heartbeat_interval": 5000}}
    await gw.send(
        {"op": 2, "d": {"token": f"QQBot {token}", "intents": INTENTS, "shard": [0, 1], "properties": {}}}
    )
    ready = await gw.recv()
    assert ready["op"] == 0 and ready["t"] == "READY" and ready["s"] == 1
    d = ready["d"]
    assert isinstance(d["session_id"], str) and d["session_id"]
    assert d["user"]["bot"] is True and d["user"]["id"].isdigit() and d["user"]["username"]
    assert d["shard"] == [0, 1]
    await gw.close()


async def test_heartbeat_ack(sim: Simulator, token: str):
    gw, _ = await ready_client(sim, token)
    await gw.send({"op": 1, "d": 1})
    assert await gw.recv() == {"op": 11}
    await gw.send({"op": 1, "d": None})
    assert await gw.recv() == {"op": 11}
    await gw.close()


async def test_events_are_delivered_in_order_with_unique_ids(
    sim: Simulator, http: aiohttp.ClientSession, token: str
):
    gw, _ = await ready_client(sim, token)
    result = await control(http, sim, "events", {"type": "C2C_MESSAGE_CREATE", "count": 3})
    assert result["count"] == 3 and result["sessions"] == 1
    frames = [await gw.recv() for _ in range(3)]
    assert [f["s"] for f in frames] == [2, 3, 4]
    assert all(f["op"] == 0 and f["t"] == "C2C_MESSAGE_CREATE" for f in frames)
    assert all(f["id"].startswith("C2C_MESSAGE_CREATE:") for f in frames)
    assert len({f["id"] for f in frames}) == 3 and len({f["d"]["id"] for f in frames}) == 3
    assert [f["d"]["id"] for f in frames] == result["ids"]
    await gw.close()


async def test_many_events_arrive_without_gaps(sim: Simulator, http: aiohttp.ClientSession, token: str):
    gw, _ = await ready_client(sim, token)
    count = 20_000
    send = asyncio.create_task(
        control(http, sim, "events", {"type": "GROUP_AT_MESSAGE_CREATE", "count": count})
    )
    seqs = [(await gw.recv())["s"] for _ in range(count)]
    await send
    assert seqs == list(range(2, count + 2))
    await gw.close()


async def test_events_wait_false_returns_at_once(sim: Simulator, http: aiohttp.ClientSession, token: str):
    gw, _ = await ready_client(sim, token)
    result = await control(http, sim, "events", {"type": "C2C_MESSAGE_CREATE", "count": 5000, "wait": False})
    assert result == {"type": "C2C_MESSAGE_CREATE", "count": 5000, "queued": True}
    seqs = [(await gw.recv())["s"] for _ in range(5000)]
    assert seqs == list(range(2, 5002))
    await gw.close()


async def test_event_payload_shapes(sim: Simulator, http: aiohttp.ClientSession, token: str):
    gw, _ = await ready_client(sim, token)
    required = {
        "C2C_MESSAGE_CREATE": {"id", "content", "timestamp", "author"},
        "GROUP_AT_MESSAGE_CREATE": {"id", "content", "timestamp", "group_openid", "author"},
        "AT_MESSAGE_CREATE": {"id", "channel_id", "guild_id", "content", "author", "timestamp"},
        "DIRECT_MESSAGE_CREATE": {"id", "channel_id", "guild_id", "content", "author", "timestamp"},
    }
    for kind, fields in required.items():
        await control(http, sim, "events", {"type": kind})
        frame = await gw.recv()
        assert frame["t"] == kind and frame["id"].startswith(f"{kind}:")
        d = frame["d"]
        assert fields <= set(d), (kind, d)
        assert all(isinstance(d[f], str) for f in fields - {"author"})
        if kind == "C2C_MESSAGE_CREATE":
            assert isinstance(d["author"]["user_openid"], str)
        elif kind == "GROUP_AT_MESSAGE_CREATE":
            assert isinstance(d["author"]["member_openid"], str)
        else:
            assert d["author"]["id"].isdigit() and d["author"]["username"]
            assert d["guild_id"].isdigit() and d["channel_id"].isdigit()
    await gw.close()


def test_fast_templates_match_the_reference_payloads():
    who = Identities("123", "bot")
    factory = EventFactory(who)
    for kind in GENERATED_TYPES:
        for ev in factory.batch(kind, 5):
            d = json.loads(ev.d_json)
            n = int(ev.message_id[-10:], 16)
            assert d == payload(kind, who, n, ev.message_id, d["content"].split("> ")[-1], d["timestamp"])
            assert ev.envelope_id.startswith(f"{kind}:")


async def test_overrides_custom_types_and_intent_filtering(
    sim: Simulator, http: aiohttp.ClientSession, token: str
):
    gw, _ = await ready_client(sim, token, intents=GROUP_AND_C2C)
    await control(http, sim, "events", {"type": "AT_MESSAGE_CREATE"})  # not subscribed: not delivered
    await control(http, sim, "events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": "hello"}})
    frame = await gw.recv()
    assert frame["t"] == "C2C_MESSAGE_CREATE" and frame["d"]["content"] == "hello" and frame["s"] == 2
    await control(http, sim, "events", {"type": "FRIEND_ADD", "d": {"openid": "X", "timestamp": 1}})
    frame = await gw.recv()
    assert frame["t"] == "FRIEND_ADD" and frame["d"] == {"openid": "X", "timestamp": 1}
    await control(http, sim, "events", {"type": "GUILD_CREATE"})  # no generator: a minimal d
    frame = await gw.recv()
    assert frame["t"] == "GUILD_CREATE" and set(frame["d"]) == {"id", "timestamp"}
    bad_requests = (
        {"type": "bad type", "d": {}},
        {"type": "C2C_MESSAGE_CREATE", "count": 0},
        {"type": "C2C_MESSAGE_CREATE", "d": [1]},
        {"d": {}},
    )
    for bad in bad_requests:
        resp = await http.post(f"{sim.control_url}/_sim/events", json=bad)
        assert resp.status == 400 and "error" in await resp.json()
    await gw.close()


# Resume ------------------------------------------------------------------------------------------


async def test_resume_replays_missed_events_without_loss_or_duplicates(
    sim: Simulator, http: aiohttp.ClientSession, token: str
):
    gw, ready = await ready_client(sim, token)
    session_id = ready["d"]["session_id"]
    await control(http, sim, "events", {"type": "C2C_MESSAGE_CREATE", "count": 2})
    seen = [(await gw.recv())["s"] for _ in range(2)]
    await gw.close()
    await sim.wait_until(lambda s: not s["connections"])
    away = await control(http, sim, "events", {"type": "C2C_MESSAGE_CREATE", "count": 3})
    assert away["seq"] == {session_id: [4, 6]}

    gw2 = await Gateway.open(sim.gateway_url)
    await gw2.resume(token, session_id, seen[-1])
    replay = [await gw2.recv() for _ in range(4)]
    assert [f["s"] for f in replay] == [4, 5, 6, 7]
    assert [f["t"] for f in replay] == ["C2C_MESSAGE_CREATE"] * 3 + ["RESUMED"]
    assert replay[-1]["d"] == ""
    await control(http, sim, "events", {"type": "C2C_MESSAGE_CREATE"})
    assert (await gw2.recv())["s"] == 8
    await gw2.close()

    # An older seq gets everything after it again, in order.
    await sim.wait_until(lambda s: not s["connections"])
    gw3 = await Gateway.open(sim.gateway_url)
    await gw3.resume(token, session_id, 1)
    frames = [await gw3.recv() for _ in range(7)]
    assert [f["s"] for f in frames] == [2, 3, 4, 5, 6, 8, 9]
    assert frames[-1]["t"] == "RESUMED"
    state = await control(http, sim, "state")
    assert state["resumes"] == 2 and state["identifies"] == 1
    await gw3.close()


async def test_resume_takes_over_a_connection_still_open(sim: Simulator, token: str):
    gw, ready = await ready_client(sim, token)
    gw2 = await Gateway.open(sim.gateway_url)
    await gw2.resume(token, ready["d"]["session_id"], 1)
    assert (await gw2.recv())["t"] == "RESUMED"
    code, _ = await gw.closed()
    assert code == 1006
    await gw2.close()


async def test_resume_unknown_session_gets_invalid_session(sim: Simulator, token: str):
    gw = await Gateway.open(sim.gateway_url)
    await gw.resume(token, "no-such-session", 0)
    code, frames = await gw.closed()
    assert frames == [{"op": 9, "d": False}]
    assert code == 4006


async def test_resume_after_the_window_gets_invalid_session(http: aiohttp.ClientSession):
    async with Simulator(resume_window_s=0.2) as sim:
        token = await fetch_token(http, sim)
        gw, ready = await ready_client(sim, token)
        await gw.close()
        await asyncio.sleep(0.4)
        gw2 = await Gateway.open(sim.gateway_url)
        await gw2.resume(token, ready["d"]["session_id"], 1)
        code, frames = await gw2.closed()
        assert frames == [{"op": 9, "d": False}] and code == 4006


async def test_resume_beyond_the_replay_buffer_gets_invalid_session(http: aiohttp.ClientSession):
    async with Simulator(replay_limit=3) as sim:
        token = await fetch_token(http, sim)
        gw, ready = await ready_client(sim, token)
        await gw.close()
        await sim.wait_until(lambda s: not s["connections"])
        await sim.dispatch("C2C_MESSAGE_CREATE", count=5)  # s 2..6; only 4..6 kept
        gw2 = await Gateway.open(sim.gateway_url)
        await gw2.resume(token, ready["d"]["session_id"], 1)
        code, frames = await gw2.closed()
        assert frames == [{"op": 9, "d": False}] and code == 4006
        gw3 = await Gateway.open(sim.gateway_url)
        await gw3.resume(token, ready["d"]["session_id"], 3)
        assert [(await gw3.recv())["s"] for _ in range(4)] == [4, 5, 6, 7]
        await gw3.close()


# Bad input ---------------------------------------------------------------------------------------


async def _identified(sim: Simulator, token: str) -> Gateway:
    gw, _ = await ready_client(sim, token)
    return gw


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("not json", 4002),
        ("json array", 4002),
        ("op missing", 4002),
        ("binary frame", 4002),
        ("unknown op", 4001),
        ("server op from client", 4001),
        ("heartbeat before identify", 4003),
        ("bad token", 4004),
        ("identify twice", 4005),
        ("resume after identify", 4005),
        ("resume seq beyond session", 4007),
        ("resume seq not a number", 4007),
        ("bad shard", 4010),
        ("intents not a number", 4013),
    ],
)
async def test_bad_input_gets_its_close_code(
    sim: Simulator, http: aiohttp.ClientSession, token: str, name: str, expected: int
):
    sends: dict[str, Any] = {
        "not json": "{nope",
        "json array": "[1, 2]",
        "op missing": {"d": 1},
        "binary frame": b"\x00\x01",
        "unknown op": {"op": 5, "d": None},
        "server op from client": {"op": 10, "d": {}},
        "heartbeat before identify": {"op": 1, "d": None},
        "bad token": {"op": 2, "d": {"token": "QQBot wrong", "intents": INTENTS}},
        "identify twice": {"op": 2, "d": {"token": f"QQBot {token}", "intents": INTENTS}},
        "resume after identify": {"op": 6, "d": {"token": f"QQBot {token}", "session_id": "x", "seq": 1}},
        "bad shard": {"op": 2, "d": {"token": f"QQBot {token}", "intents": INTENTS, "shard": [1, 1]}},
        "intents not a number": {"op": 2, "d": {"token": f"QQBot {token}", "intents": "all"}},
    }
    if name in ("identify twice", "resume after identify"):
        gw = await _identified(sim, token)
    elif name.startswith("resume seq"):
        first, ready = await ready_client(sim, token)
        await first.close()
        await sim.wait_until(lambda s: not s["connections"])
        gw = await Gateway.open(sim.gateway_url)
        await gw.hello()
        seq = 99 if name.endswith("beyond session") else "1"
        sends[name] = {
            "op": 6,
            "d": {"token": f"QQBot {token}", "session_id": ready["d"]["session_id"], "seq": seq},
        }
    else:
        gw = await Gateway.open(sim.gateway_url)
        await gw.hello()
    await gw.send(sends[name])
    code, frames = await gw.closed()
    assert code == expected, (name, frames)
    # The simulator is unharmed: it still serves a fresh client.
    ok, _ = await ready_client(sim, token)
    await ok.close()
    state = await control(http, sim, "state")
    assert state["closes"][str(expected)] >= 1


async def test_intents_not_permitted_get_op9_then_4903(http: aiohttp.ClientSession):
    async with Simulator(allowed_intents=GROUP_AND_C2C) as sim:
        token = await fetch_token(http, sim)
        gw = await Gateway.open(sim.gateway_url)
        first = await gw.identify(token, intents=INTENTS)
        code, _ = await gw.closed()
        assert first == {"op": 9, "d": False} and code == 4903
        ok, _ = await ready_client(sim, token, intents=GROUP_AND_C2C)
        await ok.close()


async def test_intents_not_permitted_as_documented_close_4014(http: aiohttp.ClientSession):
    async with Simulator(allowed_intents=GROUP_AND_C2C, intent_reject_code=4014) as sim:
        token = await fetch_token(http, sim)
        gw = await Gateway.open(sim.gateway_url)
        await gw.hello()
        await gw.send({"op": 2, "d": {"token": f"QQBot {token}", "intents": INTENTS, "shard": [0, 1]}})
        code, frames = await gw.closed()
        assert frames == [] and code == 4014


async def test_revoked_tokens_fail_rest_and_identify(sim: Simulator, http: aiohttp.ClientSession, token: str):
    assert (await control(http, sim, "revoke_tokens", {}))["revoked"] == 1
    assert (await http.get(f"{sim.api_base}/gateway", headers=auth(token))).status == 401
    gw = await Gateway.open(sim.gateway_url)
    await gw.hello()
    await gw.send({"op": 2, "d": {"token": f"QQBot {token}", "intents": INTENTS}})
    assert (await gw.closed())[0] == 4004
    fresh = await fetch_token(http, sim)
    assert fresh != token
    ok, _ = await ready_client(sim, fresh)
    await ok.close()


# Server-initiated closes -------------------------------------------------------------------------


async def test_control_close_with_code_keeps_the_session(
    sim: Simulator, http: aiohttp.ClientSession, token: str
):
    gw, ready = await ready_client(sim, token)
    assert (await control(http, sim, "close", {"code": 4009}))["closed"] == 1
    assert (await gw.closed())[0] == 4009
    gw2 = await Gateway.open(sim.gateway_url)
    await gw2.resume(token, ready["d"]["session_id"], 1)
    assert (await gw2.recv())["t"] == "RESUMED"
    await gw2.close()


async def test_control_close_abort_and_drop_sessions(sim: Simulator, http: aiohttp.ClientSession, token: str):
    gw, ready = await ready_client(sim, token)
    await control(http, sim, "close", {"abort": True, "drop_sessions": True})
    assert (await gw.closed())[0] == 1006
    gw2 = await Gateway.open(sim.gateway_url)
    await gw2.resume(token, ready["d"]["session_id"], 1)
    code, frames = await gw2.closed()
    assert frames == [{"op": 9, "d": False}] and code == 4006
    for bad in ({"code": 1006}, {"code": "4009"}, {"code": 99}):
        assert (await http.post(f"{sim.control_url}/_sim/close", json=bad)).status == 400


async def test_reconnect_sends_op7_then_4009(sim: Simulator, http: aiohttp.ClientSession, token: str):
    gw, _ = await ready_client(sim, token)
    assert (await control(http, sim, "reconnect", {}))["reconnected"] == 1
    code, frames = await gw.closed()
    assert frames == [{"op": 7}] and code == 4009


async def test_session_cycle_ends_connections_like_the_platform(http: aiohttp.ClientSession):
    async with Simulator(session_cycle_s=0.3) as sim:
        token = await fetch_token(http, sim)
        gw, _ = await ready_client(sim, token)
        code, frames = await gw.closed()
        assert frames == [{"op": 7}] and code == 4009


async def test_silent_client_is_closed_4009(http: aiohttp.ClientSession):
    async with Simulator(heartbeat_interval_ms=200, heartbeat_timeout_factor=1.5) as sim:
        token = await fetch_token(http, sim)
        gw, _ = await ready_client(sim, token)
        for _ in range(4):  # beating keeps it open
            await asyncio.sleep(0.15)
            await gw.send({"op": 1, "d": gw.last_seq})
            assert await gw.recv() == {"op": 11}
        code, _ = await gw.closed()
        assert code == 4009
        assert sim.snapshot()["counters"]["heartbeat_timeouts"] == 1


# Replies and state -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v2/users/OPENID1/messages", "c2c"),
        ("/v2/groups/GROUP1/messages", "group"),
        ("/channels/123/messages", "channel"),
        ("/dms/456/messages", "dms"),
    ],
)
async def test_replies_are_recorded(
    sim: Simulator, http: aiohttp.ClientSession, token: str, path: str, kind: str
):
    url = f"{sim.api_base}{path}"
    body = {"content": "pong", "msg_type": 0, "msg_id": "ROBOT1.0_abc", "msg_seq": 1}
    resp = await http.post(url, json=body, headers=auth(token))
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
    answer = await resp.json()
    assert isinstance(answer["id"], str) and answer["timestamp"]

    dup = await http.post(url, json=body, headers=auth(token))
    assert dup.status == 400 and (await dup.json())["code"] == 40054005
    proactive = await http.post(url, json={"content": "hi"}, headers=auth(token))
    assert proactive.status == 400 and (await proactive.json())["code"] == 40034105
    assert (await http.post(url, json={**body, "msg_seq": 2}, headers=auth(token))).status == 200
    unauthorised = await http.post(url, json={**body, "msg_seq": 3})
    assert unauthorised.status == 401 and (await unauthorised.json())["code"] == 11244

    state = await control(http, sim, "state")
    assert state["replies_received"] == 2
    assert [(r["status"], r["code"]) for r in state["replies"]] == [
        (200, None), (400, 40054005), (400, 40034105), (200, None)
    ]  # fmt: skip
    first = state["replies"][0]
    assert first["kind"] == kind and first["path"] == path and first["body"] == body


async def test_state_reports_sessions_connections_and_counters(
    sim: Simulator, http: aiohttp.ClientSession, token: str
):
    gw, ready = await ready_client(sim, token)
    await control(http, sim, "events", {"type": "C2C_MESSAGE_CREATE", "count": 4})
    state = await control(http, sim, "state")
    assert state["identifies"] == 1 and state["resumes"] == 0 and state["events_sent"] == 4
    assert state["replies_received"] == 0 and state["outages"] == {}
    [session] = state["sessions"]
    assert session["session_id"] == ready["d"]["session_id"] and session["connected"] and session["seq"] == 5
    [conn] = state["connections"]
    assert conn["session_id"] == session["session_id"] and conn["identified"]
    assert state["api_base"] == sim.api_base and "app_secret" not in state
    await gw.close()
    state = await sim.wait_until(lambda s: not s["connections"])
    assert state["sessions"][0]["connected"] is False


async def test_a_client_leaving_mid_request_is_no_error(
    sim: Simulator, token: str, caplog: pytest.LogCaptureFixture
):
    _, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(
        b"POST /v2/users/X/messages HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\n"
        b"Authorization: QQBot " + token.encode() + b'\r\nContent-Length: 100\r\n\r\n{"content":'
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.transport.abort()
    await asyncio.sleep(0.1)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sim.snapshot()["replies"] == []
