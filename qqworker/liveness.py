"""Is the gateway link alive? WebSocket pings between the gateway's slow heartbeats, decided sans-I/O.

The gateway heartbeat runs at Hello's interval (~41 s on the platform), so two missed ACKs take well
over a minute to notice. Between heartbeats we send WebSocket pings: any byte received proves the
link, and once the server has answered one ping, a ping left without anything received for
`pong_timeout` means the link is dead. Whether the server answers pings is not documented, so it is
found out at runtime: a heartbeat ACK that arrives after a ping was sent, with no pong before it,
shows (TCP keeps the order) that the server ignores pings; after `FALLBACK_AFTER_ACKS` of those we
stop pinging and rely on heartbeat ACKs and receive silence alone, and say so once.

Receive silence longer than `SILENCE_FACTOR` × the interval (never less than interval + 1 s) is
dead too, pings or not: an ACK is half an interval late.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MIN_HEARTBEAT_S = 0.1  # a smaller (or zero) Hello interval would make a busy loop
MAX_HEARTBEAT_S = 120.0  # beyond this a dead link would go unnoticed for minutes
PING_INTERVAL_S = 3.0  # ping at most this often ...
PONG_TIMEOUT_S = 10.0  # ... and a ping left unanswered (nothing received) this long is a dead link
MIN_PONG_TIMEOUT_S = 1.0  # short test intervals: a scheduling hiccup is not a dead link
SILENCE_FACTOR = 1.5
FALLBACK_AFTER_ACKS = 2


def clamp_heartbeat(seconds: float) -> float:
    return min(MAX_HEARTBEAT_S, max(MIN_HEARTBEAT_S, seconds))


class PingSupport(str, Enum):
    UNKNOWN = "unknown"  # no pong yet, no proof either way
    ANSWERED = "answered"
    IGNORED = "ignored"  # heartbeat ACKs came back but pongs never did: heartbeat ACKs alone


@dataclass(frozen=True)
class SendPing:
    """Send one WebSocket ping frame."""


@dataclass(frozen=True)
class PingsIgnored:
    """The server does not answer pings; liveness falls back to heartbeat ACKs and silence."""

    acks_without_pong: int


@dataclass(frozen=True)
class LinkDead:
    evidence: str  # "no_pong" or "silence"
    silent_s: float  # since the last byte received
    limit_s: float


class Liveness:
    """Ping schedule and the dead-link decision for one established connection (times in seconds)."""

    def __init__(self, heartbeat_interval: float, now: float, *, pings: bool = True) -> None:
        interval = clamp_heartbeat(heartbeat_interval)
        self.ping_interval = min(PING_INTERVAL_S, interval / 3)
        self.pong_timeout = min(PONG_TIMEOUT_S, max(MIN_PONG_TIMEOUT_S, 3 * interval))
        self.silence_limit = max(SILENCE_FACTOR * interval, interval + 1.0)
        self.support = PingSupport.UNKNOWN if pings else PingSupport.IGNORED
        self.next_ping_at: float | None = now + self.ping_interval if pings else None
        self.first_ping_at: float | None = None
        self.unanswered_since: float | None = None  # the first ping sent after the last byte received
        self.pings_sent = 0
        self.pongs = 0
        self.acks_without_pong = 0

    def pong(self, now: float) -> None:
        self.pongs += 1
        self.support = PingSupport.ANSWERED
        self.unanswered_since = None

    def heartbeat_acked(self, heartbeat_sent_at: float | None) -> PingsIgnored | None:
        """An ACK for the heartbeat sent at that time. Returns PingsIgnored once, when it is decided."""
        self.unanswered_since = None
        if (
            self.support is not PingSupport.UNKNOWN
            or self.first_ping_at is None
            or heartbeat_sent_at is None
            or heartbeat_sent_at < self.first_ping_at
        ):
            return None
        self.acks_without_pong += 1  # the ping went out first, so its pong would have come first
        if self.acks_without_pong < FALLBACK_AFTER_ACKS:
            return None
        self.support = PingSupport.IGNORED
        self.next_ping_at = None
        return PingsIgnored(self.acks_without_pong)

    def poll(self, now: float, last_rx_at: float) -> SendPing | LinkDead | None:
        """`last_rx_at`: when the last frame of any kind arrived (the caller keeps it: one store per
        frame on the hot path, nothing more)."""
        silent = now - last_rx_at
        if silent >= self.silence_limit:
            return LinkDead("silence", silent, self.silence_limit)
        since = self.unanswered_since
        if since is not None and last_rx_at >= since:
            since = self.unanswered_since = None  # something came back after that ping
        if self.support is PingSupport.ANSWERED and since is not None and now - since >= self.pong_timeout:
            return LinkDead("no_pong", silent, self.pong_timeout)
        if self.next_ping_at is not None and now >= self.next_ping_at:
            self.next_ping_at = max(self.next_ping_at + self.ping_interval, now)
            self.pings_sent += 1
            if self.first_ping_at is None:
                self.first_ping_at = now
            if since is None:
                self.unanswered_since = now
            return SendPing()
        return None

    def next_wakeup(self, last_rx_at: float) -> float:
        times = [last_rx_at + self.silence_limit]
        if self.next_ping_at is not None:
            times.append(self.next_ping_at)
        since = self.unanswered_since
        if self.support is PingSupport.ANSWERED and since is not None and since > last_rx_at:
            times.append(since + self.pong_timeout)
        return min(times)
