"""The watchdog's decision module, driven with an explicit clock: every detection, its bound, respawn."""

from __future__ import annotations

import json

import pytest

from qqworker.contract.beat import BEAT_VERSION, Beat, Phase
from qqworker.contract.events import LogEvent
from qqworker.contract.settings import Settings
from qqworker.delivery import Span
from watchdog.policy import (
    KEEP,
    REORDER_TOLERANCE_S,
    ChildState,
    GiveUp,
    Kill,
    PoisonWatch,
    Respawn,
    Skip,
    Stop,
    SupervisionPolicy,
    SupervisionTimings,
    pause_gap,
    stranded_spans,
)

T = SupervisionTimings(
    heartbeat_timeout=30.0,
    connect_timeout=15.0,
    attempt_grace=5.0,
    respawn_initial=1.0,
    respawn_max=300.0,
    healthy_after=60.0,
    max_restarts=0,
    restart_window=600.0,
    memory_limit_mb=0.0,
    stop_timeout=10.0,
    retry_max=60.0,
)
BOUND = T.connect_timeout + T.attempt_grace  # 20 s


def make(t: SupervisionTimings = T, rand: float = 1.0) -> SupervisionPolicy:
    policy = SupervisionPolicy(t, rand=lambda: rand)
    policy.child_spawned(0.0)
    return policy


def waiting(attempt: int, in_s: float) -> Beat:
    return Beat(phase="waiting", attempt=attempt, next_attempt_in_s=in_s)


def connecting(attempt: int, age: float) -> Beat:
    return Beat(phase="connecting", attempt=attempt, attempt_age_s=age)


def connected(for_s: float = 1.0, ack_age: float = 1.0, interval: float | None = 45.0) -> Beat:
    return Beat(
        phase="connected",
        attempt=1,
        session_id="s1",
        seq=7,
        ack_age_s=ack_age,
        connected_for_s=for_s,
        heartbeat_interval_s=interval,
    )


STARTING = Beat(phase="starting", attempt=0)
STOPPING = Beat(phase="stopping", attempt=1)


def connect_cleanly(policy: SupervisionPolicy, at: float, attempt: int = 1) -> None:
    """What the real worker sends for an attempt that works: beat, log, log, beat."""
    assert policy.beat(at, connecting(attempt, 0.0)) is KEEP
    assert policy.log_event(at, LogEvent.GATEWAY_CONNECTING) is KEEP
    assert policy.log_event(at + 0.05, LogEvent.GATEWAY_CONNECTED) is KEEP
    assert policy.beat(at + 0.05, connected(0.0, 0.0)) is KEEP


def fail_attempt(policy: SupervisionPolicy, at: float, attempt: int, delay: float) -> None:
    """A refused attempt: CONNECTING beat, connecting log, failed log, WAITING beat, scheduled log."""
    assert policy.beat(at, connecting(attempt, 0.0)) is KEEP
    assert policy.log_event(at, LogEvent.GATEWAY_CONNECTING) is KEEP
    assert policy.log_event(at + 0.01, LogEvent.RECONNECT_FAILED) is KEEP
    assert policy.beat(at + 0.01, waiting(attempt, delay)) is KEEP
    assert policy.log_event(at + 0.01, LogEvent.RECONNECT_SCHEDULED) is KEEP


def is_kill(decision: object, event: LogEvent) -> Kill:
    assert isinstance(decision, Kill), decision
    assert decision.event is event, decision
    return decision


def test_timings_come_from_settings() -> None:
    s = Settings(heartbeat_timeout=2, connect_timeout=3, attempt_grace=1, retry_max=9)
    t = SupervisionTimings.from_settings(s)
    assert (t.heartbeat_timeout, t.attempt_bound, t.retry_max) == (2, 4, 9)


# Heartbeats -----------------------------------------------------------------------------------


def test_a_child_that_never_beats_is_killed_after_the_heartbeat_timeout() -> None:
    policy = make()
    assert policy.tick(29.9) is KEEP
    assert policy.next_deadline() == 30.0
    kill = is_kill(policy.tick(30.1), LogEvent.CHILD_HEARTBEAT_MISSED)
    assert kill.fields["silent_s"] == pytest.approx(30.1)
    assert policy.state is ChildState.KILLING


def test_beats_keep_a_healthy_connected_child_alive_indefinitely() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    for now in range(2, 3600, 5):
        assert policy.beat(float(now), connected(now - 1.0, 1.0)) is KEEP
        assert policy.tick(now + 4.9) is KEEP


