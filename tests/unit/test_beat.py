from dataclasses import replace

import pytest

from qqworker.contract.beat import MAX_REDACT_CHARS, Beat, Phase, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_beat_reports_relative_times_for_the_current_phase() -> None:
    clock = Clock()
    progress = Progress(clock=clock)
    progress.update(phase=Phase.WAITING, attempt=3, next_attempt_at=105.0)
    beat = progress.beat()
    assert (beat.phase, beat.attempt, beat.next_attempt_in_s, beat.attempt_age_s) == ("waiting", 3, 5.0, None)
    clock.now = 106
    progress.update(phase=Phase.CONNECTING, attempt_started_at=105.5)
    beat = progress.beat()
    assert beat.attempt_age_s == 0.5 and beat.next_attempt_in_s is None
    progress.update(phase=Phase.CONNECTED, session_id="s", seq=9, last_ack_at=104, connected_since=101)
    beat = progress.beat()
    assert (beat.ack_age_s, beat.connected_for_s, beat.session_id, beat.seq) == (2.0, 5.0, "s", 9)


def test_update_notifies_and_rejects_unknown_fields() -> None:
    calls = []
    progress = Progress(on_change=lambda: calls.append(1))
    progress.update(phase=Phase.CONNECTING)
    assert calls == [1]
    with pytest.raises(AttributeError):
        progress.update(phsae=Phase.WAITING)


def test_round_trip_and_garbage() -> None:
    beat = Beat(phase="connected", attempt=0, session_id="x", seq=3, ack_age_s=1.5)
    assert Beat.decode(beat.encode()) == beat
    for garbage in (
        b"",
        b"[]",
        b"{}",
        b'{"phase": "dancing", "attempt": 1}',
        b'{"phase": "waiting"}',
        b"\xff",
    ):
        with pytest.raises(ValueError):
            Beat.decode(garbage)


def test_the_ack_round_trip_and_the_delivery_totals_ride_on_the_beat() -> None:
    clock = Clock()
    progress = Progress(clock=clock, totals_source=lambda: (7, 1, 2, 3))
    progress.update(phase=Phase.CONNECTED, last_ack_at=99.5, connected_since=90, ack_rtt_s=0.021)
    beat = Beat.decode(progress.beat().encode())
    assert beat.ack_rtt_s == 0.021
    assert (beat.events_handled, beat.events_failed, beat.events_dropped, beat.queued) == (7, 1, 2, 3)
    progress.update(phase=Phase.WAITING, next_attempt_at=101.0)
    beat = progress.beat()
    assert beat.ack_rtt_s is None and beat.events_handled == 7  # totals outlive the connection
    assert Progress(clock=clock).beat().events_handled is None  # no dispatcher yet: unknown, not 0


# The largest beat still fits one pipe write -------------------------------------------------------


def test_a_gateway_beat_stays_far_below_the_pipe_limit() -> None:
    """The watchdog reads beats as lines of at most 4096 bytes: the gateway's fields, with the most
    client marks a beat carries and the longest names, take a few hundred of them."""
    progress = Progress(phase=Phase.CONNECTED, session_id="s" * 36, seq=10**12)
    name = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535#1000000000"
    fields = {
        "gateway_clients": 10**6,
        "gateway_buffered": 10**6,
        "gateway_seq": 10**15,
        "gateway_evicted": 10**15,
        "gateway_client_marks": [[name, 10**15, 10**15]] * 4,
        "oldest_seq": 10**12,
        "oldest_type": "T" * 128,
        "oldest_id": "i" * 128,
    }
    progress.delivery_source = lambda: fields
    progress.totals_source = lambda: (10**12, 10**12, 10**12, 10**6)
    beat = progress.beat()
    assert len(beat.encode()) < 2048
    # With the largest list of tokens to redact a beat may carry, it still fits one pipe write.
    tokens = tuple("t" * 60 for _ in range(MAX_REDACT_CHARS // 63))
    size = len(replace(beat, redact=tokens).encode())
    assert size < 4096, size
