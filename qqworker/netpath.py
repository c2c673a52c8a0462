"""Did an attempt fail here, before the platform (no route, link down, DNS down, no TCP answer)? And
is the path back yet?

The backoff exists to spare the platform. A failure that never reached it costs it nothing, so for
those the worker probes the path (a bare TCP connect to the host it needs: no TLS, no Identify)
every PROBE_INTERVAL_S while it sleeps, and cuts the sleep short as soon as one connects. Remote
failures (refused, HTTP errors, close codes, timeouts after TCP connected) keep the full backoff.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from qqworker.deadlines import within
from qqworker.link import NoPathTimeout, tcp_connect

PROBE_INTERVAL_S = 1.0
DEAD_LINK = "dead_link"  # the connection went silent or was lost without a close frame
PROBE_TIMEOUT_S = 1.0
# Our own side has no way out: the kernel says so at once, nothing was sent.
LOCAL_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.EADDRNOTAVAIL}
)
# The resolver itself cannot be reached ("temporary failure"); a name that does not exist
# (EAI_NONAME) is a wrong host, not a network that is down.
DNS_DOWN = frozenset({socket.EAI_AGAIN})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (aiohttp's os_error, __cause__, __context__ even when raised
    `from None`), without looping."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "os_error", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)


def local_failure(exc: BaseException) -> str | None:
    """Why the failure is ours ("no_route", "dns_down", "no_tcp_answer"), or None for a remote one."""
    for current in _chain(exc):
        if isinstance(current, NoPathTimeout):
            return "no_tcp_answer"
        if isinstance(current, socket.gaierror):
            return "dns_down" if current.errno in DNS_DOWN else None
        if isinstance(current, OSError) and current.errno in LOCAL_ERRNOS:
            return "no_route"
        if isinstance(current, ConnectionError):  # refused, reset: the other side answered
            return None
    return None


def probe_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme in ("https", "wss") else 80
    return parts.hostname or "", parts.port or default


async def tcp_probe(host: str, port: int) -> None:
    """Raises unless a TCP connection (or a refusal: the path works) to host:port happens within
    PROBE_TIMEOUT_S; the connection is closed at once."""
    try:
        sock = await within(PROBE_TIMEOUT_S, tcp_connect(host, port))
    except ConnectionRefusedError:
        return  # an RST came back: the network is there, the service is the attempt's business
    sock.close()


@dataclass(frozen=True)
class ProbeReport:
    back: bool  # a probe connected before the delay was up
    probes: int
    failed: int
    waited_s: float
    last_error: str


async def wait_for_path(
    delay: float,
    probe: Callable[[], Awaitable[None]],
    *,
    interval: float = PROBE_INTERVAL_S,
    down_first: bool = False,
) -> ProbeReport:
    """Sleeps `delay`, probing every `interval` (the first one after `interval`: the attempt that just
    failed was the first look); returns early when a probe succeeds. With `down_first` (the link went
    silent: the path may be fine and the server the problem), only a success after a failed probe ends
    the sleep early: the full backoff stands unless the path was seen down and then back."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + delay
    probes = failed = 0
    error = ""
    while True:
        now = loop.time()
        next_probe = start + (probes + 1) * interval
        if next_probe >= end:
            await asyncio.sleep(max(0.0, end - now))
            return ProbeReport(False, probes, failed, loop.time() - start, error)
        await asyncio.sleep(max(0.0, next_probe - now))
        probes += 1
        try:
            await within(max(0.01, end - loop.time()), probe())
        except (OSError, asyncio.TimeoutError) as exc:  # TimeoutError: an OSError on 3.11, not 3.10
            failed += 1
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if loop.time() >= end:
                return ProbeReport(False, probes, failed, loop.time() - start, error)
            continue
        if down_first and not failed:
            continue
        return ProbeReport(True, probes, failed, loop.time() - start, error)