def test_a_child_that_stops_beating_is_killed_once_and_then_ignored() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    assert policy.beat(10.0, connected(9, 1)) is KEEP
    assert policy.tick(40.0) is KEEP
    kill = is_kill(policy.tick(40.2), LogEvent.CHILD_HEARTBEAT_MISSED)
    assert kill.reason == "heartbeat missed"
    assert kill.force  # a child that cannot beat cannot stop gracefully either: SIGKILL at once
    # While the kill is under way nothing else is decided.
    assert policy.tick(100.0) is KEEP
    assert policy.beat(100.0, connected()) is KEEP
    assert policy.rss(100.0, 1e9) is KEEP
    assert policy.next_deadline() is None


def test_a_closed_heartbeat_pipe_gives_the_child_a_short_while_to_exit() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    assert policy.beats_closed(2.0) is KEEP
    grace = min(T.heartbeat_timeout, T.stop_timeout)
    assert policy.next_deadline() == 2.0 + grace
    assert policy.tick(2.0 + grace - 0.1) is KEEP
    kill = is_kill(policy.tick(2.0 + grace + 0.1), LogEvent.CHILD_HEARTBEAT_MISSED)
    assert kill.reason == "heartbeat pipe closed"
    assert not kill.force  # its loop may still run: it gets SIGTERM and the stop timeout


def test_a_closed_pipe_followed_by_the_exit_is_a_plain_exit() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    policy.beats_closed(2.0)
    decision = policy.child_exited(2.1, 75)
    assert isinstance(decision, Respawn)


# Phase deadlines ------------------------------------------------------------------------------


def test_starting_must_reach_its_first_attempt_within_the_attempt_bound() -> None:
    policy = make()
    assert policy.beat(0.2, STARTING) is KEEP
    for now in (5.0, 10.0, 15.0, 20.0):
        assert policy.beat(now, STARTING) is KEEP
    kill = is_kill(policy.beat(20.3, STARTING), LogEvent.CHILD_ATTEMPT_OVERDUE)
    assert kill.fields["phase"] == "starting"
    assert not kill.force
    assert kill.fields["overdue_s"] == pytest.approx(20.1)


def test_the_original_incident_a_waiting_child_that_never_attempts_is_killed() -> None:
    """It keeps beating (the loop lives) but the attempt it announced never starts and never logs."""
    policy = make()
    fail_attempt(policy, 1.0, attempt=1, delay=5.0)
    due = 1.01 + 5.0
    now = 2.0
    while now < due + BOUND:
        assert policy.beat(now, waiting(1, max(0.0, due - now))) is KEEP, now
        now += 1.0
    kill = is_kill(policy.tick(due + BOUND + 0.01), LogEvent.CHILD_ATTEMPT_OVERDUE)
    assert kill.fields["overdue_s"] == pytest.approx(BOUND + 0.01, abs=1e-6)
    assert "killing" in kill.message


def test_a_waiting_episode_does_not_slide_with_later_beats() -> None:
    policy = make()
    fail_attempt(policy, 0.0, attempt=1, delay=2.0)
    # A stuck loop reports "due now" forever; the deadline stays at the first due time.
    assert policy.beat(10.0, waiting(1, 0.0)) is KEEP
    assert policy.beat(21.0, waiting(1, 0.0)) is KEEP
    assert policy.next_deadline() == pytest.approx(2.01 + BOUND)
    is_kill(policy.beat(22.1, waiting(1, 0.0)), LogEvent.CHILD_ATTEMPT_OVERDUE)


def test_a_waiting_beat_without_a_due_time_is_bounded_by_the_longest_retry_delay() -> None:
    policy = make()
    for now in (1.0, 25.0, 50.0, 75.0, 80.9):
        assert policy.beat(now, Beat(phase="waiting", attempt=1)) is KEEP
    assert policy.next_deadline() == pytest.approx(1.0 + T.retry_max + BOUND)
    is_kill(policy.tick(81.1), LogEvent.CHILD_ATTEMPT_OVERDUE)


def test_a_connecting_child_stuck_in_its_attempt_is_killed() -> None:
    policy = make()
    assert policy.beat(1.0, connecting(1, 0.0)) is KEEP
    assert policy.log_event(1.0, LogEvent.GATEWAY_CONNECTING) is KEEP
    for now in range(2, 21):
        assert policy.beat(float(now), connecting(1, now - 1.0)) is KEEP
    kill = is_kill(policy.tick(21.1), LogEvent.CHILD_ATTEMPT_OVERDUE)
    assert kill.fields["phase"] == "connecting"


