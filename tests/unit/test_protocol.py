import json

import orjson
import pytest

from qqworker.closecodes import CLOSE_RULES, CloseAction
from qqworker.protocol import (
    CLOSE_END_SESSION,
    CLOSE_KEEP_SESSION,
    DEDUPE_WINDOW,
    AckTimeout,
    ConnPhase,
    Disconnect,
    Dispatch,
    Established,
    FrameRejected,
    GatewayProtocol,
    Op,
    ResumePoint,
    Send,
)

TOKEN = "QQBot tok-123"


def frame(op: int, d: object = None, **extra: object) -> str:
    return json.dumps({"op": op, "d": d, **extra})


def hello(ms: float = 1000) -> str:
    return frame(Op.HELLO, {"heartbeat_interval": ms})


def ready(session_id: str = "sess-1", s: int = 1) -> str:
    return frame(
        Op.DISPATCH, {"session_id": session_id, "user": {"id": "1"}, "shard": [0, 1]}, s=s, t="READY"
    )


def dispatch(s: int, msg_id: str, t: str = "C2C_MESSAGE_CREATE") -> str:
    return frame(Op.DISPATCH, {"id": msg_id, "content": "hi"}, s=s, t=t, id=f"{t}:{msg_id}")


def connect(session: ResumePoint | None = None, now: float = 0.0) -> tuple[GatewayProtocol, list]:
    conn = GatewayProtocol(token=TOKEN, intents=513, session=session or ResumePoint(), now=now)
    return conn, conn.receive_text(hello(), now)


def established(session: ResumePoint | None = None) -> GatewayProtocol:
    conn, _ = connect(session)
    conn.receive_text(ready(), 0.1)
    return conn


def test_hello_leads_to_identify_with_token_intents_and_shard() -> None:
    conn, out = connect()
    assert out == [
        Send(
            {
                "op": Op.IDENTIFY,
                "d": {
                    "token": TOKEN,
                    "intents": 513,
                    "shard": [0, 1],
                    "properties": {"$os": "linux", "$browser": "qqwatchdog", "$device": "qqwatchdog"},
                },
            }
        )
    ]
    assert conn.phase is ConnPhase.AWAIT_READY
    assert conn.heartbeat_interval == 1.0


def test_a_resumable_session_resumes_instead() -> None:
    _, out = connect(ResumePoint(session_id="s-9", seq=41))
    assert out == [Send({"op": Op.RESUME, "d": {"token": TOKEN, "session_id": "s-9", "seq": 41}})]


def test_ready_establishes_and_records_the_session() -> None:
    session = ResumePoint()
    conn, _ = connect(session)
    out = conn.receive_text(ready("abc", s=1), 0.2)
    assert out == [Established("abc", resumed=False, seq=1)]
    assert session.session_id == "abc" and session.seq == 1
    assert conn.phase is ConnPhase.ESTABLISHED


def test_resume_replays_before_resumed_and_seq_continues() -> None:
    session = ResumePoint(session_id="s", seq=5)
    conn, _ = connect(session)
    replayed = conn.receive_text(dispatch(6, "m6"), 0.1) + conn.receive_text(dispatch(7, "m7"), 0.1)
    assert [d.seq for d in replayed if isinstance(d, Dispatch)] == [6, 7]
    out = conn.receive_text(frame(Op.DISPATCH, "", s=8, t="RESUMED"), 0.2)
    assert out == [Established("s", resumed=True, seq=8)]


def test_dispatch_carries_type_id_seq_and_data() -> None:
    conn = established()
    (event,) = conn.receive_text(dispatch(2, "m1", "GROUP_AT_MESSAGE_CREATE"), 1)
    assert event == Dispatch(
        "GROUP_AT_MESSAGE_CREATE", "GROUP_AT_MESSAGE_CREATE:m1", 2, {"id": "m1", "content": "hi"}
    )
    assert conn.session.seq == 2


def test_duplicate_delivery_is_dropped_but_seq_never_moves_backwards() -> None:
    conn = established()
    assert conn.receive_text(dispatch(5, "m1"), 1)
    assert conn.receive_text(dispatch(6, "m1"), 1) == []  # the same message delivered twice
    conn.receive_text(dispatch(3, "m-old"), 1)  # a stray lower seq
    assert conn.session.seq == 6


