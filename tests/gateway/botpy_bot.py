"""A qq-botpy 1.2.1 bot, run in its own venv by test_gateway_frameworks.py. botpy has no host setting:
its REST base and its token URL are patched to the local gateway, as the README shows, by the benchmark's
scripts/benchmark/clients/botpy_hosts.py (which needs only botpy and aiohttp, as this venv has). One JSON
line per ready and per message event on stdout; every message is answered with `echo <text>`."""

import json
import os
import sys
from pathlib import Path

import botpy
from botpy.message import C2CMessage, GroupMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from benchmark.clients.botpy_hosts import patch_hosts

BASE = os.environ["GATEWAY_BASE"]  # http://127.0.0.1:PORT


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
    patch_hosts(BASE, f"{BASE}/app/getAppAccessToken")
    client = Probe(intents=botpy.Intents(public_messages=True), ext_handlers=False)
    client.run(appid=os.environ["BOT_APP_ID"], secret=os.environ["BOT_APP_SECRET"])
    sys.exit(0)
