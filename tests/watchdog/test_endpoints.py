"""The watchdog's HTTP server over real loopback sockets, driven by a selector loop like the supervisor's:
answers, errors, and that slow, silent, oversized or too many clients never hold the loop."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from qqworker.contract.settings import ConfigError
from watchdog.endpoints import (
    MAX_CLIENTS,
    MAX_REQUEST,
    HttpServer,
    Response,
    parse_address,
    parse_request,
    request_header,
)


def test_parse_address() -> None:
    assert parse_address("9108") == ("127.0.0.1", 9108)
    assert parse_address("0.0.0.0:9108") == ("0.0.0.0", 9108)
    assert parse_address("[::1]:9108") == ("::1", 9108)
    assert parse_address(":9108") == ("127.0.0.1", 9108)
    for bad in ("", "host:", "x:70000", "nine"):
        with pytest.raises(ConfigError, match="http"):
            parse_address(bad)


def test_parse_request() -> None:
    assert parse_request(b"GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == ("GET", "/readyz")
    assert parse_request(b"GET /readyz HTTP/1.1\r\nHost: a\r\n") is None  # not complete yet
    assert parse_request(b"GET /x HTTP/1.0\n\n") == ("GET", "/x")
    assert parse_request(b"garbage\r\n\r\n") == 400
    assert parse_request(b"GET /" + b"a" * MAX_REQUEST) == 431


def test_request_header() -> None:
    head = b"GET /metrics HTTP/1.1\r\nHost: a\r\naccept:  application/openmetrics-text;version=1.0.0 \r\n\r\n"
    assert request_header(head, "Accept") == "application/openmetrics-text;version=1.0.0"
    assert request_header(b"GET /x HTTP/1.0\nAccept: text/plain\n\nAccept: no", "accept") == "text/plain"
    assert request_header(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\nAccept: body", "Accept") == ""
    assert request_header(b"GET /x HTTP/1.1\r\nAccept-Language: en\r\n\r\n", "Accept") == ""


class Loop:
    """The supervisor's situation: one thread turning a selector, with a tick between turns."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.turns = 0
        self.stop = threading.Event()
        routes = {
            "/ok": lambda: Response(200, b'{"ok":true}'),
            "/big": lambda: Response(200, b"x" * 3_000_000, "text/plain"),
        }
        self.server = HttpServer(("127.0.0.1", 0), self.sel, routes, time.monotonic, timeout=1.0)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.02):
                key.data()
            self.server.tick(time.monotonic())
            self.turns += 1

    def url_addr(self) -> tuple[str, int]:
        return self.server.address

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.close()
        self.sel.close()


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


def request(addr: tuple[str, int], raw: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(addr, timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_answers_and_errors(loop: Loop) -> None:
    addr = loop.url_addr()
    answer = request(addr, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 11" in head and body == b'{"ok":true}'
    assert b"Connection: close" in head
    assert request(addr, b"HEAD /ok HTTP/1.1\r\n\r\n").endswith(b"\r\n\r\n")
    assert request(addr, b"GET /nope HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert request(addr, b"POST /ok HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert request(addr, b"hello\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert request(addr, b"GET /" + b"a" * (MAX_REQUEST + 10)).startswith(b"HTTP/1.1 431")
    big = request(addr, b"GET /big HTTP/1.1\r\n\r\n")
    assert big.endswith(b"x" * 1000) and len(big) > 3_000_000  # sent across many writable turns


def test_hostile_clients_never_hold_the_loop(loop: Loop) -> None:
    addr = loop.url_addr()
    silent = [socket.create_connection(addr) for _ in range(MAX_CLIENTS + 4)]  # more than allowed
    slow = socket.create_connection(addr)
    slow.sendall(b"GET /ok HT")  # half a request, then nothing
    reader = socket.create_connection(addr)  # asks for a big answer and never reads it
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.sendall(b"GET /big HTTP/1.1\r\n\r\n")
    try:
        turns = loop.turns
        time.sleep(0.3)
        assert loop.turns - turns >= 5, "the loop stopped turning"
        # Still serving the well-behaved, and never more than MAX_CLIENTS connections held.
        assert request(addr, b"GET /ok HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200")
        assert len(loop.server.clients) <= MAX_CLIENTS
        # Past the client timeout every one of them is closed.
        deadline = time.monotonic() + 5
        while loop.server.clients and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not loop.server.clients
        slow.settimeout(1)
        assert slow.recv(100) == b""
    finally:
        for sock in [*silent, slow, reader]:
            sock.close()


def test_close_releases_the_port() -> None:
    sel = selectors.DefaultSelector()
    server = HttpServer(("127.0.0.1", 0), sel, {}, time.monotonic)
    addr = server.address
    server.close()
    with pytest.raises(OSError):
        socket.create_connection(addr, timeout=1)
    sel.close()
