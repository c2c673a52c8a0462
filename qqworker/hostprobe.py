"""The I/O side of host agility: what kind of failure an exception is, and whether other names resolve.

`hosts.HostRing` decides; this module only turns what aiohttp and the resolver say into a `Failure`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

import aiohttp

from qqworker.deadlines import within
from qqworker.hosts import Failure, FailureKind

RESOLVE_TIMEOUT_S = 2.0
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: a valid certificate,
# but for another name. Anything else (expired, untrusted) is not a sign of a moved host.
NAME_MISMATCH = frozenset({62, 64})
# "No such name" answers; EAI_AGAIN (the resolver did not answer) is a network failure.
NO_SUCH_NAME = frozenset(
    code for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if code
)


def _causes(exc: BaseException | None) -> Iterable[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__


def classify(exc: BaseException, status: int | None = None) -> Failure:
    """A failed token or discovery request as a `Failure` (`status`: the HTTP answer, if any).
    A NAME failure comes back with `others_resolve` False: `name_failure` fills it in."""
    if status is not None:
        return Failure(FailureKind.HTTP, status=status)
    for cause in _causes(exc):
        if isinstance(cause, aiohttp.ClientConnectorCertificateError):
            cause = cause.certificate_error  # it is an SSLCertVerificationError too, without the code
        if isinstance(cause, ssl.SSLCertVerificationError):
            if getattr(cause, "verify_code", None) in NAME_MISMATCH:
                return Failure(FailureKind.TLS_NAME)
            return Failure(FailureKind.NETWORK)
        if isinstance(cause, aiohttp.ClientConnectorDNSError):
            cause = cause.os_error
        if isinstance(cause, socket.gaierror) and cause.errno in NO_SUCH_NAME:
            return Failure(FailureKind.NAME)
    return Failure(FailureKind.NETWORK)


async def any_resolves(urls: Iterable[str], timeout_s: float = RESOLVE_TIMEOUT_S) -> bool:
    """Does at least one of these URLs' host names resolve (within `timeout_s` in all)?"""
    loop = asyncio.get_running_loop()
    hosts = {urlsplit(url).hostname for url in urls} - {None}
    if not hosts:
        return False

    async def one(host: str) -> bool:
        try:
            await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return False
        return True

    try:
        results = await within(timeout_s, asyncio.gather(*(one(h) for h in hosts if h)))
    except asyncio.TimeoutError:
        return False
    return any(results)


async def name_failure(
    failure: Failure, others: Iterable[str], timeout_s: float = RESOLVE_TIMEOUT_S
) -> Failure:
    """A NAME failure is "wrong host" only while another configured name still resolves."""
    if failure.kind is not FailureKind.NAME:
        return failure
    return Failure(FailureKind.NAME, others_resolve=await any_resolves(others, timeout_s))
