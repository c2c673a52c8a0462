"""One gateway connection: the thin I/O shell around `protocol.GatewayProtocol`.

Opens the WebSocket (`link.open_link`, bounded by the attempt's deadline), then feeds every message
the link receives to the protocol object and carries out what it returns, synchronously, in the
link's `data_received`. `drive` itself only waits for the next timer: the next heartbeat or, before
READY, the attempt's deadline (`next_wakeup()`, never more than MAX_WAIT_S away), so a silent link
always comes back to `poll()`, which sends heartbeats and WebSocket pings (liveness.py) and declares
a link dead on missed ACKs, an unanswered ping or receive silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event
from qqworker.contract.settings import check_url
from qqworker.deadlines import deadline_scope
from qqworker.link import Link
from qqworker.link import open_link as open_websocket
from qqworker.liveness import PingsIgnored, SendPing
from qqworker.protocol import (
    AckTimeout,
    ConnPhase,
    Disconnect,
    Dispatch,
    Established,
    FrameRejected,
    GatewayProtocol,
    Output,
    Send,
)

log = logging.getLogger("qqworker.gateway")

MAX_FRAME_BYTES = 1 << 20  # the default --max-frame-bytes: a larger frame closes the link (1009)
MAX_WAIT_S = 60.0  # upper bound on a single wait even if no timer is due
TOO_BIG = 1009
USER_AGENT = "qqwatchdog"
STOPPING = "the worker is stopping"  # why a connection ends when the task driving it is cancelled


@dataclass
class Callbacks:
    """What the worker wants to hear about. All are called on the receive path: keep them instant."""

    established: Callable[[Established], None]
    dispatch: Callable[[Dispatch], None]
    # After every frame but an event (Hello, ACK, READY...): the last ACK time may have moved.
    control: Callable[[GatewayProtocol], None]
    # The server answers no WebSocket ping (called once per connection at most).
    pings_ignored: Callable[[PingsIgnored], None] = lambda out: None


def wake_at(conn: GatewayProtocol, deadline: float, now: float) -> float:
    """Until when the next recv() may wait: the next heartbeat or, before READY, the attempt's
    deadline, whichever comes first; never later than MAX_WAIT_S from now."""
    limit = now + MAX_WAIT_S
    wake = conn.next_wakeup()
    if wake is not None and wake < limit:
        limit = wake
    if conn.phase is not ConnPhase.ESTABLISHED and deadline < limit:
        limit = deadline
    return limit


async def open_link(url: str, timeout: float, *, max_size: int = MAX_FRAME_BYTES) -> Link:
    """TCP + TLS + WebSocket handshake within `timeout`; raises on any failure. No proxy from the
    environment, like the REST client (aiohttp's default): one predictable path."""
    check_url(url, "gateway url")
    return await open_websocket(url, max(0.01, timeout), max_size=max_size, user_agent=USER_AGENT)


async def drive(link: Link, conn: GatewayProtocol, callbacks: Callbacks, *, deadline: float) -> Disconnect:
    """Runs one open connection to its end and returns why it ended (it is closed on return)."""
    driver = _Driver(link, conn, callbacks)
    try:
        return await driver.run(deadline)
    finally:
        # Done, or cancelled (a stop): close, waiting at most the link's close timeout.
        ended = conn.end(STOPPING)  # the decision already taken, if any
        if driver.link_dead:
            link.abort()  # a closing handshake over a dead link would only wait out its timeout
        else:
            await link.shut(ended.our_close_code)


class _Driver:
    """The I/O side of one connection: feeds each message the `Link` delivers to the
    `GatewayProtocol` and carries out its outputs at once (sends, callbacks, log lines), runs its
    timers between messages, and closes the link with the code of the protocol's decision."""

    def __init__(self, link: Link, conn: GatewayProtocol, callbacks: Callbacks) -> None:
        self.link = link
        self.conn = conn
        self.callbacks = callbacks
        self.loop = asyncio.get_running_loop()
        self.decision: Disconnect | None = None
        self.link_dead = False  # the protocol declared the link dead (AckTimeout)
        self._wake = asyncio.Event()  # set when the next wake-up may have come sooner, or at the end

    async def run(self, deadline: float) -> Disconnect:
        conn = self.conn
        self.link.listen(self._on_message, self._on_close, self._on_pong)
        while self.decision is None:
            now = self.loop.time()
            self._carry_out(conn.poll(now))
            if self.decision is not None:
                break
            if conn.phase is not ConnPhase.ESTABLISHED and now >= deadline:
                waited = "Hello" if conn.phase is ConnPhase.AWAIT_HELLO else "READY"
                self._settle(conn.end(f"no {waited} in time"))
                break
            self._wake.clear()
            try:
                async with deadline_scope(wake_at(conn, deadline, now)):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                pass  # a timer is due (or the attempt's deadline passed): poll() decides
        return self.decision

    def _on_message(self, data: bytes | bytearray, text: bool) -> None:
        conn = self.conn
        outputs = conn.receive_text(data, self.loop.time()) if text else conn.receive_binary(data)
        if len(outputs) == 1 and type(outputs[0]) is Dispatch:
            self.callbacks.dispatch(outputs[0])  # the common case
            return
        self.callbacks.control(conn)
        self._carry_out(outputs)
        # Once established only poll() moves the heartbeat timer: only a handshake frame can bring
        # the next wake-up forward.
        if conn.phase is not ConnPhase.ESTABLISHED:
            self._wake.set()

    def _on_pong(self) -> None:
        self.conn.receive_pong(self.loop.time())

    def _on_close(self) -> None:
        self._settle(_closed(self.conn, self.link))

    def _settle(self, decision: Disconnect) -> None:
        if self.decision is None:
            self.decision = decision
            self.link.close(decision.our_close_code)
            self._wake.set()

    def _carry_out(self, outputs: list[Output]) -> None:
        conn, callbacks = self.conn, self.callbacks
        for out in outputs:
            if self.decision is not None:
                return  # the connection is over: nothing more is sent or handed on
            if isinstance(out, Dispatch):
                callbacks.dispatch(out)
            elif isinstance(out, Send):
                if not self.link.send_text(out.text()):
                    self._settle(_closed(conn, self.link))
            elif isinstance(out, Established):
                callbacks.established(out)
                self._wake.set()  # the liveness timers start now: the wait must be recomputed
            elif isinstance(out, FrameRejected):
                log_event(
                    log,
                    LogEvent.FRAME_REJECTED,
                    f"Ignored a gateway frame: {out.reason}",
                    level=logging.WARNING,
                    reason=out.reason,
                    excerpt=out.excerpt,
                )
            elif isinstance(out, SendPing):
                if not self.link.send_ping():
                    self._settle(_closed(conn, self.link))
            elif isinstance(out, AckTimeout):
                self.link_dead = True
                log_event(
                    log,
                    LogEvent.ACK_TIMEOUT,
                    f"{_evidence_text(out)}: the link is dead, dropping it",
                    level=logging.WARNING,
                    missed=out.missed,
                    evidence=out.evidence,
                    silent_s=None if out.silent_s is None else round(out.silent_s, 3),
                    limit_s=None if out.limit_s is None else round(out.limit_s, 3),
                )
            elif isinstance(out, PingsIgnored):
                callbacks.pings_ignored(out)
            elif isinstance(out, Disconnect):
                self._settle(out)


def _evidence_text(out: AckTimeout) -> str:
    silent = "" if out.silent_s is None else f"nothing received for {out.silent_s:.1f}s"
    if out.evidence == "no_pong":
        return f"A WebSocket ping went unanswered ({silent}, limit {out.limit_s:g}s)"
    if out.evidence == "silence":
        return f"The gateway went silent ({silent}, limit {out.limit_s:g}s)"
    return f"{out.missed} heartbeats went unacknowledged ({silent})"


def _closed(conn: GatewayProtocol, link: Link) -> Disconnect:
    """The link left the OPEN state by itself: why, from the close frames sent and received."""
    sent, rcvd = link.close_sent, link.close_rcvd
    if sent is not None and sent.code == TOO_BIG:
        log_event(
            log,
            LogEvent.FRAME_REJECTED,
            f"A gateway frame exceeded the {getattr(link.ws, 'max_message_size', None)}-byte limit; "
            "reconnecting",
            level=logging.WARNING,
            reason="frame too large",
            excerpt="",
        )
        return conn.end("frame too large", code=TOO_BIG)
    if rcvd is not None:
        return conn.end(rcvd.reason, code=rcvd.code)
    if sent is not None:  # the protocol failed the connection (a frame that broke RFC 6455)
        return conn.end(f"WebSocket protocol error: {sent.reason or sent.code}")
    error = link.lost_error
    if error is not None:  # e.g. ETIMEDOUT: TCP keepalive or TCP_USER_TIMEOUT gave up on the peer
        why = f"{type(error).__name__}: {error}"
        return conn.end(f"connection lost without a close frame ({why})")
    return conn.end("connection lost without a close frame")
