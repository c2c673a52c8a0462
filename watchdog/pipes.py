"""The child's two pipes, one reader object each: its output (fds 1 and 2) and its heartbeats.

Both read without blocking, split what came into whole lines (`watchdog.relay.LineSplitter`) and see
EOF once, at which point they leave the supervisor's selector. What a line means is each reader's own
business: the output reader relays the contract's lines as they are and wraps anything else as one
`child.output` record; the beat reader parses beats, learns the tokens to redact, reports a malformed
beat at most every `BAD_BEAT_REPORT_EVERY_S` and a newer worker's beat version once. What the supervisor
does with a line, a beat or an EOF it is told through the callbacks it gave (the decisions are its own).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from qqworker.contract.beat import BEAT_VERSION, Beat
from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event, redactor
from watchdog.relay import LineSplitter, classify, group_output

__all__ = ["BAD_BEAT_REPORT_EVERY_S", "BEAT_MAX_LINE", "READ_CHUNK", "BeatReader", "OutputReader"]

log = logging.getLogger("watchdog")

READ_CHUNK = 1 << 16
BEAT_MAX_LINE = 4096
BAD_BEAT_REPORT_EVERY_S = 5.0


class _Pipe:
    """One pipe's fd, its line splitter and its EOF, for one child at a time (`attach`)."""

    def __init__(self, unregister: Callable[[int], None], max_line: int | None) -> None:
        self._unregister = unregister
        self._max_line = max_line
        self.fd = -1
        self.eof = True  # no child attached yet
        self._split = self._splitter()

    def _splitter(self) -> LineSplitter:
        return LineSplitter() if self._max_line is None else LineSplitter(max_line=self._max_line)

    def _attach_fd(self, fd: int) -> None:
        self.fd = fd
        self.eof = False
        self._split = self._splitter()

    def detach(self) -> None:
        """The child's pipes are closed: nothing is read from that fd number again."""
        self.fd = -1

    def _read(self) -> bytes | None:
        """What one read gave (b"" at EOF or on an error), None when there was nothing to read."""
        if self.fd < 0 or self.eof:
            return None
        try:
            return os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def _closed(self) -> None:
        self._unregister(self.fd)
        self.eof = True


class OutputReader(_Pipe):
    """The child's fds 1 and 2: each contract line goes to `on_line(now, event, text)` as it is; other
    output (a traceback, a library's print) is logged as one `child.output` record per run of lines.
    `before` runs ahead of each read (the supervisor reads the beats first: a token the child learnt
    is beaten before it can be printed, so the redactor knows it before this output is relayed)."""

    def __init__(
        self,
        unregister: Callable[[int], None],
        now: Callable[[], float],
        before: Callable[[], None],
        on_line: Callable[[float, str, str], None],
        on_eof: Callable[[], None],
    ) -> None:
        super().__init__(unregister, None)
        self._now = now
        self._before = before
        self._on_line = on_line
        self._on_eof = on_eof
        self.pid = 0

    def attach(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._attach_fd(fd)

    def read(self) -> None:
        data = self._read()
        if data is None:
            return
        self._before()
        if data:
            self._relay(self._split.feed(data))
            return
        self._relay(self._split.flush())
        self._closed()
        self._on_eof()

    def _relay(self, lines: list[bytes]) -> None:
        if not lines:
            return
        now = self._now()
        for item in group_output([classify(line, self.pid) for line in lines]):
            text, event = item.text, item.event
            if event is None:
                first = text.splitlines()[0] if text else ""
                cut = {} if item.cut_bytes is None else {"cut": True, "bytes": item.cut_bytes}
                log_event(
                    log,
                    LogEvent.CHILD_OUTPUT,
                    f"The worker printed: {first[:300]}"
                    + (f" (a {item.cut_bytes}-byte line, cut)" if cut else ""),
                    level=logging.WARNING,
                    child_pid=self.pid,
                    text=text,
                    **cut,
                )
                continue
            self._on_line(now, event, text)


class BeatReader(_Pipe):
    """The child's heartbeat pipe: each well-formed beat goes to `on_beat(now, beat)` after its tokens
    are remembered by the redactor; EOF goes to `on_eof(now)`. A malformed beat is counted and skipped;
    a beat of a newer version (or with fields this version does not know) is read on the fields it
    knows and reported once per watchdog."""

    def __init__(
        self,
        unregister: Callable[[int], None],
        now: Callable[[], float],
        on_beat: Callable[[float, Beat], None],
        on_eof: Callable[[float], None],
    ) -> None:
        super().__init__(unregister, BEAT_MAX_LINE)
        self._now = now
        self._on_beat = on_beat
        self._on_eof = on_eof
        self.malformed = 0
        self._malformed_reported = float("-inf")
        self._skew_reported = False

    def attach(self, fd: int) -> None:
        self._attach_fd(fd)

    def read(self) -> None:
        data = self._read()
        if data is None:
            return
        now = self._now()
        if not data:
            self._closed()
            self._on_eof(now)
            return
        for line in self._split.feed(data):
            try:
                beat, unknown = Beat.parse(line)
            except ValueError as exc:
                self._bad_beat(now, line, exc)
                continue
            if beat.redact:
                redactor.remember(beat.redact)
            if (beat.v > BEAT_VERSION or unknown) and not self._skew_reported:
                self._version_skew(beat, unknown)
            self._on_beat(now, beat)

    def _version_skew(self, beat: Beat, unknown: frozenset[str]) -> None:
        self._skew_reported = True
        log_event(
            log,
            LogEvent.WATCHDOG_VERSION_SKEW,
            f"The worker speaks beat version {beat.v}, this watchdog {BEAT_VERSION}"
            + (f" (fields it does not know: {', '.join(sorted(unknown))})" if unknown else "")
            + ": its code is newer than the running watchdog's. Supervising it on the fields this "
            "watchdog knows; restart the watchdog to run the new code on both sides",
            level=logging.WARNING,
            worker_version=beat.v,
            watchdog_version=BEAT_VERSION,
            unknown_fields=sorted(unknown),
        )

    def _bad_beat(self, now: float, line: bytes, exc: ValueError) -> None:
        self.malformed += 1
        if now - self._malformed_reported >= BAD_BEAT_REPORT_EVERY_S:
            self._malformed_reported = now
            log.warning(
                "Ignored a malformed heartbeat message (%d so far): %s",
                self.malformed,
                exc,
                extra={
                    "event": LogEvent.BEAT_MALFORMED.value,
                    "excerpt": line[:120].decode("utf-8", errors="replace"),
                    "malformed": self.malformed,
                },
            )
