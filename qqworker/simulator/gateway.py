"""The WebSocket gateway: Hello, Identify, Resume with replay, heartbeats, and the close codes for bad input.

Frames go straight onto the transport in the order they are produced (dispatch batches are one write), so
the `s` a client sees only ever grows; aiohttp handles the handshake, the reading and the close handshake.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from qqworker.gwserver import Close, Op, close_reason, read_frame, read_identify, read_resume
from qqworker.simulator.context import CONTEXT_KEY, SimContext
from qqworker.simulator.state import SessionRecord, SimState
from qqworker.wire import (
    HEARTBEAT_ACK_FRAME,
    INVALID_SESSION_FRAME,
    RECONNECT_FRAME,
    error_response,
    frame_json,
    hello_frame,
)

__all__ = ["SimConnection", "close_connections", "handle_gateway", "reconnect_connections"]

log = logging.getLogger("qqworker.simulator.gateway")

DRAIN_LOW_WATER = 64 * 1024
_BINARY = object()  # stands for a binary frame held back during a black hole

_conn_ids = itertools.count(1)


class SimConnection:
    """The simulator's end of one client's WebSocket gateway connection: it reads the client's frames,
    answers Identify, Resume and heartbeats as the platform does, writes dispatches, and plays the outages
    (a black hole mutes it: frames wait in `withheld` and `delayed` until it ends). Its session, if any, is
    a `SessionRecord` in the state that outlives it."""

    def __init__(self, ctx: SimContext, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.id = next(_conn_ids)
        self.ctx = ctx
        self.ws = ws
        self.transport = request.transport
        self.remote = request.remote
        self.opened = time.monotonic()
        self.last_frame_at = self.opened
        self.session: SessionRecord | None = None
        self.closing = False
        self.heartbeats = 0
        # A black hole holds everything: frames out wait in `withheld`, frames in wait in `delayed`.
        self.muted = ctx.outages.active("blackhole")
        self.withheld: list[bytes] = []
        self.delayed: list[Any] = []
        self.close_pending: tuple[int, str | None] | None = None
        # Set when a no_ready outage swallowed this connection's Identify/Resume: it stays silent.
        self.stalled = False
        self._cycle: asyncio.TimerHandle | None = None

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "remote": self.remote,
            "session_id": self.session.session_id if self.session else None,
            "identified": self.session is not None,
            "age_s": round(now - self.opened, 3),
            "heartbeats": self.heartbeats,
            "muted": self.muted,
        }

    # Sending ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> bool:
        if self.closing:
            return False
        if self.muted:
            self.withheld.append(data)
            return True
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True

    def send(self, obj: Any) -> bool:
        return self.write(frame_json(obj))

    async def drain(self) -> None:
        """Wait (bounded) until the client has read enough; a client that stops reading is dropped.

        Polls instead of awaiting aiohttp's drain: that future is shared by every waiter on the connection,
        so one waiter's timeout would cancel the others.
        """
        transport = self.transport
        if transport is None or self.muted:
            return
        deadline = time.monotonic() + self.ctx.options.send_timeout_s
        pause = 0.0005
        while transport.get_write_buffer_size() > DRAIN_LOW_WATER and not transport.is_closing():
            if time.monotonic() > deadline:
                log.warning("connection %d stopped reading; dropping it", self.id)
                self.abort()
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.005)

    def abort(self) -> None:
        """Drop without a close frame (the client sees 1006)."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    async def close(self, code: int, reason: str | None = None) -> None:
        if self.closing:
            return
        if self.muted:
            if self.close_pending is None:
                self.close_pending = (code, reason)
            return
        self.closing = True
        self.ctx.state.closes[code] += 1
        message = (reason or close_reason(code, "closed by the simulator")).encode()[:123]
        try:
            # drain=False: the close frame queues behind the dispatches; the close handshake is bounded by
            # the response's own timeout, and by this wait_for.
            await asyncio.wait_for(
                self.ws.close(code=code, message=message, drain=False), self.ctx.options.close_timeout_s + 1.0
            )
        except (asyncio.TimeoutError, ConnectionError):
            self.abort()

    async def reconnect(self, close_code: int | None = Close.SESSION_TIMED_OUT) -> None:
        """Op 7, then (as the platform does) the close that ends the connection."""
        if self.closing:
            return
        self.ctx.state.counters["reconnects_sent"] += 1
        self.write(RECONNECT_FRAME)
        if close_code is not None:
            await self.close(close_code)

    async def invalid_session(self, code: int) -> None:
        self.write(INVALID_SESSION_FRAME)
        await self.close(code)

    # Receiving -------------------------------------------------------------------------------

    async def serve(self) -> None:
        ws = self.ws
        idle_timeout = self.ctx.options.idle_timeout_s
        while not self.closing:
            try:
                msg = await ws.receive(timeout=idle_timeout)
            except asyncio.TimeoutError:
                if self.muted:
                    continue
                self.ctx.state.counters["heartbeat_timeouts"] += 1
                await self.close(Close.SESSION_TIMED_OUT)
                break
            kind = msg.type
            if kind is WSMsgType.TEXT:
                if self.muted:
                    self.delayed.append(msg.data)
                else:
                    await self.handle_text(msg.data)
            elif kind is WSMsgType.BINARY:
                if self.muted:
                    self.delayed.append(_BINARY)
                else:
                    await self.close(Close.INVALID_PAYLOAD)
            elif kind is WSMsgType.PING:
                if not self.muted and self.ctx.options.answer_pings:
                    await ws.pong(msg.data)
            elif kind is WSMsgType.PONG:
                continue
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                if kind is WSMsgType.CLOSE:
                    # Any client close keeps the session resumable for the resume window, whatever its code
                    # (as the platform does: replay after a restart is seen in the field); counted so that
                    # tests can see what a client sent.
                    self.ctx.state.client_closes[msg.data if isinstance(msg.data, int) else 0] += 1
                break

    async def handle_text(self, data: Any) -> None:
        if data is _BINARY:
            await self.close(Close.INVALID_PAYLOAD)
            return
        self.last_frame_at = time.monotonic()
        if self.stalled:
            return
        frame = read_frame(data)
        if isinstance(frame, Close):
            await self.close(frame)
        elif frame.op == Op.HEARTBEAT:
            await self._heartbeat()
        elif frame.op == Op.IDENTIFY:
            await self._identify(frame.d)
        else:
            await self._resume(frame.d)

    async def _heartbeat(self) -> None:
        if self.session is None:
            await self.close(Close.NOT_AUTHENTICATED)
            return
        counters = self.ctx.state.counters
        self.heartbeats += 1
        counters["heartbeats"] += 1
        if self.ctx.outages.active("no_ack"):
            counters["acks_withheld"] += 1
            return
        self.write(HEARTBEAT_ACK_FRAME)
        counters["acks"] += 1

    async def _identify(self, d: Any) -> None:
        ctx = self.ctx
        counters = ctx.state.counters
        counters["identifies"] += 1
        if self.session is not None:
            await self.close(Close.ALREADY_AUTHENTICATED)
            return
        if ctx.outages.active("no_ready"):
            counters["identifies_ignored"] += 1
            self.stalled = True
            return
        if ctx.outages.active("internal_error"):
            counters["identifies_failed"] += 1
            await self.close(Close.INTERNAL_ERROR)
            return
        identify = read_identify(d, ctx.tokens.is_valid)
        if isinstance(identify, Close):
            await self.close(identify)
            return
        if identify.intents & ~ctx.options.allowed_intents:
            counters["identifies_rejected"] += 1
            code = ctx.options.intent_reject_code
            if code == Close.CREATE_SESSION_ERROR:
                await self.invalid_session(code)
            else:
                await self.close(code)
            return
        session = ctx.state.new_session(identify.intents, identify.shard)
        self._attach(session)
        options = ctx.options
        ready = {
            "version": 1,
            "session_id": session.session_id,
            "user": {"id": options.bot_id, "username": options.bot_name, "bot": True, "status": 1},
            "shard": session.shard,
        }
        self.send({"op": Op.DISPATCH, "s": session.next_seq(), "t": "READY", "d": ready})
        counters["ready"] += 1

    async def _resume(self, d: Any) -> None:
        ctx = self.ctx
        counters = ctx.state.counters
        counters["resumes"] += 1
        if self.session is not None:
            await self.close(Close.ALREADY_AUTHENTICATED)
            return
        if ctx.outages.active("no_ready"):
            counters["resumes_ignored"] += 1
            self.stalled = True
            return
        if ctx.outages.active("internal_error"):
            counters["resumes_failed"] += 1
            await self.close(Close.INTERNAL_ERROR)
            return
        resume = read_resume(d, ctx.tokens.is_valid)
        if isinstance(resume, Close):
            await self.close(resume)
            return
        seq = resume.seq
        session = ctx.state.live_session(resume.session_id, ctx.options.resume_window_s)
        if session is not None and seq > session.seq:
            counters["resumes_failed"] += 1
            await self.close(Close.INVALID_SEQ)
            return
        frames = session.frames_after(seq) if session is not None else None
        if session is None or frames is None:
            counters["resumes_failed"] += 1
            await self.invalid_session(Close.INVALID_SESSION)
            return
        previous = session.connection
        if previous is not None:
            previous.session = None
            previous.abort()
        self._attach(session)
        resumed = frame_json({"op": Op.DISPATCH, "s": session.next_seq(), "t": "RESUMED", "d": ""})
        frames.append(resumed)
        self.write(b"".join(frames))
        counters["resumed"] += 1
        counters["replayed"] += len(frames) - 1

    def _attach(self, session: SessionRecord) -> None:
        session.connection = self
        session.away_since = None
        self.session = session
        cycle = self.ctx.options.session_cycle_s
        if cycle > 0:
            self._cycle = asyncio.get_running_loop().call_later(cycle, self._end_cycle)

    def _end_cycle(self) -> None:
        self._cycle = None
        self.ctx.spawn(self.reconnect(Close.SESSION_TIMED_OUT))

    def detach(self) -> None:
        """The connection is gone: its session, if it still holds it, waits for a Resume."""
        self.closing = True
        if self._cycle is not None:
            self._cycle.cancel()
            self._cycle = None
        session = self.session
        if session is not None and session.connection is self:
            session.connection = None
            session.away_since = time.monotonic()
        self.session = None
        self.withheld.clear()
        self.delayed.clear()

    # Black holes -----------------------------------------------------------------------------

    async def unmute(self, idle_limit_s: float | None) -> None:
        """A black hole ended: a link silent past the server's timeout is dropped, else it catches up."""
        if not self.muted:
            return
        if idle_limit_s is not None and time.monotonic() - self.last_frame_at > idle_limit_s:
            self.abort()
            return
        while self.delayed and self.close_pending is None and not self.closing:
            await self.handle_text(self.delayed.pop(0))
        self.muted = False
        self.delayed.clear()
        if self.withheld:
            data = b"".join(self.withheld)
            self.withheld.clear()
            self.write(data)
        if self.close_pending is not None:
            code, reason = self.close_pending
            self.close_pending = None
            await self.close(code, reason)


