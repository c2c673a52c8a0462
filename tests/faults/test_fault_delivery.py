"""Delivery faults (issue 12): events that must be handled at least once, duplicates that are not
duplicates, and what a clean stop, a poison event or a platform hiccup does to the events in hand.
The real watchdog supervises the real worker against the simulator (or the scripted fake gateway)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import fault
from tests.faults.fakegw import SESSION, FakeGateway
from tests.faults.results import CaseResult
from tests.faults.test_fault_process import RESPAWN_SLACK, with_handler
from tests.supervised import Supervised
from tests.support import RunTimings, SimulatorProcess, wait_until

DELIVERY_BOUND = 10.0
WATCHDOG_ONLY = pytest.mark.skipif(
    os.environ.get("QQW_FAULT_TARGET") == "worker", reason="needs the watchdog (a respawn, a poison count)"
)
RESPAWN_BOUND = 1.0 + RESPAWN_SLACK  # the matrix's respawn cap, then start-up and the handshake


@fault("platform", "two CHANNEL_UPDATE events for one channel (same d.id)", "both handled ≤ 10 s")
def test_two_updates_to_one_channel(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    t0 = time.monotonic()
    seqs = []
    for name in ("first", "second"):
        body = {"type": "CHANNEL_UPDATE", "d": {"id": "channel-1", "name": name}}
        answer = sim.control("/_sim/events", body)
        seqs += [s for first, last in answer["seq"].values() for s in range(first, last + 1)]
    assert len(seqs) == 2, seqs
    missing = run.wait_seqs(seqs, DELIVERY_BOUND)
    record.measure("both_handled_s", time.monotonic() - t0, DELIVERY_BOUND)
    assert not missing, f"an update to the same channel was dropped as a duplicate: seqs {sorted(missing)}"
    ids = {r["event_id"] for r in run.process.records("dispatch") if r.get("event_type") == "CHANNEL_UPDATE"}
    assert len(ids) == 2, f"two distinct envelope ids expected: {ids}"
    run.finish()


HICCUP_S = 10.0
RECOVER_SLACK = 2.5


@fault(
    "platform",
    "close 4901 (platform internal error) to every Identify and Resume for 10 s",
    "never exit 78; connected ≤ 10 s + retry cap + 2.5 s",
)
def test_internal_error_closes_for_ten_seconds(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    run = supervise(sim)
    run.connected()
    mark = run.mark()
    t0 = time.monotonic()
    sim.outage("internal_error", HICCUP_S)
    sim.close(4009)  # the Resume that follows meets the outage, then every Identify does
    back, reconnected = run.connected(HICCUP_S + 20, after=mark)
    recover_s = run.at(back) - t0
    bound = HICCUP_S + timings.retry_max + RECOVER_SLACK
    record.measure("recover_s", recover_s, bound)
    rejected = [r for r in run.process.records("gateway.closed")[-100:] if r.get("close_code") == 4901]
    record.measure("closes_4901", float(len(rejected)), None, unit="")
    assert len(rejected) >= 5, f"the outage must have refused several attempts: {len(rejected)}"
    assert recover_s >= HICCUP_S - 0.5, f"connected during the outage? {reconnected}"
    assert recover_s <= bound, f"connected {recover_s:.1f}s after the outage began (bound {bound:.1f}s)"
    assert not run.process.records("worker.fatal"), "a 10 s platform hiccup must never be fatal"
    run.assert_not_respawned()
    run.finish()


@WATCHDOG_ONLY
@fault(
    "process",
    "a slow old-session handler across op 9 / Identify, then a respawn",
    "the new session resumed (no 4007); the old event reported abandoned",
)
def test_old_session_handler_across_op9_then_respawn(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    run = with_handler(supervise, sim, tmp_path, "slow_word")
    _, first = run.connected()
    old_session = first["session_id"]
    assert not run.wait_seqs(sim.events(10), DELIVERY_BOUND)  # the old session's seq is well past 1
    (slow_seq,) = sim.say("slow")
    run.wait_for("dispatch", DELIVERY_BOUND, seq=slow_seq)  # in its handler now, for a minute
    mark = run.mark()
    sim.close(4009, drop_sessions=True)  # the Resume gets op 9: Identify anew, a new session from seq 1
    _, identified = run.connected(DELIVERY_BOUND, after=mark)
    assert identified["resumed"] is False and identified["session_id"] != old_session
    seqs = sim.events(3)
    assert not run.wait_seqs(seqs, DELIVERY_BOUND)
    time.sleep(4 * timings.heartbeat_interval)  # a beat hands the new session's seq on
    mark = run.mark()
    t0 = time.monotonic()
    os.kill(run.child_pid(), signal.SIGKILL)
    _, abandoned = run.wait_for("events.abandoned", DELIVERY_BOUND, after=mark)
    assert (abandoned["session_id"], abandoned["first_seq"], abandoned["count"]) == (old_session, slow_seq, 1)
    assert abandoned["role"] == "watchdog"
    back, resumed = run.connected(RESPAWN_BOUND, after=mark)
    record.measure("respawn_to_resumed_s", run.at(back) - t0, RESPAWN_BOUND)
    assert resumed["resumed"] is True and resumed["session_id"] == identified["session_id"], resumed
    invalid = [r for r in run.process.records("gateway.closed")[-20:] if r.get("close_code") == 4007]
    assert not invalid, f"the successor resumed with a seq of another session: {invalid}"
    later = sim.events(3)
    assert not run.wait_seqs(later, DELIVERY_BOUND), "events after the respawn"
    run.finish()


QUEUED = 20


@WATCHDOG_ONLY
@fault(
    "process",
    "SIGTERM to the worker with 20 events queued behind a slow handler (0.3 s each)",
    "each handled before exit or reported and replayed by the successor",
)
def test_sigterm_with_a_queue_hands_it_on(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    run = with_handler(supervise, sim, tmp_path, "slow_each", extra_flags=["--handler-concurrency", "1"])
    run.connected()
    seqs = sim.events(QUEUED)
    time.sleep(0.5)  # one or two handled, the rest queued
    mark = run.mark()
    t0 = time.monotonic()
    os.kill(run.child_pid(), signal.SIGTERM)  # a clean stop of this worker; the watchdog starts the next
    at, stopped = run.wait_for("worker.stopped", timings.stop_timeout + 2, after=mark)
    stop_s = run.at(at) - t0
    record.measure("stop_s", stop_s, timings.stop_timeout)
    assert stop_s <= timings.stop_timeout, "the stop must end within the stop timeout"
    handled = {int(r["seq"]) for r in run.process.records("dispatch")}
    left = stopped["unhandled"]
    assert left > 0, f"0.3 s per event: 20 cannot all be handled in {stop_s:.1f}s"
    first, last = stopped["unhandled_first_seq"], stopped["unhandled_last_seq"]
    assert set(range(first, last + 1)) == set(seqs) - handled and left == last - first + 1
    record.measure("unhandled_at_stop", float(left), None, unit="")
    _, exited = run.wait_for("child.exited", 10, after=at, child_pid=stopped["pid"])
    assert exited["exitcode"] == 0
    _, respawned = run.wait_for("child.spawned", 10, after=at)
    assert f"after seq {first - 1}" in respawned["message"], respawned["message"]
    missing = run.wait_seqs(seqs, DELIVERY_BOUND + 0.3 * QUEUED)
    record.measure("all_handled_s", time.monotonic() - t0, None)
    assert not missing, f"queued events lost across the stop: {sorted(missing)}"
    run.finish()


@WATCHDOG_ONLY
@fault(
    "process",
    "a poison event: the handler ends the process (os._exit) every time it gets it",
    "skipped after --poison-after 2 deaths (events.skipped); the next event handled",
)
def test_poison_event_is_skipped_and_the_next_one_handled(
    sim: SimulatorProcess,
    supervise: Callable[..., Supervised],
    timings: RunTimings,
    record: CaseResult,
    tmp_path: Path,
) -> None:
    run = with_handler(supervise, sim, tmp_path, "exit_on_poison", extra_flags=["--poison-after", "2"])
    run.connected()
    t0 = time.monotonic()
    (poison,) = sim.say("poison")
    (innocent,) = sim.say("innocent")
    bound = 4 * RESPAWN_BOUND
    _, skipped = run.wait_for("events.skipped", bound)
    assert (skipped["seq"], skipped["event_type"], skipped["deaths"]) == (poison, "C2C_MESSAGE_CREATE", 2)
    assert skipped["event_id"], skipped
    assert "poison" not in json.dumps(skipped), "the event's content must never be logged"
    missing = run.wait_seqs([innocent], bound)
    record.measure("innocent_handled_s", time.monotonic() - t0, bound)
    assert not missing, "the event after the poison one was never handled"
    record.measure("children_died", float(len([r for r in run.process.records("child.exited")])), None, "")
    assert len(run.process.records("events.skipped")) == 1, "logged once"
    wait_until(
        lambda: json.loads(run.status_file.read_text()).get("skipped_events") == 1, 10, "the status count"
    )
    later = sim.events(2)
    assert not run.wait_seqs(later, DELIVERY_BOUND)
    run.finish()


@WATCHDOG_ONLY
def test_sigterm_to_the_watchdog_reports_the_queue_and_never_needs_sigkill(
    sim: SimulatorProcess, supervise: Callable[..., Supervised], timings: RunTimings, tmp_path: Path
) -> None:
    run = with_handler(supervise, sim, tmp_path, "slow_each", extra_flags=["--handler-concurrency", "1"])
    run.connected()
    seqs = sim.events(QUEUED)
    time.sleep(0.5)
    assert run.stop() == 0
    (stopped,) = run.process.records("worker.stopped")
    handled = {int(r["seq"]) for r in run.process.records("dispatch")}
    first, last = stopped["unhandled_first_seq"], stopped["unhandled_last_seq"]
    assert handled | set(range(first, last + 1)) == set(seqs), "every queued event handled or reported"
    assert len(handled) + stopped["unhandled"] == QUEUED
    kills = [r["signal"] for r in run.process.records("child.killed")]
    assert kills == ["SIGTERM"], f"the worker's drain must end before the SIGKILL: {kills}"
    run.finish()


@fault(
    "platform",
    "an oversized frame (1 MiB + 1) replayed by every Resume",
    "skipped after its second 1009 (events.lost); the next event handled ≤ 10 s",
)
def test_oversized_frame_replayed_by_resume(
    supervise: Callable[..., Supervised], timings: RunTimings, record: CaseResult
) -> None:
    big = '{"op": 0, "s": 2, "t": "C2C_MESSAGE_CREATE", "d": {"content": "' + "x" * (1 << 20) + '"}}'
    gateway = FakeGateway([big], timings.gateway_heartbeat_ms, replay=True)
    try:
        run = supervise(gateway)
        run.connected()
        t0 = time.monotonic()
        at, lost = run.wait_for("events.lost", DELIVERY_BOUND)
        assert (lost["first_seq"], lost["last_seq"], lost["session_id"]) == (2, 2, SESSION), lost
        missing = run.wait_seqs([3], DELIVERY_BOUND)  # the well-formed event after it, replayed
        record.measure("next_event_handled_s", time.monotonic() - t0, DELIVERY_BOUND)
        assert not missing, "the event after the oversized frame was never handled"
        _, reconnected = run.connected(DELIVERY_BOUND, after=at)
        assert reconnected["resumed"] is True, reconnected
        too_big = [r for r in run.process.records("gateway.closed") if r.get("close_code") == 1009]
        record.measure("closes_1009", float(len(too_big)), 2.0, unit="")
        assert len(too_big) == 2, f"one retry, then past it: {len(too_big)} closes with 1009"
        assert len(run.process.records("events.lost")) == 1
        assert "x" * 1000 not in run.output(), "the oversized payload must not be echoed into the logs"
        run.finish()
    finally:
        gateway.close()
