"""The Simulator: one aiohttp application on two loopback listeners, and its lifecycle.

The main port speaks the platform (REST, token, gateway) and also serves /_sim/*; the control port serves
only /_sim/* and is never refused nor black-holed, so tests can reach the simulator during an outage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from qqworker.contract.settings import is_loopback_host
from qqworker.gwserver import Close
from qqworker.simulator import control, rest
from qqworker.simulator.context import CONTEXT_KEY, Endpoints, SimContext
from qqworker.simulator.dispatch import dispatch
from qqworker.simulator.events import EventFactory, Identities
from qqworker.simulator.gateway import close_connections, handle_gateway, reconnect_connections
from qqworker.simulator.held import HeldConnection
from qqworker.simulator.options import SimOptions
from qqworker.simulator.outage import Outages
from qqworker.simulator.state import SimState
from qqworker.simulator.tokens import TokenStore
from qqworker.wire import error_response

__all__ = ["Simulator"]

log = logging.getLogger("qqworker.simulator")

REBIND_ATTEMPTS = 50
REBIND_PAUSE_S = 0.1


def _bind(host: str, port: int) -> socket.socket:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.create_server(sockaddr[:2], family=family, backlog=128)  # SO_REUSEADDR on POSIX
    sock.setblocking(False)
    return sock


class Simulator:
    """A local QQ Bot platform. `async with Simulator() as sim:` starts it on free loopback ports.

    It owns the listeners (the main port, faulted by the outages, and the control port, never faulted),
    the aiohttp application and every background task; the handlers get its `context` (a `SimContext`),
    never the Simulator. The methods below are the Python control API, the same as /_sim/*.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_port: int | None = 0,
        allow_remote: bool = False,
        options: SimOptions | None = None,
        **overrides: Any,
    ) -> None:
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(f"refusing to listen on non-loopback host {host!r} without allow_remote")
        self.options = dataclasses.replace(options or SimOptions(), **overrides)
        self.options.validate()
        self.host = host
        self.endpoints = Endpoints(host, port or None, control_port)
        self._wanted_port = port
        self.state = SimState(self.options.replay_limit, self.options.max_replies_kept)
        self.tokens = TokenStore(self.options.token_ttl_s)
        self.events = EventFactory(Identities(self.options.bot_id, self.options.bot_name))
        self.outages = Outages(self.spawn, self._outage_started, self._outage_ended)
        self.context = SimContext(
            self.options, self.state, self.tokens, self.outages, self.events, self.endpoints, self.spawn
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held: set[HeldConnection] = set()
        self._runner: web.AppRunner | None = None
        self._main: asyncio.AbstractServer | None = None
        self._control: asyncio.AbstractServer | None = None
        self._stopping = False

    # Addresses -------------------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        return self.endpoints.port

    @property
    def control_port(self) -> int | None:
        return self.endpoints.control_port

    @property
    def api_base(self) -> str:
        return self.endpoints.api_base

    @property
    def token_url(self) -> str:
        return self.endpoints.token_url

    @property
    def gateway_url(self) -> str:
        return self.endpoints.gateway_url

    @property
    def control_url(self) -> str:
        return self.endpoints.control_url

    @property
    def app_id(self) -> str:
        return self.options.app_id

    @property
    def app_secret(self) -> str:
        return self.options.app_secret

    def info(self) -> dict[str, str]:
        """What `python -m qqworker.simulator` prints on its one startup line."""
        return self.context.info()

    # Lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware()], client_max_size=1 << 20)
        app[CONTEXT_KEY] = self.context
        rest.add_routes(app)
        control.add_routes(app)
        app.router.add_get("/websocket/", handle_gateway)
        app.router.add_get("/websocket", handle_gateway)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        try:
            main_sock = _bind(self.host, self._wanted_port)
            self.endpoints.port = main_sock.getsockname()[1]
            self._main = await loop.create_server(self._main_protocol, sock=main_sock)
            if self.control_port is not None:
                control_sock = _bind(self.host, self.control_port)
                self.endpoints.control_port = control_sock.getsockname()[1]
                self._control = await loop.create_server(self._runner.server, sock=control_sock)
        except BaseException:
            await self.stop()
            raise
        self.spawn(self._sweep_sessions())
        log.info("simulator listening on %s (control %s)", self.api_base, self.control_url)

    async def stop(self) -> None:
        """Close the listeners and every connection, end outages, cancel and await every task."""
        if self._stopping:
            return
        self._stopping = True
        for server in (self._main, self._control):
            if server is not None:
                server.close()
        self._main = self._control = None
        await self.outages.end_all()
        for held in list(self._held):
            held.drop()
        conns = list(self.state.connections.values())
        for conn in conns:
            if conn.muted:  # in a black hole nothing more reaches the client, not even a close
                conn.abort()
        if conns:
            await asyncio.gather(*(c.close(Close.GOING_AWAY) for c in conns), return_exceptions=True)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        """Run a background job the simulator owns: cancelled and awaited by stop()."""
        if self._stopping:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed", exc_info=task.exception())

    async def _sweep_sessions(self) -> None:
        window = self.options.resume_window_s
        while True:
            await asyncio.sleep(max(1.0, min(30.0, window / 4)))
            self.state.expire_sessions(window)

    # Listening and outages -------------------------------------------------------------------

    def _main_protocol(self) -> asyncio.Protocol:
        if self.outages.active("blackhole") or self._stopping or self._runner is None:
            return HeldConnection(self._held)
        return self._runner.server()

    def _middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def middleware(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            transport = request.transport
            port = transport.get_extra_info("sockname")[1] if transport is not None else None
            if port is not None and port == self.control_port and port != self.port:
                if not request.path.startswith("/_sim/"):
                    return error_response(404, 404, "the control port serves /_sim/* only")
            elif self.outages.active("blackhole"):
                # A request on a connection opened before the black hole: hold it until the hole ends.
                self.state.counters["requests_held"] += 1
                await self.outages.wait_clear("blackhole")
                if self._stopping:
                    if transport is not None:
                        transport.abort()
                    raise web.HTTPServiceUnavailable()
            try:
                return await handler(request)
            except ConnectionError:
                # The client left mid-request (e.g. a worker killed while replying): nobody to answer, and
                # no fault of the simulator's worth a traceback.
                return web.Response(status=400)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                return error_response(exc.status, exc.status, exc.reason)

        return middleware

    def _outage_started(self, mode: str) -> None:
        log.info("outage %s started", mode)
        if mode == "refuse":
            self._drop_main_port()
        elif mode == "blackhole":
            for conn in self.state.connections.values():
                conn.muted = True

    async def _outage_ended(self, mode: str) -> None:
        log.info("outage %s ended", mode)
        if mode == "refuse":
            if not self._stopping:
                await self._listen_main_again()
        elif mode == "blackhole":
            if self._stopping or self._runner is None:
                return
            factory = self._runner.server
            for held in list(self._held):
                held.release(factory)
            idle_limit = self.options.idle_timeout_s
            for conn in list(self.state.connections.values()):
                self.spawn(conn.unmute(idle_limit))

    def _drop_main_port(self) -> None:
        if self._main is not None:
            self._main.close()
            self._main = None
        for conn in list(self.state.connections.values()):
            conn.abort()
        for held in list(self._held):
            held.drop()
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                transport = handler.transport
                if transport is None or transport is self.context.spare:
                    continue
                if transport.get_extra_info("sockname")[1] == self.port:
                    transport.abort()

    async def _listen_main_again(self) -> None:
        """Listen on the same port again; another process may hold it for a moment, so retry (bounded)."""
        assert self.port is not None
        for _ in range(REBIND_ATTEMPTS):
            if self._stopping or self.outages.active("refuse"):
                return
            try:
                sock = _bind(self.host, self.port)
            except OSError as exc:
                log.warning("cannot listen on port %s again yet: %s", self.port, exc)
                await asyncio.sleep(REBIND_PAUSE_S)
                continue
            self._main = await asyncio.get_running_loop().create_server(self._main_protocol, sock=sock)
            return
        log.error("gave up listening on port %s again", self.port)

    # The Python control API ------------------------------------------------------------------

    async def dispatch(
        self,
        event_type: str,
        d: dict[str, Any] | None = None,
        *,
        count: int = 1,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """Dispatch `count` events (as POST /_sim/events does) and return its answer."""
        return await dispatch(self.context, event_type, d, count, session_id)

    async def close_connections(
        self,
        code: int = Close.SESSION_TIMED_OUT,
        *,
        reason: str | None = None,
        abort: bool = False,
        drop_sessions: bool = False,
    ) -> int:
        """Close every gateway connection with `code` (or drop them, `abort`); `drop_sessions` forgets the
        sessions too, so that a Resume gets op 9. Returns how many connections there were."""
        return await close_connections(self.state, code, reason, abort=abort, drop_sessions=drop_sessions)

    async def reconnect(self, close_code: int | None = Close.SESSION_TIMED_OUT) -> int:
        """Op 7 to every connection, then the close the platform sends after it (None: no close)."""
        return await reconnect_connections(self.state, close_code)

    async def outage(self, mode: str, seconds: float, *, spare: asyncio.BaseTransport | None = None) -> None:
        """Start an outage mode for `seconds`; it ends by itself. `spare`: the connection of the request
        that asked for it, which a `refuse` leaves open so that the request is answered."""
        self.context.start_outage(mode, seconds, spare=spare)

    async def end_outage(self, mode: str | None = None) -> None:
        """End one outage mode now, or all of them."""
        await self.context.end_outage(mode)

    def revoke_tokens(self) -> int:
        """Invalidate every access token: REST answers 401 and Identify/Resume get 4004 until a new one."""
        return self.tokens.revoke_all()

    def snapshot(self) -> dict[str, Any]:
        """What GET /_sim/state answers."""
        return self.context.snapshot()

    async def wait_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0, interval: float = 0.02
    ) -> dict[str, Any]:
        """Poll snapshot() until predicate(snapshot) holds; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if predicate(snap):
                return snap
            if time.monotonic() >= deadline:
                raise TimeoutError(f"simulator state did not match within {timeout}s")
            await asyncio.sleep(interval)
