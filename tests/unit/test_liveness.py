"""Link liveness (qqworker/liveness.py) and its use by the protocol, on an injected clock."""

from __future__ import annotations

import json

from qqworker.liveness import (
    MAX_HEARTBEAT_S,
    MIN_HEARTBEAT_S,
    LinkDead,
    Liveness,
    PingsIgnored,
    PingSupport,
    SendPing,
    clamp_heartbeat,
)
from qqworker.protocol import AckTimeout, ConnPhase, Disconnect, GatewayProtocol, Op, ResumePoint, Send

HELLO_S = 41.25  # the platform's interval as seen in the field


def test_production_interval_gives_pings_every_3s_and_a_10s_pong_deadline() -> None:
    live = Liveness(HELLO_S, 0.0)
    assert (live.ping_interval, live.pong_timeout) == (3.0, 10.0)
    assert live.silence_limit == 1.5 * HELLO_S


def test_short_intervals_scale_down_but_keep_a_floor_against_hiccups() -> None:
    live = Liveness(0.3, 0.0)
    assert abs(live.ping_interval - 0.1) < 1e-9
    assert live.pong_timeout == 1.0
    assert live.silence_limit == 1.3


def test_hello_interval_is_floored_and_capped() -> None:
    assert clamp_heartbeat(0.001) == MIN_HEARTBEAT_S
    assert clamp_heartbeat(0) == MIN_HEARTBEAT_S
    assert clamp_heartbeat(10_000) == MAX_HEARTBEAT_S
    assert clamp_heartbeat(41.25) == 41.25


def test_answered_pings_keep_the_link_and_follow_their_schedule() -> None:
    live = Liveness(HELLO_S, 0.0)
    assert live.poll(2.9, 0.0) is None
    assert live.next_wakeup(0.0) == 3.0
    rx = 0.0
    for k in range(1, 200):
        now = 3.0 * k
        assert live.poll(now, rx) == SendPing()
        rx = now + 0.05
        live.pong(rx)
    assert live.support is PingSupport.ANSWERED
    assert live.pings_sent == 199


def test_dead_link_is_noticed_within_15s_of_the_last_frame() -> None:
    """Worst case: the link dies just after a frame arrived; the next ping goes out up to one ping
    interval later and is declared lost after the pong timeout."""
    live = Liveness(HELLO_S, 0.0)
    assert live.poll(3.0, 0.0) == SendPing()
    live.pong(3.01)
    last_rx = 3.01  # then the link dies
    t = 3.01
    verdict = None
    while verdict is None or verdict == SendPing():
        t = round(t + 0.01, 2)
        verdict = live.poll(t, last_rx)
        if verdict is None:
            assert live.next_wakeup(last_rx) > t
    assert isinstance(verdict, LinkDead) and verdict.evidence == "no_pong"
    assert t - last_rx <= 13.0 + 0.02
    assert verdict.silent_s == t - last_rx


def test_any_frame_after_a_ping_answers_it() -> None:
    live = Liveness(HELLO_S, 0.0)
    live.pong(0.5)
    assert live.poll(3.0, 0.5) == SendPing()
    # a dispatch event arrives at 12.0 (its pong is stuck behind a retransmission): not dead
    assert live.poll(12.5, 12.0) in (None, SendPing())
    assert live.poll(13.0, 12.0) in (None, SendPing())
    assert not isinstance(live.poll(21.9, 12.0), LinkDead)


def test_no_pong_verdict_only_once_pings_were_seen_answered() -> None:
    live = Liveness(HELLO_S, 0.0)
    assert live.poll(3.0, 0.0) == SendPing()
    # nothing at all received for 30 s, but no pong was ever seen: not the ping's verdict
    for t in range(4, 61):
        assert not isinstance(live.poll(float(t), 0.0), LinkDead)
    dead = live.poll(62.0, 0.0)
    assert isinstance(dead, LinkDead) and dead.evidence == "silence"


def test_acks_without_pongs_switch_to_the_fallback_once() -> None:
    live = Liveness(HELLO_S, 0.0)
    assert live.poll(3.0, 0.0) == SendPing()
    assert live.heartbeat_acked(2.0) is None  # a heartbeat sent before the first ping proves nothing
    assert live.heartbeat_acked(41.25) is None  # first ACK without a pong before it
    assert live.heartbeat_acked(82.5) == PingsIgnored(2)
    assert live.support is PingSupport.IGNORED
    assert live.heartbeat_acked(123.75) is None  # said once
    assert live.poll(200.0, 199.0) is None  # no more pings
    assert live.next_ping_at is None


