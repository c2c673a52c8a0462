"""The local gateway's stream: recent upstream events with local seqs, and what clients confirmed.

Pure and clock-injected (the I/O is in `localgw.py`). Every upstream event gets the next local seq
(1, 2, ...), whatever its upstream session: upstream re-Identifies, 4009 cycles and host switches
never show in the local numbering, which only grows. The buffer keeps the last `max_events` events
and none older than `max_age_s`; an event pushed out by either bound is gone for local replays
(a Resume from before it gets op 9; an Identify replays what is left and says how many it missed).

Confirmation: a client's heartbeat `d` is the last local seq it got; it confirms everything up to
there (never past what it was sent). Two marks follow from that:
- `identify_from()`: a client that Identifies while no other client is attached is the same bot
  restarted; it gets what follows the last seq any client confirmed. Otherwise it joins the live
  stream (several clients share one stream, each sees every event).
- `upstream_floor(session)`: the upstream seq a successor worker may Resume from. It stays below the
  oldest buffered event some attached client has not confirmed (with no client attached, below the
  oldest event after the last confirmed one), so a respawn loses nothing a client had not received.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Entry:
    seq: int  # local
    at: float
    type: str
    id: str | None
    data: Any
    upstream_session: str | None
    upstream_seq: int | None


@dataclass
class Mark:
    """One attached client: the last local seq sent to it and the last it confirmed."""

    name: str
    sent: int
    confirmed: int


@dataclass
class Replay:
    """What a client is sent after READY/RESUMED: the entries, and how many it missed for good."""

    entries: list[Entry] = field(default_factory=list)
    lost: int = 0


class StreamBuffer:
    def __init__(
        self, max_events: int, max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_events < 1 or max_age_s <= 0:
            raise ValueError("the buffer needs room for one event and a positive age")
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._clock = clock
        self._entries: deque[Entry] = deque()
        self.last_seq = 0  # the newest local seq handed out
        self.evicted_upto = 0  # every local seq up to this one has left the buffer
        self.evicted = 0  # events pushed out by a bound, in total
        self.confirmed = 0  # the highest local seq any client confirmed
        self._clients: dict[int, Mark] = {}
        self._ids = itertools.count(1)
        self.observed = False  # a client was attached: the local numbering is known outside

    # The stream --------------------------------------------------------------------------------

    def add(
        self,
        event_type: str,
        event_id: str | None,
        data: Any,
        upstream_session: str | None,
        upstream_seq: int | None,
    ) -> Entry:
        now = self._clock()
        self.last_seq += 1
        entry = Entry(self.last_seq, now, event_type, event_id, data, upstream_session, upstream_seq)
        self._entries.append(entry)
        self._trim(now)
        return entry

    def expire(self) -> int:
        """Drops the events past the age bound (also done at each add); returns how many."""
        before = self.evicted
        self._trim(self._clock())
        return self.evicted - before

    def _trim(self, now: float) -> None:
        entries = self._entries
        oldest_kept = now - self.max_age_s
        while entries and (len(entries) > self.max_events or entries[0].at < oldest_kept):
            self.evicted_upto = entries.popleft().seq
            self.evicted += 1

    @property
    def depth(self) -> int:
        return len(self._entries)

    def after(self, seq: int) -> Replay:
        """The buffered entries with a local seq above `seq`, oldest first, and how many of those
        that should have followed `seq` are no longer buffered."""
        self._trim(self._clock())
        lost = max(0, self.evicted_upto - seq)
        entries = [e for e in self._entries if e.seq > seq] if seq < self.last_seq else []
        return Replay(entries, lost)

    def adopt(self, seq: int) -> bool:
        """A worker's successor, before any client has seen its numbering, continues the numbering
        its predecessor's client resumes from: every buffered event (nothing evicted yet) gets `seq`
        added, so that a Resume from `seq` gets all of them. False (nothing changed) otherwise."""
        if self.observed or self.evicted_upto or seq < 0:
            return False
        for entry in self._entries:
            entry.seq += seq
        self.last_seq += seq
        self.evicted_upto = self.confirmed = seq
        return True

    def can_resume(self, seq: int) -> bool:
        """A Resume from `seq` can be served whole: nothing after it has left the buffer."""
        self._trim(self._clock())
        return self.evicted_upto <= seq <= self.last_seq

    # Clients -----------------------------------------------------------------------------------

    def identify_from(self) -> int:
        """The local seq after which an Identifying client's stream starts (see the module doc)."""
        if self._clients:
            return self.last_seq
        return max(self.confirmed, 0)

    def attach(self, name: str, start: int) -> int:
        """A client is now streamed everything after local seq `start`; returns its handle."""
        handle = next(self._ids)
        self.observed = True
        self._clients[handle] = Mark(name, start, start)
        return handle

    def detach(self, handle: int) -> Mark | None:
        return self._clients.pop(handle, None)

    def sent_of(self, handle: int) -> int | None:
        mark = self._clients.get(handle)
        return None if mark is None else mark.sent

    def sent(self, handle: int, seq: int) -> None:
        mark = self._clients.get(handle)
        if mark is not None and seq > mark.sent:
            mark.sent = seq

    def confirm(self, handle: int, seq: Any) -> int | None:
        """A heartbeat's `d`: confirms up to it, never past what was sent. Returns the client's
        confirmed mark (None for an unknown handle)."""
        mark = self._clients.get(handle)
        if mark is None:
            return None
        if type(seq) is int and seq > mark.confirmed:
            mark.confirmed = min(seq, mark.sent)
            if mark.confirmed > self.confirmed:
                self.confirmed = mark.confirmed
        return mark.confirmed

    @property
    def clients(self) -> list[Mark]:
        return list(self._clients.values())

    def unconfirmed_from(self) -> int:
        """Every local seq above this one is not yet known to be received by everyone who counts."""
        if self._clients:
            return min(m.confirmed for m in self._clients.values())
        return self.confirmed

    def upstream_floor(self, upstream_session: str | None) -> int | None:
        """The highest upstream seq of `upstream_session` a successor may Resume from without
        losing an event some client still needs; None when nothing buffered holds it back."""
        if upstream_session is None:
            return None
        start = self.unconfirmed_from()
        for entry in self._entries:
            if entry.seq > start and entry.upstream_session == upstream_session and entry.upstream_seq:
                return entry.upstream_seq - 1
        return None
