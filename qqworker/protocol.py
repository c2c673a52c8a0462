"""Sans-I/O QQ gateway protocol: frames in, decisions out; no sockets, no sleeps, no clock of its own.

Like `websockets`' protocol layer and h11's Connection, `GatewayProtocol` only consumes what the
shell received (`receive_text`, `end`) and the time the shell passes in (`poll`), and
returns outputs for the shell to carry out: frames to send, a session that is up, dispatch events,
and when to give up on the connection. One object per WebSocket connection; the `ResumePoint` it
updates (session id, last seq, recently seen event ids) outlives connections and processes.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

import orjson

from qqworker.closecodes import CloseAction, CloseRule, close_rule
from qqworker.liveness import LinkDead, Liveness, PingsIgnored, SendPing, clamp_heartbeat

__all__ = [
    "CLOSE_END_SESSION",
    "CLOSE_KEEP_SESSION",
    "DEDUPE_WINDOW",
    "AckTimeout",
    "ConnPhase",
    "Disconnect",
    "Dispatch",
    "Established",
    "FrameRejected",
    "GatewayProtocol",
    "Op",
    "Output",
    "ResumePoint",
    "Send",
    "event_key",
]


class Op(IntEnum):
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    RESUME = 6
    RECONNECT = 7
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class ConnPhase(str, Enum):
    AWAIT_HELLO = "await_hello"
    AWAIT_READY = "await_ready"
    ESTABLISHED = "established"
    CLOSED = "closed"


DEFAULT_HEARTBEAT_INTERVAL_S = 45.0
# Our close codes: 4000 keeps the session resumable (as Discord-style gateways read it); 1000 ends it.
CLOSE_KEEP_SESSION = 4000
CLOSE_END_SESSION = 1000
MISSED_ACKS_LIMIT = 2  # heartbeats unacknowledged for two intervals: the link is half-open
DEDUPE_WINDOW = 2048


@dataclass
class ResumePoint:
    """Where the next connection picks the session up: its id and last seq (what a Resume sends),
    and the recently seen event keys that drop a replay's duplicates. Outlives connections (the
    worker keeps one) and processes (the watchdog hands it on); `forget()` when the session is lost."""

    session_id: str | None = None
    seq: int | None = None
    seen_event_ids: set[str] = field(default_factory=set, repr=False)
    _seen_order: deque[str] = field(default_factory=deque, repr=False)  # oldest first

    @property
    def resumable(self) -> bool:
        return self.session_id is not None and self.seq is not None

    def forget(self) -> None:
        self.session_id = None
        self.seq = None

    def first_sighting(self, event_id: str) -> bool:
        """True the first time an event id is seen (within the last DEDUPE_WINDOW ids)."""
        seen = self.seen_event_ids
        if event_id in seen:
            return False
        seen.add(event_id)
        order = self._seen_order
        order.append(event_id)
        if len(order) > DEDUPE_WINDOW:
            seen.discard(order.popleft())
        return True

    def recent_keys(self) -> list[str]:
        """The dedupe window's keys, oldest first (what a successor process needs to go on dropping
        duplicates: see qqworker/seen_store.py)."""
        return list(self._seen_order)

    def window_mark(self) -> tuple[int, str | None]:
        """Changes whenever a key is added (keys never repeat): a cheap "anything new?" test."""
        order = self._seen_order
        return len(order), (order[-1] if order else None)

    def remember(self, keys: list[str]) -> None:
        """Takes keys a predecessor had seen (oldest first) into the window."""
        for key in keys[-DEDUPE_WINDOW:]:
            self.first_sighting(key)


def event_key(event_type: str, event_id: str | None, data: Any) -> str | None:
    """The dedupe window's key of an event (the one place it is made). The envelope id names the event
    (unique per event, the same on a replay); `d.id` names the object (a channel, a guild), shared by
    every update to it, so it is only the fallback, with the type. None: nothing to dedupe on."""
    if event_id is not None:
        return event_id
    message_id = data.get("id") if type(data) is dict else None
    return f"{event_type}:{message_id}" if type(message_id) is str else None


def _standard_loads(text: str | bytes | bytearray) -> Any:
    """What orjson refuses but the JSON standard allows, e.g. an escaped lone surrogate ("\\ud83d"), which
    a standards-following encoder may send. Only on orjson's failure, so the hot path stays orjson."""
    try:
        return json.loads(text)
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError)
        return None


def _excerpt(text: str | bytes | bytearray, limit: int = 120) -> str:
    if isinstance(text, str):
        return text[:limit]
    return bytes(text[:limit]).decode("utf-8", "replace")


# Outputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    payload: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Established:
    session_id: str
    resumed: bool
    seq: int | None


