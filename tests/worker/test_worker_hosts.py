"""Host agility on real processes: the worker (and the watchdog) against two simulators over loopback,
the first playing a retired host (`--retired`), or both healthy, or every base refusing connections.

Plus the I/O side of the classification (a real resolver failure, a real refused connection).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qqworker.hostprobe import any_resolves, classify, name_failure
from qqworker.hosts import Failure, FailureKind
from tests.support import PYTHON, ROOT, LineProcess, SimulatorProcess, assert_no_secret, wait_until
from tests.watchdog.wd_harness import Watchdog, closed_port

FAST = ["--retry-initial", "0.05", "--retry-max", "0.3", "--connect-timeout", "2"]
T = 15.0


@pytest.fixture
def sims() -> Iterator[Callable[..., SimulatorProcess]]:
    started: list[SimulatorProcess] = []

    def start(*flags: str) -> SimulatorProcess:
        sim = SimulatorProcess(["--heartbeat-interval-ms", "500", *flags])
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
        proc = LineProcess([PYTHON, "-m", "qqworker", *FAST], env=env)
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


def test_network_down_for_every_base_rotates_nothing_and_backs_off_as_usual(sims, worker) -> None:
    token_source = sims()
    bases = [f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}"]
    proc = worker(token_source, bases, [token_source.info["token_url"]])
    wait_until(lambda: len(proc.records("reconnect.failed")) >= 5, T, "five failed attempts")
    assert not switches(proc)
    failed = proc.records("reconnect.failed")
    assert [f["attempt"] for f in failed[:5]] == [1, 2, 3, 4, 5]
    assert all("discovery" in f["error"] and "Connect" in f["error"] for f in failed[:5])
    assert {r["url"] for r in proc.records("gateway.connecting")} == {f"{bases[0]}/gateway/bot"}
    delays = [r["delay_s"] for r in proc.records("reconnect.scheduled")[:5]]
    assert len(delays) == 5 and all(0 < d <= 0.3 for d in delays)


def test_a_switch_survives_a_respawn(tmp_path: Path, sims) -> None:
    retired, healthy = sims("--retired"), sims()
    bases = [retired.info["api_base"], healthy.info["api_base"]]
    env = {"QQ_API_BASE": ",".join(bases), "QQ_TOKEN_URL": healthy.info["token_url"]}
    wd = Watchdog(tmp_path, healthy, env=env)
    try:
        _, started = wd.wait_for("watchdog.started")
        assert started["api_base"] == bases[0] and started["token_url"] == healthy.info["token_url"]
        wd.connected(generation=1)
        assert len(wd.process.records("gateway.base_switched")) == 1

        def status() -> dict[str, Any]:
            result = subprocess.run(
                [PYTHON, "-m", "watchdog", "status", "--status-file", str(wd.status_file), "--json"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=30,
            )
            return dict(json.loads(result.stdout)["status"])

        wait_until(
            lambda: status().get("api_base") == bases[1], 10, "the status file to name the second base"
        )
        human = subprocess.run(
            [PYTHON, "-m", "watchdog", "status", "--status-file", str(wd.status_file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert f"api base         {bases[1]}" in human and healthy.info["token_url"] in human
        retired_answers = retired.state()["counters"]["retired_answers"]
        mark = wd.process.mark()
        os.kill(wd.child_pid(), signal.SIGKILL)
        wd.connected(after=mark, generation=2)
        gen2 = [r for r in wd.process.records() if r.get("generation") == 2 and r.get("role") == "worker"]
        assert [r["api_base"] for r in gen2 if r["event"] == "worker.started"] == [bases[1]]
        assert not [r for r in gen2 if r["event"] == "gateway.base_switched"]
        assert retired.state()["counters"]["retired_answers"] == retired_answers
        wd.finish()
    finally:
        wd.kill_all()


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
