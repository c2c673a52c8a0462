"""The per-URL webhook delivery decisions, with a fake clock and a fixed jitter."""

from __future__ import annotations

from typing import Any

from qqworker.webhook_queue import DELIVERED_LOG_INTERVAL_S, FAILED_LOG_INTERVAL_S, UrlQueue, new_queue

URL = "http://127.0.0.1:9/qq/webhook"


def queue(capacity: int = 10, initial: float = 1.0, cap: float = 8.0, warn: float = 60.0) -> UrlQueue[Any]:
    return new_queue(URL, capacity, initial, cap, warn, rand=lambda: 1.0)  # jitter at its top: base


def kinds(reports: list[Any]) -> list[str]:
    return [r.kind for r in reports]


def test_in_order_one_at_a_time_and_an_acked_event_is_never_sent_again() -> None:
    q = queue()
    for n in range(3):
        q.push(n, 0.0)
    assert q.next_send(0.0) == 0
    assert q.next_send(0.0) is None  # one request at a time
    assert q.acked(0.1) == 0
    assert q.next_send(0.1) == 1
    assert q.acked(0.2) == 1
    assert q.next_send(0.2) == 2
    assert q.acked(0.3) == 2
    assert q.next_send(0.3) is None and len(q) == 0
    assert q.delivered == 3


def test_a_failed_head_is_retried_with_backoff_capped_and_reset_on_ack() -> None:
    q = queue(initial=1.0, cap=4.0)
    q.push("a", 0.0)
    q.push("b", 0.0)
    now = 0.0
    delays = []
    for _ in range(5):
        assert q.next_send(now) == "a"  # the same event, never the next one before it
        delays.append(q.failed(now, 500, "HTTP 500"))
        assert q.next_send(now) is None
        assert q.wait_s(now) == delays[-1]
        now += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert q.next_send(now) == "a"
    q.acked(now)
    assert q.next_send(now) == "b"
    assert q.failed(now, None, "refused") == 1.0  # the backoff starts over for the next event


def test_jitter_stays_between_half_and_the_full_step() -> None:
    q = new_queue(URL, 10, 2.0, 30.0, 60.0, rand=lambda: 0.0)
    q.push("a", 0.0)
    q.next_send(0.0)
    assert q.failed(0.0, 429, "HTTP 429") == 1.0


def test_overflow_drops_the_oldest_not_on_the_wire_and_counts_it() -> None:
    q = queue(capacity=3)
    for n in range(3):
        q.push(n, 0.0)
    assert q.next_send(0.0) == 0  # on the wire: kept
    assert q.push(3, 1.0) == [1]
    assert q.push(4, 1.0) == [2]
    assert [e.item for e in q.entries] == [0, 3, 4]
    assert q.dropped == 2
    dropped = [r for r in q.reports(1.0) if r.kind == "dropped"]
    assert dropped and dropped[0].fields["events"] == 2 and dropped[0].fields["url"] == URL
    assert not [r for r in q.reports(1.0) if r.kind == "dropped"]  # said once


def test_overflow_with_an_idle_head_drops_the_head_and_its_backoff() -> None:
    q = queue(capacity=2)
    q.push("a", 0.0)
    q.push("b", 0.0)
    q.next_send(0.0)
    q.failed(0.0, 503, "HTTP 503")
    assert q.push("c", 0.5) == ["a"]
    assert q.next_send(0.5) == "b"  # no waiting for the dropped event's retry


def test_capacity_one_with_the_head_on_the_wire_drops_the_newcomer() -> None:
    q = queue(capacity=1)
    q.push("a", 0.0)
    q.next_send(0.0)
    assert q.push("b", 0.0) == ["b"]
    assert q.dropped == 1 and [e.item for e in q.entries] == ["a"]


def test_failures_are_reported_at_most_once_per_interval_with_counts() -> None:
    q = queue(initial=0.1, cap=0.1)
    q.push("a", 0.0)
    now = 0.0
    lines = []
    while now < 25.0:
        if q.next_send(now) is not None:
            q.failed(now, 500, "HTTP 500")
        lines += [r for r in q.reports(now) if r.kind == "failed"]
        now = round(now + 0.1, 3)
    assert len(lines) == 3  # at 0, 10 and 20 s
    assert lines[0].fields["failures"] == 1
    assert lines[1].fields["failures"] >= 90
    assert lines[0].fields | {"failures": 0, "retry_in_s": 0} == {
        "url": URL,
        "status": 500,
        "error": "HTTP 500",
        "pending": 1,
        "failures": 0,
        "retry_in_s": 0,
    }
    lines += [r for r in q.reports(30.0) if r.kind == "failed"]
    assert sum(line.fields["failures"] for line in lines) == q.failures  # every failure counted once


