"""A qq-botpy 1.2.1 bot, run in its own venv by test_gateway_frameworks.py. botpy has no host setting:
its REST base (`botpy.http.Route.SCHEME`/`DOMAIN`) and its token URL (inside
`botpy.robot.Token.update_access_token`) are patched to the local gateway, as the README shows (and
bench/botpy_client.py does for the simulator). One JSON line per ready and per message event on
stdout; every message is answered with `echo <text>`."""

import json
import os
import sys
import time
from urllib.parse import urlsplit

import aiohttp
import botpy
from botpy import http as botpy_http
from botpy import robot as botpy_robot
from botpy.message import C2CMessage, GroupMessage

BASE = os.environ["GATEWAY_BASE"]  # http://127.0.0.1:PORT


def patch_hosts() -> None:
    botpy_http.Route.SCHEME = urlsplit(BASE).scheme
    botpy_http.Route.DOMAIN = urlsplit(BASE).netloc

    async def update_access_token(self: botpy_robot.Token) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{BASE}/app/getAppAccessToken",
                timeout=aiohttp.ClientTimeout(total=20),
                json={"appId": self.app_id, "clientSecret": self.secret},
            ) as response,
        ):
            data = await response.json()
        self.access_token = data["access_token"]
        self.expires_in = int(data["expires_in"]) + int(time.time())

    botpy_robot.Token.update_access_token = update_access_token


def out(**fields: object) -> None:
    print(json.dumps({"probe": True, **fields}), flush=True)


class Probe(botpy.Client):
    async def on_ready(self) -> None:
        out(what="connected", self_id=self.robot.id)

    async def on_c2c_message_create(self, message: C2CMessage) -> None:
        out(what="event", type="C2C_MESSAGE_CREATE", msg_id=message.id, text=message.content)
        await message.reply(content=f"echo {message.content}", msg_type=0)

    async def on_group_at_message_create(self, message: GroupMessage) -> None:
        out(what="event", type="GROUP_AT_MESSAGE_CREATE", msg_id=message.id, text=message.content)
        await message.reply(content=f"echo {message.content}", msg_type=0)


if __name__ == "__main__":
    patch_hosts()
    client = Probe(intents=botpy.Intents(public_messages=True), ext_handlers=False)
    client.run(appid=os.environ["BOT_APP_ID"], secret=os.environ["BOT_APP_SECRET"])
    sys.exit(0)