def test_the_connecting_deadline_is_anchored_at_the_attempt_start_the_beat_reports() -> None:
    policy = make()
    # The first beat seen is already 4 s into the attempt (e.g. earlier beats were dropped).
    assert policy.beat(10.0, connecting(3, 4.0)) is KEEP
    assert policy.next_deadline() == pytest.approx(6.0 + BOUND)


def test_stopping_must_end_within_the_stop_timeout_plus_grace() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    assert policy.beat(5.0, STOPPING) is KEEP
    limit = T.stop_timeout + T.attempt_grace
    assert policy.beat(5.0 + limit - 0.1, STOPPING) is KEEP
    kill = is_kill(policy.tick(5.0 + limit + 0.1), LogEvent.CHILD_STOP_OVERDUE)
    assert kill.fields["overdue_s"] == pytest.approx(limit + 0.1)


# Attempt-log liveness --------------------------------------------------------------------------


def test_a_loop_that_retries_without_logging_is_killed_even_though_its_phases_move() -> None:
    """Beats alone look healthy here: WAITING → CONNECTING → WAITING... but no attempt is ever logged."""
    policy = make()
    fail_attempt(policy, 0.0, attempt=1, delay=5.0)
    now, attempt, decision = 5.01, 2, KEEP
    while decision is KEEP and now < 200:
        decision = policy.beat(now, connecting(attempt, 0.0))
        if decision is KEEP:
            decision = policy.beat(now + 0.01, waiting(attempt, 5.0))
        now += 5.02
        attempt += 1
        if decision is KEEP:
            decision = policy.tick(now - 0.01)
    kill = is_kill(decision, LogEvent.CHILD_ATTEMPT_OVERDUE)
    # The first silent attempt was due at 5.01; detection by its due time + the bound.
    assert now <= 5.01 + BOUND + 5.1
    assert kill.reason == "attempt overdue"


def test_an_attempt_that_logs_its_start_but_never_its_outcome_is_killed() -> None:
    policy = make()
    assert policy.beat(1.0, connecting(1, 0.0)) is KEEP
    assert policy.log_event(1.0, LogEvent.GATEWAY_CONNECTING) is KEEP
    # The phase moves on silently (no reconnect.failed, no connected line).
    assert policy.beat(1.5, waiting(1, 100.0)) is KEEP
    assert policy.tick(21.0) is KEEP
    kill = is_kill(policy.tick(21.1), LogEvent.CHILD_ATTEMPT_OVERDUE)
    assert "outcome" in kill.message


def test_a_connecting_line_alone_demands_an_outcome_whatever_the_beats_say() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    assert policy.beat(49.0, connected(48.0)) is KEEP
    assert policy.log_event(50.0, LogEvent.GATEWAY_CONNECTING) is KEEP
    for now in range(51, 71):
        assert policy.beat(float(now), connected(now - 1.0)) is KEEP
    is_kill(policy.tick(70.1), LogEvent.CHILD_ATTEMPT_OVERDUE)


@pytest.mark.parametrize(
    "outcome", [LogEvent.GATEWAY_CONNECTED, LogEvent.RECONNECT_FAILED, LogEvent.WORKER_FATAL]
)
def test_any_outcome_line_settles_an_attempt(outcome: LogEvent) -> None:
    policy = make()
    assert policy.beat(1.0, connecting(1, 0.0)) is KEEP
    assert policy.log_event(1.0, LogEvent.GATEWAY_CONNECTING) is KEEP
    assert policy.log_event(19.0, outcome) is KEEP
    assert policy.beat(19.0, waiting(1, 1000.0)) is KEEP
    assert policy.tick(21.5) is KEEP
    assert policy.beat(40.0, waiting(1, 979.0)) is KEEP


def test_a_normal_outage_with_exponential_delays_is_never_killed() -> None:
    policy = make()
    now, delay = 0.5, 1.0
    assert policy.beat(0.1, STARTING) is KEEP
    for attempt in range(1, 40):
        fail_attempt(policy, now, attempt, delay)
        # Periodic beats while waiting, every 5 s (and the tick in between).
        t = now + 0.01
        while t + 5 < now + 0.01 + delay:
            t += 5
            assert policy.beat(t, waiting(attempt, now + 0.01 + delay - t)) is KEEP
            assert policy.tick(t + 0.5) is KEEP
        now = now + 0.01 + delay
        delay = min(delay * 2, 60.0)
    connect_cleanly(policy, now, attempt=40)
    assert policy.tick(now + 1) is KEEP


