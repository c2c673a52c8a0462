"""A NoneBot2 bot as its users write one (adapter-qq, WebSocket mode), run in its own venv by
test_gateway_frameworks.py: its settings come from the `.env` in its working directory. One JSON line
per connect, disconnect and message event on stdout; every message is answered with `echo <text>`."""

import json
import sys

import nonebot
from nonebot import on_message
from nonebot.adapters.qq import Adapter, Bot, MessageEvent


def out(**fields: object) -> None:
    print(json.dumps({"probe": True, **fields}), flush=True)


nonebot.init()
driver = nonebot.get_driver()
driver.register_adapter(Adapter)


@driver.on_bot_connect
async def connected(bot: Bot) -> None:
    out(what="connected", self_id=bot.self_id)


@driver.on_bot_disconnect
async def disconnected(bot: Bot) -> None:
    out(what="disconnected", self_id=bot.self_id)


echo = on_message()


@echo.handle()
async def handle(bot: Bot, event: MessageEvent) -> None:
    text = event.get_plaintext()
    out(what="event", type=event.get_event_name(), event_id=event.event_id, msg_id=event.id, text=text)
    await bot.send(event, f"echo {text}")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    nonebot.run()
