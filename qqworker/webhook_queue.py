"""Delivery to one webhook URL, as plain decisions: no socket, no sleep, the clock injected.

One queue per URL, sent strictly in arrival order, one request at a time: the head is retried
(jittered backoff from `initial` up to `cap`, the same envelope id every time) until any 2xx
acknowledges it; only then is the next event sent, and an acknowledged event is never sent again.
A full queue drops its oldest event not being sent (the newest is what a chat bot still wants),
counted and reported. What is worth a log line comes back as `Report`s from `reports(now)`:
failures at most once per `FAILED_LOG_INTERVAL_S` with counts, the end of a burst that was
reported (at once, with the whole burst's count), drops, a delivered summary
at most once per `DELIVERED_LOG_INTERVAL_S`, and a backlog warning when the oldest event has waited
longer than `backlog_warn_s` (once per backlog).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from qqworker.backoff import Backoff

FAILED_LOG_INTERVAL_S = 10.0
DELIVERED_LOG_INTERVAL_S = 60.0

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    item: T
    queued_at: float


@dataclass
class Report:
    kind: str  # "failed", "dropped", "delivered", "backlog", "recovered"
    fields: dict[str, Any]


@dataclass
class UrlQueue(Generic[T]):
    url: str
    capacity: int
    backoff: Backoff
    backlog_warn_s: float = 60.0
    entries: deque[Entry[T]] = field(default_factory=deque)
    sending: bool = False  # the head is on the wire
    retry_at: float | None = None  # the head failed: not before this
    delivered: int = 0  # totals since start
    dropped: int = 0
    failures: int = 0
    _unreported_failures: int = 0
    _failures_in_burst: int = 0  # failures since the head last got through
    _burst_reported: bool = False  # a failed line was written during this burst
    _recovery: int | None = None  # a reported burst ended: its failure count, for the recovered line
    _last_status: int | None = None
    _last_error: str = ""
    _failed_logged_at: float | None = None
    _unreported_drops: int = 0
    _delivered_since: int = 0
    _delivered_logged_at: float | None = None
    _backlog_warned: bool = False

    # The queue -------------------------------------------------------------------------------

    def push(self, item: T, now: float) -> list[T]:
        """Queues `item`; returns what a full queue dropped to make room (the oldest not on the wire)."""
        dropped: list[T] = []
        while len(self.entries) >= self.capacity:
            index = 1 if self.sending else 0
            if index >= len(self.entries):  # capacity 1 and the head on the wire: drop the newcomer
                self._count_drop()
                return [item]
            dropped.append(self.entries[index].item)
            del self.entries[index]
            if index == 0:
                self.retry_at = None
                self.backoff.reset()
            self._count_drop()
        self.entries.append(Entry(item, now))
        return dropped

    def _count_drop(self) -> None:
        self.dropped += 1
        self._unreported_drops += 1

    def __len__(self) -> int:
        return len(self.entries)

    def oldest_age(self, now: float) -> float | None:
        return max(0.0, now - self.entries[0].queued_at) if self.entries else None

    # Sending -------------------------------------------------------------------------------

    def next_send(self, now: float) -> T | None:
        """The event to send now (then marked on the wire), or None: nothing due."""
        if self.sending or not self.entries:
            return None
        if self.retry_at is not None and now < self.retry_at:
            return None
        self.sending = True
        return self.entries[0].item

    def wait_s(self, now: float) -> float | None:
        """How long until `next_send` may return something (None: not until a push or a result)."""
        if self.sending or not self.entries:
            return None
        if self.retry_at is None:
            return 0.0
        return max(0.0, self.retry_at - now)

    def acked(self, now: float) -> T:
        """The head was acknowledged (any 2xx): removed for good."""
        assert self.sending and self.entries
        self.sending = False
        self.retry_at = None
        self.backoff.reset()
        entry = self.entries.popleft()
        if self._burst_reported:
            # Said at once, with the whole burst's count (the failures not yet in a failed line too).
            self._recovery, self._unreported_failures = self._failures_in_burst, 0
        self._failures_in_burst, self._burst_reported = 0, False
        self.delivered += 1
        self._delivered_since += 1
        return entry.item

    def failed(self, now: float, status: int | None, error: str) -> float:
        """The head's attempt failed (refused, timeout, non-2xx): returns the delay before its retry."""
        assert self.sending
        self.sending = False
        self.failures += 1
        self._unreported_failures += 1
        self._failures_in_burst += 1
        self._last_status, self._last_error = status, error
        delay = self.backoff.next_delay()
        self.retry_at = now + delay
        return delay

    def abandon_send(self) -> None:
        """The attempt was cut off (shutdown): the head stays queued, unacknowledged."""
        self.sending = False

    # What to log ----------------------------------------------------------------------------

    def reports(self, now: float) -> list[Report]:
        out: list[Report] = []
        pending = len(self.entries)
        if self._unreported_failures and (
            self._failed_logged_at is None or now - self._failed_logged_at >= FAILED_LOG_INTERVAL_S
        ):
            out.append(
                Report(
                    "failed",
                    {
                        "url": self.url,
                        "status": self._last_status,
                        "error": self._last_error,
                        "pending": pending,
                        "failures": self._unreported_failures,
                        "retry_in_s": round(max(0.0, self.retry_at - now), 3) if self.retry_at else None,
                    },
                )
            )
            self._unreported_failures = 0
            self._failed_logged_at = now
            self._burst_reported = self._failures_in_burst > 0
        if self._recovery is not None:
            out.append(Report("recovered", {"url": self.url, "failures": self._recovery, "pending": pending}))
            self._recovery = None
        if self._unreported_drops:
            out.append(
                Report(
                    "dropped",
                    {
                        "url": self.url,
                        "events": self._unreported_drops,
                        "dropped_total": self.dropped,
                        "capacity": self.capacity,
                    },
                )
            )
            self._unreported_drops = 0
        age = self.oldest_age(now)
        if age is not None and age >= self.backlog_warn_s:
            if not self._backlog_warned:
                self._backlog_warned = True
                out.append(
                    Report("backlog", {"url": self.url, "oldest_age_s": round(age, 3), "pending": pending})
                )
        elif age is None or age < self.backlog_warn_s / 2:
            self._backlog_warned = False  # hysteresis: a new backlog warns again
        if self._delivered_since and (
            self._delivered_logged_at is None or now - self._delivered_logged_at >= DELIVERED_LOG_INTERVAL_S
        ):
            out.append(
                Report(
                    "delivered",
                    {
                        "url": self.url,
                        "events": self._delivered_since,
                        "delivered_total": self.delivered,
                        "pending": pending,
                    },
                )
            )
            self._delivered_since = 0
            self._delivered_logged_at = now
        return out


def new_queue(
    url: str,
    capacity: int,
    initial: float,
    cap: float,
    backlog_warn_s: float,
    rand: Callable[[], float] | None = None,
) -> UrlQueue[Any]:
    backoff = (
        Backoff(initial, max(cap, initial)) if rand is None else Backoff(initial, max(cap, initial), rand)
    )
    return UrlQueue(url, capacity, backoff, backlog_warn_s)
