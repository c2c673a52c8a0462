"""One WebSocket client connection: websockets' sans-I/O `ClientProtocol` under an asyncio transport.

websockets' asyncio layer queues each message for an awaited `recv()`. The gateway needs none of
that: what to do with a frame is decided at once by `protocol.GatewayProtocol`, so here each
message goes straight from `data_received` to a callback, and sends are plain writes. The gateway
only ever sends small frames, so a write is never awaited; a link that stops draining is caught
by the heartbeat ACK check like any other dead link. Only the two handshakes wait, each under a
deadline: `open_link` for the opening one and `Link.shut` for the closing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from qqworker.deadlines import within

CLOSE_TIMEOUT_S = 1.0  # the closing handshake; a half-open link must not hold the loop
TCP_TRY_S = 2.0  # one SYN try; a fresh one after this, so a path that comes back is used at once
# The kernel's own backstop on the gateway socket (the WebSocket pings of liveness.py notice first):
# an idle link is probed after 5 s, and data left unacknowledged for 30 s aborts the connection.
TCP_KEEPALIVE = (5, 3, 3)  # TCP_KEEPIDLE s, TCP_KEEPINTVL s, TCP_KEEPCNT
TCP_USER_TIMEOUT_MS = 30_000

OnMessage = Callable[[bytes | bytearray, bool], None]  # (payload, is_text)


class Link(asyncio.Protocol):
    """The transport's callbacks feed the protocol; whatever it wants sent is written at once.

    Messages are handed to `on_message` (held until `listen()` is called, since the server's first
    frame may arrive in the same read as the handshake response); `on_close` is called once, when
    the WebSocket leaves the OPEN state (a close frame either way, a protocol error, or the TCP
    connection lost)."""

    def __init__(self, protocol: ClientProtocol) -> None:
        self.ws = protocol
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.handshake_done: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self._held: list[tuple[bytes | bytearray, bool]] = []
        self._on_message: OnMessage = lambda data, text: self._held.append((data, text))
        self._on_close: Callable[[], None] | None = None
        self._close_reported = False
        self._fragments: list[bytes | bytearray] = []
        self._fragmented_text = False
        self._on_pong: Callable[[], None] = lambda: None
        self.lost_error: Exception | None = None  # why the TCP connection ended, when the kernel said

    def listen(
        self, on_message: OnMessage, on_close: Callable[[], None], on_pong: Callable[[], None] | None = None
    ) -> None:
        self._on_message, self._on_close = on_message, on_close
        if on_pong is not None:
            self._on_pong = on_pong
        held, self._held = self._held, []
        for data, text in held:
            on_message(data, text)
        self._report_close()

    # What the WebSocket said ---------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self.ws.state is State.OPEN

    @property
    def close_sent(self) -> Close | None:
        return self.ws.close_sent

    @property
    def close_rcvd(self) -> Close | None:
        return self.ws.close_rcvd

    # Sending (never awaited) --------------------------------------------------------------------

    def send_text(self, text: str) -> bool:
        """Writes one text message; False when the link is no longer open (nothing is sent)."""
        if self.ws.state is not State.OPEN:
            return False
        self.ws.send_text(text.encode())
        self._flush()
        return True

    def send_ping(self) -> bool:
        """Writes one WebSocket ping (any pong answers it: `on_pong`); False when no longer open."""
        if self.ws.state is not State.OPEN:
            return False
        self.ws.send_ping(os.urandom(4))
        self._flush()
        return True

    def close(self, code: int) -> None:
        """Starts the closing handshake (once; later calls do nothing)."""
        if self.ws.state is State.OPEN:
            self.ws.send_close(code)
            self._flush()

    async def shut(self, code: int) -> None:
        """Closes with `code` and waits for the TCP connection to end, at most CLOSE_TIMEOUT_S;
        then aborts it."""
        if self.transport is None:
            return
        self.close(code)
        if not self.lost.done():
            try:
                await within(CLOSE_TIMEOUT_S, asyncio.shield(self.lost))
            except asyncio.TimeoutError:
                self.transport.abort()  # connection_lost follows on the next loop iteration

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():  # the protocol's "end of stream": half-close without TLS
                with contextlib.suppress(OSError, RuntimeError):
                    transport.write_eof()
            else:
                transport.close()

    # asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            set_tcp_liveness(sock)

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()  # answers to pings and close frames
        for event in events:
            if type(event) is Frame:
                if event.fin and event.opcode is Opcode.TEXT:  # nearly every frame: one call less
                    self._on_message(event.data, True)
                else:
                    self._frame(event)
            elif isinstance(event, Response) and not self.handshake_done.done():
                self.handshake_done.set_result(None)
        if ws.state is not State.OPEN and ws.state is not State.CONNECTING:
            self._report_close()

    def eof_received(self) -> None:
        self.ws.receive_eof()
        self.ws.events_received()
        self._flush()
        # None: the transport closes itself (the WebSocket never writes after the peer's EOF).

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_error = exc
        self.ws.receive_eof()  # idempotent; the protocol is CLOSED from here on
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)
        self.lost.set_result(None)
        self._report_close()

    # Messages ------------------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._on_message(frame.data, opcode is Opcode.TEXT)
            else:
                self._fragments = [frame.data]
                self._fragmented_text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:  # the protocol has checked that a message is under way
            self._fragments.append(frame.data)
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), []
                self._on_message(data, self._fragmented_text)
        elif opcode is Opcode.PONG:
            self._on_pong()
        # PING and CLOSE: the protocol has already answered them.

    def _report_close(self) -> None:
        if self._on_close is None or self._close_reported or self.ws.state is State.OPEN:
            return
        self._close_reported = True
        self._on_close()


def set_tcp_liveness(sock: socket.socket) -> None:
    """TCP keepalive and TCP_USER_TIMEOUT where the platform has them (Linux has all four)."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in zip(("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"), TCP_KEEPALIVE, strict=True):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS))
    for level, option, value in options:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)


