"""The REST client: reply routing and bodies, error parsing, discovery with fallback and cache."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from qqworker.auth import TokenManager
from qqworker.rest import RestClient, RestError, error_from_body, reply_body, reply_route

TOKEN = "rest-test-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("event_type", "data", "kind", "path"),
    [
        ("C2C_MESSAGE_CREATE", {"id": "m", "author": {"user_openid": "U1"}}, "c2c", "/v2/users/U1/messages"),
        ("GROUP_AT_MESSAGE_CREATE", {"id": "m", "group_openid": "G1"}, "group", "/v2/groups/G1/messages"),
        ("AT_MESSAGE_CREATE", {"id": "m", "channel_id": "C1"}, "channel", "/channels/C1/messages"),
        ("DIRECT_MESSAGE_CREATE", {"id": "m", "guild_id": "D1"}, "dms", "/dms/D1/messages"),
    ],
)
def test_each_message_event_has_its_reply_route(event_type: str, data: Any, kind: str, path: str) -> None:
    route = reply_route(event_type, data)
    assert route is not None and (route.kind, route.path) == (kind, path)


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("GUILD_CREATE", {"id": "g"}),
        ("C2C_MESSAGE_CREATE", {"id": "m", "author": {}}),
        ("GROUP_AT_MESSAGE_CREATE", {"id": "m"}),
        ("C2C_MESSAGE_CREATE", "not a dict"),
    ],
)
def test_events_that_cannot_be_answered_have_no_route(event_type: str, data: Any) -> None:
    assert reply_route(event_type, data) is None


def test_v2_replies_carry_msg_id_and_msg_seq() -> None:
    c2c = reply_route("C2C_MESSAGE_CREATE", {"author": {"user_openid": "U"}})
    channel = reply_route("AT_MESSAGE_CREATE", {"channel_id": "C"})
    assert c2c is not None and channel is not None
    assert reply_body(c2c, "hi", "M1", 2) == {"content": "hi", "msg_type": 0, "msg_id": "M1", "msg_seq": 2}
    assert reply_body(channel, "hi", "M1", 2) == {"content": "hi", "msg_id": "M1"}


def test_errors_name_the_code_and_the_trace_id() -> None:
    err = error_from_body(401, {"code": 11244, "message": "token not exist or expire"}, "tr-1", "reply")
    assert (err.status, err.code, err.trace_id) == (401, 11244, "tr-1")
    assert "11244" in str(err) and "tr-1" in str(err)
    from_body = error_from_body(500, {"message": "x", "trace_id": "tr-2"}, None, "reply")
    assert from_body.trace_id == "tr-2"
    assert error_from_body(502, None, None, "reply").code is None


# Against a loopback server -------------------------------------------------------------------


class Platform:
    def __init__(self, *, gateway_bot: bool = True) -> None:
        self.gateway_bot = gateway_bot
        self.requests: list[tuple[str, dict[str, str], Any]] = []

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": TOKEN, "expires_in": "7200"})

    async def record(self, request: web.Request) -> None:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.path, dict(request.headers), body))

    async def bot(self, request: web.Request) -> web.Response:
        await self.record(request)
        if not self.gateway_bot:
            return web.json_response({"code": 404, "message": "no such route"}, status=404)
        return web.json_response({"url": "ws://127.0.0.1:1/websocket/", "shards": 1})

    async def plain(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"url": "ws://127.0.0.1:2/websocket/"})

    async def message(self, request: web.Request) -> web.Response:
        await self.record(request)
        if request.match_info["who"] == "bad":
            return web.json_response(
                {"code": 40054005, "message": "duplicate msg_seq"},
                status=400,
                headers={"X-Tps-trace-ID": "T-9"},
            )
        return web.json_response({"id": "reply-1", "timestamp": 1})


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Platform], Any]]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(platform: Platform) -> RestClient:
        app = web.Application()
        app.router.add_post("/token", platform.token)
        app.router.add_get("/gateway/bot", platform.bot)
        app.router.add_get("/gateway", platform.plain)
        app.router.add_post("/v2/users/{who}/messages", platform.message)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        http = aiohttp.ClientSession()
        sessions.append(http)
        tokens = TokenManager(
            http, app_id="4242", app_secret="rest-secret-0123456789", token_url=base + "/token"
        )
        return RestClient(http, tokens, base=base, app_id="4242", timeout_s=5)

    yield start
    for http in sessions:
        await http.close()
    for runner in runners:
        await runner.cleanup()


async def test_discovery_is_authorized_and_cached_until_forgotten(serve: Any) -> None:
    platform = Platform()
    rest = await serve(platform)
    assert await rest.gateway_url() == "ws://127.0.0.1:1/websocket/"
    assert await rest.gateway_url() == "ws://127.0.0.1:1/websocket/"
    assert len(platform.requests) == 1
    path, headers, _ = platform.requests[0]
    assert path == "/gateway/bot"
    assert headers["Authorization"] == f"QQBot {TOKEN}" and headers["X-Union-Appid"] == "4242"
    rest.forget_gateway_url()
    await rest.gateway_url()
    assert len(platform.requests) == 2


async def test_discovery_falls_back_to_plain_gateway(serve: Any) -> None:
    platform = Platform(gateway_bot=False)
    rest = await serve(platform)
    assert await rest.gateway_url() == "ws://127.0.0.1:2/websocket/"
    assert [p for p, _, _ in platform.requests] == ["/gateway/bot", "/gateway"]


async def test_a_reply_posts_the_passive_body_and_errors_carry_the_trace_id(serve: Any) -> None:
    platform = Platform()
    rest = await serve(platform)
    data = {"id": "MSG-1", "content": "hi", "author": {"user_openid": "good"}}
    assert (await rest.reply("C2C_MESSAGE_CREATE", data, "hello", 1))["id"] == "reply-1"
    assert platform.requests[-1][2] == {"content": "hello", "msg_type": 0, "msg_id": "MSG-1", "msg_seq": 1}
    with pytest.raises(RestError) as info:
        await rest.reply("C2C_MESSAGE_CREATE", {**data, "author": {"user_openid": "bad"}}, "again", 1)
    assert (info.value.status, info.value.code, info.value.trace_id) == (400, 40054005, "T-9")
    with pytest.raises(RestError):
        await rest.reply("GUILD_CREATE", {"id": "x"}, "no", 1)


async def test_an_unreachable_platform_is_a_rest_error_without_status(serve: Any) -> None:
    platform = Platform()
    rest = await serve(platform)
    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = RestClient(
        rest._http, rest._tokens, base=f"http://127.0.0.1:{port}", app_id="4242", timeout_s=2
    )
    with pytest.raises(RestError) as info:
        await unreachable.gateway_url()
    assert info.value.status is None
