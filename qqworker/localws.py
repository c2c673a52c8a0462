"""One framework's WebSocket connection to the local gateway (`QQ_HANDLER=gateway`).

It speaks the platform's side with the same code as the simulator (gwserver.py reads and checks a
client's frames, wire.py writes ours), against the worker's shared stream (gwbuffer.StreamBuffer):
Hello, Identify -> READY (then the events a restarted bot missed), Resume -> replay then RESUMED,
heartbeat -> ACK at once (the upstream link plays no part in it), dispatches with local seqs.
Frames are written straight onto the transport in order, and no write ever waits on a client: when a
client's unread output passes `HIGH_WATER`, live events stop being written to it and a catch-up task
sends them from the buffer (in chunks, each once the output is below `LOW_WATER`), so a burst never
grows memory past the buffer's own bound. A client that reads nothing for `STALL_S`, or falls so far
behind that its next events left the buffer, is dropped (it reconnects and Resumes or Identifies).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.gwbuffer import Entry, StreamBuffer
from qqworker.gwserver import Close, Op, close_reason, read_frame, read_identify, read_resume
from qqworker.localtokens import SessionIds
from qqworker.wire import HEARTBEAT_ACK_FRAME, INVALID_SESSION_FRAME, frame_json, hello_frame

__all__ = ["ClientConnection", "LocalPlatform", "dispatch_frame", "serve_client"]

log = logging.getLogger("qqworker.localgw")

HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
MAX_UNREAD_BYTES = 16 << 20  # a hard cap for what is written regardless (a Resume's replay, control frames)
CATCH_UP_CHUNK = 512
CATCH_UP_POLL_S = 0.01
STALL_S = 30.0
CLOSE_TIMEOUT_S = 2.0

_numbers = itertools.count(1)


def dispatch_frame(entry: Entry) -> bytes:
    frame: dict[str, Any] = {"op": Op.DISPATCH, "s": entry.seq, "t": entry.type}
    if entry.id is not None:
        frame["id"] = entry.id
    frame["d"] = entry.data
    return frame_json(frame)


class LocalPlatform(Protocol):
    """What a client connection needs of the local gateway (`localgw.LocalGateway`), declared here so
    that this module does not import it back."""

    buffer: StreamBuffer
    sessions: SessionIds
    heartbeat_ms: int
    lagged: int  # times a client's unread output made it catch up from the buffer
    connections: set[ClientConnection]

    def token_valid(self, token: str | None) -> bool: ...

    async def bot_user(self) -> dict[str, Any] | None: ...

    def attached(self, conn: ClientConnection) -> None: ...

    def detached(self, conn: ClientConnection) -> None: ...


class ClientConnection:
    """The local gateway's end of one framework's WebSocket connection: attached to the shared stream
    (`handle`) from its READY or RESUMED until it leaves, with the catch-up task while it lags."""

    def __init__(self, gw: LocalPlatform, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.gw = gw
        self.ws = ws
        self.transport = request.transport
        self.number = next(_numbers)
        self.name = f"{request.remote}#{self.number}"
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.name = f"{peer[0]}:{peer[1]}#{self.number}"
        self.handle: int | None = None  # the buffer's handle while attached
        self.session_id: str | None = None
        self.resumed = False
        self.replayed = 0
        self.closing = False
        self.close_code: int | None = None
        self.lagging = False  # live events wait in the buffer for the catch-up task
        self.reason: str | None = None  # why the gateway ended the connection, if it did
        self._catch_up: asyncio.Task[None] | None = None

    # Sending ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> bool:
        transport = self.transport
        if self.closing or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > MAX_UNREAD_BYTES:
            self.abort("it stopped reading (its unread output passed the hard cap)")
            return False
        transport.write(data)
        return True

    def send_entries(self, entries: list[Entry]) -> None:
        if not entries or self.handle is None or self.lagging:
            return
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > HIGH_WATER:
            self.lagging = True
            self.gw.lagged += 1
            self._catch_up = asyncio.get_running_loop().create_task(self._catch_up_loop())
            return
        if self.write(b"".join(dispatch_frame(e) for e in entries)):
            self.gw.buffer.sent(self.handle, entries[-1].seq)

    async def _catch_up_loop(self) -> None:
        """Sends what the client is behind on from the buffer, a chunk each time its unread output is
        low again; ends when it has caught up (live writes resume) or drops it (see the module doc)."""
        loop = asyncio.get_running_loop()
        buffer = self.gw.buffer
        stalled_at = loop.time() + STALL_S
        while not self.closing and self.handle is not None:
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            if transport.get_write_buffer_size() > LOW_WATER:
                if loop.time() > stalled_at:
                    self.abort(f"it did not catch up: over {LOW_WATER // 1024} KiB unread for {STALL_S:g}s")
                    return
                await asyncio.sleep(CATCH_UP_POLL_S)
                continue
            stalled_at = loop.time() + STALL_S
            sent = buffer.sent_of(self.handle) or 0
            behind = buffer.after(sent)
            if behind.lost:
                self.abort(f"it fell {behind.lost} event(s) behind the buffer")
                return
            if not behind.entries:
                self.lagging = False
                return
            chunk = behind.entries[:CATCH_UP_CHUNK]
            transport.write(b"".join(dispatch_frame(e) for e in chunk))
            buffer.sent(self.handle, chunk[-1].seq)

    def abort(self, reason: str | None = None) -> None:
        """Drop without a close frame (the client sees 1006); `reason` is logged when it leaves."""
        if reason is not None and self.reason is None:
            self.reason = reason
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    async def close(self, code: int, reason: str | None = None) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self.reason = reason or close_reason(code)
        try:
            await asyncio.wait_for(
                self.ws.close(code=code, message=close_reason(code).encode(), drain=False), CLOSE_TIMEOUT_S
            )
        except (asyncio.TimeoutError, ConnectionError):
            self.abort()

    # Receiving -------------------------------------------------------------------------------

    async def serve(self) -> None:
        gw = self.gw
        self.write(hello_frame(gw.heartbeat_ms))
        idle_timeout = gw.heartbeat_ms / 1000 * 3
        while not self.closing:
            try:
                msg = await self.ws.receive(timeout=idle_timeout)
            except asyncio.TimeoutError:
                await self.close(Close.SESSION_TIMED_OUT, "no frame for three Hello intervals")
                break
            if msg.type is WSMsgType.TEXT:
                await self.handle_text(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await self.close(Close.INVALID_PAYLOAD)
            elif msg.type is WSMsgType.PING:
                await self.ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                continue
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                if self.close_code is None and self.ws.close_code is not None:
                    self.close_code = self.ws.close_code
                break

    async def handle_text(self, data: str) -> None:
        frame = read_frame(data)
        if isinstance(frame, Close):
            await self.close(frame)
        elif frame.op == Op.HEARTBEAT:
            if self.handle is None:
                await self.close(Close.NOT_AUTHENTICATED)
                return
            # The last seq the client got is `d`; Koishi's adapter-qq sends it as `s` (no `d`).
            self.gw.buffer.confirm(self.handle, frame.d if frame.d is not None else frame.frame.get("s"))
            self.write(HEARTBEAT_ACK_FRAME)  # at once, whatever the upstream link is doing
        elif frame.op == Op.IDENTIFY:
            await self._identify(frame.d)
        else:
            await self._resume(frame.d)

    async def _identify(self, d: Any) -> None:
        gw = self.gw
        if self.handle is not None:
            await self.close(Close.ALREADY_AUTHENTICATED)
            return
        identify = read_identify(d, gw.token_valid)
        if isinstance(identify, Close):
            await self._refuse(identify)
            return
        user = await gw.bot_user()
        if user is None or self.closing:  # the bot's profile is not known yet: the client retries
            await self.close(
                Close.INTERNAL_ERROR, "the bot's profile is not known yet (upstream unreachable)"
            )
            return
        buffer = gw.buffer
        start = buffer.identify_from()
        replay = buffer.after(start)
        self.session_id = gw.sessions.new()
        self.handle = buffer.attach(self.name, start)
        ready = {"version": 1, "session_id": self.session_id, "user": user, "shard": identify.shard}
        self.write(frame_json({"op": Op.DISPATCH, "s": start, "t": "READY", "d": ready}))
        self._started(replay.entries, replay.lost)

    async def _resume(self, d: Any) -> None:
        gw = self.gw
        if self.handle is not None:
            await self.close(Close.ALREADY_AUTHENTICATED)
            return
        resume = read_resume(d, gw.token_valid)
        if isinstance(resume, Close):
            await self._refuse(resume)
            return
        buffer = gw.buffer
        session_id, seq = resume.session_id, resume.seq
        # A session of the worker this one replaced: continue its numbering if nobody has seen ours.
        taken_over = (
            not gw.sessions.known(session_id) and gw.sessions.signed(session_id) and buffer.adopt(seq)
        )
        if taken_over:
            gw.sessions.remember(session_id)
        # A session this bot's workers never issued, or events after `seq` gone: Identify anew.
        if not gw.sessions.known(session_id) or not buffer.can_resume(seq):
            self.write(INVALID_SESSION_FRAME)
            await self.close(Close.INVALID_SESSION, "this session cannot be resumed here: Identify anew")
            return
        self.session_id = session_id
        self.resumed = True
        replay = buffer.after(seq)
        self.handle = buffer.attach(self.name, seq)
        self._started(replay.entries, replay.lost)
        last = replay.entries[-1].seq if replay.entries else seq
        self.write(frame_json({"op": Op.DISPATCH, "s": last, "t": "RESUMED", "d": ""}))

    async def _refuse(self, code: Close) -> None:
        await self.close(code, "wrong token" if code == Close.AUTHENTICATION_FAILED else None)

    def _started(self, entries: list[Entry], lost: int) -> None:
        self.send_entries(entries)
        self.replayed = len(entries)
        self.gw.attached(self)
        what = "Resumed" if self.resumed else "Identified"
        missed = f", {lost} missed event(s) had left the buffer" if lost else ""
        log_event(
            log,
            LogEvent.PROXY_CLIENT_CONNECTED,
            f"Local gateway client {self.name}: {what} local session {self.session_id}, "
            f"{len(entries)} buffered event(s) replayed{missed}",
            client=self.name,
            session_id=self.session_id,
            resumed=self.resumed,
            replayed=len(entries),
            lost=lost,
        )

    def detach(self) -> None:
        self.closing = True
        if self._catch_up is not None:
            self._catch_up.cancel()
        mark = None
        if self.handle is not None:
            mark = self.gw.buffer.detach(self.handle)
            self.handle = None
            self.gw.detached(self)
        elif self.reason is None:
            return  # it left before identifying (or only looked): nothing to say
        code = self.close_code if self.close_code is not None else self.ws.close_code
        why = f": {self.reason}" if self.reason else ""
        log_event(
            log,
            LogEvent.PROXY_CLIENT_CLOSED,
            f"Local gateway client {self.name} left (local session {self.session_id}, close {code}){why}",
            level=logging.WARNING if self.reason and code != Close.SESSION_TIMED_OUT else logging.INFO,
            client=self.name,
            session_id=self.session_id,
            resumed=self.resumed,
            replayed=self.replayed,
            close_code=code,
            reason=self.reason,
            sent=mark.sent if mark else None,
            confirmed=mark.confirmed if mark else None,
        )


async def serve_client(gw: LocalPlatform, request: web.Request) -> web.StreamResponse:
    """GET /websocket: one framework's connection, served until it leaves."""
    ws = web.WebSocketResponse(autoping=False, compress=False, timeout=CLOSE_TIMEOUT_S, max_msg_size=1 << 20)
    if not ws.can_prepare(request).ok:
        return web.Response(status=400, text="websocket upgrade required")
    await ws.prepare(request)
    conn = ClientConnection(gw, ws, request)
    gw.connections.add(conn)
    try:
        await conn.serve()
    except ConnectionError:
        pass
    finally:
        conn.detach()
        gw.connections.discard(conn)
        if not ws.closed and conn.transport is not None:
            conn.transport.abort()
    return ws