def test_slow_attempts_within_the_bound_are_never_killed() -> None:
    policy = make()
    now = 0.0
    for attempt in range(1, 10):
        assert policy.beat(now, connecting(attempt, 0.0)) is KEEP
        assert policy.log_event(now, LogEvent.GATEWAY_CONNECTING) is KEEP
        for k in range(1, 15):
            assert policy.beat(now + k, connecting(attempt, float(k))) is KEEP
        # The worker's own timeout fires at connect_timeout (15 s).
        assert policy.log_event(now + 15.0, LogEvent.RECONNECT_FAILED) is KEEP
        assert policy.beat(now + 15.0, waiting(attempt, 2.0)) is KEEP
        assert policy.tick(now + 16.9) is KEEP
        now += 17.0


def test_beats_and_logs_overtaking_each_other_do_not_cause_a_kill() -> None:
    """Two pipes: lines can arrive a little before the beat that announces their phase."""
    policy = make()
    # Attempt 1 fails fast; its lines arrive before its CONNECTING beat.
    assert policy.log_event(1.0, LogEvent.GATEWAY_CONNECTING) is KEEP
    assert policy.log_event(1.001, LogEvent.RECONNECT_FAILED) is KEEP
    assert policy.beat(1.002, connecting(1, 0.003)) is KEEP
    assert policy.beat(1.003, waiting(1, 0.2)) is KEEP
    # Attempt 2's lines arrive before the WAITING beat was even seen as over; it connects.
    assert policy.log_event(1.2, LogEvent.GATEWAY_CONNECTING) is KEEP
    assert policy.log_event(1.25, LogEvent.GATEWAY_CONNECTED) is KEEP
    assert policy.beat(1.26, connecting(2, 0.06)) is KEEP
    assert policy.beat(1.27, connected(0.01, 0.01)) is KEEP
    for now in range(2, 300, 5):
        assert policy.beat(float(now), connected(now - 1.25, 1.0)) is KEEP
        assert policy.tick(now + 4.9) is KEEP


def test_a_waiting_beat_that_arrives_after_its_attempt_was_logged_is_settled_by_that_line() -> None:
    policy = make()
    assert policy.log_event(10.0, LogEvent.GATEWAY_CONNECTING) is KEEP
    assert policy.log_event(10.1, LogEvent.GATEWAY_CONNECTED) is KEEP
    # The beat that announced the attempt (due 0.3 s after this beat) only now arrives.
    assert policy.beat(10.2, waiting(1, 0.0)) is KEEP
    assert policy.beat(10.3, connected(0.2, 0.2)) is KEEP
    assert policy.tick(200.0 - 170) is KEEP


def test_lines_from_before_a_long_wait_do_not_settle_the_attempt_after_it() -> None:
    policy = make()
    assert policy.log_event(1.0, LogEvent.RECONNECT_FAILED) is KEEP
    assert policy.beat(1.0, waiting(1, 10.0)) is KEEP
    assert policy.log_event(1.0, LogEvent.RECONNECT_SCHEDULED) is KEEP
    # The loop moves on at the due time but logs nothing about its attempt.
    assert policy.beat(11.0, connecting(2, 0.0)) is KEEP
    assert policy.beat(20.0, waiting(2, 100.0)) is KEEP
    kill = is_kill(policy.tick(11.0 + BOUND + 0.1), LogEvent.CHILD_ATTEMPT_OVERDUE)
    assert kill.fields["overdue_s"] == pytest.approx(BOUND + 0.1)


def test_the_reorder_tolerance_is_small() -> None:
    assert 0 < REORDER_TOLERANCE_S <= 1.0


def test_unknown_or_unrelated_events_are_no_evidence() -> None:
    policy = make()
    assert policy.beat(1.0, waiting(1, 1.0)) is KEEP
    for now in (2.0, 10.0, 20.0):
        assert policy.log_event(now, "dispatch") is KEEP
        assert policy.log_event(now, "something.else") is KEEP
    is_kill(policy.tick(2.0 + BOUND + 0.1), LogEvent.CHILD_ATTEMPT_OVERDUE)


# Connected: ACK staleness and health ------------------------------------------------------------


def test_a_connected_child_with_a_stale_ack_is_killed() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    limit = 3 * 45.0 + T.attempt_grace
    assert policy.beat(100.0, connected(99, limit - 0.1)) is KEEP
    kill = is_kill(policy.beat(105.0, connected(104, limit + 0.1)), LogEvent.CHILD_ACK_STALE)
    assert kill.fields == {"ack_age_s": pytest.approx(limit + 0.1), "limit_s": limit}
    assert policy.state is ChildState.KILLING


def test_ack_age_is_not_judged_without_the_gateway_interval() -> None:
    policy = make()
    assert policy.beat(1.0, connected(0.5, 10_000.0, interval=None)) is KEEP


