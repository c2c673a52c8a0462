"""Link liveness against the real simulator process: pings answered by default, and a gateway that
answers none (`--no-pong`) makes the worker fall back to heartbeat ACKs, saying so once, with no false
dead-link verdict."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support import PYTHON, LineProcess, SimulatorProcess

HELLO_MS = 300  # pings every 0.1 s, a heartbeat every 0.3 s


@pytest.fixture
def no_pong_sim() -> Iterator[SimulatorProcess]:
    simulator = SimulatorProcess("--heartbeat-interval-ms", str(HELLO_MS), "--no-pong")
    yield simulator
    simulator.stop()


@pytest.fixture
def pong_sim() -> Iterator[SimulatorProcess]:
    simulator = SimulatorProcess("--heartbeat-interval-ms", str(HELLO_MS))
    yield simulator
    simulator.stop()


def _worker(sim: SimulatorProcess) -> LineProcess:
    return LineProcess(
        [PYTHON, "-m", "qqworker", "--retry-initial", "0.05", "--retry-max", "0.5"], env=sim.env()
    )


def test_a_gateway_that_answers_no_ping_is_detected_said_once_and_never_dropped_for_it(
    no_pong_sim: SimulatorProcess,
) -> None:
    proc = _worker(no_pong_sim)
    try:
        proc.wait_for("gateway.connected", 15)
        proc.wait_for("gateway.pings_ignored", 5)
        time.sleep(3.0)  # ten heartbeat intervals with pings off: ACKs alone keep the link
        assert len(proc.records("gateway.pings_ignored")) == 1
        assert proc.records("gateway.ack_timeout") == []
        assert len(proc.records("gateway.connected")) == 1
    finally:
        proc.stop(10)


def test_answered_pings_raise_no_fallback(pong_sim: SimulatorProcess) -> None:
    proc = _worker(pong_sim)
    try:
        proc.wait_for("gateway.connected", 15)
        time.sleep(2.0)
        assert proc.records("gateway.pings_ignored") == []
        assert proc.records("gateway.ack_timeout") == []
    finally:
        proc.stop(10)