async def handle_gateway(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT_KEY]
    options = ctx.options
    ws = web.WebSocketResponse(
        autoping=False, compress=False, timeout=options.close_timeout_s, max_msg_size=1 << 20
    )
    if not ws.can_prepare(request).ok:
        return error_response(400, 400, "websocket upgrade required")
    await ws.prepare(request)
    conn = SimConnection(ctx, ws, request)
    state = ctx.state
    state.connections[conn.id] = conn
    state.counters["connections_total"] += 1
    try:
        if ctx.outages.active("no_hello"):
            state.counters["hellos_withheld"] += 1
        else:
            conn.write(hello_frame(options.heartbeat_interval_ms))
        await conn.serve()
    except ConnectionError:
        pass
    finally:
        conn.detach()
        state.connections.pop(conn.id, None)
        if not ws.closed and conn.transport is not None:
            conn.transport.abort()
    return ws


async def close_connections(
    state: SimState, code: int, reason: str | None = None, *, abort: bool = False, drop_sessions: bool = False
) -> int:
    """Close every gateway connection with `code` (or drop them, `abort`); `drop_sessions` forgets the
    sessions too, so that a Resume gets op 9. Returns how many connections there were."""
    conns = list(state.connections.values())
    if drop_sessions:
        state.sessions.clear()
    if abort:
        for conn in conns:
            conn.abort()
    elif conns:
        await asyncio.gather(*(c.close(code, reason) for c in conns), return_exceptions=True)
    return len(conns)


async def reconnect_connections(state: SimState, close_code: int | None = Close.SESSION_TIMED_OUT) -> int:
    """Op 7 to every connection, then the close the platform sends after it (None: no close)."""
    conns = list(state.connections.values())
    if conns:
        await asyncio.gather(*(c.reconnect(close_code) for c in conns), return_exceptions=True)
    return len(conns)
