"""The child's two pipe readers over plain os.pipe()s, with a hand-driven clock: what reaches the callbacks,
in which order, and what is logged (a malformed beat at most every few seconds, a newer beat version once)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import pytest

from qqworker.contract.beat import BEAT_VERSION, Beat
from qqworker.contract.events import LogEvent
from watchdog.pipes import BAD_BEAT_REPORT_EVERY_S, BEAT_MAX_LINE, BeatReader, OutputReader


class Rig:
    """A pipe, a clock and a record of every callback, in order."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.now = 10.0
        self.calls: list[tuple] = []

    def unregister(self, fd: int) -> None:
        self.calls.append(("unregister", fd))

    def clock(self) -> float:
        return self.now

    def send(self, data: bytes) -> None:
        os.write(self.w, data)

    def send_beat(self, beat: Beat) -> None:
        self.send(beat.encode() + b"\n")

    def close_writer(self) -> None:
        os.close(self.w)
        self.w = -1

    def close(self) -> None:
        for fd in (self.r, self.w):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.close()


def beat_reader(rig: Rig) -> BeatReader:
    reader = BeatReader(
        rig.unregister,
        rig.clock,
        lambda now, beat: rig.calls.append(("beat", now, beat.phase, beat.seq)),
        lambda now: rig.calls.append(("beats_eof", now)),
    )
    reader.attach(rig.r)
    return reader


def output_reader(rig: Rig, pid: int = 4242) -> OutputReader:
    reader = OutputReader(
        rig.unregister,
        rig.clock,
        lambda: rig.calls.append(("before",)),
        lambda now, event, text: rig.calls.append(("line", now, event, text)),
        lambda: rig.calls.append(("output_eof",)),
    )
    reader.attach(pid, rig.r)
    return reader


def events(caplog: pytest.LogCaptureFixture, event: LogEvent) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event.value]


def test_nothing_is_read_before_a_child_is_attached_or_after_it_is_detached(rig: Rig) -> None:
    reader = BeatReader(rig.unregister, rig.clock, lambda now, b: rig.calls.append(b), lambda now: None)
    assert reader.eof  # no child yet
    rig.send_beat(Beat(phase="starting", attempt=0))
    reader.read()
    assert rig.calls == []
    reader.attach(rig.r)
    reader.detach()
    reader.read()
    assert rig.calls == []


def test_beats_arrive_whole_across_reads_and_eof_comes_once(rig: Rig) -> None:
    reader = beat_reader(rig)
    data = Beat(phase="connected", attempt=1, session_id="s", seq=3).encode() + b"\n"
    rig.send(data[:10])
    reader.read()
    assert rig.calls == []  # half a beat is no beat
    rig.send(data[10:])
    rig.send_beat(Beat(phase="connected", attempt=1, session_id="s", seq=4))
    rig.now = 11.0
    reader.read()
    reader.read()  # nothing more to read: no call
    assert rig.calls == [("beat", 11.0, "connected", 3), ("beat", 11.0, "connected", 4)]
    rig.close_writer()
    rig.now = 12.0
    reader.read()
    reader.read()
    assert rig.calls[2:] == [("unregister", rig.r), ("beats_eof", 12.0)] and reader.eof


def test_a_malformed_beat_is_skipped_and_reported_at_most_every_few_seconds(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog")
    reader = beat_reader(rig)
    for at in (10.0, 11.0, 10.0 + BAD_BEAT_REPORT_EVERY_S):
        rig.now = at
        rig.send(b"not a beat\n")
        rig.send_beat(Beat(phase="waiting", attempt=2))
        reader.read()
    assert [c[0] for c in rig.calls] == ["beat", "beat", "beat"]  # the good ones still count
    lines = events(caplog, LogEvent.BEAT_MALFORMED)
    assert [r.malformed for r in lines] == [1, 3] and reader.malformed == 3
    assert lines[0].excerpt == "not a beat"


def test_a_beat_longer_than_the_limit_is_cut_and_refused(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog")
    reader = beat_reader(rig)
    rig.send(b"{" + b" " * (BEAT_MAX_LINE + 10) + b"}\n")
    reader.read()
    assert rig.calls == [] and reader.malformed == 1


def test_a_newer_beat_version_is_supervised_and_reported_once_per_watchdog(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog")
    reader = beat_reader(rig)
    newer = json.dumps({"phase": "starting", "attempt": 0, "v": BEAT_VERSION + 1, "future": 1}).encode()
    rig.send(newer + b"\n" + newer + b"\n")
    reader.read()
    reader.attach(rig.r)  # a respawned child speaks the same newer version: no second line
    rig.send(newer + b"\n")
    reader.read()
    assert [c[0] for c in rig.calls] == ["beat", "beat", "beat"]
    (skew,) = events(caplog, LogEvent.WATCHDOG_VERSION_SKEW)
    assert (skew.worker_version, skew.unknown_fields) == (BEAT_VERSION + 1, ["future"])


def test_the_tokens_a_beat_hands_over_are_redacted_before_the_beat_is_handled(rig: Rig) -> None:
    from qqworker.contract.logs import REDACTED, redactor

    token = "qqw-unit-pipes-token-5d1c"  # the process-wide redactor: a string no other test prints
    seen: list[str] = []
    reader = BeatReader(
        rig.unregister, rig.clock, lambda now, b: seen.append(redactor(token)), lambda now: None
    )
    reader.attach(rig.r)
    rig.send_beat(Beat(phase="connected", attempt=1, redact=(token,)))
    reader.read()
    assert seen == [REDACTED]


def test_output_reads_the_beats_first_then_relays_contract_lines_and_wraps_the_rest(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="watchdog")
    reader = output_reader(rig)
    line = json.dumps({"event": "gateway.connecting", "role": "worker", "pid": 4242, "message": "m"})
    rig.send(line.encode() + b"\nTraceback (most recent call last):\n  boom\n")
    rig.now = 20.0
    reader.read()
    assert rig.calls == [("before",), ("line", 20.0, "gateway.connecting", line)]
    (printed,) = events(caplog, LogEvent.CHILD_OUTPUT)
    assert printed.child_pid == 4242 and printed.text == "Traceback (most recent call last):\n  boom"
    assert printed.getMessage() == "The worker printed: Traceback (most recent call last):"


def test_output_eof_flushes_the_last_partial_line_then_leaves_the_selector(rig: Rig) -> None:
    reader = output_reader(rig)
    line = json.dumps({"event": "worker.stopped", "role": "worker", "pid": 4242, "message": "bye"})
    rig.send(line.encode())  # no newline: the child died mid-line
    reader.read()
    assert rig.calls == [("before",)]
    rig.close_writer()
    reader.read()
    assert rig.calls[1:] == [
        ("before",),
        ("line", 10.0, "worker.stopped", line),
        ("unregister", rig.r),
        ("output_eof",),
    ]
    assert reader.eof
    reader.read()
    assert len(rig.calls) == 5