# Memory -------------------------------------------------------------------------------------


def test_memory_limit() -> None:
    policy = make(SupervisionTimings(**{**T.__dict__, "memory_limit_mb": 200.0}))
    assert policy.rss(1.0, 199.9) is KEEP
    kill = is_kill(policy.rss(2.0, 250.0), LogEvent.CHILD_MEMORY_EXCEEDED)
    assert kill.fields == {"rss_mb": 250.0, "limit_mb": 200.0}


def test_memory_limit_zero_is_off() -> None:
    policy = make()
    assert policy.rss(1.0, 1e6) is KEEP


# Exits, respawn, give up ----------------------------------------------------------------------


def test_exit_78_stops_the_watchdog_with_78_and_is_not_respawned() -> None:
    policy = make()
    decision = policy.child_exited(3.0, 78)
    assert isinstance(decision, Stop) and decision.exit_code == 78
    assert "configuration" in decision.reason
    assert policy.restarts == 0


@pytest.mark.parametrize("code", [0, 1, 75, -9, -15, 2, None])
def test_every_other_exit_is_respawned(code: int | None) -> None:
    policy = make()
    decision = policy.child_exited(3.0, code)
    assert decision == Respawn(1.0, 1)
    assert policy.state is ChildState.NONE and policy.last_exit == code


def test_respawn_delays_grow_exponentially_within_bounds() -> None:
    policy = SupervisionPolicy(T, rand=lambda: 1.0)
    delays = []
    now = 0.0
    for _ in range(12):
        policy.child_spawned(now)
        decision = policy.child_exited(now + 0.5, 1)
        assert isinstance(decision, Respawn)
        delays.append(decision.delay_s)
        now += 1000.0
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert max(delays) == 300.0
    low = SupervisionPolicy(T, rand=lambda: 0.0)
    low.child_spawned(0.0)
    assert low.child_exited(1.0, 1) == Respawn(0.5, 1)  # jitter: never below half the step


def test_a_child_connected_for_healthy_after_resets_the_respawn_delay() -> None:
    policy = SupervisionPolicy(T, rand=lambda: 1.0)
    for i in range(4):
        policy.child_spawned(i * 10.0)
        policy.child_exited(i * 10.0 + 1, 1)
    policy.child_spawned(100.0)
    connect_cleanly(policy, 101.0)
    assert policy.beat(150.0, connected(49.0)) is KEEP
    assert not policy.healthy
    assert policy.beat(162.0, connected(61.0)) is KEEP
    assert policy.healthy and policy.connected_since == pytest.approx(101.0)
    assert policy.child_exited(170.0, -9) == Respawn(1.0, 5)


def test_a_short_connection_does_not_reset_the_delay() -> None:
    policy = SupervisionPolicy(T, rand=lambda: 1.0)
    policy.child_spawned(0.0)
    policy.child_exited(1.0, 1)
    policy.child_spawned(2.0)
    connect_cleanly(policy, 3.0)
    assert policy.beat(10.0, connected(7.0)) is KEEP
    assert policy.child_exited(11.0, 1) == Respawn(2.0, 2)


def test_max_restarts_within_the_window_gives_up_with_69() -> None:
    t = SupervisionTimings(**{**T.__dict__, "max_restarts": 3, "restart_window": 100.0})
    policy = SupervisionPolicy(t, rand=lambda: 1.0)
    for i in range(3):
        policy.child_spawned(i * 10.0)
        assert isinstance(policy.child_exited(i * 10.0 + 1, 1), Respawn)
    policy.child_spawned(30.0)
    decision = policy.child_exited(31.0, 1)
    assert decision == GiveUp(3) and decision.exit_code == 69


def test_restarts_outside_the_window_do_not_count() -> None:
    t = SupervisionTimings(**{**T.__dict__, "max_restarts": 2, "restart_window": 100.0})
    policy = SupervisionPolicy(t, rand=lambda: 1.0)
    now = 0.0
    for _ in range(10):
        policy.child_spawned(now)
        assert isinstance(policy.child_exited(now + 1, 1), Respawn)
        now += 60.0  # two exits per 100 s window at most
    assert policy.restarts == 10


def test_max_restarts_zero_never_gives_up() -> None:
    policy = SupervisionPolicy(T, rand=lambda: 0.5)
    for i in range(500):
        policy.child_spawned(float(i))
        assert isinstance(policy.child_exited(i + 0.5, 75), Respawn)


