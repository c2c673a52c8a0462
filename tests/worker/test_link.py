"""`qqworker.link`: websockets' sans-I/O client under an asyncio transport, against real loopback
servers: a websockets server for the well-behaved cases, a raw TCP server for what it would never send."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.utils import accept_key

from qqworker import link as link_module
from qqworker.link import Link, open_link

OPEN_TIMEOUT_S = 2.0


async def connect(url: str, timeout: float = OPEN_TIMEOUT_S) -> Link:
    return await open_link(url, timeout, max_size=1 << 20, user_agent="qqwatchdog-test")


class Heard:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bool]] = []
        self.closed = asyncio.Event()
        self.got = asyncio.Event()

    def message(self, data: bytes | bytearray, text: bool) -> None:
        self.messages.append((bytes(data), text))
        self.got.set()

    def close(self) -> None:
        self.closed.set()

    async def until(self, count: int) -> None:
        while len(self.messages) < count:
            self.got.clear()
            await asyncio.wait_for(self.got.wait(), 5)


@pytest.fixture
async def servers() -> AsyncIterator[list[Any]]:
    """Servers a test started (websockets' or asyncio's: both close the same way), closed after it."""
    started: list[Any] = []
    yield started
    for srv in started:
        srv.close()
        await srv.wait_closed()


def url_of(srv: Any) -> str:
    return f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/websocket"


@pytest.fixture
def ws_server(servers: list[Any]) -> Callable[..., Awaitable[str]]:
    async def start(handler: Callable[[ServerConnection], Awaitable[None]], **kwargs: Any) -> str:
        servers.append(srv := await serve(handler, "127.0.0.1", 0, compression=None, **kwargs))
        return url_of(srv)

    return start


RawScript = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def raw_server(servers: list[Any]) -> Callable[[RawScript], Awaitable[str]]:
    """A TCP server that speaks raw bytes: for handshakes and frames a real server never sends."""

    async def start(script: RawScript) -> str:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await script(reader, writer)
            finally:
                writer.close()

        servers.append(srv := await asyncio.start_server(run, "127.0.0.1", 0))
        return url_of(srv)

    return start


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, then: bytes = b"") -> None:
    """Reads the client's upgrade request and answers 101, followed by `then` in the same write."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    )
    writer.write(response.encode() + then)
    await writer.drain()


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One unmasked server frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    return struct.pack("!BB", (0x80 if fin else 0) | opcode, len(payload)) + payload


async def test_a_message_sent_with_the_handshake_response_is_held_until_listen(raw_server: Any) -> None:
    async def hello_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer, then=frame(0x1, b'{"op":10}'))
        await reader.read()  # until the client goes

    link = await connect(await raw_server(hello_at_once))
    heard = Heard()
    link.listen(heard.message, heard.close)
    assert heard.messages == [(b'{"op":10}', True)]
    await link.shut(1000)


async def test_text_binary_and_fragmented_messages_arrive_whole(ws_server: Any) -> None:
    async def talk(ws: ServerConnection) -> None:
        await ws.send("one")
        await ws.send(b"\x00\x01")
        await ws.send(["fr", "ag", "mented"])  # three frames: TEXT, CONT, CONT(fin)
        await ws.wait_closed()

    link = await connect(await ws_server(talk))
    heard = Heard()
    link.listen(heard.message, heard.close)
    await heard.until(3)
    assert heard.messages == [(b"one", True), (b"\x00\x01", False), (b"fragmented", True)]
    await link.shut(1000)


async def test_pings_are_answered_and_sends_arrive(ws_server: Any) -> None:
    received: list[Any] = []

    async def pinger(ws: ServerConnection) -> None:
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)
        received.append(await asyncio.wait_for(ws.recv(), 5))
        await ws.send("done")
        await ws.wait_closed()

    link = await connect(await ws_server(pinger))
    heard = Heard()
    link.listen(heard.message, heard.close)
    assert link.send_text('{"op":1,"d":null}')
    await heard.until(1)
    assert received == ['{"op":1,"d":null}']
    await link.shut(1000)


async def test_a_close_from_the_server_is_reported_once_with_its_code(ws_server: Any) -> None:
    async def closer(ws: ServerConnection) -> None:
        await ws.close(4914, "bot delisted")

    link = await connect(await ws_server(closer))
    heard = Heard()
    link.listen(heard.message, heard.close)
    await asyncio.wait_for(heard.closed.wait(), 5)
    assert link.close_rcvd is not None and link.close_rcvd.code == 4914
    assert link.close_rcvd.reason == "bot delisted"
    assert not link.open and not link.send_text("late"), "nothing is sent once closing"
    await asyncio.wait_for(link.shut(1000), 5)
    assert link.lost.done()


async def test_a_frame_that_breaks_rfc6455_fails_the_link_with_1002(raw_server: Any) -> None:
    async def reserved_opcode(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer, then=frame(0x3, b"?"))
        await reader.read()

    link = await connect(await raw_server(reserved_opcode))
    heard = Heard()
    link.listen(heard.message, heard.close)
    await asyncio.wait_for(heard.closed.wait(), 5)
    assert link.close_sent is not None and link.close_sent.code == 1002
    assert heard.messages == []
    await asyncio.wait_for(link.shut(1000), 5)


async def test_a_refused_upgrade_raises_with_the_status(ws_server: Any) -> None:
    def refuse(connection: ServerConnection, request: Any) -> Response:
        return Response(503, "Service Unavailable", Headers(), b"busy\n")

    url = await ws_server(lambda ws: ws.wait_closed(), process_request=refuse)
    with pytest.raises(InvalidStatus) as caught:
        await connect(url)
    assert caught.value.response.status_code == 503


async def test_a_server_that_never_answers_the_upgrade_times_out_and_is_let_go(raw_server: Any) -> None:
    gone = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read()  # returns when the client drops the connection
        gone.set()

    url = await raw_server(mute)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.TimeoutError):
        await connect(url, timeout=0.3)
    assert loop.time() - started < 2
    await asyncio.wait_for(gone.wait(), 5)  # the half-made connection was aborted, not leaked


async def test_shut_gives_up_on_a_peer_that_never_closes(
    raw_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_module, "CLOSE_TIMEOUT_S", 0.3)

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        await asyncio.sleep(30)  # reads nothing, closes nothing

    link = await connect(await raw_server(deaf))
    link.listen(Heard().message, lambda: None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await link.shut(4000)
    await asyncio.wait_for(link.lost, 1)
    assert loop.time() - started < 1.5
    assert link.close_sent is not None and link.close_sent.code == 4000


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for localhost (openssl), trusted by nothing unless a test says so."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


async def test_wss_verifies_the_certificate(
    ws_server: Any, tls_files: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def hello(ws: ServerConnection) -> None:
        await ws.send('{"op":10}')
        await ws.wait_closed()

    url = (await ws_server(hello, ssl=context)).replace("ws://127.0.0.1", "wss://localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(url)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # now the test's CA is the one trusted
    link = await connect(url)
    heard = Heard()
    link.listen(heard.message, heard.close)
    await heard.until(1)
    assert heard.messages == [(b'{"op":10}', True)]
    await link.shut(1000)
