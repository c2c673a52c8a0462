"""The simplest alternative the worker is measured against: a bare `websockets` receive loop with
`json.loads`, Identify and nothing else (no heartbeat, no reconnect, no dedupe, no handler queue).

    python -m benchmark.clients.ws_loop   (scripts/ on PYTHONPATH; credentials and URLs from QQ_APP_ID,
        QQ_APP_SECRET, QQ_API_BASE, QQ_TOKEN_URL; BENCH_TARGET and BENCH_OUT as for clients/noop.py)"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request

import websockets

from benchmark.clients.noop import TARGET, mark

INTENTS = 1 << 25  # GROUP_AND_C2C_EVENT


def _post_json(url: str, body: dict, headers: dict | None = None) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def discover() -> tuple[str, str]:
    """The token and the gateway URL, before the loop starts (blocking calls, outside the measurement)."""
    token = _post_json(
        os.environ["QQ_TOKEN_URL"],
        {"appId": os.environ["QQ_APP_ID"], "clientSecret": os.environ["QQ_APP_SECRET"]},
    )["access_token"]
    auth = {"Authorization": f"QQBot {token}"}
    request = urllib.request.Request(os.environ["QQ_API_BASE"].rstrip("/") + "/gateway", headers=auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        return token, json.loads(response.read())["url"]


async def main(token: str, url: str) -> None:
    async with websockets.connect(url, ping_interval=None, open_timeout=10) as ws:
        json.loads(await ws.recv())  # Hello
        identify = {"token": f"QQBot {token}", "intents": INTENTS, "shard": [0, 1]}
        await ws.send(json.dumps({"op": 2, "d": identify}))
        count = 0
        async for message in ws:
            frame = json.loads(message)
            if frame.get("op") == 0 and frame.get("t") != "READY":
                count += 1
                if count % TARGET == 0:
                    mark(count)


if __name__ == "__main__":
    asyncio.run(main(*discover()))