def test_a_respawned_child_starts_with_a_clean_slate() -> None:
    policy = make()
    policy.beat(1.0, waiting(1, 5.0))
    is_kill(policy.tick(1.0 + 5.0 + BOUND + 0.1), LogEvent.CHILD_ATTEMPT_OVERDUE)
    assert isinstance(policy.child_exited(27.0, -15), Respawn)
    assert policy.tick(28.0) is KEEP  # no child: nothing to judge
    policy.child_spawned(30.0)
    assert policy.phase is None and policy.last_beat is None
    assert policy.next_deadline() == 60.0
    assert policy.tick(59.0) is KEEP


def test_inputs_without_a_running_child_are_ignored() -> None:
    policy = SupervisionPolicy(T)
    assert policy.state is ChildState.NONE
    assert policy.beat(1.0, connected()) is KEEP
    assert policy.log_event(1.0, "gateway.connecting") is KEEP
    assert policy.rss(1.0, 1e9) is KEEP
    assert policy.beats_closed(1.0) is KEEP
    assert policy.tick(1e6) is KEEP


def test_phase_strings_are_the_beat_phases() -> None:
    assert {p.value for p in Phase} == {"starting", "connecting", "connected", "waiting", "stopping"}


def test_a_child_stopped_by_the_watchdog_itself_is_not_counted_as_a_restart() -> None:
    policy = make()
    policy.child_stopped(0)
    assert policy.state is ChildState.NONE and policy.last_exit == 0 and policy.restarts == 0


# What the next child is handed: resume or identify ------------------------------------------------


def session_beat(session_id: str | None, seq: int | None, phase: str = "connected") -> Beat:
    return Beat(phase=phase, attempt=1, session_id=session_id, seq=seq)


def test_without_a_restored_session_or_a_beat_the_first_child_identifies() -> None:
    assert make().resume is None


def test_a_restored_session_is_resumed_by_the_first_child() -> None:
    policy = SupervisionPolicy(T)
    policy.session_restored("S", 41)
    policy.child_spawned(0.0)  # a new child does not forget what it is to be handed
    assert policy.resume == ("S", 41)


@pytest.mark.parametrize(
    ("session_id", "seq", "expected"),
    [
        ("S2", 9, ("S2", 9)),  # the session and seq it reports
        ("S2", 0, ("S2", 0)),  # seq 0 is a seq
        (None, None, None),  # neither: the worker dropped its session, the next child identifies
        ("S2", None, ("S", 4)),  # only one of them says nothing new
        (None, 9, ("S", 4)),
        ("", 9, ("S", 4)),  # an empty session id is not a session
    ],
)
def test_each_beat_decides_what_the_next_child_resumes(
    session_id: str | None, seq: int | None, expected: tuple[str, int] | None
) -> None:
    policy = make()
    policy.session_restored("S", 4)
    policy.session_seen(session_beat(session_id, seq))
    assert policy.resume == expected


def test_the_latest_beat_wins_and_a_dropped_session_can_be_followed_by_a_new_one() -> None:
    policy = make()
    for beat, expected in [
        (session_beat("S", 1), ("S", 1)),
        (session_beat("S", 7), ("S", 7)),
        (session_beat(None, None, "waiting"), None),
        (session_beat("S3", 2), ("S3", 2)),
    ]:
        policy.session_seen(beat)
        assert policy.resume == expected


def test_beats_count_for_the_hand_over_whatever_the_child_state() -> None:
    policy = make()
    is_kill(policy.tick(T.heartbeat_timeout + 1), LogEvent.CHILD_HEARTBEAT_MISSED)
    assert policy.state is ChildState.KILLING
    policy.session_seen(session_beat("S", 12))  # a beat read while the kill is under way
    assert policy.resume == ("S", 12)
    policy.child_exited(T.heartbeat_timeout + 2, -9)
    policy.session_seen(session_beat("S", 13))  # read while draining, after the exit
    assert policy.resume == ("S", 13)
    policy.child_spawned(40.0)
    assert policy.resume == ("S", 13)


def test_a_poison_skip_hands_the_next_child_the_seq_past_the_event() -> None:
    policy = make()
    policy.session_seen(session_beat("S", 4))
    skip = PoisonWatch(1).child_died(last_beat(5))
    assert skip is not None
    policy.skip_past(skip)
    assert policy.resume == ("S", 5)
    policy.session_seen(session_beat("S", 6))  # the next child's own progress takes over again
    assert policy.resume == ("S", 6)


# Poison events ----------------------------------------------------------------------------------


def last_beat(seq: int | None, event_id: str | None = "E:1", session: str | None = "S") -> Beat:
    return Beat(
        phase="connected", attempt=0, session_id=session, seq=4,
        oldest_seq=seq, oldest_type="C2C_MESSAGE_CREATE", oldest_id=event_id,
    )  # fmt: skip


