"""A tiny scripted gateway on 127.0.0.1 for the frames the simulator never sends: malformed and oversized.

It speaks just enough of the platform (token, /gateway, /users/@me, Hello, Identify → READY, Resume →
RESUMED, heartbeat ACKs) for the worker to connect, then sends `after_ready` (text or binary frames) on
the first connection, followed by one well-formed dispatch. Later connections get only the well-formed
parts, so a test sees whether the worker survived the bad frames and how it recovered."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from typing import Any

from aiohttp import WSMsgType, web

from qqworker.simulator.client_env import client_env
from tests.support import private_state_file

APP_ID = "102000077"
APP_SECRET = "fakeGatewaySecret000000000000000"
TOKEN = "fakeGatewayAccessToken0000000000000000000000"
SESSION = "fake-session-1"


class FakeGateway:
    def __init__(
        self, after_ready: list[str | bytes], heartbeat_ms: int = 300, *, replay: bool = False
    ) -> None:
        self.after_ready = after_ready
        self.heartbeat_ms = heartbeat_ms
        # replay: as the platform, a Resume replays every dispatch sent after its seq (bad ones too).
        self.replay = replay
        self.sent: list[tuple[int, str]] = []
        self.connections = 0
        self.identifies = 0
        self.resumes = 0
        self.seq = 1
        self.state_file = private_state_file()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fake gateway did not start")
        base = f"http://127.0.0.1:{self.port}"
        self.info: dict[str, Any] = {
            "api_base": base,
            "token_url": f"{base}/app/getAppAccessToken",
            "gateway_url": f"ws://127.0.0.1:{self.port}/websocket/",
            "app_id": APP_ID,
            "app_secret": APP_SECRET,
        }

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/app/getAppAccessToken", self._token)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/bot", self._gateway)
        app.router.add_get("/users/@me", self._me)
        app.router.add_get("/websocket/", self._ws)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.set()
        self._loop.run_forever()

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clientSecret") != APP_SECRET:
            return _json({"code": 100016, "message": "invalid appid or secret"})
        return _json({"access_token": TOKEN, "expires_in": "7200"})

    async def _gateway(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}
        return _json({"url": self.info["gateway_url"], "shards": 1, "session_start_limit": limit})

    async def _me(self, request: web.Request) -> web.Response:
        return _json({"id": "14600000000000000077", "username": "fake", "avatar": ""})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        first = self.connections == 1
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            op = frame.get("op")
            if op == 1:
                await ws.send_json({"op": 11})
            elif op == 2:
                self.identifies += 1
                user = {"id": "14600000000000000077", "username": "fake", "bot": True}
                ready = {"version": 1, "session_id": SESSION, "user": user, "shard": [0, 1]}
                await ws.send_json({"op": 0, "s": 1, "t": "READY", "d": ready})
                await self._after_ready(ws, first)
            elif op == 6:
                self.resumes += 1
                if self.replay:
                    after = int(frame["d"].get("seq") or 0)
                    for seq, text in self.sent:
                        if seq > after and not ws.closed:
                            await ws.send_str(text)
                await ws.send_json({"op": 0, "s": self.seq + 1, "t": "RESUMED", "d": ""})
                self.seq += 1
                await self._good_dispatch(ws)
        return ws

    async def _after_ready(self, ws: web.WebSocketResponse, first: bool) -> None:
        if first:
            for frame in self.after_ready:
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    self._remember(frame)
                    await ws.send_str(frame)
        await self._good_dispatch(ws)

    async def _good_dispatch(self, ws: web.WebSocketResponse) -> None:
        if ws.closed:
            return
        self.seq += 1
        d = {
            "id": f"fake-msg-{self.seq}",
            "content": "well-formed",
            "timestamp": "2026-01-01T00:00:00+08:00",
            "author": {"user_openid": "fake-user"},
        }
        event_id = f"C2C_MESSAGE_CREATE:fake{self.seq}"
        text = json.dumps({"op": 0, "s": self.seq, "t": "C2C_MESSAGE_CREATE", "id": event_id, "d": d})
        self._remember(text)
        await ws.send_str(text)

    def _remember(self, text: str) -> None:
        if not self.replay:
            return
        try:
            seq = json.loads(text).get("s")
        except ValueError:
            return
        if isinstance(seq, int):
            self.sent.append((seq, text))
            self.seq = max(self.seq, seq)

    # What the harness needs of a platform (tests.faults.harness.Platform) -----------------------

    def env(self, **overrides: str) -> dict[str, str]:
        """The worker's environment, as SimulatorProcess.env(): its sessions mean nothing elsewhere."""
        return client_env(self.info, **{"QQW_STATE_FILE": str(self.state_file), **overrides})

    def current_token(self) -> str:
        return TOKEN

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        shutil.rmtree(self.state_file.parent, ignore_errors=True)


def _json(body: Any) -> web.Response:
    return web.Response(text=json.dumps(body), content_type="application/json")