def test_dedupe_memory_is_bounded() -> None:
    session = ResumePoint()
    for i in range(DEDUPE_WINDOW + 10):
        assert session.first_sighting(str(i))
    assert len(session.seen_event_ids) == DEDUPE_WINDOW
    assert session.first_sighting("0")  # forgotten long ago


def test_heartbeats_follow_hello_interval_with_last_seq() -> None:
    conn = established()
    conn.receive_text(dispatch(7, "m"), 0.5)
    assert conn.poll(0.99) == []
    assert conn.next_wakeup() == 1.0
    assert conn.poll(1.0) == [Send({"op": Op.HEARTBEAT, "d": 7})]
    assert conn.next_wakeup() == 2.0


def test_heartbeat_before_any_seq_carries_null() -> None:
    conn, _ = connect()
    assert conn.poll(1.0) == [Send({"op": Op.HEARTBEAT, "d": None})]


def test_acknowledged_heartbeats_keep_the_link() -> None:
    conn = established()
    for t in range(1, 50):
        assert conn.poll(float(t)) == [Send({"op": Op.HEARTBEAT, "d": 1})]
        conn.receive_text(frame(Op.HEARTBEAT_ACK), t + 0.1)
    assert conn.phase is ConnPhase.ESTABLISHED


def test_two_unacknowledged_intervals_mean_a_half_open_link() -> None:
    conn = established()
    assert isinstance(conn.poll(1.0)[0], Send)
    assert isinstance(conn.poll(2.0)[0], Send)
    ack_timeout, disconnect = conn.poll(3.0)
    assert ack_timeout == AckTimeout(missed=2)
    assert isinstance(disconnect, Disconnect) and disconnect.action is CloseAction.RESUME
    assert conn.phase is ConnPhase.CLOSED
    assert conn.next_wakeup() is None
    assert conn.end("", code=1006) is disconnect  # the decision made first stands
    assert conn.session.resumable


def test_an_ack_with_a_null_d_counts_too() -> None:
    conn = established()
    conn.poll(1.0)
    conn.receive_text(json.dumps({"op": 11}), 1.1)
    conn.poll(2.0)
    conn.receive_text(json.dumps({"op": 11, "d": None}), 2.1)
    assert [type(o) for o in conn.poll(3.0)] == [Send]


def test_a_late_poll_does_not_drift_the_schedule() -> None:
    conn = established()
    conn.poll(1.4)
    assert conn.next_wakeup() == 2.0


def test_op7_reconnect_keeps_the_session() -> None:
    conn = established()
    (out,) = conn.receive_text(frame(Op.RECONNECT), 5)
    assert out.action is CloseAction.RESUME
    final = conn.end("expired", code=4009)
    assert final is out and conn.session.resumable


def test_op9_false_drops_the_session_and_counts_as_identify_rejection() -> None:
    session = ResumePoint()
    conn, _ = connect(session)
    (out,) = conn.receive_text(frame(Op.INVALID_SESSION, False), 0.1)
    assert out.action is CloseAction.IDENTIFY and out.identify_rejected
    assert not session.resumable


def test_op9_on_resume_is_not_an_identify_rejection() -> None:
    session = ResumePoint(session_id="old", seq=3)
    conn, _ = connect(session)
    (out,) = conn.receive_text(frame(Op.INVALID_SESSION, False), 0.1)
    assert out.action is CloseAction.IDENTIFY and not out.identify_rejected
    assert session.session_id is None


def test_op9_true_may_resume() -> None:
    conn = established()
    (out,) = conn.receive_text(frame(Op.INVALID_SESSION, True), 1)
    assert out.action is CloseAction.RESUME


@pytest.mark.parametrize(
    ("code", "action", "keeps_session"),
    [
        (4009, CloseAction.RESUME, True),
        (None, CloseAction.RESUME, True),
        (4006, CloseAction.IDENTIFY, False),
        (4008, CloseAction.BACKOFF, True),
        (4915, CloseAction.FATAL, False),
    ],
)
def test_close_codes_decide_and_update_the_session(code, action, keeps_session) -> None:
    conn = established()
    out = conn.end("", code=code)
    assert out.action is action and out.close_code == code
    assert conn.session.resumable is keeps_session
    assert out.reason  # never an empty reason in a log line


