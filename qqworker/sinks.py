"""Output sinks without I/O: a bounded, ordered buffer per sink, exact drop accounting, ok/stalled/failing.

A sink (stdout, the log file) gets whole lines with `offer`, and hands out bytes to write with `chunk`;
the I/O shell (`qqworker.outputs`) reports what happened with `wrote`, `blocked` (the write would
block: `stalled`) or `failed` (a write error: `failing`, retried at `retry_at`). Nothing here blocks,
sleeps or reads a clock of its own: both clocks are injected.

Lines never overtake each other and a line is never torn (a partial write resumes where it stopped).
When the buffer holds `max_bytes`, new lines are dropped and counted; once there is room again the
sink's next line, in the place of the lines it lost, is a `log.dropped` notice. The accounting is
exact: produced == written + dropped + pending lines, per sink.

`SinkSet` ties the sinks of one process together: a line goes to every sink, and what one sink has to
say about itself (it failed, it recovered, it lost lines) is said on the other sinks at once.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from qqworker.contract.events import LogEvent

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_RETRY_S = 5.0
CHUNK_BYTES = 1 << 16


class SinkState(str, Enum):
    OK = "ok"
    STALLED = "stalled"  # writes would block: the reader is slow or stuck
    FAILING = "failing"  # writes fail (ENOSPC, EIO, EPIPE, ...): retried every retry_s


@dataclass(frozen=True)
class Notice:
    """Something a sink has to say about itself; `SinkSet` turns it into a log line."""

    event: LogEvent
    sink: str
    message: str
    fields: dict[str, Any]


class SinkBuffer:
    def __init__(
        self,
        name: str,
        max_bytes: int = DEFAULT_MAX_BYTES,
        retry_s: float = DEFAULT_RETRY_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        render: Callable[[Notice], bytes] | None = None,
    ) -> None:
        self.name = name
        self.render = render  # makes a notice's log line, for this sink's own queue
        self.max_bytes = max_bytes
        self.retry_s = retry_s
        self.clock = clock
        self.wall = wall
        self._queue: deque[bytes] = deque()
        self._offset = 0  # bytes of the first queued line already written
        self.pending_bytes = 0
        self.produced = self.written = self.dropped = 0
        self.state = SinkState.OK
        self.since: float | None = None  # wall time the current stall or failure began
        self.error: str | None = None
        self.retry_at: float | None = None
        self._lost = 0  # lines dropped in the current episode, not yet reported
        self._lost_since: float | None = None
        self._lost_why = ""
        self.notices: list[Notice] = []  # for SinkSet to say on the other sinks; see take_notices()

    # Lines in ------------------------------------------------------------------------------

    @property
    def pending_lines(self) -> int:
        return len(self._queue)

    def offer(self, line: bytes) -> bool:
        """Queue one whole line (ending in a newline); False: no room, dropped and counted."""
        self.produced += 1
        if self._lost:
            self._report_loss()
        if self.pending_bytes + len(line) > self.max_bytes and self._queue:
            self.dropped += 1
            if not self._lost:
                self._lost_since, self._lost_why = self.wall(), self._why()
            self._lost += 1
            return False
        self._queue.append(line)
        self.pending_bytes += len(line)
        return True

    def offer_written(self, line: bytes, count: int) -> None:
        """A line the shell wrote at once into an idle sink (the hot path): `count` of its bytes went."""
        if count >= len(line):
            self.produced += 1
            self.written += 1
            return
        self.offer(line)
        self.wrote(count)

    def push(self, line: bytes) -> None:
        """Queue a line about this sink itself (its own `log.dropped`): never dropped, one over the bound."""
        self.produced += 1
        self._queue.append(line)
        self.pending_bytes += len(line)

    def _report_loss(self) -> None:
        """With room again (half the buffer: no flapping between one drop and one notice), the lines
        lost so far are said, in their place."""
        if self.pending_bytes > self.max_bytes // 2:
            return
        lines, since = self._lost, self._lost_since
        self._lost, self._lost_since = 0, None
        self._say(
            Notice(
                LogEvent.LOG_DROPPED,
                self.name,
                f"The {self.name} output lost {lines} line(s) while it was {self._lost_why}",
                {"sink": self.name, "lines": lines, "since": since},
            ),
            here=True,
        )

    def _say(self, notice: Notice, *, here: bool) -> None:
        if here and self.render is not None:
            self.push(self.render(notice))
        self.notices.append(notice)

    def _why(self) -> str:
        return f"failing ({self.error})" if self.state is SinkState.FAILING else "stalled"

    # Bytes out -----------------------------------------------------------------------------

    def chunk(self, limit: int = CHUNK_BYTES) -> bytes:
        """The next bytes to write, whole lines from the current one on (at least its rest)."""
        if not self._queue:
            return b""
        parts = [self._queue[0][self._offset :]]
        size = len(parts[0])
        for line in itertools.islice(self._queue, 1, None):
            if size + len(line) > limit:
                break
            parts.append(line)
            size += len(line)
        return b"".join(parts)

    def wrote(self, count: int) -> None:
        """`count` bytes of the last chunk were written."""
        if count <= 0:
            return
        self.pending_bytes -= count
        while count > 0 and self._queue:
            rest = len(self._queue[0]) - self._offset
            if count < rest:
                self._offset += count
                break
            count -= rest
            self._queue.popleft()
            self._offset = 0
            self.written += 1
        if self._lost:
            self._report_loss()
        if self.state is SinkState.FAILING:
            # A full disk takes the last bytes of a page and fails again: only a queue written out
            # (or a write that would merely block) ends the failure, so the sink does not flap.
            if self.pending_bytes == 0:
                self._recovered(SinkState.OK)
            return
        self.state, self.since, self.error, self.retry_at = SinkState.OK, None, None, None

    def _recovered(self, state: SinkState) -> None:
        error = self.error
        self.state, self.error, self.retry_at = state, None, None
        self.since = self.wall() if state is SinkState.STALLED else None
        self._say(
            Notice(
                LogEvent.LOG_SINK_RECOVERED,
                self.name,
                f"The {self.name} output works again (it failed with: {error})",
                {"sink": self.name, "error": error},
            ),
            here=True,
        )

    def usable(self) -> None:
        """A retry found the sink usable (reopened, nothing left to write): the failure is over."""
        if self.state is SinkState.FAILING and not self.pending_bytes:
            self._recovered(SinkState.OK)

    def blocked(self) -> None:
        """A write would block: stalled (from now, unless it already was), waiting to be writable."""
        if self.state is SinkState.OK:
            self.state, self.since = SinkState.STALLED, self.wall()
        elif self.state is SinkState.FAILING:
            self._recovered(SinkState.STALLED)  # it takes writes again, just slowly

    def failed(self, error: str) -> None:
        """A write (or the reopen before it) failed: said once per episode, retried after retry_s."""
        self.retry_at = self.clock() + self.retry_s
        if self.state is SinkState.FAILING:
            self.error = error
            return
        if self.state is SinkState.OK or self.since is None:
            self.since = self.wall()
        self.state, self.error = SinkState.FAILING, error
        self._say(
            Notice(
                LogEvent.LOG_SINK_FAILED,
                self.name,
                f"Cannot write to the {self.name} output: {error}; its lines are kept while they fit, "
                f"then dropped and counted, and it is retried every {self.retry_s:g}s",
                {"sink": self.name, "error": error},
            ),
            here=False,
        )

    def retry_due(self, now: float) -> bool:
        return self.state is SinkState.FAILING and self.retry_at is not None and now >= self.retry_at

    def take_notices(self) -> list[Notice]:
        notices, self.notices = self.notices, []
        return notices

    def describe(self) -> dict[str, Any]:
        """For the status file: the state, since when, the error, and the counts."""
        return {
            "state": self.state.value,
            "since": self.since,
            "error": self.error,
            "produced": self.produced,
            "written": self.written,
            "dropped": self.dropped,
            "pending": self.pending_lines,
        }


class SinkSet:
    """Every sink of one process: lines go to all; what a sink says about itself goes to the others too.

    `render(notice)` makes the notice's log line (bytes, newline-terminated); it is injected because the
    line's format (the contract's JSON) belongs to the logging layer. Each sink is given it as well.
    """

    def __init__(self, sinks: list[SinkBuffer], render: Callable[[Notice], bytes]) -> None:
        self.sinks = sinks
        self.render = render
        for sink in sinks:
            sink.render = render

    def offer(self, line: bytes) -> None:
        for sink in self.sinks:
            sink.offer(line)
        self.settle()

    def settle(self) -> None:
        """Says every sink's notices on the other sinks (each has already put its own in its queue).
        Offering them can make another sink report its own loss, hence the (bounded) loop."""
        for _ in range(len(self.sinks) + 1):
            notices = [n for sink in self.sinks for n in sink.take_notices()]
            if not notices:
                return
            for notice in notices:
                line = self.render(notice)
                for sink in self.sinks:
                    if sink.name != notice.sink:
                        sink.offer(line)

    def get(self, name: str) -> SinkBuffer | None:
        return next((s for s in self.sinks if s.name == name), None)

    def describe(self) -> dict[str, dict[str, Any]]:
        return {sink.name: sink.describe() for sink in self.sinks}
