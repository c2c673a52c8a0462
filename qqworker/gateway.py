"""One gateway connection: the thin I/O shell around `protocol.GatewayConnection`.

Opens the WebSocket (bounded by the attempt's deadline), then feeds every received frame to the
protocol object and carries out what it returns. `recv()` always runs under a timeout taken from
`next_wakeup()` (the next heartbeat) or, before READY, the attempt's deadline, so the loop can never
block on a silent link. websockets' own pings are off: the gateway's heartbeat ACK is the liveness check.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from qqworker.closecodes import CloseAction
from qqworker.events import LogEvent
from qqworker.logs import log_event
from qqworker.protocol import (
    AckTimeout,
    ConnPhase,
    Disconnect,
    Dispatch,
    Established,
    FrameRejected,
    GatewayConnection,
    Output,
    Send,
)
from qqworker.settings import check_url

log = logging.getLogger("qqworker.gateway")

MAX_FRAME_BYTES = 1 << 20  # a larger frame closes the connection (1009) and we reconnect
CLOSE_TIMEOUT_S = 1.0  # the close handshake; a half-open link must not hold the loop
SEND_TIMEOUT_S = 10.0
MAX_WAIT_S = 60.0  # upper bound on a single recv() even if no timer is due
TOO_BIG = 1009
# Our close codes: 4000 keeps the session resumable (as Discord-style gateways read it); 1000 ends it.
CLOSE_KEEP_SESSION = 4000
CLOSE_END_SESSION = 1000


T = TypeVar("T")

if sys.version_info >= (3, 11):
    from asyncio import timeout_at as deadline_scope

    async def within(seconds: float, aw: Awaitable[T]) -> T:
        """Awaits with a deadline; raises asyncio.TimeoutError (cheaper than wait_for on 3.11+)."""
        async with asyncio.timeout(seconds):
            return await aw

else:  # pragma: no cover - aiohttp brings async-timeout on Python 3.10
    from async_timeout import timeout_at as deadline_scope

    async def within(seconds: float, aw: Awaitable[T]) -> T:
        return await asyncio.wait_for(aw, seconds)


@dataclass
class Callbacks:
    """What the worker wants to hear about. All are called on the receive path: keep them instant."""

    established: Callable[[Established], None]
    dispatch: Callable[[Dispatch], None]
    frame: Callable[[GatewayConnection], None]  # after every frame: seq and last ACK may have moved


def wake_at(conn: GatewayConnection, deadline: float, now: float) -> float:
    """Until when the next recv() may wait: the next heartbeat or, before READY, the attempt's
    deadline, whichever comes first; never later than MAX_WAIT_S from now."""
    limit = now + MAX_WAIT_S
    wake = conn.next_wakeup()
    if wake is not None and wake < limit:
        limit = wake
    if conn.phase is not ConnPhase.ESTABLISHED and deadline < limit:
        limit = deadline
    return limit


def close_code_for(decision: Disconnect) -> int:
    return (
        CLOSE_END_SESSION
        if decision.action in (CloseAction.IDENTIFY, CloseAction.FATAL)
        else CLOSE_KEEP_SESSION
    )


async def open_link(url: str, timeout: float, *, max_size: int = MAX_FRAME_BYTES) -> ClientConnection:
    """TCP + TLS + WebSocket handshake within `timeout`; raises on any failure."""
    check_url(url, "gateway url")
    return await connect(
        url,
        open_timeout=max(0.01, timeout),
        ping_interval=None,
        close_timeout=CLOSE_TIMEOUT_S,
        max_size=max_size,
        # No proxy from the environment, like the REST client (aiohttp's default): one predictable path.
        proxy=None,
        user_agent_header="qqwatchdog",
    )


async def drive(
    ws: ClientConnection, conn: GatewayConnection, callbacks: Callbacks, *, deadline: float
) -> Disconnect:
    """Runs one open connection to its end and returns why it ended (it is closed on return)."""
    loop = asyncio.get_running_loop()
    decision: Disconnect | None = None
    try:
        decision = await _pump(ws, conn, callbacks, deadline, loop)
        return decision
    finally:
        # Cancelled (stop) or done: close without waiting longer than CLOSE_TIMEOUT_S (+ a margin).
        code = CLOSE_KEEP_SESSION if decision is None else close_code_for(decision)
        try:
            await within(CLOSE_TIMEOUT_S + 0.5, ws.close(code))
        except (asyncio.TimeoutError, OSError):
            ws.transport.abort()


async def _pump(
    ws: ClientConnection,
    conn: GatewayConnection,
    callbacks: Callbacks,
    deadline: float,
    loop: asyncio.AbstractEventLoop,
) -> Disconnect:
    while True:
        now = loop.time()
        outputs = conn.poll(now)
        if outputs:
            if (end := await _carry_out(ws, conn, callbacks, outputs)) is not None:
                return end
            continue
        if conn.phase is not ConnPhase.ESTABLISHED and now >= deadline:
            return _end(conn, f"no {'Hello' if conn.phase is ConnPhase.AWAIT_HELLO else 'READY'} in time")
        limit = wake_at(conn, deadline, now)
        try:
            # One deadline scope over many frames, moved only when the next wake-up comes sooner:
            # a timer per recv() would cost more than all the rest of a frame's handling.
            async with deadline_scope(limit) as scope:
                while True:
                    try:
                        message = await ws.recv()
                    except ConnectionClosed as exc:
                        return _closed(conn, exc)
                    now = loop.time()
                    outputs = conn.receive_text(message, now)
                    callbacks.frame(conn)
                    if outputs:
                        if len(outputs) == 1 and type(outputs[0]) is Dispatch:
                            callbacks.dispatch(outputs[0])  # the common case, without a coroutine
                        elif (end := await _carry_out(ws, conn, callbacks, outputs)) is not None:
                            return end
                    # Once established only poll() (outside this loop) moves the heartbeat timer:
                    # only a handshake frame can bring the next wake-up forward.
                    if conn.phase is not ConnPhase.ESTABLISHED:
                        sooner = wake_at(conn, deadline, now)
                        if sooner < limit:
                            limit = sooner
                            scope.reschedule(limit)
        except asyncio.TimeoutError:
            continue  # a timer is due (or the attempt's deadline passed): poll() decides


async def _carry_out(
    ws: ClientConnection, conn: GatewayConnection, callbacks: Callbacks, outputs: list[Output]
) -> Disconnect | None:
    """Does what the protocol asked; returns a Disconnect when the connection is over."""
    for out in outputs:
        if isinstance(out, Dispatch):
            callbacks.dispatch(out)
        elif isinstance(out, Send):
            if (lost := await _send(ws, conn, out)) is not None:
                return lost
        elif isinstance(out, Established):
            callbacks.established(out)
        elif isinstance(out, FrameRejected):
            log_event(
                log,
                LogEvent.FRAME_REJECTED,
                f"Ignored a gateway frame: {out.reason}",
                level=logging.WARNING,
                reason=out.reason,
                excerpt=out.excerpt,
            )
        elif isinstance(out, AckTimeout):
            log_event(
                log,
                LogEvent.ACK_TIMEOUT,
                f"{out.missed} heartbeats went unacknowledged: the link is dead, dropping it",
                level=logging.WARNING,
                missed=out.missed,
            )
        elif isinstance(out, Disconnect):
            return conn.receive_close(None)  # returns the decision already taken
    return None


async def _send(ws: ClientConnection, conn: GatewayConnection, out: Send) -> Disconnect | None:
    try:
        await within(SEND_TIMEOUT_S, ws.send(out.text()))
    except asyncio.TimeoutError:
        return _end(conn, f"a send did not complete within {SEND_TIMEOUT_S}s")
    except ConnectionClosed as exc:
        return _closed(conn, exc)
    return None


def _end(conn: GatewayConnection, reason: str) -> Disconnect:
    """We end the connection ourselves (no close code from the server): resume if we can."""
    conn.disconnect = conn.disconnect or Disconnect(CloseAction.RESUME, reason)
    return conn.receive_close(None)


def _closed(conn: GatewayConnection, exc: ConnectionClosed) -> Disconnect:
    if exc.sent is not None and exc.sent.code == TOO_BIG:
        log_event(
            log,
            LogEvent.FRAME_REJECTED,
            f"A gateway frame exceeded the {MAX_FRAME_BYTES}-byte limit; reconnecting",
            level=logging.WARNING,
            reason="frame too large",
            excerpt="",
        )
        return conn.receive_close(TOO_BIG, "frame too large")
    if exc.rcvd is not None:
        return conn.receive_close(exc.rcvd.code, exc.rcvd.reason)
    return conn.receive_close(None, "connection lost without a close frame")
