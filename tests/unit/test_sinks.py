"""The sinks' core without I/O: order, bounds, exact drop accounting, states, notices, retries."""

from __future__ import annotations

import json
import random

import pytest

from qqworker.contract.events import LogEvent
from qqworker.sinks import Notice, SinkBuffer, SinkSet, SinkState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def render(notice: Notice) -> bytes:
    return (json.dumps({"event": notice.event.value, **notice.fields}) + "\n").encode()


def make(name: str = "stdout", max_bytes: int = 100, retry_s: float = 5.0) -> tuple[SinkBuffer, Clock]:
    clock = Clock()
    return SinkBuffer(
        name, max_bytes, retry_s, clock=clock, wall=lambda: clock.now + 1e9, render=render
    ), clock


def line(i: int) -> bytes:
    return f"line {i:03d}\n".encode()  # 9 bytes


def drain(sink: SinkBuffer, step: int = 1 << 16) -> list[bytes]:
    out = b""
    while sink.pending_bytes:
        data = sink.chunk()[:step]
        out += data
        sink.wrote(len(data))
    return out.splitlines(keepends=True)


def check_accounting(sink: SinkBuffer) -> None:
    assert sink.produced == sink.written + sink.dropped + sink.pending_lines


def test_lines_come_out_in_order_and_whole_whatever_the_partial_writes() -> None:
    sink, _ = make(max_bytes=1000)
    for i in range(50):
        assert sink.offer(line(i))
    assert drain(sink, step=4) == [line(i) for i in range(50)]
    assert (sink.produced, sink.written, sink.dropped, sink.pending_lines) == (50, 50, 0, 0)


def test_a_full_buffer_drops_and_counts_then_says_so_in_the_place_of_the_lost_lines() -> None:
    sink, _ = make(max_bytes=90)  # ten lines
    accepted = [sink.offer(line(i)) for i in range(25)]
    assert accepted == [True] * 10 + [False] * 15
    assert sink.dropped == 15
    check_accounting(sink)
    sink.blocked()
    assert sink.state is SinkState.STALLED
    written = drain(sink)
    assert sink.state is SinkState.OK
    assert written[:10] == [line(i) for i in range(10)]
    notice = json.loads(written[10])
    assert notice == {
        "event": "log.dropped",
        "sink": "stdout",
        "lines": 15,
        "since": pytest.approx(100.0 + 1e9),
    }
    assert sink.offer(line(99))
    assert drain(sink) == [line(99)]
    check_accounting(sink)
    assert sink.written == 10 + 1 + 1 and sink.produced == 10 + 15 + 1 + 1
    assert [n.event for n in sink.take_notices()] == [LogEvent.LOG_DROPPED]


def test_the_notice_waits_until_half_the_buffer_is_free_so_it_does_not_flap() -> None:
    sink, _ = make(max_bytes=90)
    for i in range(12):
        sink.offer(line(i))
    sink.wrote(9)  # one line out: room for one line, not for a notice yet
    assert not sink.take_notices()
    assert sink.offer(line(50))
    sink.wrote(9 * 4)  # 54 bytes left: still more than half
    assert not sink.take_notices()
    sink.wrote(9)
    assert [n.fields["lines"] for n in sink.take_notices()] == [2]


def test_a_write_error_fails_the_sink_once_retries_then_recovers() -> None:
    sink, clock = make(max_bytes=1000)
    sink.offer(line(1))
    sink.failed("ENOSPC: No space left on device")
    assert sink.state is SinkState.FAILING and sink.error.startswith("ENOSPC")
    assert sink.retry_at == 105.0 and not sink.retry_due(104.9) and sink.retry_due(105.0)
    clock.now = 105.0
    sink.failed("ENOSPC: No space left on device")  # the retry failed too: no second notice
    assert sink.retry_at == 110.0
    assert [n.event for n in sink.take_notices()] == [LogEvent.LOG_SINK_FAILED]
    written = drain(sink)
    assert written[0] == line(1)
    recovered = json.loads(written[1])
    assert recovered == {
        "event": "log.sink_recovered",
        "sink": "stdout",
        "error": "ENOSPC: No space left on device",
    }
    assert sink.state is SinkState.OK and sink.retry_at is None and sink.error is None
    assert [n.event for n in sink.take_notices()] == [LogEvent.LOG_SINK_RECOVERED]
    check_accounting(sink)


def test_a_failing_sink_keeps_what_fits_and_counts_the_rest() -> None:
    sink, _ = make(max_bytes=45)
    sink.failed("EIO: Input/output error")
    for i in range(20):
        sink.offer(line(i))
    assert sink.pending_lines == 5 and sink.dropped == 15
    out = drain(sink)
    events = [json.loads(x)["event"] for x in out if x.startswith(b"{")]
    assert out[:5] == [line(i) for i in range(5)]
    assert events == ["log.dropped", "log.sink_recovered"]
    check_accounting(sink)


