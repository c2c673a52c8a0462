"""The heartbeat message the worker sends the watchdog over a pipe, defined once for both.

A beat is built from the listen loop's own progress record, so it tells the watchdog what the loop
is doing, not merely that the process exists. Durations are relative (seconds from the moment the
beat was sent) so that no wall clock has to agree between the two processes.

Version skew (a `git pull` while the watchdog runs: its next child runs the new code). Each side
speaks a beat version: the watchdog tells the child its own at spawn (`VERSION_ENV`), and the child
writes beats that version can read. Version 1 (no `v` field) is read by a strict decoder that rejects
any field it does not know, so a child talking to it sends exactly the version-1 fields. From version 2
on, the decoder ignores fields it does not know and reports them, so fields appended later need no
coordination: a newer worker is supervised on the fields its watchdog knows, and the watchdog says once
that it is older.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any

# The beat format this code speaks. Bump it when a field's meaning changes or a field is added that an
# older watchdog should know it cannot read (appending a field alone needs no bump: it is ignored).
BEAT_VERSION = 2
# How the watchdog tells a child the version it speaks: in the environment the spawned interpreter
# inherits, not as an argument, so that a child of any older or newer code starts all the same.
VERSION_ENV = "QQW_WATCHDOG_BEAT_VERSION"
# What a version-1 watchdog's strict decoder accepts, and nothing more.
V1_FIELDS = (
    "phase",
    "attempt",
    "attempt_age_s",
    "next_attempt_in_s",
    "session_id",
    "seq",
    "ack_age_s",
    "connected_for_s",
    "heartbeat_interval_s",
)
MAX_REDACT_CHARS = 2048  # the redaction list must keep a beat far below PIPE_BUF


class Phase(str, Enum):
    STARTING = "starting"
    CONNECTING = "connecting"  # an attempt is under way (token, discovery, handshake, READY)
    CONNECTED = "connected"  # READY or RESUMED received; heartbeats flowing
    WAITING = "waiting"  # sleeping before the next attempt
    STOPPING = "stopping"

    def __str__(self) -> str:
        return self.value


@dataclass
class Progress:
    """Mutable record the listen loop updates as it goes; `time` is monotonic seconds."""

    phase: Phase = Phase.STARTING
    attempt: int = 0
    attempt_started_at: float | None = None
    next_attempt_at: float | None = None
    session_id: str | None = None
    seq: int | None = None
    last_ack_at: float | None = None
    connected_since: float | None = None
    heartbeat_interval_s: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # When set, the beat's seq comes from it (read at each beat) rather than from `seq`.
    seq_source: Callable[[], int | None] | None = field(default=None, repr=False)
    on_change: Callable[[], None] | None = field(default=None, repr=False)
    api_base: str | None = None  # the REST base and token URL in use (host agility)
    token_url: str | None = None
    ack_rtt_s: float | None = None  # the last gateway heartbeat's round trip (sent -> ACK)
    # When set, (handled, failed, dropped, queued) of the handler dispatcher, read at each beat.
    totals_source: Callable[[], tuple[int, int, int, int]] | None = field(default=None, repr=False)
    # When set, read at each beat: the delivery fields of the Beat (oldest_*, stranded).
    delivery_source: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)
    # When set (the webhook handler), read at each beat: the webhook_* fields of the Beat.
    webhook_source: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)

    def update(self, **changes: Any) -> None:
        """Sets fields and tells the listener (the pipe beater beats at once on every change)."""
        for name, value in changes.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            setattr(self, name, value)
        if self.on_change is not None:
            self.on_change()

    def beat(self) -> Beat:
        now = self.clock()

        def age(t: float | None) -> float | None:
            return None if t is None else round(max(0.0, now - t), 3)

        return Beat(
            phase=self.phase.value,
            attempt=self.attempt,
            attempt_age_s=age(self.attempt_started_at) if self.phase is Phase.CONNECTING else None,
            next_attempt_in_s=(
                round(max(0.0, self.next_attempt_at - now), 3)
                if self.phase is Phase.WAITING and self.next_attempt_at is not None
                else None
            ),
            session_id=self.session_id,
            seq=self.seq if self.seq_source is None else self.seq_source(),
            ack_age_s=age(self.last_ack_at) if self.phase is Phase.CONNECTED else None,
            connected_for_s=age(self.connected_since) if self.phase is Phase.CONNECTED else None,
            heartbeat_interval_s=self.heartbeat_interval_s,
            api_base=self.api_base,
            token_url=self.token_url,
            ack_rtt_s=self.ack_rtt_s if self.phase is Phase.CONNECTED else None,
            **self._totals(),
            **(self.delivery_source() if self.delivery_source is not None else {}),
            **(self.webhook_source() if self.webhook_source is not None else {}),
        )

    def _totals(self) -> dict[str, int]:
        if self.totals_source is None:
            return {}
        handled, failed, dropped, queued = self.totals_source()
        return {
            "events_handled": handled,
            "events_failed": failed,
            "events_dropped": dropped,
            "queued": queued,
        }


@dataclass(frozen=True)
class Beat:
    phase: str
    attempt: int
    attempt_age_s: float | None = None  # CONNECTING: how long the current attempt has run
    next_attempt_in_s: float | None = None  # WAITING: when the next attempt is due
    session_id: str | None = None
    seq: int | None = None
    ack_age_s: float | None = None  # CONNECTED: since the last gateway heartbeat ACK (or READY)
    connected_for_s: float | None = None
    heartbeat_interval_s: float | None = None  # the gateway's, from Hello
    v: int = BEAT_VERSION  # the beat version the sender speaks (a beat without one: version 1)
    # Secrets the worker learnt (its current and previous access tokens): the watchdog redacts them
    # from the child's raw output too. Kept in memory only, never logged or written.
    redact: tuple[str, ...] | None = None
    api_base: str | None = None  # the REST base in use: the watchdog hands it to the next child
    token_url: str | None = None  # the token endpoint in use, likewise
    ack_rtt_s: float | None = None  # CONNECTED: the last heartbeat's round trip to its ACK
    # The handler dispatcher's totals since the worker started, and the events waiting in its queue.
    events_handled: int | None = None
    events_failed: int | None = None
    events_dropped: int | None = None
    queued: int | None = None
    # The oldest event of the session not yet handled (never its content): a child that dies while
    # the same event stays oldest, again and again, is killed by it (the watchdog's poison check).
    oldest_seq: int | None = None
    oldest_type: str | None = None
    oldest_id: str | None = None
    # Events of dropped sessions still in a handler: [session_id, first_seq, last_seq, count] each;
    # no Resume can replay them, so if the child dies now the watchdog reports them abandoned.
    stranded: list[list[Any]] | None = None
    # The webhook handler (QQ_HANDLER=webhook): events waiting for an acknowledgement (summed over
    # the URLs), the oldest one's wait, and totals since the worker started.
    webhook_pending: int | None = None
    webhook_oldest_age_s: float | None = None
    webhook_delivered: int | None = None
    webhook_failures: int | None = None
    webhook_dropped: int | None = None
    # QQ_HANDLER=gateway: frameworks attached to the local gateway, events buffered for them, the
    # newest local seq, events pushed out of the buffer in total, and [client, sent, confirmed] each.
    gateway_clients: int | None = None
    gateway_buffered: int | None = None
    gateway_seq: int | None = None
    gateway_evicted: int | None = None
    gateway_client_marks: list[list[Any]] | None = None

    def encode(self, version: int = BEAT_VERSION) -> bytes:
        """The beat as a watchdog speaking `version` can read it."""
        raw = asdict(self)
        if version <= 1:
            raw = {name: raw[name] for name in V1_FIELDS}
        else:
            if raw["redact"] is None:
                del raw["redact"]
            else:
                raw["redact"] = list(raw["redact"])
        return json.dumps(raw, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Beat:
        """Parses a beat; raises ValueError on anything that is not one."""
        return cls.parse(data)[0]

    @classmethod
    def parse(cls, data: bytes) -> tuple[Beat, frozenset[str]]:
        """A beat and the names of the fields it carried that this version does not know (ignored).
        ValueError on anything that is not a beat."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            known = _FIELD_NAMES.intersection(raw)
            values = {name: raw[name] for name in known}
            values.setdefault("v", 1)
            if not isinstance(values["v"], int):
                raise TypeError("v is not an integer")
            values["redact"] = _redact_list(values.get("redact"))
            beat = cls(**values)
            unknown = set(raw.keys() - known)
            if not beat.known_phase:
                if beat.v <= BEAT_VERSION or not isinstance(beat.phase, str):
                    raise ValueError(f"unknown phase {beat.phase!r}")
                unknown.add(f"phase:{beat.phase}")  # a newer worker's phase: it still proves liveness
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed heartbeat message: {exc}") from exc
        return beat, frozenset(unknown)

    @property
    def known_phase(self) -> bool:
        return self.phase in _PHASES


def _redact_list(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("redact is not a list of strings")
    return tuple(value)


_FIELD_NAMES = frozenset(f.name for f in fields(Beat))
_PHASES = frozenset(p.value for p in Phase)
