"""A bare `aiohttp` WebSocket receive loop with `json.loads`, like clients/ws_loop.py but on aiohttp's
client (whose frame reader is compiled): what the transport alone costs when it is not `websockets`."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from benchmark.clients.noop import TARGET, mark
from benchmark.clients.ws_loop import INTENTS, discover


async def main(token: str, url: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url, autoping=False) as ws:
        await ws.receive()  # Hello
        identify = {"token": f"QQBot {token}", "intents": INTENTS, "shard": [0, 1]}
        await ws.send_str(json.dumps({"op": 2, "d": identify}))
        count = 0
        async for message in ws:
            frame = json.loads(message.data)
            if frame.get("op") == 0 and frame.get("t") != "READY":
                count += 1
                if count % TARGET == 0:
                    mark(count)


if __name__ == "__main__":
    asyncio.run(main(*discover()))
