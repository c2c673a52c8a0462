"""The platform's side of a gateway session, as both of our servers play it: the simulator and the local
gateway (`QQ_HANDLER=gateway`) read a client's frames with this module.

Pure: no sockets, no clock, no aiohttp. It holds the platform's opcodes and close codes, reads a client
frame, and checks an Identify's or a Resume's `d` in the platform's order, answering either the request
or the close code that refuses it; the servers add what is theirs (the simulator its outages and
counters, the local gateway its shared stream) around it.

Kept apart from the worker's client tables (`protocol.py`, `closecodes.py`) on purpose: a server that
imported the client's idea of the protocol would share its mistakes instead of catching them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

__all__ = [
    "CLOSE_REASONS",
    "ClientFrame",
    "Close",
    "Identify",
    "Op",
    "Resume",
    "close_reason",
    "read_frame",
    "read_identify",
    "read_resume",
    "token_from_authorization",
    "valid_shard",
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


class Close(IntEnum):
    GOING_AWAY = 1001
    UNKNOWN_ERROR = 4000
    INVALID_OPCODE = 4001
    INVALID_PAYLOAD = 4002
    NOT_AUTHENTICATED = 4003
    AUTHENTICATION_FAILED = 4004
    ALREADY_AUTHENTICATED = 4005
    INVALID_SESSION = 4006
    INVALID_SEQ = 4007
    RATE_LIMITED = 4008
    SESSION_TIMED_OUT = 4009
    INVALID_SHARD = 4010
    INVALID_INTENT = 4013
    INTENT_NOT_PERMITTED = 4014
    CREATE_SESSION_ERROR = 4903
    INTERNAL_ERROR = 4901


CLOSE_REASONS: dict[int, str] = {
    1001: "going away",
    4000: "unknown error",
    4001: "invalid opcode",
    4002: "invalid payload",
    4003: "not authenticated",
    4004: "authentication fail",
    4005: "already authenticated",
    4006: "invalid session",
    4007: "invalid seq",
    4008: "rate limited",
    4009: "session timed out",
    4010: "invalid shard",
    4011: "sharding required",
    4012: "invalid version",
    4013: "invalid intent",
    4014: "disallowed intent",
    4901: "internal error",
    4902: "reset by resume",
    4903: "create session error",
    4914: "bot offline, sandbox only",
    4915: "bot banned",
}

# The opcodes a client may send; any other is closed with 4001.
_CLIENT_OPS = frozenset({Op.HEARTBEAT, Op.IDENTIFY, Op.RESUME})


def close_reason(code: int, default: str = "closed by the server") -> str:
    """The platform's reason text for a close code."""
    return CLOSE_REASONS.get(code, default)


class ClientFrame(NamedTuple):
    op: Op
    d: Any
    frame: dict[str, Any]  # the whole frame, for fields beside `d`


def read_frame(data: str) -> ClientFrame | Close:
    """A client's text frame, or the close it earns: 4002 when it is not a JSON object with an integer
    `op`, 4001 when that op is not one a client sends (heartbeat, Identify, Resume)."""
    try:
        frame = json.loads(data)
    except ValueError:
        return Close.INVALID_PAYLOAD
    op = frame.get("op") if isinstance(frame, dict) else None
    if type(op) is not int:
        return Close.INVALID_PAYLOAD
    if op not in _CLIENT_OPS:
        return Close.INVALID_OPCODE
    return ClientFrame(Op(op), frame.get("d"), frame)


def token_from_authorization(value: str | None) -> str | None:
    """The token in `QQBot <token>` (the literal prefix and one space), else None."""
    if value is None or not value.startswith("QQBot "):
        return None
    return value[len("QQBot ") :] or None


def valid_shard(shard: Any) -> bool:
    """`[index, count]` with 0 <= index < count, both integers."""
    return (
        isinstance(shard, list)
        and len(shard) == 2
        and all(type(x) is int for x in shard)
        and 0 <= shard[0] < shard[1]
    )


@dataclass(frozen=True, slots=True)
class Identify:
    intents: int
    shard: list[int]


@dataclass(frozen=True, slots=True)
class Resume:
    session_id: str
    seq: int  # the last seq the client got; 0 when it sent none


TokenCheck = Callable[[str | None], bool]


def _token_ok(d: dict[str, Any], token_valid: TokenCheck) -> bool:
    value = d.get("token")
    return token_valid(token_from_authorization(value) if isinstance(value, str) else None)


def read_identify(d: Any, token_valid: TokenCheck) -> Identify | Close:
    """An Identify's `d` checked in the platform's order: an object (4002), a valid token (4004), integer
    intents >= 0 (4013), a valid shard, `[0, 1]` when absent (4010). Which intents a bot may have is the
    server's own question, asked after this."""
    if not isinstance(d, dict):
        return Close.INVALID_PAYLOAD
    if not _token_ok(d, token_valid):
        return Close.AUTHENTICATION_FAILED
    intents = d.get("intents")
    if type(intents) is not int or intents < 0:
        return Close.INVALID_INTENT
    shard = d.get("shard", [0, 1])
    if not valid_shard(shard):
        return Close.INVALID_SHARD
    return Identify(intents, list(shard))


def read_resume(d: Any, token_valid: TokenCheck) -> Resume | Close:
    """A Resume's `d` checked in the platform's order: an object with a string `session_id` (4002), a
    valid token (4004), an integer `seq` >= 0, or none (4007). Whether the session can be resumed from
    there is the server's own question, asked after this."""
    if not isinstance(d, dict) or not isinstance(d.get("session_id"), str):
        return Close.INVALID_PAYLOAD
    if not _token_ok(d, token_valid):
        return Close.AUTHENTICATION_FAILED
    seq = d.get("seq")
    if seq is None:
        seq = 0
    if type(seq) is not int or seq < 0:
        return Close.INVALID_SEQ
    return Resume(d["session_id"], seq)