@dataclass(slots=True)  # not frozen: one per event, and a frozen __init__ costs three times as much
class Dispatch:
    """One event, as the handler gets it (`handlers.DispatchEvent`): its type (`C2C_MESSAGE_CREATE`,
    ...), the gateway's event id, its seq and its `d`."""

    type: str
    id: str | None
    seq: int | None
    data: Any


@dataclass(frozen=True)
class FrameRejected:
    reason: str
    excerpt: str


@dataclass(frozen=True)
class AckTimeout:
    """The link is declared dead. `evidence`: "missed_acks" (heartbeats unacknowledged), "no_pong" (a
    WebSocket ping left without anything received) or "silence" (nothing received for too long)."""

    missed: int
    evidence: str = "missed_acks"
    silent_s: float | None = field(default=None, compare=False)
    limit_s: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Disconnect:
    """The connection is over (or must be ended by the shell); what to do next."""

    action: CloseAction
    reason: str
    close_code: int | None = None
    refresh_token: bool = False
    # The platform answered our Identify with op 9 `d: false` (the intents-not-allowed signature, a
    # 4903 close follows in the field). A 49xx close alone is a platform hiccup, never counted here.
    identify_rejected: bool = False
    auth_rejected: bool = False  # the platform refused the token (4004)
    # The platform refused our Resume (op 9, 4006/4007, 49xx before RESUMED): Identify anew at once.
    resume_refused: bool = False

    @property
    def drops_session(self) -> bool:
        """The session is lost: the next connection Identifies anew (or none comes: fatal). Otherwise it
        stays resumable."""
        return self.action in (CloseAction.IDENTIFY, CloseAction.FATAL)

    @property
    def our_close_code(self) -> int:
        """The close code we end the link with: it tells the gateway whether the session is to be kept."""
        return CLOSE_END_SESSION if self.drops_session else CLOSE_KEEP_SESSION

    @classmethod
    def from_rule(
        cls, rule: CloseRule, reason: str, *, before_ready: bool, resuming: bool = False
    ) -> Disconnect:
        code = rule.code
        refused = before_ready and resuming and rule.action is CloseAction.IDENTIFY and not rule.refresh_token
        return cls(
            action=rule.action,
            reason=reason or rule.meaning,
            close_code=code,
            refresh_token=rule.refresh_token,
            auth_rejected=code == 4004,
            resume_refused=refused,
        )


Output = Send | Established | Dispatch | FrameRejected | AckTimeout | Disconnect | SendPing | PingsIgnored