def test_the_same_oldest_event_in_n_successive_deaths_is_skipped_once() -> None:
    watch = PoisonWatch(3)
    assert watch.child_died(last_beat(5)) is None
    assert watch.child_died(last_beat(5)) is None
    skip = watch.child_died(last_beat(5))
    assert skip == Skip("S", 5, "C2C_MESSAGE_CREATE", "E:1", 3)
    assert watch.skipped == 1 and watch.last_skipped == skip
    # Counting starts over: the next child resumes past it.
    assert watch.child_died(last_beat(5)) is None


def test_another_oldest_event_or_none_resets_the_count() -> None:
    watch = PoisonWatch(2)
    assert watch.child_died(last_beat(5)) is None
    assert watch.child_died(last_beat(6, "E:2")) is None  # progress: another event
    assert watch.child_died(None) is None  # a death with nothing unhandled
    assert watch.child_died(last_beat(6, "E:2")) is None
    assert watch.child_died(last_beat(6, "E:2", session="T")) is None  # another session
    assert watch.child_died(last_beat(None)) is None
    assert watch.child_died(last_beat(6, "E:2")) is None
    assert watch.child_died(last_beat(6, "E:2")) is not None
    assert watch.skipped == 1


def test_poison_after_zero_never_skips() -> None:
    watch = PoisonWatch(0)
    assert all(watch.child_died(last_beat(5)) is None for _ in range(10))
    assert watch.skipped == 0


def test_beats_carry_the_delivery_fields_both_ways() -> None:
    beat = last_beat(5)
    beat = Beat(**{**beat.__dict__, "stranded": [["A", 40, 41, 2]]})
    assert Beat.decode(beat.encode()) == beat


def test_a_malformed_beat_is_never_a_poison_skip() -> None:
    watch = PoisonWatch(1)
    for bad in ({"oldest_seq": "5"}, {"oldest_seq": True}, {"session_id": 7}):
        beat = Beat(**{**last_beat(5).__dict__, **bad})
        assert watch.child_died(beat) is None


# A paused supervisor -----------------------------------------------------------------------------


def test_a_pause_of_the_watchdog_gives_the_child_a_fresh_heartbeat_window() -> None:
    policy = make()
    assert policy.beat(10.0, connected()) is KEEP
    # The whole group stopped at 12 and continued at 72 (twice the timeout): not the child's fault.
    policy.paused(72.0, 60.0)
    assert policy.tick(72.0) is KEEP
    assert policy.next_deadline() == pytest.approx(72.0 + T.heartbeat_timeout)
    assert policy.tick(101.9) is KEEP
    # ... but a child that then stays silent is killed, for its silence since the wake-up.
    kill = is_kill(policy.tick(102.1), LogEvent.CHILD_HEARTBEAT_MISSED)
    assert kill.fields["silent_s"] == pytest.approx(30.1)


def test_without_the_pause_the_same_silence_is_a_kill() -> None:
    policy = make()
    assert policy.beat(10.0, connected()) is KEEP
    is_kill(policy.tick(72.0), LogEvent.CHILD_HEARTBEAT_MISSED)


def test_a_pause_moves_attempt_deadlines_on_by_the_gap() -> None:
    policy = make()
    fail_attempt(policy, 0.0, attempt=1, delay=2.0)
    deadline = policy.next_deadline()
    assert deadline == pytest.approx(2.01 + BOUND)
    policy.paused(50.0, 45.0)
    assert policy.tick(50.0) is KEEP
    assert policy.next_deadline() == pytest.approx(deadline + 45.0)
    # The attempt it announced, logged after the wake-up, settles the moved duty.
    assert policy.beat(50.1, connecting(2, 0.0)) is KEEP
    assert policy.log_event(50.1, LogEvent.GATEWAY_CONNECTING) is KEEP
    assert policy.log_event(50.2, LogEvent.GATEWAY_CONNECTED) is KEEP
    assert policy.beat(50.2, connected(0.0, 0.0)) is KEEP
    assert policy.tick(deadline + 45.0 + 1.0) is KEEP


def test_a_stuck_attempt_is_still_killed_after_a_pause() -> None:
    policy = make()
    assert policy.beat(1.0, connecting(1, 0.0)) is KEEP
    policy.paused(31.0, 25.0)
    assert policy.beat(31.0, connecting(1, 5.0)) is KEEP
    is_kill(policy.tick(1.0 + 25.0 + BOUND + 0.1), LogEvent.CHILD_ATTEMPT_OVERDUE)


