"""Seen from outside, on real processes: /healthz, /readyz and /metrics of a running watchdog + worker +
simulator over real HTTP, through a black hole, a 4009 cycle and a respawn; and the push URL (a local
HTTP server here) while connected, during an outage, after a SIGKILL of the watchdog, and hanging."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.supervised import LIFECYCLE, SLACK, Supervised
from tests.support import SimulatorProcess, assert_no_secret, closed_port, wait_until
from tests.unit.test_metrics import check as check_dashboard

GATEWAY_HEARTBEAT_S = 0.5
# /readyz turns 503 once the last ACK is older than 1.5 gateway intervals + 0.5 s (watchdog.monitor).
READY_LOST_BOUND_S = 1.5 * GATEWAY_HEARTBEAT_S + 0.5 + SLACK
PUSH_TOKEN = "PuShT0ken-h18-0123456789"

SIMULATOR_FLAGS = ("--heartbeat-interval-ms", str(int(GATEWAY_HEARTBEAT_S * 1000)))


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    code, body = get(port, "/readyz")
    return code, json.loads(body)


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, body = get(port, "/metrics")
    assert code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(port: int, name: str, **labels: str) -> float:
    return metrics(port).get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def wait_ready(port: int, ready: bool, timeout: float) -> float:
    """Polls /readyz until it answers 200 (ready) or 503; returns when that was first seen."""
    want = 200 if ready else 503
    wait_until(lambda: readyz(port)[0] == want, timeout, f"/readyz {want}", interval=0.05)
    return time.monotonic()


def test_readyz_and_metrics_follow_a_4009_cycle_a_black_hole_and_a_respawn(
    tmp_path: Path, sim: SimulatorProcess, cleanup: list[Supervised]
) -> None:
    port = closed_port()
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE, http=str(port))
    cleanup.append(wd)
    wd.connected()
    wait_ready(port, True, 10)
    assert get(port, "/healthz")[0] == 200
    assert wd.process.records("watchdog.started")[0]["http"] == f"127.0.0.1:{port}"
    first = metrics(port)
    assert first[("qqwatchdog_connected", ())] == 1
    assert first[("qqwatchdog_connection_attempts_total", (("outcome", "identified"),))] == 1
    assert first[("qqwatchdog_worker_rss_bytes", ())] > 10e6
    # Footprint: the watchdog starts no helper process (no resource tracker): its one child is the worker.
    assert [p.pid for p in psutil.Process(wd.pid).children()] == [wd.child_pid()]
    # Events handled reach the counter through the beat.
    a, b = wd.send("hello", count=3)
    wd.wait_all_delivered(a, b)
    wait_until(lambda: value(port, "qqwatchdog_events_total", outcome="handled") >= 3, 5, "events counted")

    # 4009: the session is resumed; the loss and the resume are counted.
    mark = wd.process.mark()
    sim.control("/_sim/close", {"code": 4009})
    wd.connected(after=mark)
    wait_until(
        lambda: (
            value(port, "qqwatchdog_reconnects_total", close_code="4009") == 1
            and value(port, "qqwatchdog_connection_attempts_total", outcome="resumed") == 1
        ),
        5,
        "the 4009 cycle counted",
    )
    wait_ready(port, True, 10)

    # A black hole: the live link goes silent; /readyz says so within the ACK bound, and recovers.
    lost_before = total(metrics(port), "qqwatchdog_reconnects_total")
    mark = wd.process.mark()
    started = time.monotonic()
    sim.control("/_sim/outage", {"mode": "blackhole", "seconds": 3.0})
    lost = wait_ready(port, False, READY_LOST_BOUND_S + 5) - started
    assert lost <= READY_LOST_BOUND_S, f"/readyz still 200 {lost:.2f}s into the black hole"
    code, body = readyz(port)
    assert code == 503 and body["ready"] is False and body["reason"] and body["since"].endswith("Z")
    assert get(port, "/healthz")[0] == 200  # the watchdog is supervising all along
    wd.connected(after=mark)
    wait_ready(port, True, 10)
    assert value(port, "qqwatchdog_connected") == 1
    assert total(metrics(port), "qqwatchdog_reconnects_total") > lost_before  # the outage's lost link

    # A respawn: the worker is SIGKILLed; readiness drops, the watchdog keeps answering, the respawn is
    # counted with its reason, and the counters keep their totals across generations.
    mark = wd.process.mark()
    os.kill(wd.child_pid(), signal.SIGKILL)
    wait_ready(port, False, 5)
    assert get(port, "/healthz")[0] == 200
    wd.connected(after=mark, generation=2)
    wait_ready(port, True, 15)
    after = metrics(port)
    assert after[("qqwatchdog_respawns_total", (("reason", "killed by signal 9"),))] == 1
    assert after[("qqwatchdog_worker_generation", ())] == 2
    assert after[("qqwatchdog_events_total", (("outcome", "handled"),))] >= 3
    assert after[("qqwatchdog_reconnects_total", (("close_code", "4009"),))] == 1
    check_dashboard(get(port, "/metrics")[1].decode())  # the Grafana dashboard's queries, on the real thing
    # Prometheus asks for OpenMetrics first: the same figures, by the library's OpenMetrics writer.
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        families = {f.name: f for f in openmetrics_families(answer.read().decode())}
    respawns = {
        s.labels["reason"]: s.value
        for s in families["qqwatchdog_respawns"].samples
        if s.name.endswith("_total")
    }
    assert respawns == {"killed by signal 9": 1}
    assert families["qqwatchdog_connected"].samples[0].value == 1
    wd.finish()


class PushServer:
    """A stand-in for Uptime Kuma: records the time and URL of every push; `mode` hang never answers."""

    def __init__(self, mode: str = "ok") -> None:
        self.pushes: list[tuple[float, str]] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.pushes.append((time.monotonic(), self.path))
                if mode == "hang":
                    outer.release.wait(30)
                    return
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/push/{PUSH_TOKEN}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for t, _ in self.pushes if since <= t <= until)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_server() -> Iterator[PushServer]:
    server = PushServer()
    yield server
    server.close()


def test_pushes_only_while_ready_and_none_after_the_watchdog_is_killed(
    tmp_path: Path, sim: SimulatorProcess, push_server: PushServer, cleanup: list[Supervised]
) -> None:
    port = closed_port()
    wd = Supervised(
        sim, tmp_path, timings=LIFECYCLE, http=str(port), push_url=push_server.url, push_interval=1
    )
    cleanup.append(wd)
    wd.connected()
    wait_until(lambda: push_server.count() >= 3, 10, "three pushes while connected")
    _, path = push_server.pushes[-1]
    query = parse_qs(urlsplit(path).query)
    assert path.startswith(f"/api/push/{PUSH_TOKEN}?")
    assert query["status"] == ["up"] and query["msg"][0].startswith("connected")
    assert float(query["ping"][0]) >= 0  # the gateway ACK round trip, in ms

    # An outage: not ready → no push until ready again (one already in flight may land just after).
    mark = wd.process.mark()
    sim.control("/_sim/outage", {"mode": "blackhole", "seconds": 3.0})
    not_ready = wait_ready(port, False, READY_LOST_BOUND_S + 5)
    wd.connected(after=mark)
    ready = wait_ready(port, True, 10)
    assert push_server.count(not_ready + 0.3, ready - 0.1) == 0
    wait_until(lambda: push_server.count(since=ready) >= 1, 5, "a push once ready again")

    # The watchdog SIGKILLed: nothing pushes any more (its worker dies with it).
    os.kill(wd.pid, signal.SIGKILL)
    killed = time.monotonic()
    time.sleep(3.0)
    assert push_server.count(since=killed + 0.3) == 0
    wd.close()
    assert_no_secret((line.text for line in wd.process.lines), [PUSH_TOKEN])


@pytest.mark.parametrize("mode", ["hang", "refuse"])
def test_a_hanging_or_refusing_push_endpoint_changes_nothing_for_the_bot(
    tmp_path: Path, sim: SimulatorProcess, cleanup: list[Supervised], mode: str
) -> None:
    server = PushServer("hang") if mode == "hang" else None
    url = server.url if server else f"http://127.0.0.1:{closed_port()}/api/push/{PUSH_TOKEN}"
    port = closed_port()
    try:
        wd = Supervised(sim, tmp_path, timings=LIFECYCLE, http=str(port), push_url=url, push_interval=1)
        cleanup.append(wd)
        wd.connected()
        started = time.monotonic()
        # Over 3.5 s of failing pushes (a hung one times out after 0.5 s), the bot is ready and delivers,
        # and the watchdog answers at once.
        while time.monotonic() - started < 3.5:
            t0 = time.monotonic()
            assert readyz(port)[0] == 200
            assert time.monotonic() - t0 < 0.5
            time.sleep(0.2)
        a, b = wd.send("still here", count=5)
        wd.wait_all_delivered(a, b)
        failed = wd.process.records("push.failed")
        assert len(failed) == 1, f"push.failed lines: {failed}"  # at most once a minute
        error = failed[0]["error"]
        assert ("timed out" in error) if mode == "hang" else ("refused" in error.lower()), error
        assert not wd.process.records("child.killed") and len(wd.process.records("gateway.connected")) == 1
        assert_no_secret((line.text for line in wd.process.lines), [PUSH_TOKEN])
        if server is not None:
            assert server.count() >= 1
        wd.finish()
    finally:
        if server is not None:
            server.close()


def test_a_port_in_use_is_a_configuration_error(tmp_path: Path, sim: SimulatorProcess) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        wd = Supervised(sim, tmp_path, timings=LIFECYCLE, http=str(taken.getsockname()[1]))
        assert wd.process.wait(20) == 78
        stopped = wd.process.records("watchdog.stopped")
        assert stopped and "cannot serve HTTP" in stopped[0]["reason"]


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [("http", "localhost:notaport", "http"), ("push_url", "ftp://kuma.example/x", "push_url")],
)
def test_bad_monitoring_settings_are_configuration_errors(
    tmp_path: Path, sim: SimulatorProcess, flag: str, value: str, says: str
) -> None:
    wd = Supervised(sim, tmp_path, timings=LIFECYCLE, **{flag: value})
    assert wd.process.wait(20) == 78
    (stopped,) = wd.process.records("watchdog.stopped")
    assert says in stopped["reason"] and not wd.process.records("child.spawned")