def test_recovery_after_a_burst_is_said_once() -> None:
    q = queue()
    q.push("a", 0.0)
    q.next_send(0.0)
    q.failed(0.0, None, "refused")
    assert kinds(q.reports(0.0)) == ["failed"]
    q.next_send(1.0)
    q.acked(1.0)
    reports = q.reports(1.0)
    assert "recovered" in kinds(reports)
    assert [r.fields["failures"] for r in reports if r.kind == "recovered"] == [1]
    assert "recovered" not in kinds(q.reports(2.0))


def test_recovery_is_said_at_once_with_the_bursts_count() -> None:
    q = queue(initial=0.1, cap=0.1)
    q.push("a", 0.0)
    q.next_send(0.0)
    q.failed(0.0, 500, "HTTP 500")
    assert kinds(q.reports(0.0)) == ["failed"]
    q.next_send(1.0)
    q.failed(1.0, 500, "HTTP 500")  # not yet due for a line of its own
    q.next_send(2.0)
    q.acked(2.0)
    reports = [r for r in q.reports(2.0) if r.kind != "delivered"]
    assert kinds(reports) == ["recovered"]  # not held back until the next failed line is due
    assert reports[0].fields["failures"] == 2
    assert "failed" not in kinds(q.reports(12.0))  # the second failure was counted in it


def test_a_burst_never_reported_gets_no_recovery_line_but_its_failures_are_counted_later() -> None:
    q = queue(initial=0.1, cap=0.1)
    q.push("a", 0.0)
    q.push("b", 0.0)
    q.next_send(0.0)
    q.failed(0.0, 500, "HTTP 500")
    q.reports(0.0)
    q.next_send(1.0)
    q.acked(1.0)
    assert "recovered" in kinds(q.reports(1.0))
    q.next_send(2.0)
    q.failed(2.0, 502, "HTTP 502")  # a new burst, within 10 s of the last failed line
    assert "failed" not in kinds(q.reports(2.0))
    q.next_send(3.0)
    q.acked(3.0)
    assert "recovered" not in kinds(q.reports(3.0))  # flapping never makes more than a line per 10 s
    later = [r for r in q.reports(10.0) if r.kind == "failed"]
    assert later and later[0].fields["failures"] == 1 and later[0].fields["status"] == 502


def test_delivered_is_a_summary_not_a_line_per_event() -> None:
    q = queue()
    delivered = []
    now = 0.0
    for n in range(200):
        q.push(n, now)
        q.next_send(now)
        q.acked(now)
        delivered += [r for r in q.reports(now) if r.kind == "delivered"]
        now += 0.5  # 100 s in all
    assert len(delivered) == 2  # the first delivery, then one after the interval
    assert delivered[0].fields["events"] == 1
    assert delivered[1].fields["events"] == int(DELIVERED_LOG_INTERVAL_S / 0.5)
    assert q.delivered == 200


def test_a_backlog_older_than_the_threshold_warns_once_per_backlog() -> None:
    q = queue(warn=30.0)
    q.push("a", 0.0)
    assert "backlog" not in kinds(q.reports(29.0))
    warned = [r for r in q.reports(30.0) if r.kind == "backlog"]
    assert warned and warned[0].fields == {"url": URL, "oldest_age_s": 30.0, "pending": 1}
    assert "backlog" not in kinds(q.reports(40.0))
    q.next_send(40.0)
    q.acked(40.0)
    q.reports(41.0)  # drained: re-armed
    q.push("b", 50.0)
    assert "backlog" in kinds(q.reports(80.0))


def test_an_abandoned_send_keeps_the_head() -> None:
    q = queue()
    q.push("a", 0.0)
    assert q.next_send(0.0) == "a"
    q.abandon_send()
    assert q.next_send(0.0) == "a" and q.delivered == 0


def test_failed_log_interval_is_the_contracts() -> None:
    assert FAILED_LOG_INTERVAL_S == 10.0