def test_an_ack_missed_during_the_pause_is_judged_from_the_wake_up() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    policy.paused(70.0, 60.0)
    # Its first beat after the wake-up: the last ACK is from before the pause.
    assert policy.beat(70.1, connected(10.0, ack_age=65.0)) is KEEP
    limit = 3 * 45.0 + T.attempt_grace
    assert policy.beat(70.0 + limit - 1, connected(10.0, ack_age=65.0 + limit)) is KEEP
    # ... but an ACK that then stays away is stale again.
    is_kill(
        policy.beat(70.0 + limit + 1, connected(10.0, ack_age=65.0 + limit + 1)), LogEvent.CHILD_ACK_STALE
    )


def test_a_pause_without_a_running_child_changes_nothing() -> None:
    policy = SupervisionPolicy(T)
    policy.paused(100.0, 50.0)
    assert policy.next_deadline() is None and policy.tick(100.0) is KEEP


@pytest.mark.parametrize(
    ("asked", "slept", "gap"),
    [
        (5.0, 5.02, None),  # an ordinary wake-up
        (0.0, 0.9, None),  # scheduling noise on a loaded host
        (5.0, 12.0, None),  # 7 s late: under a quarter of the 30 s timeout
        (5.0, 13.0, 8.0),
        (0.5, 60.5, 60.0),  # SIGSTOP for a minute
        (-1.0, 9.0, 9.0),  # a negative wait is no wait
    ],
)
def test_pause_gap_is_an_oversleep_far_beyond_what_was_asked(
    asked: float, slept: float, gap: float | None
) -> None:
    found = pause_gap(asked, slept, T.heartbeat_timeout)
    assert found == (None if gap is None else pytest.approx(gap))


def test_pause_gap_has_a_floor_for_short_heartbeat_timeouts() -> None:
    assert pause_gap(0.1, 1.0, 2.0) is None
    assert pause_gap(0.1, 1.2, 2.0) == pytest.approx(1.1)


# A closed log pipe, a beat only a newer worker knows, what a dead child's beat left stranded -----------


def test_a_closed_log_pipe_while_the_child_runs_is_a_detection_after_a_short_grace() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    assert policy.logs_closed(2.0) is KEEP
    grace = min(T.heartbeat_timeout, T.stop_timeout)
    assert policy.next_deadline() == 2.0 + grace
    assert policy.tick(2.0 + grace - 0.1) is KEEP
    assert policy.logs_closed(2.5) is KEEP  # the first EOF counts
    kill = is_kill(policy.tick(2.0 + grace + 0.1), LogEvent.CHILD_LOG_CLOSED)
    assert kill.reason == "log pipe closed" and not kill.force
    assert kill.fields["closed_s"] == pytest.approx(grace + 0.1)


def test_a_closed_log_pipe_followed_by_the_exit_is_a_plain_exit() -> None:
    policy = make()
    connect_cleanly(policy, 1.0)
    policy.logs_closed(2.0)
    assert isinstance(policy.child_exited(2.1, 1), Respawn)
    policy.child_spawned(3.0)
    assert policy.logs_closed_at is None  # a new child starts clean


def test_a_phase_only_a_newer_worker_knows_is_a_beat_but_not_judged() -> None:
    data = json.dumps({"phase": "hibernating", "attempt": 1, "v": BEAT_VERSION + 1}).encode()
    beat, unknown = Beat.parse(data)
    assert unknown == {"phase:hibernating"}
    with pytest.raises(ValueError):  # from a worker of this version or older it is garbage
        Beat.decode(json.dumps({"phase": "hibernating", "attempt": 1}).encode())
    policy = make()
    connect_cleanly(policy, 1.0)
    phase, last = policy.phase, policy.last_beat
    assert policy.beat(T.heartbeat_timeout, beat) is KEEP
    assert policy.last_beat_at == T.heartbeat_timeout  # liveness: the heartbeat timeout starts again
    assert (policy.phase, policy.last_beat) == (phase, last)
    assert policy.tick(T.heartbeat_timeout * 1.9) is KEEP
    is_kill(policy.tick(T.heartbeat_timeout * 2.1), LogEvent.CHILD_HEARTBEAT_MISSED)


def test_stranded_spans_take_only_well_formed_entries_from_a_beat() -> None:
    beat = Beat(
        phase="connected", attempt=0, stranded=[["A", 4, 6, 3], ["B", "x", 1, 1], "junk", ["C", 1, 1]]
    )
    assert stranded_spans(beat) == [Span("A", 4, 6, 3)]
    assert stranded_spans(Beat(phase="connected", attempt=0, stranded="nope")) == []  # type: ignore[arg-type]
    assert stranded_spans(None) == []