def test_4004_asks_for_a_fresh_token() -> None:
    conn, _ = connect()
    out = conn.end("auth failed", code=4004)
    assert out.refresh_token and out.auth_rejected and out.reason == "auth failed"


def test_49xx_alone_is_a_platform_hiccup_not_an_identify_rejection() -> None:
    conn, _ = connect()
    assert not conn.end("", code=4903).identify_rejected
    assert not established().end("", code=4903).identify_rejected


def test_op9_after_identify_then_4903_is_the_intents_signature() -> None:
    conn, _ = connect()
    conn.receive_text(frame(Op.INVALID_SESSION, False), 0.1)
    assert conn.end("", code=4903).identify_rejected


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"d": 1}',
        '{"op": "1"}',
        '{"op": 99}',
        b"\x00binary",
        b'{"op": 11, "d": "\xff"}',  # invalid UTF-8
        '{"op": true}',
        frame(Op.IDENTIFY, {}),
        frame(Op.DISPATCH, {}, s=3),
    ],
)
def test_malformed_or_unexpected_frames_are_rejected_and_survived(text) -> None:
    conn = established()
    out = conn.receive_text(text, 1)
    assert len(out) == 1 and isinstance(out[0], FrameRejected)
    assert conn.phase is ConnPhase.ESTABLISHED


def test_binary_frames_are_rejected_and_survived() -> None:
    conn = established()
    out = conn.receive_binary(b"\x00\x01")
    assert len(out) == 1 and isinstance(out[0], FrameRejected) and "binary" in out[0].reason
    assert conn.phase is ConnPhase.ESTABLISHED


def test_hello_without_interval_falls_back_and_says_so() -> None:
    conn = GatewayProtocol(token=TOKEN, intents=1, session=ResumePoint(), now=0)
    out = conn.receive_text(frame(Op.HELLO, {}), 0)
    assert isinstance(out[0], FrameRejected) and isinstance(out[1], Send)
    assert conn.heartbeat_interval == 45.0


def test_ready_without_session_id_is_rejected() -> None:
    conn, _ = connect()
    (out,) = conn.receive_text(frame(Op.DISPATCH, {"user": {}}, s=1, t="READY"), 0.1)
    assert isinstance(out, FrameRejected) and conn.phase is ConnPhase.AWAIT_READY


def test_server_heartbeat_request_is_answered() -> None:
    conn = established()
    assert conn.receive_text(frame(Op.HEARTBEAT), 1) == [Send({"op": Op.HEARTBEAT, "d": 1})]


def test_nothing_happens_after_close() -> None:
    conn = established()
    conn.end("", code=1000)
    assert conn.receive_text(dispatch(9, "x"), 2) == [] and conn.poll(100) == []


def test_send_text_is_compact_json() -> None:
    assert Send({"op": 1, "d": None}).text() == '{"op":1,"d":null}'


def test_the_heartbeat_round_trip_is_measured_from_send_to_ack() -> None:
    conn = established()
    assert conn.ack_rtt is None
    conn.poll(1.0)
    conn.receive_text(frame(Op.HEARTBEAT_ACK), 1.025)
    assert conn.ack_rtt == pytest.approx(0.025)
    conn.poll(2.0)
    conn.receive_text(frame(Op.HEARTBEAT_ACK), 2.5)
    assert conn.ack_rtt == pytest.approx(0.5)


def test_two_updates_to_one_channel_are_two_events() -> None:
    """CHANNEL_UPDATE's `d.id` names the channel: only the envelope id says which event it is."""
    conn = established()
    first = frame(Op.DISPATCH, {"id": "ch-1", "name": "a"}, s=3, t="CHANNEL_UPDATE", id="CHANNEL_UPDATE:e3")
    second = frame(Op.DISPATCH, {"id": "ch-1", "name": "b"}, s=5, t="CHANNEL_UPDATE", id="CHANNEL_UPDATE:e5")
    out = conn.receive_text(first, 1) + conn.receive_text(second, 1)
    assert [(d.seq, d.data["name"]) for d in out if isinstance(d, Dispatch)] == [(3, "a"), (5, "b")]
    # The same event replayed (its envelope id again, on a Resume) is a duplicate.
    assert conn.receive_text(second, 1) == []


