"""The local gateway's buffer and confirmation marks (qqworker.gwbuffer), without sockets or sleeps."""

from __future__ import annotations

import pytest

from qqworker.gwbuffer import StreamBuffer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def filled(n: int, *, session: str = "up-1", max_events: int = 100, max_age_s: float = 60.0) -> StreamBuffer:
    buf = StreamBuffer(max_events, max_age_s, Clock())
    for i in range(1, n + 1):
        buf.add("C2C_MESSAGE_CREATE", f"ev{i}", {"n": i}, session, 100 + i)
    return buf


def test_local_seqs_only_grow_across_upstream_sessions() -> None:
    buf = StreamBuffer(10, 60.0, Clock())
    a = buf.add("T", "a", {}, "up-1", 50)
    b = buf.add("T", "b", {}, "up-2", 1)  # upstream re-identified: its seqs start again at 1
    assert (a.seq, b.seq) == (1, 2)
    assert buf.last_seq == 2


def test_count_bound_evicts_the_oldest() -> None:
    buf = filled(5, max_events=3)
    assert buf.depth == 3
    assert buf.evicted == 2 and buf.evicted_upto == 2
    replay = buf.after(0)
    assert [e.seq for e in replay.entries] == [3, 4, 5]
    assert replay.lost == 2
    assert not buf.can_resume(1)
    assert buf.can_resume(2)


def test_age_bound_evicts_old_events() -> None:
    clock = Clock()
    buf = StreamBuffer(100, 10.0, clock)
    buf.add("T", "a", {}, "s", 1)
    clock.now += 6
    buf.add("T", "b", {}, "s", 2)
    clock.now += 5  # a is 11 s old
    assert buf.expire() == 1
    assert [e.id for e in buf.after(0).entries] == ["b"]


def test_resume_gets_what_follows_its_seq_in_order() -> None:
    buf = filled(6)
    assert [e.seq for e in buf.after(3).entries] == [4, 5, 6]
    assert buf.after(6).entries == []
    assert buf.can_resume(3)
    assert not buf.can_resume(7)  # a seq never sent


def test_confirmation_never_passes_what_was_sent() -> None:
    buf = filled(5)
    handle = buf.attach("c1", 0)
    buf.sent(handle, 3)
    assert buf.confirm(handle, 5) == 3
    assert buf.confirm(handle, True) == 3  # not an int
    assert buf.confirm(handle, None) == 3
    assert buf.confirm(handle, 2) == 3  # never backwards
    assert buf.confirmed == 3


def test_identify_alone_replays_after_the_last_confirmed_seq() -> None:
    buf = filled(4)
    handle = buf.attach("bot", 0)
    buf.sent(handle, 4)
    buf.confirm(handle, 2)
    buf.detach(handle)  # the bot crashed after getting 4 but confirming only 2
    buf.add("T", "ev5", {}, "up-1", 105)  # arrived while it was away
    start = buf.identify_from()
    assert start == 2
    assert [e.id for e in buf.after(start).entries] == ["ev3", "ev4", "ev5"]


def test_identify_beside_an_attached_client_joins_the_live_stream() -> None:
    buf = filled(4)
    first = buf.attach("a", 0)
    buf.sent(first, 4)
    assert buf.identify_from() == 4


def test_upstream_floor_holds_below_the_oldest_unconfirmed_event() -> None:
    buf = filled(5)  # upstream seqs 101..105
    assert buf.upstream_floor("up-1") == 100  # nobody confirmed anything
    a = buf.attach("a", 0)
    b = buf.attach("b", 0)
    buf.sent(a, 5)
    buf.sent(b, 5)
    buf.confirm(a, 5)
    buf.confirm(b, 2)
    assert buf.upstream_floor("up-1") == 102  # b still needs local 3 = upstream 103
    buf.confirm(b, 5)
    assert buf.upstream_floor("up-1") is None  # nothing held back: the dispatcher's seq stands
    assert buf.upstream_floor(None) is None


def test_upstream_floor_ignores_events_of_another_upstream_session() -> None:
    buf = StreamBuffer(10, 60.0, Clock())
    buf.add("T", "old", {}, "up-1", 7)
    buf.add("T", "new", {}, "up-2", 1)
    buf.add("T", "new2", {}, "up-2", 2)
    assert buf.upstream_floor("up-2") == 0
    assert buf.upstream_floor("up-1") == 6


def test_upstream_floor_with_nobody_attached_uses_the_last_confirmed_seq() -> None:
    buf = filled(4)
    h = buf.attach("a", 0)
    buf.sent(h, 4)
    buf.confirm(h, 3)
    buf.detach(h)
    assert buf.upstream_floor("up-1") == 103  # local 4 (upstream 104) was never confirmed


def test_evicted_events_no_longer_hold_the_floor() -> None:
    buf = filled(5, max_events=2)  # only local 4, 5 (upstream 104, 105) remain
    assert buf.upstream_floor("up-1") == 103


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        StreamBuffer(0, 1.0)
    with pytest.raises(ValueError):
        StreamBuffer(1, 0.0)


def test_sent_marks_only_grow_and_unknown_handles_answer_none() -> None:
    buf = filled(3)
    handle = buf.attach("a", 1)
    assert buf.sent_of(handle) == 1
    buf.sent(handle, 3)
    buf.sent(handle, 2)
    assert buf.sent_of(handle) == 3
    buf.detach(handle)
    assert buf.sent_of(handle) is None
    assert buf.confirm(handle, 3) is None


def test_a_successor_adopts_the_numbering_its_predecessors_client_resumes_from() -> None:
    buf = filled(3)  # a fresh worker: upstream replayed three events, no client seen yet
    assert buf.adopt(40)
    assert [e.seq for e in buf.after(40).entries] == [41, 42, 43]
    assert buf.can_resume(40) and buf.last_seq == 43
    assert not buf.can_resume(39)  # nothing of the old numbering below it is here
    assert buf.upstream_floor("up-1") == 100  # the client has confirmed none of them yet
    buf.attach("c", 40)
    assert not buf.adopt(50)  # its numbering is now known outside: never shifted again
    assert buf.add("T", "x", {}, "up-1", 104).seq == 44


def test_no_adoption_once_events_left_the_buffer() -> None:
    buf = filled(5, max_events=2)
    assert not buf.adopt(10)
    assert buf.last_seq == 5
