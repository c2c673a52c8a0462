"""What the watchdog knows about the bot, seen from outside: readiness, and the figures /metrics exports.

A pure, clock-injected record: the supervisor feeds it what it already sees (every relayed contract
line's event and fields, every beat, spawns, kills, exits and respawns) and `/readyz`, `/metrics` and
the push read it. No sockets, no prometheus-client here (that is `watchdog.metrics`).

Counters are the watchdog's own totals since it started, so they survive the worker being replaced:
the beat's per-process delivery totals are added to what earlier generations had reached.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from qqworker.contract.beat import Beat, Phase
from qqworker.contract.events import LogEvent
from watchdog.states import ENDING_THE_CHILD, SupervisorState

__all__ = ["MODE_DOCS", "Monitor", "Readiness", "finite"]

# A connected worker is ready while its last gateway ACK is younger than this many gateway heartbeat
# intervals (plus the slack): ACK age normally runs 0 → 1 interval; the worker itself drops the link
# after 2 unanswered ones, so readiness turns false half an interval before that.
ACK_FRESH_INTERVALS = 1.5
ACK_FRESH_SLACK_S = 0.5
# ...and while it beats: it beats at least every heartbeat_interval; two missed beats plus the slack.
BEAT_FRESH_INTERVALS = 2.0

# The lines whose fields matter here; every other line only needs its event name.
PARSED_EVENTS = frozenset(
    {
        LogEvent.GATEWAY_CONNECTED.value,
        LogEvent.GATEWAY_CLOSED.value,
        LogEvent.RECONNECT_FAILED.value,
        LogEvent.DISPATCH.value,
    }
)


# Metric name suffix -> the Beat field it is read from (QQ_HANDLER=gateway / webhook only).
MODE_GAUGES = {
    "gateway_clients": "gateway_clients",
    "gateway_buffered_events": "gateway_buffered",
    "webhook_pending_events": "webhook_pending",
    "webhook_oldest_pending_age_seconds": "webhook_oldest_age_s",
}
MODE_DOCS = {
    "gateway_clients": "frameworks connected to the local gateway (QQ_HANDLER=gateway)",
    "gateway_buffered_events": "events the local gateway keeps for clients that resume or restart",
    "webhook_pending_events": "events waiting for a webhook acknowledgement (QQ_HANDLER=webhook)",
    "webhook_oldest_pending_age_seconds": "how long the oldest of them has waited",
}


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None  # why not ready
    since: float | None  # wall time the current state began (None: unknown)

    def as_dict(self, rfc3339: Callable[[float], str]) -> dict[str, object]:
        out: dict[str, object] = {"ready": self.ready}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.since is not None:
            out["since"] = rfc3339(self.since)
        return out


class Monitor:
    def __init__(
        self,
        *,
        beat_interval: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall = wall
        self.beat_fresh_s = BEAT_FRESH_INTERVALS * beat_interval + ACK_FRESH_SLACK_S
        self.child_running = False
        self.beat: Beat | None = None
        self.beat_at = 0.0
        self.line_connected = False  # the latest gateway.connected / gateway.closed line
        self.attempts: Counter[str] = Counter()  # outcome: identified, resumed, failed
        self.reconnects: Counter[str] = Counter()  # close code ("none": no close frame)
        self.respawns: Counter[str] = Counter()  # reason
        self.events_base = (0, 0, 0)  # handled, failed, dropped by earlier generations
        self.dispatch_lines = 0
        self.last_dispatch_at: float | None = None
        self._delivered = -1  # the current generation's handled+failed+dropped+queued at its last beat
        self._kill_reason: str | None = None
        self._exit_reason: str | None = None
        self._was_ready = False
        self._since: float | None = wall()

    # Observations ----------------------------------------------------------------------------

    def child_spawned(self) -> None:
        self.child_running = True
        self.beat = None
        self.line_connected = False
        self._delivered = -1
        self._kill_reason = None

    def on_line(self, event: str, text: str) -> None:
        """A contract line the worker wrote (relayed as is)."""
        if event not in PARSED_EVENTS:
            return
        if event == LogEvent.DISPATCH.value:
            self.dispatch_lines += 1
            self.last_dispatch_at = self.clock()
            return
        try:
            record = json.loads(text)
        except ValueError:
            return
        if event == LogEvent.GATEWAY_CONNECTED.value:
            self.line_connected = True
            self.attempts["resumed" if record.get("resumed") else "identified"] += 1
        elif event == LogEvent.RECONNECT_FAILED.value:
            self.attempts["failed"] += 1
        else:  # gateway.closed
            self.line_connected = False
            code = record.get("close_code")
            self.reconnects["none" if code is None else str(code)] += 1

    def on_beat(self, beat: Beat) -> None:
        now = self.clock()
        if beat.phase != Phase.CONNECTED.value:
            self.line_connected = False
        self.beat, self.beat_at = beat, now
        if beat.events_handled is not None:
            delivered = beat.events_handled + (beat.events_failed or 0) + (beat.events_dropped or 0)
            delivered += beat.queued or 0
            if self._delivered >= 0 and delivered > self._delivered:
                self.last_dispatch_at = now
            self._delivered = delivered

    def child_killed(self, reason: str) -> None:
        if self._kill_reason is None:
            self._kill_reason = reason

    def child_exited(self, exitcode: int | None) -> None:
        beat = self.beat
        if beat is not None and beat.events_handled is not None:
            handled, failed, dropped = self.events_base
            self.events_base = (
                handled + beat.events_handled,
                failed + (beat.events_failed or 0),
                dropped + (beat.events_dropped or 0),
            )
        self._exit_reason = self._kill_reason or _exit_reason(exitcode)
        self.child_running = False
        self.beat = None
        self.line_connected = False

    def respawn_scheduled(self) -> None:
        self.respawns[self._exit_reason or "unknown"] += 1

    # Values ----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        beat = self.beat
        return (
            self.child_running
            and beat is not None
            and beat.phase == Phase.CONNECTED.value
            and self.line_connected
        )

    def ack_age(self) -> float | None:
        beat = self.beat
        if not self.connected or beat is None or beat.ack_age_s is None:
            return None
        return beat.ack_age_s + (self.clock() - self.beat_at)

    def ack_rtt(self) -> float | None:
        return self.beat.ack_rtt_s if self.connected and self.beat is not None else None

    def last_dispatch_age(self) -> float | None:
        return None if self.last_dispatch_at is None else self.clock() - self.last_dispatch_at

    def events(self) -> dict[str, int]:
        handled, failed, dropped = self.events_base
        beat = self.beat
        if beat is not None and beat.events_handled is not None:
            handled += beat.events_handled
            failed += beat.events_failed or 0
            dropped += beat.events_dropped or 0
        return {"handled": handled, "failed": failed, "dropped": dropped}

    def queued(self) -> int | None:
        return self.beat.queued if self.beat is not None else None

    def mode_gauges(self) -> dict[str, float]:
        """The local gateway's and the webhook handler's clients and backlog, from the last beat: only
        the fields the worker's mode reports (a mode the worker is not in has none)."""
        beat = self.beat
        values = {name: getattr(beat, field, None) for name, field in MODE_GAUGES.items()}
        return {name: float(v) for name, v in values.items() if type(v) in (int, float)}

    def readiness(self, supervisor_state: SupervisorState) -> Readiness:
        """Ready: a worker is connected, beating, and its gateway ACKs are fresh."""
        reason = self._not_ready_reason(supervisor_state)
        ready = reason is None
        if ready != self._was_ready:
            self._was_ready = ready
            self._since = self.wall()
        return Readiness(ready, reason, self._since)

    def _not_ready_reason(self, supervisor_state: SupervisorState) -> str | None:
        if not self.child_running:
            return f"no worker ({supervisor_state})"
        if supervisor_state in ENDING_THE_CHILD:
            return f"the worker is being ended ({supervisor_state})"
        beat = self.beat
        if beat is None:
            return "worker starting"
        silent = self.clock() - self.beat_at
        if silent > self.beat_fresh_s:
            return f"no heartbeat from the worker for {silent:.1f}s"
        if beat.phase != Phase.CONNECTED.value or not self.line_connected:
            attempt = f", attempt {beat.attempt}" if beat.attempt else ""
            return f"not connected ({beat.phase}{attempt})"
        age = self.ack_age()
        interval = beat.heartbeat_interval_s
        if age is not None and interval:
            limit = ACK_FRESH_INTERVALS * interval + ACK_FRESH_SLACK_S
            if age > limit:
                return f"no gateway heartbeat ACK for {age:.1f}s (limit {limit:.1f}s)"
        return None


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "could not start"
    if exitcode < 0:
        return f"killed by signal {-exitcode}"
    return f"exited {exitcode}"


def finite(value: float | None) -> float:
    """A gauge's value: NaN for "not known now" (Prometheus' own convention)."""
    return math.nan if value is None else float(value)
