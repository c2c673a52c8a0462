"""A tiny HTTP/1.1 server inside the watchdog's own `selectors` loop: /healthz, /readyz, /metrics.

No thread and no asyncio: the listening socket and every connection are non-blocking and registered
in the supervisor's selector, so a request is served between two supervision steps, and nothing a
client does can hold the loop: a request must arrive whole (at most `MAX_REQUEST` bytes) and its
answer be taken within `CLIENT_TIMEOUT_S` of the connection, at most `MAX_CLIENTS` connections are
open at once (the oldest goes when one more comes), and every answer ends with `Connection: close`.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from qqworker.contract.settings import ConfigError, is_loopback_host

__all__ = [
    "MAX_CLIENTS",
    "MAX_REQUEST",
    "HttpServer",
    "Response",
    "build_response",
    "parse_address",
    "parse_request",
    "request_header",
]

MAX_REQUEST = 8192
MAX_CLIENTS = 16
CLIENT_TIMEOUT_S = 5.0
ACCEPT_PER_TURN = 8
DEFAULT_HOST = "127.0.0.1"

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


Route = Callable[[], Response]


def parse_address(value: str) -> tuple[str, int]:
    """`PORT` (loopback) or `HOST:PORT` / `[V6]:PORT`; raises ConfigError."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"http: expected PORT or HOST:PORT, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"http: port out of range in {value!r}")
    return host, port


def parse_request(data: bytes) -> tuple[str, str] | int | None:
    """(method, path) once the head is complete; None: not yet; an int: the error status to answer."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")  # lenient with bare LF, as curl -0 and netcat users send
    if end < 0:
        return 431 if len(data) >= MAX_REQUEST else None
    line = data[: data.find(b"\n")].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return 400
    method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
    path = target.split("?", 1)[0]
    return method, path


def request_header(data: bytes, name: str) -> str:
    """The value of header `name` in a complete request head ("" when absent)."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    wanted = name.lower().encode("latin-1")
    for line in head.split(b"\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == wanted:
            return value.strip().decode("latin-1")
    return ""


def build_response(response: Response, *, head_only: bool = False) -> bytes:
    reason = REASONS.get(response.status, "Unknown")
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    return head if head_only else head + response.body


@dataclass
class _Client:
    sock: socket.socket
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    outbox: memoryview | None = None
    done: bool = False  # answered and shut for writing: reading to the peer's EOF, discarding


class HttpServer:
    def __init__(
        self,
        address: tuple[str, int],
        sel: selectors.BaseSelector,
        routes: dict[str, Route],
        clock: Callable[[], float],
        *,
        timeout: float = CLIENT_TIMEOUT_S,
    ) -> None:
        self.sel = sel
        self.routes = routes
        self.clock = clock
        self.timeout = timeout
        self.clients: dict[int, _Client] = {}  # by fd, in connection order
        self.served = 0
        self.accept = ""  # the Accept header of the request being answered, for a route that negotiates
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(64)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self.loopback = is_loopback_host(host)
        sel.register(self.sock, selectors.EVENT_READ, self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_PER_TURN):
            try:
                conn, _peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of fds, or the peer reset before accept: nothing to serve
                return
            conn.setblocking(False)
            if len(self.clients) >= MAX_CLIENTS:
                self._close(next(iter(self.clients)))
            client = _Client(conn, self.clock() + self.timeout)
            fd = conn.fileno()
            self.clients[fd] = client
            self.sel.register(conn, selectors.EVENT_READ, self._handler(fd))

    def _handler(self, fd: int) -> Callable[[], None]:
        return lambda: self._ready(fd)

    def _ready(self, fd: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        if client.outbox is not None and not client.done:
            self._send(fd, client)
            return
        try:
            data = client.sock.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return
        if client.outbox is not None:
            return  # after the answer (or while it is sent): what else comes is discarded
        client.inbox += data[: MAX_REQUEST - len(client.inbox)]
        parsed = parse_request(bytes(client.inbox))
        if parsed is None:
            return
        if isinstance(parsed, int):
            self._answer(fd, client, Response(parsed, b""))
            return
        method, path = parsed
        route = self.routes.get(path)
        if route is None:
            response = Response(404, b'{"error": "not found"}')
        elif method not in ("GET", "HEAD"):
            response = Response(405, b'{"error": "GET only"}')
        else:
            self.accept = request_header(bytes(client.inbox), "Accept")
            response = route()
        self._answer(fd, client, response, head_only=method == "HEAD")

    def _answer(self, fd: int, client: _Client, response: Response, *, head_only: bool = False) -> None:
        self.served += 1
        client.outbox = memoryview(build_response(response, head_only=head_only))
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(client.sock, selectors.EVENT_WRITE, self._handler(fd))
        self._send(fd, client)

    def _send(self, fd: int, client: _Client) -> None:
        assert client.outbox is not None
        try:
            sent = client.sock.send(client.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            # Closing with unread input would reset the connection and could destroy the answer in
            # flight: shut for writing and read to the client's EOF (bounded by the deadline).
            client.done = True
            try:
                client.sock.shutdown(socket.SHUT_WR)
                self.sel.modify(client.sock, selectors.EVENT_READ, self._handler(fd))
            except (OSError, KeyError, ValueError):
                self._close(fd)

    def _close(self, fd: int) -> None:
        client = self.clients.pop(fd, None)
        if client is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(client.sock)
        client.sock.close()

    def tick(self, now: float) -> None:
        """Closes the connections past their deadline (slow or silent clients)."""
        for fd in [fd for fd, c in self.clients.items() if now >= c.deadline]:
            self._close(fd)

    def next_deadline(self) -> float | None:
        return min((c.deadline for c in self.clients.values()), default=None)

    def close(self) -> None:
        for fd in list(self.clients):
            self._close(fd)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(self.sock)
        self.sock.close()
