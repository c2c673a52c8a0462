"""The real worker process with `QQ_HANDLER=webhook` against a local endpoint the test controls
(answering 500 for a while, or hanging), while the simulator keeps a 200 ms heartbeat: delivery
waits and retries, the gateway never suffers from it, and each event is acknowledged once, in order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import PYTHON, LineProcess, RunTimings, SimulatorProcess, wait_until

T = 15
FAST = RunTimings.only(retry_initial=0.1, retry_max=0.5, connect_timeout=2)
WEBHOOK_RETRY = ["--webhook-retry-max", "0.5"]

SIMULATOR_FLAGS = ("--heartbeat-interval-ms", "200")


class Endpoint:
    """A bot endpoint on 127.0.0.1 answering `mode`: a status code, or "hang" (until released)."""

    def __init__(self) -> None:
        self.mode: int | str = 200
        self.received: list[tuple[str, int | str]] = []  # (envelope id, what it was answered)
        self.release = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                mode = endpoint.mode
                endpoint.received.append((json.loads(body)["id"], mode))
                if mode == "hang":
                    endpoint.release.wait(30)
                    return
                self.send_response(int(mode))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/qq/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def acked(self) -> list[str]:
        return [i for i, mode in self.received if isinstance(mode, int) and 200 <= mode < 300]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.close()


@pytest.fixture
def worker(sim: SimulatorProcess) -> Iterator[Callable[..., LineProcess]]:
    started: list[LineProcess] = []

    def start(url: str, *flags: str) -> LineProcess:
        proc = LineProcess(
            [PYTHON, "-m", "qqworker", *FAST.worker_flags(), *WEBHOOK_RETRY, *flags],
            env=sim.env(QQ_HANDLER="webhook", QQW_WEBHOOK_URL=url),
        )
        started.append(proc)
        proc.wait_for("gateway.connected", T)
        return proc

    yield start
    for proc in started:
        proc.stop(10)


def send(sim: SimulatorProcess, count: int) -> None:
    for n in range(count):
        sim.control("/_sim/events", {"type": "C2C_MESSAGE_CREATE", "d": {"content": f"m{n}"}})


def assert_connected_throughout(proc: LineProcess) -> None:
    assert not proc.records("gateway.closed"), proc.records("gateway.closed")
    assert not proc.records("gateway.ack_timeout")
    assert len(proc.records("gateway.connected")) == 1


def test_a_consumer_answering_500_for_a_while_gets_each_event_acknowledged_once_in_order(
    endpoint: Endpoint, sim: SimulatorProcess, worker: Callable[..., LineProcess]
) -> None:
    endpoint.mode = 500
    proc = worker(endpoint.url)
    send(sim, 5)
    _, failed = proc.wait_for("webhook.failed", T)
    assert failed["status"] == 500 and failed["error"] == "HTTP 500"
    time.sleep(3)
    first = endpoint.received[0][0]
    assert {i for i, _ in endpoint.received} == {first}  # only the head, again and again
    endpoint.mode = 200
    wait_until(lambda: len(endpoint.acked()) >= 5, T, "5 acknowledged events")
    proc.wait_for("webhook.recovered", T)
    time.sleep(1)  # longer than the retry cap: nothing acknowledged is sent again
    acked = endpoint.acked()
    assert len(acked) == len(set(acked)) == 5 and acked[0] == first
    assert len(proc.records("webhook.failed")) <= 2  # one line per 10 s, not one per retry
    assert_connected_throughout(proc)


def test_a_hanging_consumer_times_out_and_never_stalls_the_gateway(
    endpoint: Endpoint, sim: SimulatorProcess, worker: Callable[..., LineProcess]
) -> None:
    endpoint.mode = "hang"
    proc = worker(endpoint.url, "--webhook-timeout", "1")
    send(sim, 3)
    _, failed = proc.wait_for("webhook.failed", T)
    assert failed["status"] is None and failed["error"] == "no answer within 1s"
    time.sleep(2)  # ten simulator heartbeat intervals with the endpoint hanging
    endpoint.mode = 200
    wait_until(lambda: len(endpoint.acked()) >= 3, T, "3 acknowledged events")
    acked = endpoint.acked()
    assert len(acked) == len(set(acked)) == 3 and acked[0] == endpoint.received[0][0]
    assert_connected_throughout(proc)
