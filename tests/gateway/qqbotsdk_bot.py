"""A qqbotsdk-py 1.0.0 bot as its README writes one, run in its own venv (Python >= 3.12) by
test_gateway_frameworks.py: `APPID`, `APPSECRET`, `BASE_URL` and `INTENTS` from the environment.
One JSON line per message event on stdout; every message is answered with `echo <text>`."""

import json

from qqbotsdk import Bot
from qqbotsdk.api import BotApi
from qqbotsdk.payloads import C2CMessage, GroupAtMessage

bot = Bot()


def out(**fields: object) -> None:
    print(json.dumps({"probe": True, **fields}), flush=True)


@bot.on("C2C_MESSAGE_CREATE")
async def on_c2c(msg: C2CMessage, api: BotApi) -> None:
    out(what="event", type="C2C_MESSAGE_CREATE", msg_id=msg.id, text=msg.content)
    await api.post_c2c_message(msg.user_openid, content=f"echo {msg.content}", msg_id=msg.id)


@bot.on("GROUP_AT_MESSAGE_CREATE")
async def on_group(msg: GroupAtMessage, api: BotApi) -> None:
    out(what="event", type="GROUP_AT_MESSAGE_CREATE", msg_id=msg.id, text=msg.content)
    await api.post_group_message(msg.group_openid, content=f"echo {msg.content}", msg_id=msg.id)


if __name__ == "__main__":
    bot.run()
