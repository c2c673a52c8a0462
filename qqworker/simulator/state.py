"""What the simulator remembers: gateway sessions with their replay buffers, counters and received replies."""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["LiveConnection", "Reply", "SessionRecord", "SimState"]


class LiveConnection(Protocol):
    """What the state, the dispatcher and the server need of a live gateway connection
    (`gateway.SimConnection`), declared here so that this module imports no handler."""

    session: SessionRecord | None
    muted: bool

    def describe(self, now: float) -> dict[str, Any]: ...

    def write(self, data: bytes) -> bool: ...

    async def drain(self) -> None: ...

    def abort(self) -> None: ...

    async def close(self, code: int, reason: str | None = None) -> None: ...

    async def reconnect(self, close_code: int | None) -> None: ...

    async def unmute(self, idle_limit_s: float | None) -> None: ...


class SessionRecord:
    """The simulator's record of one client's gateway session, made by a READY.

    Its sequence numbers run on across connections until it expires: `connection` is the live connection
    holding it (None while the client is away), `frames` the dispatches kept for a Resume's replay.
    """

    __slots__ = (
        "away_since",
        "connection",
        "created",
        "evicted_upto",
        "frames",
        "intents",
        "seq",
        "session_id",
        "shard",
    )

    def __init__(self, intents: int, shard: list[int], replay_limit: int) -> None:
        self.session_id = str(uuid.uuid4())
        self.intents = intents
        self.shard = shard
        self.seq = 0
        # (seq, encoded frame) of every dispatch event, for Resume replay.
        self.frames: deque[tuple[int, bytes]] = deque(maxlen=replay_limit)
        self.evicted_upto = 0
        self.created = time.monotonic()
        self.connection: LiveConnection | None = None
        self.away_since: float | None = None

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def store(self, seq: int, frame: bytes) -> None:
        frames = self.frames
        if len(frames) == frames.maxlen:
            self.evicted_upto = frames[0][0]
        frames.append((seq, frame))

    def frames_after(self, seq: int) -> list[bytes] | None:
        """Every stored dispatch with s > seq, oldest first; None when some of them were evicted."""
        if seq < self.evicted_upto:
            return None
        tail: list[bytes] = []
        for s, frame in reversed(self.frames):
            if s <= seq:
                break
            tail.append(frame)
        tail.reverse()
        return tail

    def expired(self, now: float, window_s: float) -> bool:
        return self.connection is None and self.away_since is not None and now - self.away_since > window_s

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "connected": self.connection is not None,
            "seq": self.seq,
            "intents": self.intents,
            "shard": self.shard,
            "stored": len(self.frames),
            "away_s": None if self.away_since is None else round(now - self.away_since, 3),
        }


@dataclass
class Reply:
    method: str
    path: str
    kind: str  # c2c, group, channel, dms
    target: str
    body: dict[str, Any]
    status: int
    code: int | None
    at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "kind": self.kind,
            "target": self.target,
            "body": self.body,
            "status": self.status,
            "code": self.code,
            "at": self.at,
        }


class SimState:
    """Everything the simulator remembers and GET /_sim/state reports: the sessions, the live connections,
    the replies received (and their keys, for the platform's duplicate check), and the counters.

    No I/O and no clock of its own beyond `time.monotonic()` for ages: the gateway and REST handlers
    write it, the snapshot reads it.
    """

    def __init__(self, replay_limit: int, max_replies_kept: int) -> None:
        self.replay_limit = replay_limit
        self.sessions: dict[str, SessionRecord] = {}
        self.connections: dict[int, LiveConnection] = {}
        self.replies: deque[Reply] = deque(maxlen=max_replies_kept)
        self.reply_keys: dict[tuple[str, int], None] = {}  # an ordered set, oldest first
        self.counters: Counter[str] = Counter()
        self.closes: Counter[int] = Counter()
        self.client_closes: Counter[int] = Counter()  # close codes the clients sent

    def new_session(self, intents: int, shard: list[int]) -> SessionRecord:
        session = SessionRecord(intents, shard, self.replay_limit)
        self.sessions[session.session_id] = session
        return session

    def live_session(self, session_id: str, window_s: float) -> SessionRecord | None:
        session = self.sessions.get(session_id)
        if session is not None and session.expired(time.monotonic(), window_s):
            del self.sessions[session_id]
            return None
        return session

    def expire_sessions(self, window_s: float) -> int:
        now = time.monotonic()
        gone = [sid for sid, s in self.sessions.items() if s.expired(now, window_s)]
        for sid in gone:
            del self.sessions[sid]
        return len(gone)

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        counters = self.counters
        return {
            "sessions": [s.describe(now) for s in self.sessions.values()],
            "connections": [c.describe(now) for c in self.connections.values()],
            "identifies": counters["identifies"],
            "resumes": counters["resumes"],
            "events_sent": counters["events_sent"],
            "replies_received": counters["replies_received"],
            "replies": [r.describe() for r in self.replies],
            "counters": dict(sorted(counters.items())),
            "closes": {str(code): n for code, n in sorted(self.closes.items())},
            "client_closes": {str(code): n for code, n in sorted(self.client_closes.items())},
        }
