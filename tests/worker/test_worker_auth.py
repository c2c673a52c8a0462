"""The token manager: answer parsing, the refresh plan, and fetches against a scripted loopback server."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from qqworker.auth import (
    MIN_REFETCH_S,
    REFRESH_MARGIN_S,
    TokenError,
    TokenManager,
    parse_expires_in,
    parse_token_response,
    plan_token,
)
from qqworker.logs import configure_logging


@pytest.mark.parametrize(("raw", "value"), [("7200", 7200.0), (7200, 7200.0), ("59", 59.0), (0.5, 0.5)])
def test_expires_in_is_a_string_or_a_number(raw: Any, value: float) -> None:
    assert parse_expires_in(raw) == value


@pytest.mark.parametrize("raw", [None, "", "soon", True, 0, "-5", [], {}])
def test_a_bad_expires_in_is_refused(raw: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        parse_expires_in(raw)


def test_a_token_answer_parses() -> None:
    assert parse_token_response(200, {"access_token": "tok", "expires_in": "7200"}) == ("tok", 7200.0)


@pytest.mark.parametrize(
    ("code", "permanent"), [(100016, True), (100007, True), (100002, False), (100017, False)]
)
def test_http_200_error_bodies_say_whether_retrying_can_help(code: int, permanent: bool) -> None:
    with pytest.raises(TokenError) as info:
        parse_token_response(200, {"code": code, "message": "nope"})
    assert info.value.permanent is permanent
    assert info.value.code == code
    assert str(code) in str(info.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, None),
        (502, {"message": "bad gateway"}),
        (200, None),
        (200, ["not", "an", "object"]),
        (200, {"expires_in": "7200"}),
        (200, {"access_token": "", "expires_in": "7200"}),
        (200, {"access_token": "tok", "expires_in": "never"}),
        (200, {"access_token": "tok"}),
    ],
)
def test_other_failures_are_transient(status: int, body: Any) -> None:
    with pytest.raises(TokenError) as info:
        parse_token_response(status, body)
    assert info.value.permanent is False


def test_refresh_starts_at_the_last_minute() -> None:
    token = plan_token("tok", 7200, now=1000.0)
    assert token.valid_until == 8200.0
    assert token.refresh_at == 8200.0 - REFRESH_MARGIN_S


@pytest.mark.parametrize("expires_in", [60, 30, 6, 1, 0.1])
def test_inside_the_last_minute_the_refresh_never_spins(expires_in: float) -> None:
    """The platform may hand back the same token with expires_in <= 60: no re-ask sooner than
    MIN_REFETCH_S, and at most about one ask per MIN_REFETCH_S until it runs out."""
    now = 500.0
    token = plan_token("same", expires_in, now)
    assert token.refresh_at - now >= MIN_REFETCH_S
    assert token.refresh_at - now <= max(expires_in, MIN_REFETCH_S)


def test_following_the_plan_asks_a_bounded_number_of_times() -> None:
    """Simulates the platform's rule (same token until its last 60 s) and counts the asks over a lifetime."""
    now, expiry, asks = 0.0, 7200.0, 0
    token = plan_token("a", expiry - now, now)
    while now < expiry:
        now = token.refresh_at
        asks += 1
        remaining = expiry - now
        token = plan_token("a", remaining, now) if remaining > 0 else plan_token("b", 7200, now)
    assert asks <= 2 + 60 / MIN_REFETCH_S


# Against a scripted token endpoint on loopback -----------------------------------------------


class Script:
    """Answers queued in order; the last one repeats."""

    def __init__(self, *answers: tuple[int, Any] | Callable[[], Any]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"headers": dict(request.headers), "body": await request.json()})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            return await answer()
        status, body = answer
        return web.json_response(body, status=status)


