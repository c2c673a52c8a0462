"""Host agility on the real worker process against two simulators over loopback: the first playing a
retired host (`--retired`) for the API base or the token URL, a base whose name is gone, both healthy.
(Every base refusing, and a switch surviving a respawn under the watchdog, are rows of the fault matrix:
tests/faults/test_fault_hosts.py.) Plus the I/O side of the classification: a real resolver failure, a
real refused connection.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from qqworker.hostprobe import any_resolves, classify, name_failure
from qqworker.hosts import Failure, FailureKind
from tests.support import (
    PYTHON,
    LineProcess,
    RunTimings,
    SimulatorProcess,
    assert_no_secret,
    closed_port,
    wait_until,
)

FAST = RunTimings.only(retry_initial=0.05, retry_max=0.3, connect_timeout=2)
T = 15.0


@pytest.fixture
def sims() -> Iterator[Callable[..., SimulatorProcess]]:
    started: list[SimulatorProcess] = []

    def start(*flags: str) -> SimulatorProcess:
        sim = SimulatorProcess("--heartbeat-interval-ms", "500", *flags)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def worker() -> Iterator[Callable[..., LineProcess]]:
    started: list[tuple[LineProcess, str]] = []

    def start(
        sim: SimulatorProcess, bases: list[str], tokens: list[str], handler: str = "log"
    ) -> LineProcess:
        env = sim.env(QQ_API_BASE=",".join(bases), QQ_TOKEN_URL=",".join(tokens), QQ_HANDLER=handler)
        proc = LineProcess([PYTHON, "-m", "qqworker", *FAST.worker_flags()], env=env)
        started.append((proc, str(sim.info["app_secret"])))
        return proc

    yield start
    for proc, secret in started:
        proc.stop(10)
        for line in proc.lines:
            assert line.record is not None, f"not a JSON line: {line.text}"
        assert_no_secret([proc.output()], [secret])


def switches(proc: LineProcess) -> list[dict[str, Any]]:
    return proc.records("gateway.base_switched")


def test_a_retired_first_base_moves_the_worker_to_the_second(sims, worker) -> None:
    retired, healthy = sims("--retired"), sims()
    bases = [retired.info["api_base"], healthy.info["api_base"]]
    proc = worker(healthy, bases, [healthy.info["token_url"]], handler="echo")
    _, started = proc.wait_for("worker.started", T)
    assert started["api_base"] == bases[0] and started["token_url"] == healthy.info["token_url"]
    _, ready = proc.wait_for("gateway.connected", T)
    assert ready["attempt"] == 2
    assert [(s["from"], s["to"], s["kind"]) for s in switches(proc)] == [(bases[0], bases[1], "api_base")]
    assert switches(proc)[0]["reason"] == "HTTP 500"
    # The failed attempt says what the platform said: status, code, message and the trace id.
    error = proc.records("reconnect.failed")[0]["error"]
    assert "HTTP 500 code 500: internal error" in error and "trace id" in error
    assert retired.state()["counters"]["retired_answers"] >= 1
    # Replies go to the base that works.
    healthy.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": "ping"}})
    wait_until(lambda: healthy.state()["replies_received"] == 1, T, "the reply at the second simulator")
    assert len(switches(proc)) == 1


def test_a_retired_first_token_url_moves_to_the_second(sims, worker) -> None:
    retired, healthy = sims("--retired"), sims()
    tokens = [retired.info["token_url"], healthy.info["token_url"]]
    proc = worker(healthy, [healthy.info["api_base"]], tokens)
    proc.wait_for("gateway.connected", T)
    assert [(s["from"], s["to"], s["kind"], s["reason"]) for s in switches(proc)] == [
        (tokens[0], tokens[1], "token_url", "HTTP 404")
    ]


def test_a_base_whose_name_is_gone_is_left_for_one_that_resolves(sims, worker) -> None:
    healthy = sims()
    bases = ["https://api.no-such-host.invalid", healthy.info["api_base"]]
    proc = worker(healthy, bases, [healthy.info["token_url"]])
    proc.wait_for("gateway.connected", T)
    assert [(s["from"], s["to"]) for s in switches(proc)] == [(bases[0], bases[1])]
    assert "resolve" in switches(proc)[0]["reason"]


def test_both_healthy_the_first_is_used_and_nothing_switches(sims, worker) -> None:
    first, second = sims(), sims()
    bases = [first.info["api_base"], second.info["api_base"]]
    proc = worker(first, bases, [first.info["token_url"], second.info["token_url"]])
    _, ready = proc.wait_for("gateway.connected", T)
    assert ready["attempt"] == 1 and not switches(proc)
    assert first.state()["identifies"] == 1 and second.state()["identifies"] == 0
    assert second.state()["counters"].get("token_requests", 0) == 0


# The I/O side of the classification --------------------------------------------------------


def test_classify_real_resolver_and_connection_failures() -> None:
    async def fails(url: str) -> BaseException:
        async with aiohttp.ClientSession() as session:
            try:
                await session.get(url, timeout=aiohttp.ClientTimeout(total=5))
            except (aiohttp.ClientError, OSError) as exc:
                return exc
        raise AssertionError("no failure")

    assert classify(asyncio.run(fails("https://no-such-host.invalid/x"))).kind is FailureKind.NAME
    refused = f"http://127.0.0.1:{closed_port()}/x"
    assert classify(asyncio.run(fails(refused))).kind is FailureKind.NETWORK


def test_a_name_failure_counts_only_while_another_name_resolves() -> None:
    gone = Failure(FailureKind.NAME)
    assert asyncio.run(name_failure(gone, ["http://127.0.0.1:9"])).others_resolve
    assert not asyncio.run(name_failure(gone, ["https://no-such-host.invalid"])).others_resolve
    assert not asyncio.run(any_resolves([]))
    network = Failure(FailureKind.NETWORK)
    assert asyncio.run(name_failure(network, ["http://127.0.0.1:9"])) is network


def test_a_hanging_resolver_bounds_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    async def check() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()

        async def hang(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(60)

        monkeypatch.setattr(loop, "getaddrinfo", hang)
        started = loop.time()
        resolved = await any_resolves(["https://api.example.com"], 0.2)
        return resolved, loop.time() - started

    resolved, took = asyncio.run(check())
    assert not resolved and took < 1.0


def test_classify_real_tls_failures(tmp_path: Path) -> None:
    """A certificate that is valid (trusted here) but for another name is "wrong host"; an untrusted
    one is not (that is no sign of a moved host)."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a certificate with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=other.example", "-addext", "subjectAltName=DNS:other.example"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    async def gateway(request: web.Request) -> web.Response:
        return web.json_response({"url": "wss://x/"})

    async def failures() -> list[Failure]:
        app = web.Application()
        app.router.add_get("/gateway", gateway)
        runner = web.AppRunner(app)
        await runner.setup()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = runner.addresses[0][1]
        trusting = ssl.create_default_context(cafile=str(cert))
        found = []
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                for url, ctx in (
                    (f"https://localhost:{port}/gateway", trusting),  # a name mismatch
                    (f"https://127.0.0.1:{port}/gateway", trusting),  # an IP address mismatch
                    (f"https://localhost:{port}/gateway", True),  # not trusted at all
                ):
                    try:
                        await http.get(url, ssl=ctx)
                    except aiohttp.ClientError as exc:
                        found.append(classify(exc))
        finally:
            await runner.cleanup()
        return found

    kinds = [f.kind for f in asyncio.run(failures())]
    assert kinds == [FailureKind.TLS_NAME, FailureKind.TLS_NAME, FailureKind.NETWORK]
