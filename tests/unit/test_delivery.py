"""Delivery bookkeeping per session (delivery.InFlight): the handed seq, stranded events, spans."""

from __future__ import annotations

import logging

import pytest

from qqworker.delivery import InFlight, Span
from qqworker.protocol import Dispatch


def ev(seq: int, kind: str = "C2C_MESSAGE_CREATE") -> Dispatch:
    return Dispatch(kind, f"{kind}:e{seq}", seq, {})


def add(flight: InFlight, *events: Dispatch) -> None:
    for event in events:
        flight.current[event.seq] = event  # what Dispatcher.submit does


def test_the_handed_seq_is_below_the_oldest_unfinished_event_of_the_session() -> None:
    flight = InFlight("A")
    assert flight.handed_seq(4) == 4 and flight.oldest() is None
    add(flight, ev(5), ev(6))
    assert flight.handed_seq(6) == 4 and flight.oldest().seq == 5  # type: ignore[union-attr]
    del flight.current[5]
    assert flight.handed_seq(6) == 5


def test_a_new_session_strands_the_old_ones_events_and_never_pairs_their_seqs_with_it() -> None:
    """An op 9 / Identify while seq 40 of session A is in a handler: B counts from 1 again."""
    flight = InFlight("A")
    slow = ev(40)
    add(flight, slow)
    assert flight.switch(None) == Span("A", 40, 40, 1)  # the session was dropped
    assert flight.switch("B") is None  # nothing more in flight
    assert flight.handed_seq(None) is None
    add(flight, ev(2), ev(3))
    del flight.current[2], flight.current[3]
    assert flight.handed_seq(3) == 3, "B's handed seq ignores A's seq 40"
    assert flight.stranded() == [Span("A", 40, 40, 1)]
    assert flight.release_stranded(slow)
    assert flight.stranded() == [] and not flight.release_stranded(slow)


def test_same_seq_in_two_sessions_is_released_from_the_right_one() -> None:
    flight = InFlight("A")
    old = ev(2)
    add(flight, old)
    flight.switch("B")
    new = ev(2)
    add(flight, new)
    assert not flight.release_stranded(new) and flight.current[2] is new
    assert flight.release_stranded(old) and flight.current[2] is new


def test_resuming_the_same_session_strands_nothing() -> None:
    flight = InFlight("A")
    add(flight, ev(7))
    assert flight.switch("A") is None
    assert flight.handed_seq(7) == 6 and not flight.stranded()


def test_unhandled_reports_count_and_range() -> None:
    flight = InFlight("A")
    assert flight.unhandled() is None
    add(flight, ev(3), ev(4), ev(9))
    span = flight.unhandled()
    assert span == Span("A", 3, 9, 3)
    assert span.fields() == {"session_id": "A", "first_seq": 3, "last_seq": 9, "count": 3}


def test_abandoned_events_are_one_line_per_session_with_the_range(caplog: pytest.LogCaptureFixture) -> None:
    from qqworker.delivery import report_abandoned

    with caplog.at_level(logging.WARNING, logger="qqworker.delivery"):
        report_abandoned([Span("A", 40, 42, 3), Span("B", 7, 7, 1)], "the worker stopped")
    records = [r for r in caplog.records if r.name == "qqworker.delivery"]
    assert [r.getMessage() for r in records] == [
        "3 event(s) of session A (seqs 40-42) were not handled and cannot be replayed (that session can "
        "no longer be resumed): the worker stopped",
        "1 event(s) of session B (seqs 7-7) were not handled and cannot be replayed (that session can "
        "no longer be resumed): the worker stopped",
    ]
    first = records[0].__dict__
    assert first["event"] == "events.abandoned"
    assert (first["session_id"], first["first_seq"], first["last_seq"], first["count"]) == ("A", 40, 42, 3)
