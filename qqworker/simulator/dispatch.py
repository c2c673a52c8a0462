"""Fan dispatch events out to sessions: a sequence number each, kept for Resume, written to live connections.

Events are built and framed in chunks, each chunk one transport write per connection, with a bounded wait for
the client to read between chunks: that is what lets `{"count": N}` push tens of thousands of events a second.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from qqworker.simulator.context import SimContext
from qqworker.simulator.events import GENERATED_TYPES, REQUIRED_INTENT, PreparedEvent
from qqworker.simulator.state import LiveConnection, SessionRecord
from qqworker.wire import text_frame

__all__ = ["check", "dispatch"]

CHUNK = 1024
IDS_REPORTED = 100
_EVENT_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def check(kind: Any, d: Any, count: Any) -> None:
    """ValueError unless these make a valid dispatch request."""
    if not isinstance(kind, str) or not _EVENT_TYPE.fullmatch(kind):
        raise ValueError("type must be an event name such as C2C_MESSAGE_CREATE")
    if d is not None and not isinstance(d, dict):
        raise ValueError("d must be an object")
    if type(count) is not int or count < 1:
        raise ValueError("count must be a positive integer")


async def dispatch(
    ctx: SimContext,
    kind: str,
    d: dict[str, Any] | None = None,
    count: int = 1,
    session_id: str | None = None,
) -> dict[str, Any]:
    """Send `count` events of type `kind` (`d` overrides fields of each generated payload).

    Returns once every event is written to its connection or stored for its session's Resume: with a large
    count that needs the clients to be reading meanwhile.
    """
    check(kind, d, count)
    state = ctx.state
    state.expire_sessions(ctx.options.resume_window_s)
    required = REQUIRED_INTENT.get(kind, 0)
    targets = [
        s
        for s in state.sessions.values()
        if (session_id is None or s.session_id == session_id) and s.intents & required == required
    ]
    factory = ctx.events
    ids: list[str] = []
    seqs: dict[str, list[int]] = {s.session_id: [s.seq + 1, s.seq] for s in targets}
    remaining = count
    while remaining > 0:
        n = min(CHUNK, remaining)
        remaining -= n
        if d is None and kind in GENERATED_TYPES:
            events = factory.batch(kind, n)
        else:
            events = [factory.one(kind, d) for _ in range(n)]
        if len(ids) < IDS_REPORTED:
            ids.extend(e.message_id for e in events[: IDS_REPORTED - len(ids)])
        live = [conn for session in targets if (conn := _deliver(session, kind, events)) is not None]
        for session in targets:
            seqs[session.session_id][1] = session.seq
        state.counters["events_sent"] += n
        state.counters["dispatches"] += n * len(targets)
        for conn in live:
            await conn.drain()
        if remaining:
            await asyncio.sleep(0)  # let the clients' heartbeats and other requests through
    return {
        "type": kind,
        "count": count,
        "sessions": len(targets),
        "ids": ids,
        "seq": {sid: span for sid, span in seqs.items() if span[1] >= span[0]},
    }


def _deliver(session: SessionRecord, kind: str, events: list[PreparedEvent]) -> LiveConnection | None:
    """Number, frame and store the events for one session; write them if it is connected."""
    parts: list[bytes] = []
    append = parts.append
    store = session.store
    seq = session.seq
    for ev in events:
        seq += 1
        frame = text_frame(
            f'{{"op":0,"s":{seq},"t":"{kind}","id":"{ev.envelope_id}","d":{ev.d_json}}}'.encode()
        )
        store(seq, frame)
        append(frame)
    session.seq = seq
    conn = session.connection
    if conn is not None and conn.write(b"".join(parts)):
        return conn
    return None