def test_without_an_envelope_id_the_objects_id_dedupes() -> None:
    conn = established()
    assert conn.receive_text(frame(Op.DISPATCH, {"id": "m1"}, s=2, t="C2C_MESSAGE_CREATE"), 1)
    assert conn.receive_text(frame(Op.DISPATCH, {"id": "m1"}, s=3, t="C2C_MESSAGE_CREATE"), 1) == []
    # The same d.id under another type is another event.
    assert conn.receive_text(frame(Op.DISPATCH, {"id": "m1"}, s=4, t="GROUP_AT_MESSAGE_CREATE"), 1)


def test_a_refused_resume_is_said_so_whatever_form_the_refusal_takes() -> None:
    # op 9 to our Resume
    session = ResumePoint(session_id="old", seq=3)
    conn, _ = connect(session)
    (out,) = conn.receive_text(frame(Op.INVALID_SESSION, False), 0.1)
    assert out.resume_refused and not session.resumable
    # 4006 / 4007 / 4902 closing the Resume before RESUMED: refused, and not an Identify rejection
    for code in (4006, 4007, 4902):
        conn, _ = connect(ResumePoint(session_id="old", seq=3))
        out = conn.end("", code=code)
        assert out.resume_refused and not out.identify_rejected and out.action is CloseAction.IDENTIFY, code


def test_only_a_resume_can_be_refused() -> None:
    conn, _ = connect()  # an Identify
    out = conn.receive_text(frame(Op.INVALID_SESSION, False), 0.1)[0]
    assert not out.resume_refused and out.identify_rejected
    after_ready = established(ResumePoint(session_id="old", seq=3))
    assert not after_ready.end("", code=4006).resume_refused
    conn, _ = connect(ResumePoint(session_id="old", seq=3))
    assert not conn.end("", code=4009).resume_refused  # resume again, not a refusal
    conn, _ = connect(ResumePoint(session_id="old", seq=3))
    assert not conn.end("", code=4004).resume_refused  # a stale token: a new token, not a new session


# How a connection ends: `end()` and the one `drops_session` predicate --------------------------


def before_ready(resuming: bool) -> GatewayProtocol:
    conn, _ = connect(ResumePoint(session_id="old", seq=3) if resuming else None)
    return conn


PHASES = {
    "before Hello": lambda: GatewayProtocol(token=TOKEN, intents=1, session=ResumePoint("old", 3), now=0),
    "identifying": lambda: before_ready(False),
    "resuming": lambda: before_ready(True),
    "established": lambda: established(ResumePoint(session_id="old", seq=3)),
}


@pytest.mark.parametrize(
    ("action", "drops", "code"),
    [
        (CloseAction.RESUME, False, CLOSE_KEEP_SESSION),
        (CloseAction.BACKOFF, False, CLOSE_KEEP_SESSION),
        (CloseAction.IDENTIFY, True, CLOSE_END_SESSION),
        (CloseAction.FATAL, True, CLOSE_END_SESSION),
    ],
)
def test_the_close_code_we_send_says_whether_the_session_is_kept(
    action: CloseAction, drops: bool, code: int
) -> None:
    decision = Disconnect(action, "x")
    assert decision.drops_session is drops and decision.our_close_code == code
    assert (CLOSE_KEEP_SESSION, CLOSE_END_SESSION) == (4000, 1000)