@pytest.fixture
async def endpoint() -> AsyncIterator[Callable[[Script], Any]]:
    runners: list[web.AppRunner] = []

    async def start(script: Script) -> str:
        app = web.Application()
        app.router.add_post("/token", script.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/token"

    yield start
    for runner in runners:
        await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logged() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(role="worker", stream=stream)
    return stream


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_fetches_once_and_reuses_until_refresh_time(endpoint: Any, logged: io.StringIO) -> None:
    script = Script((200, {"access_token": "tok-first-0123456789abcdef", "expires_in": "7200"}))
    url = await endpoint(script)
    clock = Clock()
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(http, app_id="app", app_secret="s3cret-value", token_url=url, clock=clock)
        assert await tokens.authorization() == "QQBot tok-first-0123456789abcdef"
        clock.now += 7000
        assert await tokens.get() == "tok-first-0123456789abcdef"
        assert tokens.fetches == 1
        clock.now += 200 - REFRESH_MARGIN_S + 1  # into the last minute
        await tokens.get()
        assert tokens.fetches == 2
    sent = script.requests[0]
    assert sent["body"] == {"appId": "app", "clientSecret": "s3cret-value"}
    assert sent["headers"]["Content-Type"].startswith("application/json")
    lines = events(logged)
    assert [r["event"] for r in lines] == ["auth.token_fetched", "auth.token_fetched"]
    assert lines[0]["expires_in"] == 7200
    assert "tok-first-0123456789abcdef" not in logged.getvalue() and "s3cret-value" not in logged.getvalue()


async def test_the_same_token_back_in_its_last_minute_does_not_spin(
    endpoint: Any, logged: io.StringIO
) -> None:
    script = Script((200, {"access_token": "tok-same-0123456789abcdef", "expires_in": 30}))
    url = await endpoint(script)
    clock = Clock()
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(
            http, app_id="app", app_secret="test-secret-0123456789", token_url=url, clock=clock
        )
        for _ in range(50):
            await tokens.get()
        assert tokens.fetches == 1
        clock.now += MIN_REFETCH_S - 0.1
        await tokens.get()
        assert tokens.fetches == 1


async def test_wrong_credentials_are_permanent(endpoint: Any, logged: io.StringIO) -> None:
    url = await endpoint(Script((200, {"code": 100016, "message": "invalid appid or secret"})))
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(http, app_id="app", app_secret="wrong-secret", token_url=url)
        with pytest.raises(TokenError) as info:
            await tokens.get()
    assert info.value.permanent
    (line,) = events(logged)
    assert line["event"] == "auth.token_failed" and "100016" in line["error"] and line["permanent"] is True
    assert "wrong-secret" not in logged.getvalue()


async def test_server_errors_and_timeouts_are_transient(endpoint: Any, logged: io.StringIO) -> None:
    async def slow() -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    url = await endpoint(
        Script((500, {"message": "oops"}), slow, (200, {"code": 100017, "message": "slow down"}))
    )
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(
            http, app_id="app", app_secret="test-secret-0123456789", token_url=url, timeout_s=0.3
        )
        for _ in range(3):
            with pytest.raises(TokenError) as info:
                await tokens.get()
            assert not info.value.permanent
    failures = [r for r in events(logged) if r["event"] == "auth.token_failed"]
    assert len(failures) == 3
    assert "HTTP 500" in failures[0]["error"] and "timed out" in failures[1]["error"]
    assert "100017" in failures[2]["error"]


async def test_a_failed_refresh_keeps_the_held_token_while_it_lasts(
    endpoint: Any, logged: io.StringIO
) -> None:
    url = await endpoint(
        Script((200, {"access_token": "tok-old-0123456789abcdef", "expires_in": "7200"}), (500, None))
    )
    clock = Clock()
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(
            http, app_id="app", app_secret="test-secret-0123456789", token_url=url, clock=clock
        )
        assert await tokens.get() == "tok-old-0123456789abcdef"
        clock.now += 7200 - 30  # due for refresh, still valid
        assert await tokens.get() == "tok-old-0123456789abcdef"
        assert await tokens.get() == "tok-old-0123456789abcdef"
        assert tokens.fetches == 2  # the failure rests MIN_REFETCH_S before the next ask
        clock.now += 40  # now expired: the failure surfaces
        with pytest.raises(TokenError):
            await tokens.get()


async def test_invalidate_forces_a_new_fetch(endpoint: Any, logged: io.StringIO) -> None:
    url = await endpoint(
        Script(
            (200, {"access_token": "tok-a-0123456789abcdef", "expires_in": "7200"}),
            (200, {"access_token": "tok-b-0123456789abcdef", "expires_in": "7200"}),
        )
    )
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(http, app_id="app", app_secret="test-secret-0123456789", token_url=url)
        assert await tokens.get() == "tok-a-0123456789abcdef"
        tokens.invalidate()
        assert await tokens.get() == "tok-b-0123456789abcdef"


async def test_a_per_call_timeout_bounds_the_fetch_and_is_logged(endpoint: Any, logged: io.StringIO) -> None:
    async def hang() -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    url = await endpoint(Script(hang))
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(
            http, app_id="app", app_secret="test-secret-0123456789", token_url=url, timeout_s=30
        )
        started = asyncio.get_running_loop().time()
        with pytest.raises(TokenError):
            await tokens.get(timeout_s=0.2)
        assert asyncio.get_running_loop().time() - started < 0.9
    (failed,) = [r for r in events(logged) if r["event"] == "auth.token_failed"]
    assert "timed out after 0.2s" in failed["error"]
