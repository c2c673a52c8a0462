"""What the simulator's HTTP and WebSocket handlers work with: `SimContext`, found under `CONTEXT_KEY`.

The handlers (rest, control, gateway, dispatch) get this object, never the `Simulator` that owns the
listeners: this module imports none of them, so no handler can reach back into the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from qqworker.simulator.events import EventFactory
from qqworker.simulator.options import SimOptions
from qqworker.simulator.outage import Outages
from qqworker.simulator.state import SimState
from qqworker.simulator.tokens import TokenStore

__all__ = ["CONTEXT_KEY", "Endpoints", "SimContext"]

Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any] | None"]


@dataclass
class Endpoints:
    """The simulator's addresses; the ports are known once it listens (0 or None until then)."""

    host: str
    port: int | None
    control_port: int | None

    def _base(self, port: int | None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def api_base(self) -> str:
        return self._base(self.port)

    @property
    def token_url(self) -> str:
        return f"{self.api_base}/app/getAppAccessToken"

    @property
    def gateway_url(self) -> str:
        return f"ws{self.api_base[4:]}/websocket/"

    @property
    def control_url(self) -> str:
        return self._base(self.control_port) if self.control_port else self.api_base


@dataclass
class SimContext:
    """The platform as the handlers see it: the options, what it remembers (sessions, connections,
    counters, replies), its tokens, its outages, its event factory, its addresses, and `spawn` for a
    background job the simulator cancels and awaits at shutdown."""

    options: SimOptions
    state: SimState
    tokens: TokenStore
    outages: Outages
    events: EventFactory
    endpoints: Endpoints
    spawn: Spawn
    # The connection of the request that started a `refuse` outage: the port drop leaves it open so that
    # the request is answered (set only while the outage starts).
    spare: asyncio.BaseTransport | None = field(default=None, init=False)

    def info(self) -> dict[str, str]:
        """What `python -m qqworker.simulator` prints on its one startup line."""
        endpoints = self.endpoints
        return {
            "api_base": endpoints.api_base,
            "token_url": endpoints.token_url,
            "gateway_url": endpoints.gateway_url,
            "control_url": endpoints.control_url,
            "app_id": self.options.app_id,
            "app_secret": self.options.app_secret,
        }

    def start_outage(self, mode: str, seconds: float, *, spare: asyncio.BaseTransport | None = None) -> None:
        """Start an outage mode for `seconds`; it ends by itself. ValueError for a bad mode or duration."""
        self.spare = spare
        try:
            self.outages.start(mode, seconds)
        finally:
            self.spare = None

    async def end_outage(self, mode: str | None = None) -> None:
        """End one outage mode now, or all of them."""
        if mode is None:
            await self.outages.end_all()
        else:
            await self.outages.end(mode)

    def snapshot(self) -> dict[str, Any]:
        """What GET /_sim/state answers."""
        state = self.state.snapshot()
        state["outages"] = self.outages.describe()
        state["tokens_issued"] = self.tokens.issued
        state.update({k: v for k, v in self.info().items() if k != "app_secret"})
        return state


CONTEXT_KEY: web.AppKey[SimContext] = web.AppKey("qqworker.simulator")