def test_partial_progress_while_failing_is_no_recovery() -> None:
    sink, _ = make(max_bytes=1000)
    for i in range(5):
        sink.offer(line(i))
    sink.failed("ENOSPC: No space left on device")
    sink.wrote(4)  # the last bytes of a page, then ENOSPC again
    sink.failed("ENOSPC: No space left on device")
    assert sink.state is SinkState.FAILING
    assert [n.event for n in sink.take_notices()] == [LogEvent.LOG_SINK_FAILED]
    sink.blocked()  # a write that would block is no error: it works again, slowly
    assert sink.state is SinkState.STALLED and sink.retry_at is None
    assert [n.event for n in sink.take_notices()] == [LogEvent.LOG_SINK_RECOVERED]


def test_a_line_written_at_once_is_counted_and_its_rest_queued() -> None:
    sink, _ = make()
    sink.offer_written(line(1), 9)
    assert (sink.produced, sink.written, sink.pending_lines) == (1, 1, 0)
    sink.offer_written(line(2), 3)
    assert sink.chunk() == line(2)[3:]
    assert drain(sink) == [line(2)[3:]] and sink.written == 2
    check_accounting(sink)


def test_a_sink_that_failed_with_nothing_queued_recovers_when_usable_again() -> None:
    sink, _ = make()
    sink.failed("EBADF: Bad file descriptor")  # e.g. fd 1 closed at start-up
    sink.usable()
    assert sink.state is SinkState.OK and sink.retry_at is None
    assert json.loads(drain(sink)[0])["event"] == "log.sink_recovered"


def test_a_huge_line_into_an_empty_buffer_is_taken() -> None:
    sink, _ = make(max_bytes=10)
    big = b"x" * 500 + b"\n"
    assert sink.offer(big)
    assert not sink.offer(line(1))
    assert drain(sink, step=64)[0] == big


def test_describe_says_the_state_since_when_and_the_counts() -> None:
    sink, _ = make()
    assert sink.describe() == {
        "state": "ok", "since": None, "error": None, "produced": 0, "written": 0, "dropped": 0, "pending": 0,
    }  # fmt: skip
    sink.offer(line(1))
    sink.blocked()
    assert sink.describe()["state"] == "stalled" and sink.describe()["since"] == 100.0 + 1e9
    sink.failed("EPIPE: Broken pipe")
    described = sink.describe()
    assert described["state"] == "failing" and described["error"] == "EPIPE: Broken pipe"
    assert described["since"] == 100.0 + 1e9  # failing since the stall began: still not written


def test_a_sink_set_says_one_sinks_trouble_on_the_others() -> None:
    clock = Clock()
    stdout = SinkBuffer("stdout", 90, clock=clock, wall=clock)
    file = SinkBuffer("file", 10_000, clock=clock, wall=clock)
    sinks = SinkSet([stdout, file], render)
    for i in range(15):
        sinks.offer(line(i))
    stdout.failed("EIO: Input/output error")
    sinks.settle()
    drain(stdout)
    sinks.settle()
    file_lines = drain(file)
    events = [json.loads(x) for x in file_lines if x.startswith(b"{")]
    assert [e["event"] for e in events] == ["log.sink_failed", "log.dropped", "log.sink_recovered"]
    assert events[0]["sink"] == "stdout" and events[1]["lines"] == 5
    assert len([x for x in file_lines if x.startswith(b"line")]) == 15
    for sink in (stdout, file):
        check_accounting(sink)
    assert sinks.describe()["file"]["dropped"] == 0


def test_accounting_is_exact_under_any_mix_of_offers_partial_writes_stalls_and_errors() -> None:
    rng = random.Random(13)
    for _ in range(50):
        sink, clock = make(max_bytes=rng.randint(20, 400))
        for step in range(400):
            roll = rng.random()
            if roll < 0.2 and not sink.pending_bytes and sink.state is SinkState.OK:
                sink.offer_written(line(step), rng.randint(0, 9))  # the hot path, sometimes partial
            elif roll < 0.5:
                sink.offer(line(step))
            elif roll < 0.8 and sink.pending_bytes:
                sink.wrote(rng.randint(1, len(sink.chunk())))
            elif roll < 0.9:
                sink.blocked()
            else:
                clock.now += 1
                sink.failed("EIO: Input/output error")
            check_accounting(sink)
            assert sink.pending_bytes == sum(len(x) for x in sink._queue) - sink._offset
        drain(sink)
        check_accounting(sink)
        assert sink.pending_lines == 0
