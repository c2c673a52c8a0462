"""gwserver: the platform's side of a gateway session that the simulator and the local gateway share."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qqworker.gwserver import (
    ClientFrame,
    Close,
    Identify,
    Op,
    Resume,
    close_reason,
    read_frame,
    read_identify,
    read_resume,
    token_from_authorization,
    valid_shard,
)

TOKEN = "tok-1"


def valid(token: str | None) -> bool:
    return token == TOKEN


def identify(**changes: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"token": f"QQBot {TOKEN}", "intents": 513, "shard": [0, 1]}
    d.update(changes)
    return {k: v for k, v in d.items() if v is not ...}


def resume(**changes: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"token": f"QQBot {TOKEN}", "session_id": "s-1", "seq": 7}
    d.update(changes)
    return {k: v for k, v in d.items() if v is not ...}


# Frames ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ('{"op": 1, "d": 5}', Op.HEARTBEAT),
        ('{"op": 2, "d": {}}', Op.IDENTIFY),
        ('{"op": 6, "d": {}}', Op.RESUME),
    ],
)
def test_a_client_op_is_read_with_its_d_and_the_whole_frame(text: str, op: Op) -> None:
    frame = read_frame(text)
    assert frame == ClientFrame(op, json.loads(text)["d"], json.loads(text))
    assert type(frame.op) is Op


def test_a_heartbeat_keeps_the_fields_beside_d() -> None:
    # Koishi's adapter-qq sends the seq as `s`, with no `d`: the local gateway reads it from the frame.
    frame = read_frame('{"op": 1, "s": 9}')
    assert isinstance(frame, ClientFrame) and frame.d is None and frame.frame["s"] == 9


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '"op"', "1", "{}", '{"op": "1"}', '{"op": true}', '{"op": 1.0}', '{"d": 1}'],
)
def test_anything_but_an_object_with_an_integer_op_is_an_invalid_payload(text: str) -> None:
    assert read_frame(text) is Close.INVALID_PAYLOAD


@pytest.mark.parametrize("op", [0, 3, 7, 9, 10, 11, 99, -1])
def test_an_op_a_client_never_sends_is_an_invalid_opcode(op: int) -> None:
    assert read_frame(json.dumps({"op": op, "d": None})) is Close.INVALID_OPCODE


# Identify --------------------------------------------------------------------------------------


def test_a_valid_identify_is_read() -> None:
    assert read_identify(identify(), valid) == Identify(513, [0, 1])
    assert read_identify(identify(shard=[2, 4], intents=0), valid) == Identify(0, [2, 4])


def test_an_identify_without_a_shard_is_shard_0_of_1() -> None:
    assert read_identify(identify(shard=...), valid) == Identify(513, [0, 1])


@pytest.mark.parametrize(
    ("d", "code"),
    [
        (None, Close.INVALID_PAYLOAD),
        ([], Close.INVALID_PAYLOAD),
        ("x", Close.INVALID_PAYLOAD),
        (identify(token=...), Close.AUTHENTICATION_FAILED),
        (identify(token=TOKEN), Close.AUTHENTICATION_FAILED),  # the prefix is required
        (identify(token="QQBot other"), Close.AUTHENTICATION_FAILED),
        (identify(token=7), Close.AUTHENTICATION_FAILED),
        (identify(intents=...), Close.INVALID_INTENT),
        (identify(intents=-1), Close.INVALID_INTENT),
        (identify(intents="513"), Close.INVALID_INTENT),
        (identify(intents=True), Close.INVALID_INTENT),
        (identify(intents=1.0), Close.INVALID_INTENT),
        (identify(shard=[1, 1]), Close.INVALID_SHARD),
        (identify(shard=[0]), Close.INVALID_SHARD),
        (identify(shard=None), Close.INVALID_SHARD),
        (identify(shard=(0, 1)), Close.INVALID_SHARD),
    ],
)
def test_a_bad_identify_gets_its_close_code(d: Any, code: Close) -> None:
    assert read_identify(d, valid) is code


def test_identify_checks_in_the_platforms_order() -> None:
    # Everything wrong at once: the token is checked before the intents, the intents before the shard.
    assert (
        read_identify(identify(token="QQBot x", intents=-1, shard=[]), valid) is Close.AUTHENTICATION_FAILED
    )
    assert read_identify(identify(intents=-1, shard=[]), valid) is Close.INVALID_INTENT


def test_the_read_identify_owns_its_shard() -> None:
    d = identify(shard=[0, 2])
    read = read_identify(d, valid)
    assert isinstance(read, Identify)
    d["shard"].append(9)
    assert read.shard == [0, 2]


# Resume ----------------------------------------------------------------------------------------


def test_a_valid_resume_is_read() -> None:
    assert read_resume(resume(), valid) == Resume("s-1", 7)


@pytest.mark.parametrize("seq", [..., None, 0])
def test_a_resume_without_a_seq_resumes_from_0(seq: Any) -> None:
    assert read_resume(resume(seq=seq), valid) == Resume("s-1", 0)


@pytest.mark.parametrize(
    ("d", "code"),
    [
        (None, Close.INVALID_PAYLOAD),
        ([], Close.INVALID_PAYLOAD),
        (resume(session_id=...), Close.INVALID_PAYLOAD),
        (resume(session_id=5), Close.INVALID_PAYLOAD),
        (resume(session_id=None), Close.INVALID_PAYLOAD),
        (resume(token=...), Close.AUTHENTICATION_FAILED),
        (resume(token="QQBot "), Close.AUTHENTICATION_FAILED),
        (resume(seq=-1), Close.INVALID_SEQ),
        (resume(seq="7"), Close.INVALID_SEQ),
        (resume(seq=7.0), Close.INVALID_SEQ),
        (resume(seq=False), Close.INVALID_SEQ),
        (resume(seq=""), Close.INVALID_SEQ),
    ],
)
def test_a_bad_resume_gets_its_close_code(d: Any, code: Close) -> None:
    assert read_resume(d, valid) is code


def test_resume_checks_the_session_id_before_the_token_and_the_token_before_the_seq() -> None:
    assert read_resume(resume(session_id=1, token="QQBot x"), valid) is Close.INVALID_PAYLOAD
    assert read_resume(resume(token="QQBot x", seq=-1), valid) is Close.AUTHENTICATION_FAILED


# Small pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "token"),
    [("QQBot abc", "abc"), ("QQBot  abc", " abc"), ("QQBot ", None), ("Bearer abc", None),
     ("qqbot abc", None), ("abc", None), (None, None)],
)  # fmt: skip
def test_token_from_authorization(value: str | None, token: str | None) -> None:
    assert token_from_authorization(value) == token


@pytest.mark.parametrize(
    ("shard", "ok"),
    [([0, 1], True), ([3, 4], True), ([1, 1], False), ([-1, 1], False), ([0, 0], False), ([0, 1, 2], False),
     ([True, 2], False), ([0, 1.0], False), ("0,1", False), (None, False)],
)  # fmt: skip
def test_valid_shard(shard: Any, ok: bool) -> None:
    assert valid_shard(shard) is ok


def test_close_reason() -> None:
    assert close_reason(Close.SESSION_TIMED_OUT) == "session timed out"
    assert close_reason(4999) == "closed by the server"
    assert close_reason(4999, "closed by the simulator") == "closed by the simulator"
