"""The official SDK (qq-botpy 1.2.1) as it is, pointed at the simulator, printing one JSON line per
connection event for benchmark/botpy_netrecovery.py (the bench reads and timestamps them on arrival):

* `botpy.ready` / `botpy.resumed`: its on_ready / on_resumed hooks (READY / RESUMED dispatched);
* `botpy.event`: a C2C message reached the handler (on_c2c_message_create);
* `botpy.heartbeat_ack`: an op 11 frame received (the gateway answered a heartbeat on this connection);
* `botpy.closed`: one connection's receive loop ended (closed by either side, or an error), `error`
  naming the exception if there was one. botpy then starts a new connection about 5 s later.

Only the hosts are patched (clients/botpy_hosts.py); botpy's reconnect logic and its fixed 30 s heartbeat
without an ACK check are unchanged. Runs with the bench's own venv (.bench/venv)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import botpy
from botpy import gateway as botpy_gateway

from benchmark.clients.botpy_hosts import run_from_env


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def hook_connections() -> None:
    ws = botpy_gateway.BotWebSocket
    receive_loop, system_event = ws.ws_connect, ws._is_system_event

    async def ws_connect(self: botpy_gateway.BotWebSocket) -> None:
        try:
            await receive_loop(self)
        except BaseException as exc:
            emit("botpy.closed", error=type(exc).__name__, detail=str(exc)[:200])
            raise
        emit("botpy.closed", error=None)

    async def is_system_event(self: botpy_gateway.BotWebSocket, message: dict[str, Any], conn: Any) -> bool:
        if message.get("op") == ws.WS_HEARTBEAT_ACK:
            emit("botpy.heartbeat_ack")
        return await system_event(self, message, conn)

    ws.ws_connect = ws_connect
    ws._is_system_event = is_system_event


class RecoveryClient(botpy.Client):
    async def on_ready(self) -> None:
        emit("botpy.ready")

    async def on_resumed(self) -> None:
        emit("botpy.resumed")

    async def on_c2c_message_create(self, message: object) -> None:
        emit("botpy.event")


def main() -> int:
    hook_connections()
    return run_from_env(RecoveryClient)


if __name__ == "__main__":
    sys.exit(main())
