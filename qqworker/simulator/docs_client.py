"""A minimal QQ bot client written from the platform's documentation, to test the simulator with.

Deliberately not the project's worker: the simulator must work for any client built from the docs.
REST with aiohttp's client, the gateway with `websockets` (a different library from the server's).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

GROUP_AND_C2C = 1 << 25
PUBLIC_GUILD_MESSAGES = 1 << 30
DIRECT_MESSAGE = 1 << 12
INTENTS = GROUP_AND_C2C | PUBLIC_GUILD_MESSAGES | DIRECT_MESSAGE
STEP = 5.0  # every wait in these tests is bounded by this


async def fetch_token(http: aiohttp.ClientSession, sim: Any) -> str:
    resp = await http.post(sim.token_url, json={"appId": sim.app_id, "clientSecret": sim.app_secret})
    body = await resp.json()
    return str(body["access_token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"QQBot {token}"}


class Gateway:
    """One gateway connection, driven step by step by a test."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.last_seq: int | None = None

    @classmethod
    async def open(cls, url: str) -> Gateway:
        ws = await asyncio.wait_for(connect(url, max_size=None, ping_interval=None, close_timeout=1), STEP)
        return cls(ws)

    async def recv(self, timeout: float = STEP) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if frame.get("s") is not None:
            self.last_seq = frame["s"]
        return frame

    async def send(self, obj: Any) -> None:
        await self.ws.send(obj if isinstance(obj, str | bytes) else json.dumps(obj))

    async def hello(self) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["op"] == 10, frame
        return frame

    async def identify(self, token: str, intents: int = INTENTS, **extra: Any) -> dict[str, Any]:
        """Hello, Identify; returns READY (or whatever came instead)."""
        await self.hello()
        await self.send(
            {"op": 2, "d": {"token": f"QQBot {token}", "intents": intents, "shard": [0, 1], **extra}}
        )
        return await self.recv()

    async def resume(self, token: str, session_id: str, seq: Any) -> None:
        await self.hello()
        await self.send({"op": 6, "d": {"token": f"QQBot {token}", "session_id": session_id, "seq": seq}})

    async def closed(self, timeout: float = STEP) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes; the close code (1006 when dropped) and the frames before it."""
        frames: list[dict[str, Any]] = []
        try:
            while True:
                frames.append(await self.recv(timeout))
        except ConnectionClosed:
            pass
        return self.ws.close_code, frames

    async def silent_for(self, seconds: float) -> bool:
        """True when nothing arrives for `seconds`."""
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.ws.close()
