"""`python -m qqworker webhook-check URL` against local bots that answer the validation call
rightly, with another secret, with the wrong token, or not at all."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from qqworker.webhook_check import check
from qqworker.webhook_sign import Signer

SECRET = "check-secret-0123456789"
APP_ID = "102005"


class Bot:
    """Answers op 13 as a bot does, signing with `secret`; `mode` spoils the answer on purpose."""

    def __init__(self) -> None:
        self.secret = SECRET
        self.mode = "right"
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if self.mode == "404":
            return web.Response(status=404)
        d: dict[str, Any] = json.loads(body)["d"]
        token = d["plain_token"] if self.mode != "token" else "another"
        signature = Signer(self.secret).sign(d["event_ts"], d["plain_token"].encode())
        return web.json_response({"plain_token": token, "signature": signature})


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    b = Bot()
    app = web.Application()
    app.router.add_post("/qq/webhook", b.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    b.url = f"http://127.0.0.1:{runner.addresses[0][1]}/qq/webhook"
    yield b
    await runner.cleanup()


async def test_a_right_answer_passes_and_the_request_is_the_platforms(bot: Bot) -> None:
    verdict = await check(bot.url, APP_ID, SECRET)
    assert verdict.ok, verdict.reason
    [(headers, body)] = bot.requests
    payload = json.loads(body)
    assert payload["op"] == 13 and set(payload["d"]) == {"plain_token", "event_ts"}
    assert headers["User-Agent"] == "QQBot-Callback" and headers["X-Bot-Appid"] == APP_ID
    assert Signer(SECRET).verify(headers["X-Signature-Timestamp"], body, headers["X-Signature-Ed25519"])


@pytest.mark.parametrize(
    ("mode", "secret", "reason"),
    [
        ("right", "a-different-secret-here", "does not verify"),
        ("token", SECRET, "is not the one sent"),
        ("404", SECRET, "HTTP 404"),
    ],
)
async def test_a_wrong_answer_fails_with_the_reason(bot: Bot, mode: str, secret: str, reason: str) -> None:
    bot.mode, bot.secret = mode, secret
    verdict = await check(bot.url, APP_ID, SECRET)
    assert not verdict.ok and reason in verdict.reason


async def test_nobody_listening_fails() -> None:
    verdict = await check("http://127.0.0.1:9/qq/webhook", APP_ID, SECRET, timeout_s=2)
    assert not verdict.ok and "cannot reach" in verdict.reason


async def test_the_command_exits_0_on_pass_and_1_on_fail(bot: Bot) -> None:
    env = {**os.environ, "QQ_APP_ID": APP_ID, "QQ_APP_SECRET": SECRET}

    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qqworker", "webhook-check", *args, env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    code, out = await run(bot.url)
    assert code == 0 and "PASS" in out, out
    bot.secret = "a-different-secret-here"
    code, out = await run(bot.url)
    assert code == 1 and "FAIL" in out, out
    code, _ = await run("http://example.com/qq/webhook")  # plain http only to loopback
    assert code == 78
