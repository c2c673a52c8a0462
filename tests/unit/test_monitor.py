"""The watchdog's outside view, fed lines and beats by hand: readiness, and the metric values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qqworker.contract.beat import Beat
from watchdog.monitor import Monitor
from watchdog.states import SupervisorState


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def line(event: str, **fields: Any) -> tuple[str, str]:
    return event, json.dumps({"event": event, **fields})


def connected_beat(ack_age: float = 0.0, interval: float = 1.0, **extra: Any) -> Beat:
    return Beat(
        phase="connected", attempt=1, ack_age_s=ack_age, connected_for_s=1.0, heartbeat_interval_s=interval,
        **extra,
    )  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mon(clock: Clock) -> Monitor:
    return Monitor(beat_interval=0.5, clock=clock, wall=lambda: 1.7e9 + clock.t)


def connect(mon: Monitor, resumed: bool = False, **beat: Any) -> None:
    mon.on_line(*line("gateway.connected", resumed=resumed, attempt=1))
    mon.on_beat(connected_beat(**beat))


def test_not_ready_without_a_worker_and_while_it_starts(mon: Monitor) -> None:
    r = mon.readiness(SupervisorState.STARTING)
    assert not r.ready and r.reason == "no worker (starting)"
    mon.child_spawned()
    assert mon.readiness(SupervisorState.RUNNING).reason == "worker starting"
    mon.on_beat(Beat(phase="connecting", attempt=1, attempt_age_s=0.1))
    assert mon.readiness(SupervisorState.RUNNING).reason == "not connected (connecting, attempt 1)"
    assert not mon.connected


def test_ready_only_when_connected_beating_and_acks_fresh(mon: Monitor, clock: Clock) -> None:
    mon.child_spawned()
    connect(mon)
    assert mon.readiness(SupervisorState.RUNNING).ready and mon.connected
    # The ACK age grows with the clock between beats: 1.5 intervals + 0.5 s is the limit.
    clock.t += 0.9
    assert mon.readiness(SupervisorState.RUNNING).ready
    mon.on_beat(connected_beat(ack_age=1.9))
    clock.t += 0.2
    r = mon.readiness(SupervisorState.RUNNING)
    assert not r.ready and r.reason.startswith("no gateway heartbeat ACK for 2.1s")
    # A fresh ACK makes it ready again.
    mon.on_beat(connected_beat(ack_age=0.1))
    assert mon.readiness(SupervisorState.RUNNING).ready


def test_a_worker_being_killed_or_stopped_is_not_ready(mon: Monitor) -> None:
    mon.child_spawned()
    connect(mon)
    assert mon.readiness(SupervisorState.KILLING).reason == "the worker is being ended (killing)"
    assert mon.readiness(SupervisorState.STOPPING).reason == "the worker is being ended (stopping)"


def test_a_silent_worker_is_not_ready_even_if_its_last_beat_said_connected(
    mon: Monitor, clock: Clock
) -> None:
    mon.child_spawned()
    connect(mon, interval=100.0)
    clock.t += 1.4  # 2 beat intervals + 0.5 s slack = 1.5 s
    assert mon.readiness(SupervisorState.RUNNING).ready
    clock.t += 0.2
    assert mon.readiness(SupervisorState.RUNNING).reason == "no heartbeat from the worker for 1.6s"


def test_a_closed_line_ends_readiness_before_the_next_beat(mon: Monitor) -> None:
    mon.child_spawned()
    connect(mon)
    mon.on_line(*line("gateway.closed", close_code=4009, reason="session timed out", action="resume"))
    assert not mon.connected
    assert mon.readiness(SupervisorState.RUNNING).reason == "not connected (connected, attempt 1)"
    assert dict(mon.reconnects) == {"4009": 1}


def test_since_marks_the_last_change(mon: Monitor, clock: Clock) -> None:
    mon.child_spawned()
    connect(mon)
    r = mon.readiness(SupervisorState.RUNNING)
    assert r.ready and r.since == 1.7e9 + 100.0
    clock.t = 100.5
    assert mon.readiness(SupervisorState.RUNNING).since == 1.7e9 + 100.0
    clock.t = 101.0
    mon.child_exited(-9)
    assert mon.readiness(SupervisorState.RESPAWNING).since == 1.7e9 + 101.0
    assert mon.readiness(SupervisorState.RESPAWNING).as_dict(str) == {
        "ready": False, "reason": "no worker (respawning)", "since": str(1.7e9 + 101.0),
    }  # fmt: skip


def test_attempts_by_outcome_and_reconnects_by_close_code(mon: Monitor) -> None:
    mon.child_spawned()
    connect(mon)
    mon.on_line(*line("gateway.closed", close_code=None, reason="eof", action="resume"))
    mon.on_line(*line("reconnect.failed", attempt=2, error="refused"))
    mon.on_line(*line("gateway.connected", resumed=True))
    mon.on_line(*line("gateway.closed", close_code=4009))
    mon.on_line(*line("gateway.closed", close_code=4009))
    mon.on_line("gateway.connected", "{not json")  # a torn line counts nothing, breaks nothing
    assert dict(mon.attempts) == {"identified": 1, "failed": 1, "resumed": 1}
    assert dict(mon.reconnects) == {"none": 1, "4009": 2}


def test_event_totals_survive_respawns(mon: Monitor) -> None:
    mon.child_spawned()
    mon.on_beat(connected_beat(events_handled=10, events_failed=1, events_dropped=2, queued=3))
    assert mon.events() == {"handled": 10, "failed": 1, "dropped": 2} and mon.queued() == 3
    mon.child_exited(-9)
    assert mon.events() == {"handled": 10, "failed": 1, "dropped": 2} and mon.queued() is None
    mon.child_spawned()
    mon.on_beat(connected_beat(events_handled=4, events_failed=0, events_dropped=0, queued=0))
    assert mon.events() == {"handled": 14, "failed": 1, "dropped": 2}


def test_last_dispatch_age_from_lines_and_from_growing_totals(mon: Monitor, clock: Clock) -> None:
    mon.child_spawned()
    assert mon.last_dispatch_age() is None
    mon.on_beat(connected_beat(events_handled=0, events_failed=0, events_dropped=0, queued=0))
    clock.t += 1
    mon.on_beat(connected_beat(events_handled=0, events_failed=0, events_dropped=0, queued=0))
    assert mon.last_dispatch_age() is None  # nothing arrived yet
    mon.on_beat(connected_beat(events_handled=0, events_failed=0, events_dropped=0, queued=1))
    clock.t += 2
    assert mon.last_dispatch_age() == pytest.approx(2.0)
    mon.on_line(*line("dispatch", event_type="C2C_MESSAGE_CREATE"))
    assert mon.last_dispatch_age() == 0.0


def test_respawn_reasons_name_the_kill_or_the_exit(mon: Monitor) -> None:
    mon.child_spawned()
    mon.child_killed("heartbeat missed")
    mon.child_killed("heartbeat missed (forced)")  # the first reason is the cause
    mon.child_exited(-9)
    mon.respawn_scheduled()
    mon.child_spawned()
    mon.child_exited(75)
    mon.respawn_scheduled()
    mon.child_spawned()
    mon.child_exited(-11)
    mon.respawn_scheduled()
    mon.child_exited(None)
    mon.respawn_scheduled()
    assert dict(mon.respawns) == {
        "heartbeat missed": 1, "exited 75": 1, "killed by signal 11": 1, "could not start": 1,
    }  # fmt: skip


def test_ack_figures_only_while_connected(mon: Monitor, clock: Clock) -> None:
    mon.child_spawned()
    connect(mon, ack_age=0.25, ack_rtt_s=0.012)
    clock.t += 0.5
    assert mon.ack_age() == pytest.approx(0.75) and mon.ack_rtt() == 0.012
    mon.on_beat(Beat(phase="waiting", attempt=2, next_attempt_in_s=1.0))
    assert mon.ack_age() is None and mon.ack_rtt() is None
