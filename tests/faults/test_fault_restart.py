"""Restarts of the watchdog itself: a stop and a start (an upgrade, `systemctl restart`), a SIGKILL and a
start (a crash, systemd restarting a hung watchdog). The next watchdog resumes the persisted session
(QQW_STATE_FILE), and every event sent before, during and after the gap reaches the handler once."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable

import psutil
import pytest

from tests.faults.conftest import fault
from tests.faults.results import CaseResult
from tests.supervised import Supervised
from tests.support import RunTimings, SimulatorProcess

# Interpreter start-up of the new watchdog and its worker, the token, the discovery and the handshake.
CONNECTED_BOUND_S = 8.0


@pytest.fixture(autouse=True)
def _watchdog_only() -> None:
    if os.environ.get("QQW_FAULT_TARGET") == "worker":
        pytest.skip("restarts of the watchdog need the watchdog")


def handled(*runs: Supervised) -> Counter[int]:
    """How often each seq reached the handler (the `log` handler writes one `dispatch` line per call)."""
    return Counter(int(r["seq"]) for run in runs for r in run.process.records("dispatch"))


def restarted(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], record: CaseResult, **kw: object
) -> Supervised:
    t0 = time.monotonic()
    run = supervise(sim, **kw)
    at, connected = run.connected()
    connected_s = run.at(at) - t0
    record.measure("connected_s", connected_s, CONNECTED_BOUND_S)
    assert connected["resumed"] is True, f"the new watchdog must Resume the persisted session: {connected}"
    assert run.process.records("watchdog.started")[0]["resumed_from"] is not None
    assert connected_s <= CONNECTED_BOUND_S
    return run


def once_each(record: CaseResult, counts: Counter[int], seqs: list[int]) -> None:
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    record.measure("duplicates", duplicates, 0, unit="")
    missing = [s for s in seqs if counts[s] == 0]
    assert not missing, f"lost across the restart: {missing}"
    assert not duplicates, f"handed twice: {[s for s, n in counts.items() if n > 1]}"


@fault(
    "process",
    "watchdog restarted (SIGTERM, then started again)",
    f"resumed, connected ≤ {CONNECTED_BOUND_S:g} s after the start; every event handled once, "
    "also those sent meanwhile",
)
def test_watchdog_restarted(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    first = supervise(sim)
    first.connected()
    before = sim.events(3)
    assert not first.wait_seqs(before, 10)
    first.finish()
    during = sim.events(4)  # nothing runs: the platform keeps them for the session's Resume
    second = restarted(sim, supervise, record)
    assert not second.wait_seqs(during, 10)
    after = sim.events(2)
    assert not second.wait_seqs(after, 10)
    time.sleep(0.3)  # a duplicate would show by now
    once_each(record, handled(first, second), before + during + after)
    second.finish()


@fault(
    "process",
    "watchdog killed (SIGKILL), then started again",
    "resumed; every event handled once, also those the Resume replays that the old worker had handled",
)
def test_watchdog_killed_and_started_again(
    supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    # Beats only every 5 s and no gateway ACK meanwhile (every ACK is beaten at once): the persisted seq
    # lags the handled events, so the Resume replays some the old worker had handled.
    slow_beats = dataclasses.replace(
        timings, heartbeat_interval=5.0, heartbeat_timeout=30.0, gateway_heartbeat_ms=41250
    )
    sim = SimulatorProcess(*slow_beats.simulator_flags())
    try:
        _killed_and_started_again(sim, supervise, timings, slow_beats, record)
    finally:
        sim.stop()


def _killed_and_started_again(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    slow_beats: RunTimings,
    record: CaseResult,
) -> None:
    first = supervise(sim, timings=slow_beats)
    first.connected()
    before = sim.events(5)
    assert not first.wait_seqs(before, 10)
    time.sleep(1.5)  # the worker's dedupe window is written at most every second
    child = psutil.Process(int(first.process.records("child.spawned")[-1]["child_pid"]))
    first.process.signal(signal.SIGKILL)
    child.wait(timings.stop_timeout + 2)  # PR_SET_PDEATHSIG: its own clean stop, which writes the window
    saved = json.loads(sim.state_file.read_text())
    lag = max(handled(first)) - int(saved["seq"])
    assert lag > 0, f"the persisted seq did not lag: {saved['seq']} of {max(handled(first))} handled"
    assert saved["clean_stop"] is False
    during = sim.events(3)
    second = restarted(sim, supervise, record, timings=slow_beats)
    assert not second.wait_seqs(during, 10)
    time.sleep(0.5)
    replayed = sim.state()["counters"].get("replayed", 0)
    record.measure("replayed", replayed, None, unit="")
    assert replayed >= len(during) + lag, f"{replayed} replayed: not what the old worker had handled too"
    once_each(record, handled(first, second), before + during)
    resumed_from = second.process.records("watchdog.started")[0]["resumed_from"]
    assert resumed_from["session_id"] == saved["session_id"] and resumed_from["clean_stop"] is False
    second.finish()
