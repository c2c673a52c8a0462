"""Delivery bookkeeping: which events are still queued or running, per gateway session.

A seq means something only together with its session id: after an Identify anew (op 9, 4006, a
49xx...) the new session counts from 1 again, and an event of the old session still in a handler
must neither hold back the new session's handed seq nor be paired with the new session id (the
successor's Resume would get 4007 and lose everything). So the events in flight belong to the
current session until it changes; then they are *stranded*: still handled by this process, but no
longer replayable by any Resume. Stranded events that finish are forgotten; those that never finish
(a stop, a crash) are reported as abandoned, with their session and seq range, never silently.

Plain data, no clock, and one log line (`report_abandoned`): `handlers.Dispatcher` adds and
releases events on its hot path (`current` is a plain dict the runners use directly), the worker
switches the session, and the beat and the stop read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qqworker.contract.events import LogEvent
from qqworker.contract.logs import log_event

if TYPE_CHECKING:  # the watchdog imports this module for its log line: no protocol (orjson) there
    from qqworker.protocol import Dispatch

log = logging.getLogger("qqworker.delivery")
MAX_REPORTED = 4  # stranded sessions a beat carries (more than one is already rare)


@dataclass
class Span:
    """Events of one session not handled: how many and their seq range (for log lines and beats)."""

    session_id: str | None
    first_seq: int
    last_seq: int
    count: int

    def fields(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "count": self.count,
        }


@dataclass
class _Stranded:
    session_id: str | None
    events: dict[int, Dispatch] = field(default_factory=dict)

    def span(self) -> Span:
        seqs = list(self.events)
        return Span(self.session_id, min(seqs), max(seqs), len(seqs))


def span_of(session_id: str | None, events: dict[int, Dispatch]) -> Span | None:
    return _Stranded(session_id, events).span() if events else None


class InFlight:
    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id
        # seq -> event, in arrival (= ascending) order: the first is the oldest unfinished.
        self.current: dict[int, Dispatch] = {}
        self._stranded: list[_Stranded] = []

    def handed_seq(self, received_seq: int | None) -> int | None:
        """The seq a successor may Resume the current session from without losing an event: just
        below the oldest event of this session still queued or running, else the last received."""
        if self.current:
            return next(iter(self.current)) - 1
        return received_seq

    def oldest(self) -> Dispatch | None:
        """The current session's oldest event not yet handled (the poison candidate)."""
        return next(iter(self.current.values())) if self.current else None

    def switch(self, session_id: str | None) -> Span | None:
        """The session changed (READY with another id, or the session was dropped): what was in
        flight is stranded. Returns its span (None when nothing was in flight or no change)."""
        if session_id == self.session_id:
            return None
        old, self.session_id = self.session_id, session_id
        if not self.current:
            return None
        stranded = _Stranded(old, dict(self.current))
        self.current.clear()  # the same dict: the runners hold it
        self._stranded.append(stranded)
        return stranded.span()

    def release_stranded(self, event: Dispatch) -> bool:
        """A finished event that was not in `current`: forgets it; True if it was stranded."""
        for stranded in self._stranded:
            if stranded.events.get(event.seq) is event:  # type: ignore[arg-type]
                del stranded.events[event.seq]  # type: ignore[arg-type]
                if not stranded.events:
                    self._stranded.remove(stranded)
                return True
        return False

    def unhandled(self) -> Span | None:
        """The current session's events not handled (yet): count and seq range."""
        return span_of(self.session_id, self.current)

    def stranded(self) -> list[Span]:
        """Events of earlier sessions still unfinished: lost if this process ends now."""
        return [s.span() for s in self._stranded]


def report_abandoned(spans: list[Span], why: str, logger: logging.Logger = log) -> None:
    """One `events.abandoned` line per session whose events were never handled and never will be."""
    for span in spans:
        log_event(
            logger,
            LogEvent.EVENTS_ABANDONED,
            f"{span.count} event(s) of session {span.session_id} (seqs {span.first_seq}-{span.last_seq}) "
            f"were not handled and cannot be replayed (that session can no longer be resumed): {why}",
            level=logging.WARNING,
            **span.fields(),
        )
