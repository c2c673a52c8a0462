"""Each way a worker can be alive and useless, on real processes against the simulator: detected within
its bound, the tree killed, a new worker spawned that Resumes, no event lost, no process left.

Timings (wd_harness.TIMINGS): beats every 0.2 s, heartbeat timeout 2 s, connect timeout 2 s, attempt
grace 1 s, stop timeout 2 s, respawn delay 0.1–0.5 s.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SimulatorProcess
from tests.watchdog.wd_harness import SLACK, TIMINGS, Watchdog

HB_TIMEOUT = TIMINGS["heartbeat_timeout"]
ATTEMPT_BOUND = TIMINGS["connect_timeout"] + TIMINGS["attempt_grace"]


@pytest.fixture
def sim() -> Iterator[SimulatorProcess]:
    simulator = SimulatorProcess()
    yield simulator
    simulator.stop()


@pytest.fixture
def start(sim: SimulatorProcess, tmp_path: Path) -> Iterator:
    runs: list[Watchdog] = []

    def run(**overrides: object) -> Watchdog:
        wd = Watchdog(tmp_path, sim, **overrides)
        runs.append(wd)
        wd.connected()
        return wd

    yield run
    for wd in runs:
        wd.kill_all()


def assert_respawned_and_resumed(wd: Watchdog, after: int, old_pid: int) -> None:
    _, exited = wd.wait_for("child.exited", after=after)
    assert exited["child_pid"] == old_pid
    wd.wait_for("respawn.scheduled", after=after)
    _, spawned = wd.wait_for("child.spawned", after=after)
    assert spawned["resume"] is True and spawned["child_pid"] != old_pid
    _, connected = wd.connected(after=after, generation=spawned["generation"])
    assert connected["resumed"] is True
    assert not any(p.pid == old_pid for p in wd.tree()), "the old worker is still there"


def test_a_frozen_worker_is_replaced_and_the_events_sent_meanwhile_arrive(start) -> None:
    wd = start()
    first, _ = wd.send("before", 3)
    wd.wait_all_delivered(first, first + 2)
    old = wd.child_pid()
    mark = wd.process.mark()
    frozen_at = time.monotonic()
    os.kill(old, signal.SIGSTOP)
    _, last = wd.send("while frozen", 5)
    missed = wd.detected_within("child.heartbeat_missed", frozen_at, HB_TIMEOUT + SLACK, after=mark)
    assert missed["silent_s"] >= HB_TIMEOUT
    _, killed = wd.wait_for("child.killed", after=mark)
    # Straight to SIGKILL: a worker that cannot beat cannot stop gracefully, and waiting for it would
    # only be a silent pause; the seq it handed on covers what it never handled.
    assert killed["child_pid"] == old and killed["signal"] == "SIGKILL"
    _, away_last = wd.send("while away", 4)
    assert_respawned_and_resumed(wd, mark, old)
    wd.wait_all_delivered(first, away_last)
    assert away_last >= last
    wd.finish()


def test_a_killed_worker_is_respawned_at_once(start) -> None:
    wd = start()
    old = wd.child_pid()
    mark = wd.process.mark()
    os.kill(old, signal.SIGKILL)
    first, last = wd.send("after the kill", 3)
    _, exited = wd.wait_for("child.exited", after=mark)
    assert exited["exitcode"] == -9 and exited["meaning"] == "killed by SIGKILL"
    assert_respawned_and_resumed(wd, mark, old)
    wd.wait_all_delivered(first, last)
    wd.finish()


def test_a_blocked_event_loop_stops_the_beats_and_needs_sigkill(start) -> None:
    wd = start()
    old = wd.child_pid()
    mark = wd.process.mark()
    sent_at = time.monotonic()
    first, _ = wd.send("block")
    wd.detected_within("child.heartbeat_missed", sent_at, HB_TIMEOUT + SLACK, after=mark)
    # A blocked loop cannot act on SIGTERM: SIGKILL follows after the stop timeout.
    wd.wait_for("child.killed", after=mark, where=lambda r: r["signal"] == "SIGKILL")
    _, exited = wd.wait_for("child.exited", after=mark)
    assert exited["exitcode"] == -9
    assert_respawned_and_resumed(wd, mark, old)
    _, last = wd.send("after", 2)
    wd.wait_all_delivered(first, last)
    wd.finish()


def test_a_reconnect_path_that_hangs_without_a_word_is_the_incident_and_is_caught(
    start, sim: SimulatorProcess
) -> None:
    """The worker's next attempt awaits forever and logs nothing; its event loop (and beats) live on."""
    wd = start()
    old = wd.child_pid()
    first, _ = wd.send("stall")
    wd.wait_all_delivered(first, first)
    mark = wd.process.mark()
    closed_at = time.monotonic()
    sim.control("/_sim/close", {"code": 4009})
    record = wd.detected_within(
        "child.attempt_overdue", closed_at, TIMINGS["retry_max"] + ATTEMPT_BOUND + SLACK, after=mark
    )
    assert record["overdue_s"] >= ATTEMPT_BOUND
    # It was beating all along: this was caught by the attempt check, not the heartbeat.
    assert not wd.process.records("child.heartbeat_missed")
    assert_respawned_and_resumed(wd, mark, old)
    wd.finish()


def test_a_loop_that_retries_without_logging_attempts_is_caught(start, sim: SimulatorProcess) -> None:
    """Phases move (CONNECTING, WAITING, ...) and beats flow, but no attempt is ever logged."""
    wd = start()
    old = wd.child_pid()
    first, _ = wd.send("silent")
    wd.wait_all_delivered(first, first)
    mark = wd.process.mark()
    closed_at = time.monotonic()
    sim.control("/_sim/close", {"code": 4009})
    wd.detected_within(
        "child.attempt_overdue", closed_at, TIMINGS["retry_max"] + ATTEMPT_BOUND + SLACK, after=mark
    )
    assert not wd.process.records("child.heartbeat_missed")
    assert_respawned_and_resumed(wd, mark, old)
    wd.finish()


def test_a_worker_over_its_memory_limit_is_replaced(start) -> None:
    wd = start(memory_limit_mb=200)
    old = wd.child_pid()
    mark = wd.process.mark()
    sent_at = time.monotonic()
    first, _ = wd.send("alloc")
    record = wd.detected_within("child.memory_exceeded", sent_at, 1.0 + SLACK, after=mark)
    assert record["rss_mb"] > 200 and record["limit_mb"] == 200
    assert_respawned_and_resumed(wd, mark, old)
    _, last = wd.send("after", 2)
    wd.wait_all_delivered(first, last)
    wd.finish()


def test_a_closed_heartbeat_pipe_is_caught_though_the_worker_lives_on(start) -> None:
    # A long heartbeat timeout, so that the closed pipe's own, shorter bound is what fires.
    wd = start(heartbeat_timeout=6)
    old = wd.child_pid()
    mark = wd.process.mark()
    sent_at = time.monotonic()
    wd.send("closepipe")
    grace = min(6, TIMINGS["stop_timeout"])
    record = wd.detected_within("child.heartbeat_missed", sent_at, grace + SLACK, after=mark)
    assert "heartbeat pipe" in record["message"]
    assert_respawned_and_resumed(wd, mark, old)
    wd.finish()