def test_a_pong_before_the_ack_keeps_pings_on() -> None:
    live = Liveness(HELLO_S, 0.0)
    live.poll(3.0, 0.0)
    live.pong(3.01)
    for sent in (41.25, 82.5, 123.75):
        assert live.heartbeat_acked(sent) is None
    assert live.support is PingSupport.ANSWERED


def test_known_ignored_pings_are_not_sent_at_all() -> None:
    live = Liveness(HELLO_S, 0.0, pings=False)
    assert live.support is PingSupport.IGNORED
    assert live.poll(30.0, 29.0) is None
    assert live.next_wakeup(29.0) == 29.0 + live.silence_limit


# The protocol with liveness on -------------------------------------------------------------


def _established(hello_ms: float = 41250, pings: bool = True) -> GatewayProtocol:
    conn = GatewayProtocol(token="t", intents=1, session=ResumePoint(), now=0.0, liveness=True, pings=pings)
    conn.receive_text(json.dumps({"op": Op.HELLO, "d": {"heartbeat_interval": hello_ms}}), 0.0)
    ready = {"op": 0, "s": 1, "t": "READY", "d": {"session_id": "s1", "user": {"id": "1"}}}
    conn.receive_text(json.dumps(ready), 0.1)
    return conn


def test_protocol_pings_between_heartbeats_and_drops_a_dead_link_with_its_evidence() -> None:
    conn = _established()
    assert conn.next_wakeup() == 3.1
    assert conn.poll(3.1) == [SendPing()]
    conn.receive_pong(3.15)
    assert conn.poll(6.1) == [SendPing()]  # then the link dies: nothing comes back
    outputs: list[object] = []
    t = 6.1
    while not outputs or outputs == [SendPing()]:
        t = conn.next_wakeup() or t
        outputs = conn.poll(t)
    timeout, disconnect = outputs
    assert isinstance(timeout, AckTimeout) and timeout.evidence == "no_pong"
    assert timeout.limit_s == 10.0 and abs(t - 16.1) < 1e-6
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason.startswith("a WebSocket ping went unanswered")
    assert conn.phase is ConnPhase.CLOSED and conn.session.resumable


def test_protocol_heartbeats_still_follow_hello_with_pings_between() -> None:
    conn = _established()
    sent = []
    rx = 0.1
    t = 0.1
    while t < 45.0:
        t = conn.next_wakeup() or 0.0
        for out in conn.poll(t):
            sent.append((round(t, 2), out))
            if isinstance(out, SendPing):
                conn.receive_pong(t + 0.01)
            else:
                conn.receive_text(json.dumps({"op": Op.HEARTBEAT_ACK}), t + 0.02)
        rx = t
    assert (41.25, Send({"op": Op.HEARTBEAT, "d": 1})) in sent
    assert sum(isinstance(o, SendPing) for _, o in sent) >= 14
    assert conn.phase is ConnPhase.ESTABLISHED and rx > 41


def test_protocol_reports_pings_ignored_from_the_ack_order() -> None:
    conn = _established(hello_ms=3000)  # ping every 1 s, heartbeat every 3 s; the server ignores pings
    seen = []
    t = 0.1
    while t < 10.0 and not any(isinstance(o, PingsIgnored) for o in seen):
        t = conn.next_wakeup() or 0.0
        for out in conn.poll(t):
            if isinstance(out, Send):
                seen.extend(conn.receive_text(json.dumps({"op": Op.HEARTBEAT_ACK}), t + 0.05))
    assert PingsIgnored(2) in seen
    assert conn.phase is ConnPhase.ESTABLISHED


def test_protocol_silence_is_dead_even_without_pings() -> None:
    conn = _established(pings=False)
    assert conn.poll(41.25) == [Send({"op": Op.HEARTBEAT, "d": 1})]  # its ACK never comes
    timeout, _ = conn.poll(conn.next_wakeup() or 0.0)
    assert isinstance(timeout, AckTimeout) and timeout.evidence == "silence"
    assert abs((timeout.silent_s or 0) - 1.5 * HELLO_S) < 0.2


def test_a_hello_interval_out_of_range_is_clamped_and_said() -> None:
    conn = GatewayProtocol(token="t", intents=1, session=ResumePoint(), now=0.0)
    out = conn.receive_text(json.dumps({"op": Op.HELLO, "d": {"heartbeat_interval": 1}}), 0.0)
    assert conn.heartbeat_interval == MIN_HEARTBEAT_S
    assert any("out of range" in getattr(o, "reason", "") for o in out)
