import json
from dataclasses import asdict, fields, replace

import pytest

from qqworker.contract.beat import BEAT_VERSION, MAX_REDACT_CHARS, V1_FIELDS, Beat, Phase, Progress


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


# Version skew: a newer worker's beat, an older watchdog's ----------------------------------------------


def strict_v1_decode(data: bytes) -> Beat:
    """What a watchdog from before beat versions did: every key must be a field it knows."""
    raw = json.loads(data)
    unknown = set(raw) - set(V1_FIELDS)
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}")
    return Beat(**raw)


def test_a_newer_beat_with_fields_this_version_does_not_know_is_read_and_they_are_named() -> None:
    raw = asdict(Beat(phase="connected", attempt=1, session_id="s", seq=4))
    raw.update(v=BEAT_VERSION + 1, future_field={"x": 1}, another=[1, 2])
    beat, unknown = Beat.parse(json.dumps(raw).encode())
    assert (beat.phase, beat.session_id, beat.seq, beat.v) == ("connected", "s", 4, BEAT_VERSION + 1)
    assert unknown == {"future_field", "another"}
    assert Beat.decode(json.dumps(raw).encode()) == beat


def test_a_beat_without_a_version_is_version_1_and_missing_later_fields_take_defaults() -> None:
    beat, unknown = Beat.parse(b'{"phase": "waiting", "attempt": 2, "next_attempt_in_s": 1.5}')
    assert (beat.v, beat.redact, beat.next_attempt_in_s, unknown) == (1, None, 1.5, frozenset())


def test_for_a_version_1_watchdog_the_beat_has_exactly_the_fields_it_knows() -> None:
    beat = Beat(phase="connected", attempt=1, session_id="s", seq=9, redact=("tok",))
    data = beat.encode(version=1)
    old = strict_v1_decode(data)  # would raise on any other field
    assert (old.session_id, old.seq) == ("s", 9)
    assert b"tok" not in data and b'"v"' not in data


def test_every_field_appended_after_version_1_is_left_out_for_it_and_sent_to_newer_ones() -> None:
    later = [f.name for f in fields(Beat) if f.name not in V1_FIELDS]
    assert later[:2] == ["v", "redact"]  # fields appended later by anyone follow; they need no change here
    beat = Beat(phase="starting", attempt=0, redact=("a",))
    assert set(json.loads(beat.encode(version=1))) == set(V1_FIELDS)
    current = json.loads(beat.encode())
    assert current["v"] == BEAT_VERSION and current["redact"] == ["a"]
    assert Beat.decode(beat.encode()) == beat


@pytest.mark.parametrize(
    "raw",
    [
        {"phase": "waiting", "attempt": 1, "v": "2"},
        {"phase": "waiting", "attempt": 1, "redact": "tok"},
        {"phase": "waiting", "attempt": 1, "redact": [1]},
        {"attempt": 1, "v": 3},
        {"phase": "flying", "attempt": 1, "v": BEAT_VERSION},
    ],
)
def test_what_is_not_a_beat_is_still_refused(raw: dict) -> None:
    with pytest.raises(ValueError):
        Beat.decode(json.dumps(raw).encode())


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
