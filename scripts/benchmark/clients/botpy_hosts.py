"""Points qq-botpy 1.2.1 at a local gateway or simulator. botpy has no setting for its hosts: the REST
base comes from `botpy.http.Route.SCHEME`/`DOMAIN` and the token URL is written inside
`botpy.robot.Token.update_access_token`, so both are patched. Used by the benchmark's botpy clients (which
start through `run_from_env`) and by tests/gateway/botpy_bot.py; imports nothing but botpy and aiohttp (it
runs in their venvs)."""

from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlsplit

import aiohttp
import botpy
from botpy import http as botpy_http
from botpy import robot as botpy_robot

__all__ = ["patch_hosts", "run_from_env"]


def patch_hosts(api_base: str, token_url: str) -> None:
    """REST calls go to `api_base` (http://127.0.0.1:PORT), the access token comes from `token_url`."""
    base = urlsplit(api_base)
    botpy_http.Route.SCHEME = base.scheme
    botpy_http.Route.DOMAIN = base.netloc

    async def update_access_token(self: botpy_robot.Token) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                token_url,
                timeout=aiohttp.ClientTimeout(total=20),
                json={"appId": self.app_id, "clientSecret": self.secret},
            ) as response,
        ):
            data = await response.json()
        self.access_token = data["access_token"]
        self.expires_in = int(data["expires_in"]) + int(time.time())

    botpy_robot.Token.update_access_token = update_access_token


def run_from_env(client_class: type[botpy.Client]) -> int:
    """Runs a benchmark client as the bench starts it: hosts from QQ_API_BASE and QQ_TOKEN_URL, credentials
    from QQ_APP_ID and QQ_APP_SECRET, public messages only, botpy's own logging at WARNING."""
    patch_hosts(os.environ["QQ_API_BASE"], os.environ["QQ_TOKEN_URL"])
    client = client_class(intents=botpy.Intents(public_messages=True), bot_log=None, ext_handlers=False)
    logging.getLogger("botpy").setLevel(logging.WARNING)
    client.run(appid=os.environ["QQ_APP_ID"], secret=os.environ["QQ_APP_SECRET"])
    return 0
