"""A bare `aiohttp` WebSocket receive loop with `json.loads`, like bench/ws_loop.py but on aiohttp's client
(whose frame reader is compiled): what the transport alone costs when it is not `websockets`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.noop import _TARGET, mark
from bench.ws_loop import INTENTS, discover


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
                if count % _TARGET == 0:
                    mark(count)


if __name__ == "__main__":
    asyncio.run(main(*discover()))