async def tcp_connect(host: str, port: int) -> socket.socket:
    """A connected TCP socket. Each address gets short SYN tries (TCP_TRY_S) over and over, rather than
    one long connect: the kernel backs its SYN retransmits off (1, 2, 4, 8 s), so a path that comes
    back mid-attempt would wait for the next one. The caller's deadline ends the tries; when every
    address fails at once (unreachable, refused) the first error is raised."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    while True:
        errors: list[OSError] = []
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await within(TCP_TRY_S, loop.sock_connect(sock, address))
            except asyncio.TimeoutError:
                sock.close()
                continue
            except OSError as exc:
                sock.close()
                errors.append(exc)
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        if len(errors) == len(infos):
            raise errors[0]


class NoPathTimeout(TimeoutError):
    """The attempt's time ran out before TCP connected: nothing reached the server (a black hole)."""


async def open_link(url: str, timeout: float, *, max_size: int, user_agent: str) -> Link:
    """TCP (+ TLS for wss) and the WebSocket opening handshake within `timeout`; raises on any
    failure (OSError, TimeoutError, or websockets' InvalidHandshake with the server's answer)."""
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, extensions=enable_client_permessage_deflate(None), max_size=max_size)
    loop = asyncio.get_running_loop()
    opened: list[Link] = []
    tcp_connected = False

    async def tcp() -> Link:
        nonlocal tcp_connected
        sock = await tcp_connect(uri.host, uri.port)
        tcp_connected = True
        try:
            _, made = await loop.create_connection(
                lambda: Link(protocol),
                sock=sock,
                ssl=True if uri.secure else None,
                server_hostname=uri.host if uri.secure else None,
            )
        except BaseException:
            sock.close()
            raise
        return made

    async def handshake() -> Link:
        link = await tcp()
        opened.append(link)
        request = protocol.connect()
        request.headers["User-Agent"] = user_agent
        protocol.send_request(request)
        link._flush()
        await link.handshake_done
        return link

    try:
        link = await within(timeout, handshake())
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        if protocol.state is State.CONNECTING:  # no answer, yet no error: never let that through
            raise ConnectionError("the connection closed during the WebSocket handshake")
        # Past the handshake the link may already be closing (a close frame in the same read):
        # that is the server's answer, and listen() reports it.
    except BaseException as exc:
        for link in opened:
            link.abort()
        if isinstance(exc, asyncio.TimeoutError) and not tcp_connected:
            raise NoPathTimeout(f"no TCP connection to {uri.host}:{uri.port} within {timeout:g}s") from exc
        raise
    return link