class GatewayProtocol:
    """One gateway connection's state machine, without I/O: Hello → Identify or Resume → READY or
    RESUMED → events, heartbeats and liveness, until it ends. The shell feeds it what arrived
    (`receive_text`, `receive_binary`, `receive_pong`), the time (`poll`) and the end of the link
    (`end`); it returns `Output`s. Every decision about how the connection ends (and so whether the
    session survives: `Disconnect.drops_session`) is taken here, once (`disconnect`)."""

    def __init__(
        self,
        *,
        token: str,
        intents: int,
        session: ResumePoint,
        now: float,
        shard: tuple[int, int] = (0, 1),
        liveness: bool = False,
        pings: bool = True,
    ) -> None:
        """`liveness`: once established, also watch the link with WebSocket pings (unless `pings` is
        False: the server is known to ignore them) and receive silence (see liveness.py)."""
        self.token = token
        self.intents = intents
        self.session = session
        self.shard = shard
        self.phase = ConnPhase.AWAIT_HELLO
        self.heartbeat_interval: float | None = None
        self.next_heartbeat_at: float | None = None
        self.unacked = 0
        self.last_ack_at: float | None = None
        self.ack_rtt: float | None = None  # the last heartbeat's round trip, for monitoring
        self.resuming = False
        self.disconnect: Disconnect | None = None
        self.last_rx_at = now  # any frame, pongs included
        self.last_heartbeat_sent_at: float | None = None
        self._liveness_wanted = liveness
        self._pings = pings
        self.live: Liveness | None = None

    # Inputs ----------------------------------------------------------------------------------

    def receive_text(self, text: str | bytes | bytearray, now: float) -> list[Output]:
        """One text message: its payload as received (UTF-8 bytes) or already decoded."""
        if self.phase is ConnPhase.CLOSED:
            return []
        self.last_rx_at = now
        try:
            frame = orjson.loads(text)  # invalid UTF-8 fails here too
        except orjson.JSONDecodeError:
            frame = _standard_loads(text)
            if frame is None:
                return [FrameRejected("frame is not JSON", _excerpt(text))]
        if type(frame) is not dict or type(op := frame.get("op")) is not int:
            return [FrameRejected("frame has no integer op", _excerpt(text))]
        handler = _HANDLERS.get(op)
        if handler is None:
            return [FrameRejected(f"unknown opcode {op}", _excerpt(text))]
        return handler(self, frame, now)

    def receive_pong(self, now: float) -> None:
        """A WebSocket pong arrived."""
        self.last_rx_at = now
        if self.live is not None:
            self.live.pong(now)

    def receive_binary(self, data: bytes | bytearray) -> list[Output]:
        if self.phase is ConnPhase.CLOSED:
            return []
        return [FrameRejected("binary frame (the gateway speaks JSON text)", repr(bytes(data[:80])))]

    def end(self, reason: str, *, code: int | None = None) -> Disconnect:
        """The connection ends: the transport closed (with the server's close `code`, or without one)
        or the shell must end it (a deadline, a stop). Returns what comes next: the decision already
        taken (op 7, op 9, a dead link) if there is one, else the one the close code calls for."""
        if self.disconnect is not None:
            return self.disconnect
        before_ready = self.phase is not ConnPhase.ESTABLISHED
        return self._decide(
            Disconnect.from_rule(close_rule(code), reason, before_ready=before_ready, resuming=self.resuming)
        )

    def poll(self, now: float) -> list[Output]:
        """Timers: sends the heartbeat when due and declares the link dead after missed ACKs; with
        liveness, also sends pings and declares the link dead on an unanswered ping or silence."""
        if self.phase is ConnPhase.CLOSED or self.next_heartbeat_at is None:
            return []
        out: list[Output] = []
        if now >= self.next_heartbeat_at:
            assert self.heartbeat_interval is not None
            if self.unacked >= MISSED_ACKS_LIMIT:
                missed = self.unacked
                limit = missed * self.heartbeat_interval
                return self._dead(
                    AckTimeout(missed, "missed_acks", now - self.last_rx_at, limit),
                    f"{missed} heartbeats went unacknowledged (half-open link)",
                )
            self.unacked += 1
            # Anchor to the schedule, not to `now`, so a late poll does not stretch every interval.
            self.next_heartbeat_at = max(self.next_heartbeat_at + self.heartbeat_interval, now)
            self.last_heartbeat_sent_at = now
            out.append(Send({"op": Op.HEARTBEAT, "d": self.session.seq}))
        live = self.live
        if live is not None:
            verdict = live.poll(now, self.last_rx_at)
            if type(verdict) is LinkDead:
                what = "a WebSocket ping went unanswered" if verdict.evidence == "no_pong" else "silence"
                return self._dead(
                    AckTimeout(self.unacked, verdict.evidence, verdict.silent_s, verdict.limit_s),
                    f"{what}: nothing received for {verdict.silent_s:.1f}s (half-open link)",
                )
            if verdict is not None:
                out.append(verdict)
        return out

    def next_wakeup(self) -> float | None:
        if self.phase is ConnPhase.CLOSED:
            return None
        wake = self.next_heartbeat_at
        if self.live is not None:
            live_wake = self.live.next_wakeup(self.last_rx_at)
            if wake is None or live_wake < wake:
                wake = live_wake
        return wake

    def _dead(self, timeout: AckTimeout, reason: str) -> list[Output]:
        return [timeout, self._decide(Disconnect(CloseAction.RESUME, reason))]

    # Opcode handlers -------------------------------------------------------------------------

    def _on_hello(self, frame: dict[str, Any], now: float) -> list[Output]:
        if self.phase is not ConnPhase.AWAIT_HELLO:
            return [FrameRejected("second Hello ignored", json.dumps(frame)[:120])]
        out: list[Output] = []
        data = frame.get("d") if isinstance(frame.get("d"), dict) else {}
        interval_ms = data.get("heartbeat_interval")
        if isinstance(interval_ms, (int, float)) and not isinstance(interval_ms, bool) and interval_ms > 0:
            self.heartbeat_interval = clamp_heartbeat(interval_ms / 1000)
            if self.heartbeat_interval != interval_ms / 1000:
                out.append(
                    FrameRejected(
                        f"Hello heartbeat_interval {interval_ms} ms is out of range: "
                        f"using {self.heartbeat_interval:g} s",
                        json.dumps(frame)[:120],
                    )
                )
        else:
            self.heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL_S
            out.append(FrameRejected("Hello without a usable heartbeat_interval", json.dumps(frame)[:120]))
        self.next_heartbeat_at = now + self.heartbeat_interval
        self.last_ack_at = now
        self.phase = ConnPhase.AWAIT_READY
        if self.session.resumable:
            self.resuming = True
            out.append(
                Send(
                    {
                        "op": Op.RESUME,
                        "d": {
                            "token": self.token,
                            "session_id": self.session.session_id,
                            "seq": self.session.seq,
                        },
                    }
                )
            )
        else:
            out.append(
                Send(
                    {
                        "op": Op.IDENTIFY,
                        "d": {
                            "token": self.token,
                            "intents": self.intents,
                            "shard": list(self.shard),
                            "properties": {"$os": "linux", "$browser": "qqwatchdog", "$device": "qqwatchdog"},
                        },
                    }
                )
            )
        return out

    def _on_dispatch(self, frame: dict[str, Any], now: float) -> list[Output]:
        session = self.session
        seq = frame.get("s")
        if type(seq) is int:  # not a bool (orjson makes exact ints)
            # max, not overwrite: a replayed or duplicated frame must never move the seq backwards
            if session.seq is None or seq > session.seq:
                session.seq = seq
        else:
            seq = None
        event_type = frame.get("t")
        data = frame.get("d")
        if type(event_type) is not str:
            return [FrameRejected("dispatch without an event type", json.dumps(frame)[:120])]
        if event_type == "READY":
            session_id = data.get("session_id") if type(data) is dict else None
            if type(session_id) is not str or not session_id:
                return [FrameRejected("READY without a session_id", json.dumps(frame)[:120])]
            session.session_id = session_id
            return self._established(resumed=False, now=now)
        if event_type == "RESUMED":
            return self._established(resumed=True, now=now)
        event_id = frame.get("id")
        if type(event_id) is not str:
            event_id = None
        dedupe_key = event_key(event_type, event_id, data)
        if dedupe_key is not None and not session.first_sighting(dedupe_key):
            return []
        return [Dispatch(event_type, event_id, seq, data)]

    def _established(self, *, resumed: bool, now: float) -> list[Output]:
        if self.phase is not ConnPhase.AWAIT_READY:
            return [FrameRejected("READY/RESUMED outside the handshake", "")]
        self.phase = ConnPhase.ESTABLISHED
        self.last_ack_at = now
        if self._liveness_wanted and self.heartbeat_interval is not None:
            self.live = Liveness(self.heartbeat_interval, now, pings=self._pings)
        assert self.session.session_id is not None
        return [Established(self.session.session_id, resumed, self.session.seq)]

    def _on_heartbeat_ack(self, frame: dict[str, Any], now: float) -> list[Output]:
        self.unacked = 0
        self.last_ack_at = now
        if self.last_heartbeat_sent_at is not None:
            self.ack_rtt = now - self.last_heartbeat_sent_at
        if self.live is not None:
            ignored = self.live.heartbeat_acked(self.last_heartbeat_sent_at)
            if ignored is not None:
                return [ignored]
        return []

    def _on_heartbeat_request(self, frame: dict[str, Any], now: float) -> list[Output]:
        return [Send({"op": Op.HEARTBEAT, "d": self.session.seq})]

    def _on_reconnect(self, frame: dict[str, Any], now: float) -> list[Output]:
        return [self._decide(Disconnect(CloseAction.RESUME, "the gateway asked to reconnect (op 7)"))]

    def _on_invalid_session(self, frame: dict[str, Any], now: float) -> list[Output]:
        if frame.get("d") is True and self.session.resumable:
            return [self._decide(Disconnect(CloseAction.RESUME, "invalid session (op 9), resumable"))]
        refused = self.resuming and self.phase is ConnPhase.AWAIT_READY
        decision = Disconnect(
            CloseAction.IDENTIFY,
            "invalid session (op 9): identify anew",
            identify_rejected=not self.resuming,
            resume_refused=refused,
        )
        return [self._decide(decision)]

    def _on_client_only(self, frame: dict[str, Any], now: float) -> list[Output]:
        return [FrameRejected(f"client opcode {frame['op']} sent by the server", json.dumps(frame)[:120])]

    def _decide(self, decision: Disconnect) -> Disconnect:
        """The one place a connection's end is decided: nothing more is received, and a session the
        decision drops is forgotten."""
        self.phase = ConnPhase.CLOSED
        if decision.drops_session:
            self.session.forget()
        self.disconnect = decision
        return decision


_HANDLERS = {
    Op.DISPATCH: GatewayProtocol._on_dispatch,
    Op.HEARTBEAT: GatewayProtocol._on_heartbeat_request,
    Op.IDENTIFY: GatewayProtocol._on_client_only,
    Op.RESUME: GatewayProtocol._on_client_only,
    Op.RECONNECT: GatewayProtocol._on_reconnect,
    Op.INVALID_SESSION: GatewayProtocol._on_invalid_session,
    Op.HELLO: GatewayProtocol._on_hello,
    Op.HEARTBEAT_ACK: GatewayProtocol._on_heartbeat_ack,
}