@pytest.mark.parametrize("phase", PHASES)
def test_ending_the_connection_ourselves_keeps_the_session(phase: str) -> None:
    conn = PHASES[phase]()
    kept = (conn.session.session_id, conn.session.seq)
    out = conn.end("no READY in time")
    assert out.action is CloseAction.RESUME and out.reason == "no READY in time" and out.close_code is None
    assert not out.drops_session and out.our_close_code == CLOSE_KEEP_SESSION
    assert not (out.resume_refused or out.identify_rejected or out.auth_rejected or out.refresh_token)
    assert conn.phase is ConnPhase.CLOSED and conn.next_wakeup() is None
    assert (conn.session.session_id, conn.session.seq) == kept


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("code", [None, *sorted(CLOSE_RULES), 1002, 3000, 4016, 4999])
def test_every_close_code_in_every_phase_forgets_exactly_what_it_drops(phase: str, code: int | None) -> None:
    conn = PHASES[phase]()
    had_session = conn.session.resumable
    out = conn.end("", code=code)
    assert out.close_code == code and out.reason  # the rule's meaning when the server gave no reason
    assert out.drops_session is (out.action in (CloseAction.IDENTIFY, CloseAction.FATAL))
    assert out.our_close_code == (CLOSE_END_SESSION if out.drops_session else CLOSE_KEEP_SESSION)
    assert conn.session.resumable is (had_session and not out.drops_session)
    assert conn.phase is ConnPhase.CLOSED and conn.disconnect is out
    assert conn.end("", code=1000) is out  # ending again changes nothing


def test_the_servers_reason_is_kept_over_the_rules_meaning() -> None:
    assert established().end("going down for maintenance", code=4009).reason == "going down for maintenance"
    assert established().end("", code=4009).reason == "connection expired (the 30-minute cycle)"


@pytest.mark.parametrize(
    ("frame_text", "drops"),
    [
        (frame(Op.RECONNECT), False),
        (frame(Op.INVALID_SESSION, True), False),
        (frame(Op.INVALID_SESSION, False), True),
    ],
)
def test_a_decision_the_gateway_forced_is_what_end_returns(frame_text: str, drops: bool) -> None:
    conn = established()
    (decided,) = conn.receive_text(frame_text, 1)
    assert isinstance(decided, Disconnect) and decided.drops_session is drops
    assert conn.phase is ConnPhase.CLOSED and conn.session.resumable is not drops
    # Whatever the transport says afterwards (the server's close, our own stop), the decision stands.
    assert conn.end("the worker is stopping") is decided
    assert conn.end("", code=4006) is decided and conn.session.resumable is not drops
    assert conn.receive_text(dispatch(9, "late"), 2) == [] and conn.poll(100) == []


def test_a_dead_link_is_decided_once_and_end_returns_it() -> None:
    conn = established()
    conn.poll(1.0)
    conn.poll(2.0)
    _, dead = conn.poll(3.0)
    assert isinstance(dead, Disconnect) and not dead.drops_session and "unacknowledged" in dead.reason
    assert conn.end("", code=4915) is dead and conn.session.resumable


# Odd Unicode: every frame a standards-following JSON encoder can produce --------------------------


ODD = [
    "\ud83d",  # a lone high surrogate: orjson refuses its escape, json and the RFC accept it
    "\udc00 tail",  # a lone low surrogate
    "\U0001f600",  # an emoji: json.dumps sends it as an escaped surrogate pair
    "中文 😀 \u0000 \u2028 \ufeff \U0010ffff",  # CJK, NUL, a line separator, a BOM, the last code point
]


@pytest.mark.parametrize("content", ODD)
def test_the_worker_accepts_every_standard_frame(content: str) -> None:
    conn = established()
    text = json.dumps(
        {"op": 0, "s": 2, "t": "C2C_MESSAGE_CREATE", "id": "C2C:m1", "d": {"id": "m1", "content": content}}
    )
    for wire in (text, text.encode()):
        (event,) = established().receive_text(wire, 1)
        assert isinstance(event, Dispatch) and event.data["content"] == content
    assert isinstance(conn.receive_text(text, 1)[0], Dispatch)


def test_orjson_alone_refuses_a_lone_surrogate_escape() -> None:
    """Why the fallback exists (and that it is only a fallback: orjson takes everything else)."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads('{"a": "\\ud83d"}')
    assert orjson.loads('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


@pytest.mark.parametrize("bad", [b'{"op": 0, "d": "\xff"}', "{not json", b"\xc3("])
def test_what_is_not_json_is_still_rejected(bad: str | bytes) -> None:
    (out,) = established().receive_text(bad, 1)
    assert isinstance(out, FrameRejected) and out.reason == "frame is not JSON"
