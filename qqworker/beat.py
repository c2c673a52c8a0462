"""The heartbeat message the worker sends the watchdog over a pipe, defined once for both.

A beat is built from the listen loop's own progress record, so it tells the watchdog what the loop
is doing, not merely that the process exists. Durations are relative (seconds from the moment the
beat was sent) so that no wall clock has to agree between the two processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


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
    # When set, read at each beat: the delivery fields of the Beat (oldest_*, stranded).
    delivery_source: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)

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
            **(self.delivery_source() if self.delivery_source is not None else {}),
        )


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
    # The oldest event of the session not yet handled (never its content): a child that dies while
    # the same event stays oldest, again and again, is killed by it (the watchdog's poison check).
    oldest_seq: int | None = None
    oldest_type: str | None = None
    oldest_id: str | None = None
    # Events of dropped sessions still in a handler: [session_id, first_seq, last_seq, count] each;
    # no Resume can replay them, so if the child dies now the watchdog reports them abandoned.
    stranded: list[list[Any]] | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Beat:
        """Parses a beat; raises ValueError on anything that is not one."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict):
                raise TypeError("not an object")
            beat = cls(**raw)
            Phase(beat.phase)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed heartbeat message: {exc}") from exc
        return beat
