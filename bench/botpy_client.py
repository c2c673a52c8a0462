"""The official SDK (qq-botpy) with a no-op handler, pointed at the local simulator. Runs with the
bench's own venv (.bench/venv), never the project's.

botpy has no setting for its hosts: the REST base comes from `botpy.http.Route.SCHEME`/`DOMAIN` and the
token URL is written inside `botpy.robot.Token.update_access_token`, so both are patched here (see
shared QQ-PLATFORM.md, "Running the official SDK against a simulator")."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from urllib.parse import urlsplit

import aiohttp
import botpy
from botpy import http as botpy_http
from botpy import robot as botpy_robot

# Read at import but only needed by the throughput client: bench/botpy_recovery.py imports patch_hosts.
TARGET = int(os.environ.get("BENCH_TARGET", "1"))
OUT = os.environ.get("BENCH_OUT", os.devnull)


def patch_hosts() -> None:
    base = urlsplit(os.environ["QQ_API_BASE"])
    botpy_http.Route.SCHEME = base.scheme
    botpy_http.Route.DOMAIN = base.netloc
    token_url = os.environ["QQ_TOKEN_URL"]

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


def _mark(count: int) -> None:
    with open(OUT, "a", encoding="utf-8") as out:
        out.write(json.dumps({"count": count, "t": time.time(), "cpu_s": time.process_time()}) + "\n")


class BenchClient(botpy.Client):
    count = 0

    async def on_c2c_message_create(self, message: object) -> None:
        BenchClient.count += 1
        if BenchClient.count % TARGET == 0:
            _mark(BenchClient.count)


def main() -> int:
    patch_hosts()
    client = BenchClient(intents=botpy.Intents(public_messages=True), bot_log=None, ext_handlers=False)
    logging.getLogger("botpy").setLevel(logging.WARNING)
    client.run(appid=os.environ["QQ_APP_ID"], secret=os.environ["QQ_APP_SECRET"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
