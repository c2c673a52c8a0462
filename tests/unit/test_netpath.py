"""Which failures are local (qqworker/netpath.py), and the probing sleep that ends when the path is back."""

from __future__ import annotations

import asyncio
import errno
import itertools
import socket

import aiohttp
import pytest

from qqworker.auth import TokenError
from qqworker.link import NoPathTimeout
from qqworker.netpath import local_failure, probe_target, tcp_probe, wait_for_path


def _raised_from_none(inner: BaseException) -> TokenError:
    try:
        try:
            raise inner
        except BaseException:
            raise TokenError("token endpoint unreachable") from None
    except TokenError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "no_route"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no_route"),
        (OSError(errno.ENETDOWN, "Network is down"), "no_route"),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "dns_down"),
        (NoPathTimeout("no TCP connection"), "no_tcp_answer"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), None),
        (ConnectionResetError(errno.ECONNRESET, "reset"), None),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), None),  # a wrong host
        (TimeoutError("the handshake timed out"), None),  # TCP connected: the server is slow
        (ValueError("bad answer"), None),
    ],
)
def test_classifier(exc: BaseException, kind: str | None) -> None:
    assert local_failure(exc) == kind


def test_classifier_looks_through_wrappers() -> None:
    assert local_failure(_raised_from_none(OSError(errno.ENETUNREACH, "unreachable"))) == "no_route"
    assert local_failure(_raised_from_none(ConnectionRefusedError(errno.ECONNREFUSED, "no"))) is None
    key = aiohttp.client_reqrep.ConnectionKey("h", 443, True, True, None, None, None)
    wrapped = aiohttp.ClientConnectorError(key, OSError(errno.EHOSTUNREACH, "No route to host"))
    assert local_failure(wrapped) == "no_route"


def test_probe_target_defaults_the_port_by_scheme() -> None:
    assert probe_target("wss://api.sgroup.qq.com/websocket") == ("api.sgroup.qq.com", 443)
    assert probe_target("ws://127.0.0.1:8080/websocket") == ("127.0.0.1", 8080)
    assert probe_target("http://127.0.0.1") == ("127.0.0.1", 80)


def test_sleep_is_cut_short_when_a_probe_connects() -> None:
    async def main() -> None:
        results = iter([OSError(errno.ENETUNREACH, "down"), OSError(errno.ENETUNREACH, "down"), None])
        times: list[float] = []

        async def probe() -> None:
            times.append(asyncio.get_running_loop().time())
            outcome = next(results)
            if outcome is not None:
                raise outcome

        report = await wait_for_path(5.0, probe, interval=0.05)
        assert report.back and report.probes == 3 and report.failed == 2
        assert report.waited_s < 1.0
        assert "down" in report.last_error
        assert all(b - a >= 0.04 for a, b in itertools.pairwise(times))  # the interval is kept

    asyncio.run(main())


def test_without_a_path_the_whole_delay_is_slept_and_probes_counted() -> None:
    async def main() -> None:
        async def probe() -> None:
            await asyncio.sleep(0.01)
            raise TimeoutError

        report = await wait_for_path(0.3, probe, interval=0.05)
        assert not report.back and report.failed == report.probes >= 4
        assert 0.29 <= report.waited_s < 0.6

    asyncio.run(main())


def test_tcp_probe_on_loopback_listener_and_refusal() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await tcp_probe("127.0.0.1", port)
        server.close()
        await server.wait_closed()
        await tcp_probe("127.0.0.1", port)  # refused: the path is there, the service is not

    asyncio.run(main())


def test_after_a_dead_link_only_a_path_seen_down_then_back_cuts_the_sleep() -> None:
    async def main() -> None:
        async def healthy() -> None:
            return None

        report = await wait_for_path(0.3, healthy, interval=0.05, down_first=True)
        assert not report.back and report.failed == 0 and report.probes >= 4  # full backoff kept
        assert report.waited_s >= 0.29

        outcomes = iter([TimeoutError(), None])

        async def flaky() -> None:
            outcome = next(outcomes, None)
            if outcome is not None:
                raise outcome

        report = await wait_for_path(5.0, flaky, interval=0.05, down_first=True)
        assert report.back and report.failed == 1 and report.waited_s < 1.0

    asyncio.run(main())
